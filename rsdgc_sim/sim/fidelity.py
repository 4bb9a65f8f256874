"""Fidelity levels: how a collective is simulated, and which level ``auto`` picks.

* ``analytic``: the closed form (no events); only where one exists for the topology;
* ``step``: one SimPy event per phase, its duration read off the topology
  (:mod:`rsdgc_sim.sim.step`); exact for symmetric phases and for one pattern whose
  transfers never share a link, an estimate otherwise;
* ``link``: every transfer a flow on the flow-level network (contention, rank-local
  dependencies, :mod:`rsdgc_sim.sim.network`); exact by construction of the model, and the
  slowest: O(transfers) events, O(p^2) for a ring;
* ``auto``: the cheapest exact level: ``analytic`` if a closed form applies, else ``step``
  if it is exact here, else ``link`` when :func:`link_seconds_estimate` expects it to take
  at most :data:`AUTO_LINK_MAX_SECONDS`, else ``link``'s time computed round by round
  without events where flows share links at most in pairs
  (:mod:`rsdgc_sim.sim.link_rounds`: the double binary tree on ``tree`` and ``fat_tree``,
  65,536 ranks in about a second). Beyond that ``auto`` takes ``step`` and says so: the
  run is marked ``exact: false`` and the explanation names the reasons (why ``step`` is an
  estimate, what ``link`` would cost, why the rounds cannot be computed); ask for ``link``
  to run the flows anyway, within the budget of :mod:`rsdgc_sim.sim.runner`.

The estimate of a ``link`` run's time is a deterministic count, not a measurement (the same
inputs always pick the same level): :data:`LINK_SECONDS_PER_TRANSFER` per transfer, plus
:data:`LINK_SECONDS_PER_SHARED_HOP` per unit of sharing work. Flows that share links
(transitively) are rebalanced together whenever one of them starts or ends, so a pattern
costs ``sum over its groups of sharing flows of (flows in the group) x (links of their
routes)``; flows alone on their links count their own hops. The constants come from
timed runs on this project's 2-core CPU machine (ring, tree, halving-doubling, double
binary tree, recursive-doubling all-gather and parameter server on every shipped topology,
16 to 4,096 ranks), where the estimate came out between 0.9 and 18 times the measured
time: it errs towards ``step``.

All levels agree to 1e-9 relative where they are exact.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from .collectives import Collective, Message, Phase
from .collectives.base import ClosedForm
from .link_rounds import link_rounds_seconds
from .step import PhaseCost, step_exactness, step_seconds
from .topology.graph import Topology

FIDELITIES: Registry = Registry("fidelity")
for _name, _help in (
    ("analytic", "closed form where one exists (no events)"),
    ("step", "one event per collective phase; exact for symmetric or link-disjoint patterns"),
    ("link", "one flow per transfer, with link contention"),
    ("auto", "the cheapest level that is exact for the configuration"),
):
    FIDELITIES.add(_name, _name, _help)
_ORDER = {"analytic": 0, "step": 1, "link": 2}

#: ``auto`` runs ``link`` (when it is the only exact level) if it should take at most this
AUTO_LINK_MAX_SECONDS = 0.5
#: the time model of a ``link`` run (module docstring)
LINK_SECONDS_PER_TRANSFER = 40e-6
LINK_SECONDS_PER_SHARED_HOP = 15e-6


def most_detailed(levels: list[str]) -> str:
    """The most detailed fidelity among those used (``analytic`` if none)."""
    return max(levels, key=lambda x: _ORDER[x], default="analytic")


def closed_form(coll: Collective, p: int, msg: Message, topo: Topology) -> ClosedForm | None:
    """The closed form on a uniform topology (alpha = host-to-host latency, beta =
    1/bandwidth), or the collective's own formula for a structured one, or None."""
    if topo.uniform:
        return coll.closed_form(p, msg, topo.alpha, 1.0 / topo.bandwidth, topo)
    return coll.closed_form_on(p, msg, topo)


def link_transfers(coll: Collective, p: int, msg: Message, topo: Topology,
                   phases: list[Phase]) -> int:
    """How many transfers (flows) ``link`` would simulate."""
    n = coll.dag_size(p, msg, topo)
    if n is not None:
        return n
    return sum(ph.repeat * len(ph.pairs) for ph in phases)


def _sharing_work(topo: Topology, phase: Phase) -> float:
    """sum over groups of flows of a pattern that share links (transitively) of the group's
    flows x the links of their routes (cached per pattern)."""
    key = ("sharing", phase.key)
    hit = topo._pattern_cache.get(key)
    if hit is not None:
        return hit
    topo.prefetch_routes(phase.pairs)
    routes = [topo.route(a, b).links for a, b in phase.pairs]
    n = len(routes)
    hops = np.fromiter((len(r) for r in routes), dtype=np.int64, count=n)
    total = int(hops.sum())
    if total == 0:
        work = 0.0
    else:
        flow = np.repeat(np.arange(n), hops)
        link = np.fromiter(itertools.chain.from_iterable(routes), dtype=np.int64, count=total)
        # lazy: scipy (loading any scenario imports this module, and scipy.sparse alone
        # takes longer to import than the rest of it)
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        # flows and links as one graph: flow k is node k, link l is node n + l
        m = n + len(topo.link_bw)
        adj = coo_matrix((np.ones(total), (flow, n + link)), shape=(m, m))
        _, label = connected_components(adj, directed=False)
        size = np.bincount(label[:n])
        group_hops = np.bincount(label[:n], weights=hops)
        work = float(np.sum(size * group_hops))
    topo._pattern_cache[key] = work
    return work


def link_seconds_estimate(coll: Collective, p: int, msg: Message, topo: Topology,
                          phases: list[Phase], limit: float = math.inf) -> float:
    """The expected wall time of a ``link`` run (module docstring); counting stops, and
    ``inf`` is returned, once the estimate passes ``limit``."""
    transfers = link_transfers(coll, p, msg, topo, phases)
    est = transfers * LINK_SECONDS_PER_TRANSFER
    rounds = sum(ph.repeat * len(ph.pairs) for ph in phases)
    # the chunked ring moves every transfer of its rounds in pieces
    pieces = max(1, transfers // rounds) if rounds else 1
    for ph in phases:
        if est > limit:
            return math.inf
        if not ph.pairs:
            continue
        pc = topo.pattern_cost(ph.key, ph.pairs)
        own = ph.repeat * pieces * float(pc.hops.sum()) * LINK_SECONDS_PER_SHARED_HOP
        if pc.max_flows <= 1 or est + own > limit:
            est += own  # every flow alone on its links (or over the limit anyway)
            continue
        est += ph.repeat * pieces * _sharing_work(topo, ph) * LINK_SECONDS_PER_SHARED_HOP
    return est if est <= limit else math.inf


@dataclass(frozen=True)
class FidelityChoice:
    """The level a collective runs at, whether that level is exact here, and why."""

    level: str
    exact: bool
    reason: str
    closed: ClosedForm | None = None
    phases: list[Phase] | None = None
    costs: list[PhaseCost] | None = None
    step_s: float | None = None
    #: ``link``'s time computed round by round (:mod:`.link_rounds`), when it was
    link_s: float | None = None


def choose_fidelity(coll: Collective, p: int, msg: Message, topo: Topology,
                    fidelity: str) -> FidelityChoice:
    """The level for ``fidelity`` (``auto``: see the module docstring)."""
    FIDELITIES.get(fidelity)
    if fidelity in ("step", "link") and getattr(coll, "analytic_only", False):
        raise ConfigError(
            f"fidelity {fidelity!r}: collective {coll.name!r} is a closed-form model (NCCL's "
            f"own), with no transfers to simulate; use fidelity analytic or auto")
    cf = closed_form(coll, p, msg, topo)
    if fidelity == "analytic" or (fidelity == "auto" and cf is not None):
        if cf is None:
            raise ConfigError(
                f"fidelity 'analytic': collective {coll.name!r} has no closed form on "
                f"topology {topo.name!r} (non-uniform links or no formula); use step or link")
        return FidelityChoice("analytic", True, "closed form", cf)
    phases = coll.phases(p, msg, topo)
    if fidelity == "link":
        return FidelityChoice("link", True, "every transfer a flow", cf, phases)
    costs, total = step_seconds(topo, phases)
    exact, why = step_exactness(coll, phases, costs)
    if fidelity == "step" or exact:
        return FidelityChoice("step", exact, why, cf, phases, costs, total)
    secs = link_seconds_estimate(coll, p, msg, topo, phases, AUTO_LINK_MAX_SECONDS)
    if secs <= AUTO_LINK_MAX_SECONDS:
        return FidelityChoice("link", True, f"step is not exact ({why})", cf, phases, costs,
                              total)
    rounds = link_rounds_seconds(coll, p, msg, topo, phases)
    if rounds.seconds is not None:
        return FidelityChoice(
            "link", True, f"step is not exact ({why}); link's time computed round by round: "
            f"flows share links at most in pairs and never meet one of another round", cf,
            phases, costs, total, link_s=rounds.seconds)
    n = link_transfers(coll, p, msg, topo, phases)
    return FidelityChoice(
        "step", False,
        f"{why}; only link is exact, and its {n:,} transfers would take more than "
        f"{AUTO_LINK_MAX_SECONDS:g} s (auto's limit) as flows; nor can their time be "
        f"computed round by round: {rounds.why_not}", cf, phases, costs, total)


def resolve_fidelity(coll: Collective, p: int, msg: Message, topo: Topology,
                     fidelity: str) -> str:
    """The level ``fidelity`` runs at for this collective (``auto`` resolved)."""
    return choose_fidelity(coll, p, msg, topo, fidelity).level


__all__ = ["AUTO_LINK_MAX_SECONDS", "FIDELITIES", "FidelityChoice", "choose_fidelity",
           "closed_form", "link_seconds_estimate", "link_transfers", "most_detailed",
           "resolve_fidelity"]
