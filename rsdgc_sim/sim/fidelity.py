"""Fidelity levels: how a collective is simulated, and which level ``auto`` picks.

* ``analytic``: the closed form (no events); only where one exists for the topology;
* ``step``: one SimPy event per phase, its duration read off the topology
  (:mod:`rsdgc_sim.sim.step`); exact for symmetric phases and for one pattern whose
  transfers never share a link, an estimate otherwise;
* ``link``: every transfer a flow on the flow-level network (contention, rank-local
  dependencies, :mod:`rsdgc_sim.sim.network`); exact by construction of the model, and the
  slowest: O(transfers) events, O(p^2) for a ring;
* ``auto``: the cheapest exact level: ``analytic`` if a closed form applies, else ``step``
  if it is exact here, else ``link`` when it would simulate at most
  :data:`AUTO_LINK_MAX_TRANSFERS` transfers (about a second). Beyond that ``auto`` takes
  ``step`` and says so: the run is marked ``exact: false`` and the explanation names the
  reason (ask for ``link`` to run the flows anyway, within the budget of
  :mod:`rsdgc_sim.sim.runner`).

All levels agree to 1e-9 relative where they are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..registry import Registry
from .collectives import Collective, Message, Phase
from .collectives.base import ClosedForm
from .step import PhaseCost, step_exactness, step_seconds
from .topology import Topology

FIDELITIES: Registry = Registry("fidelity")
for _name, _help in (
    ("analytic", "closed form where one exists (no events)"),
    ("step", "one event per collective phase; exact for symmetric or link-disjoint patterns"),
    ("link", "one flow per transfer, with link contention"),
    ("auto", "the cheapest level that is exact for the configuration"),
):
    FIDELITIES.add(_name, _name, _help)
_ORDER = {"analytic": 0, "step": 1, "link": 2}

#: ``auto`` runs ``link`` (when it is the only exact level) up to this many transfers
AUTO_LINK_MAX_TRANSFERS = 20_000


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


def choose_fidelity(coll: Collective, p: int, msg: Message, topo: Topology,
                    fidelity: str) -> FidelityChoice:
    """The level for ``fidelity`` (``auto``: see the module docstring)."""
    FIDELITIES.get(fidelity)
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
    n = link_transfers(coll, p, msg, topo, phases)
    if n <= AUTO_LINK_MAX_TRANSFERS:
        return FidelityChoice("link", True, f"step is not exact ({why})", cf, phases, costs,
                              total)
    return FidelityChoice(
        "step", False,
        f"{why}: only link is exact and it would simulate {n:,} transfers (auto runs link up "
        f"to {AUTO_LINK_MAX_TRANSFERS:,}); step estimates", cf, phases, costs, total)


def resolve_fidelity(coll: Collective, p: int, msg: Message, topo: Topology,
                     fidelity: str) -> str:
    """The level ``fidelity`` runs at for this collective (``auto`` resolved)."""
    return choose_fidelity(coll, p, msg, topo, fidelity).level


__all__ = ["AUTO_LINK_MAX_TRANSFERS", "FIDELITIES", "FidelityChoice", "choose_fidelity",
           "closed_form", "link_transfers", "most_detailed", "resolve_fidelity"]
