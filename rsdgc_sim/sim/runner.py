"""Runs one collective at a fidelity level (:func:`run_collective`).

``link`` is checked against a :class:`LinkBudget` before any flow starts: its memory
estimate (what the flow-level run holds at its peak, from the counts below) and the number
of transfers it would simulate (its time: tens of thousands of transfers a second). Over
either, :func:`run_collective` raises :class:`~rsdgc_sim.errors.ConfigError` with the
estimate and the alternatives (``step``, ``auto``), instead of running for hours or
exhausting memory.

Memory of a ``link`` run (bytes, fitted to tracemalloc peaks on CPython 3.11):

* per directed link of the topology: :data:`BYTES_PER_LINK` (its flow table);
* per distinct route: :data:`BYTES_PER_ROUTE` plus :data:`BYTES_PER_HOP` per link of it;
* per entry of every distinct pattern: :data:`BYTES_PER_PATTERN_ENTRY` (ranks' op lists);
* per transfer in flight (at most the largest pattern, twice): :data:`BYTES_PER_FLOW`, plus
  :data:`BYTES_PER_FLOW_HOP` per link of its route (link flow tables, rebalancing);
* the chunked ring holds all its operations and their dependencies:
  :data:`BYTES_PER_DAG_OP` each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import simpy

from ..errors import ConfigError, TopologyError
from .collectives import Collective, Message, Phase
from .collectives.base import RotatingSizes, need_groups
from .fidelity import choose_fidelity
from .network import FlowNetwork, run_dag, run_phases
from .topology.graph import Topology

#: allreduce algorithms ``collective: auto`` always considers (see :func:`auto_candidates`)
AUTO_CANDIDATES = ("ring", "halving_doubling", "tree", "double_binary_tree")

BYTES_PER_LINK = 80
BYTES_PER_ROUTE = 300
BYTES_PER_HOP = 8
BYTES_PER_PATTERN_ENTRY = 60
BYTES_PER_FLOW = 1500
BYTES_PER_FLOW_HOP = 150
BYTES_PER_DAG_OP = 600


@dataclass(frozen=True)
class LinkBudget:
    """Limits of one ``link`` run: estimated peak memory (bytes) and transfers (flows)."""

    memory_bytes: float = 2 * 2**30
    transfers: float = 1e8


DEFAULT_LINK_BUDGET = LinkBudget()


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self, initial_time: float = 0):
        super().__init__(initial_time)
        self.events_processed = 0

    def step(self) -> None:
        self.events_processed += 1
        super().step()


@dataclass
class CollectiveRun:
    """One collective's simulated duration and how it was obtained. ``exact`` is False when
    ``step`` ran where it is only an estimate; ``note`` says why the level is (in)exact."""

    algorithm: str
    seconds: float
    fidelity: str
    events: int
    closed_form_s: float | None
    phases: list[dict[str, Any]] = field(default_factory=list)
    exact: bool = True
    note: str = ""


def auto_candidates(topo: Topology, p: int) -> list[str]:
    """The allreduce algorithms ``auto`` chooses among on ``p`` ranks of ``topo``:
    :data:`AUTO_CANDIDATES`, and ``hierarchical`` where the topology has nodes and the
    ``p`` ranks fill them equally (a partial last node leaves it out)."""
    out = list(AUTO_CANDIDATES)
    if topo.groups:
        try:
            need_groups(topo, None, p)
        except (ConfigError, TopologyError):
            pass
        else:
            out.append("hierarchical")
    return out


# -- the link budget -----------------------------------------------------------------------
@dataclass(frozen=True)
class LinkEstimate:
    transfers: int
    memory_bytes: int


def link_estimate(coll: Collective, p: int, msg: Message, topo: Topology,
                  phases: list[Phase]) -> LinkEstimate:
    """What a ``link`` run of ``coll`` would simulate and hold (module docstring)."""
    mem = topo.n_links * BYTES_PER_LINK
    dag = coll.dag_size(p, msg, topo)
    seen: dict[tuple, None] = {}
    largest = 0
    for ph in phases:
        if ph.key in seen or not ph.pairs:
            continue
        seen[ph.key] = None
        pc = topo.pattern_cost(ph.key, ph.pairs)
        hops = int(pc.hops.sum())
        mem += len(ph.pairs) * (BYTES_PER_ROUTE + 2 * BYTES_PER_PATTERN_ENTRY)
        mem += hops * BYTES_PER_HOP
        largest = max(largest, len(ph.pairs) * BYTES_PER_FLOW + hops * BYTES_PER_FLOW_HOP)
    if dag is not None:
        transfers = dag
        mem += dag * BYTES_PER_DAG_OP
    else:
        transfers = sum(ph.repeat * len(ph.pairs) for ph in phases)
        mem += 2 * largest
    return LinkEstimate(transfers, mem)


def check_link_budget(coll: Collective, p: int, msg: Message, topo: Topology,
                      phases: list[Phase], budget: LinkBudget | None = None) -> LinkEstimate:
    """Raise ConfigError when a ``link`` run would exceed ``budget``; else the estimate."""
    budget = budget or DEFAULT_LINK_BUDGET
    est = link_estimate(coll, p, msg, topo, phases)
    over = []
    if est.memory_bytes > budget.memory_bytes:
        over.append(f"about {est.memory_bytes / 2**30:.3g} GiB of memory (budget "
                    f"{budget.memory_bytes / 2**30:.3g} GiB)")
    if est.transfers > budget.transfers:
        over.append(f"{est.transfers:,} transfers (budget {budget.transfers:,.0f}, tens of "
                    f"thousands a second)")
    if over:
        raise ConfigError(
            f"fidelity 'link': {coll.name!r} on {p} workers of topology {topo.name!r} would "
            f"simulate {est.transfers:,} transfers and need " + " and ".join(over)
            + "; use fidelity step (one event per phase) or auto (the cheapest exact level)")
    return est


# -- running -------------------------------------------------------------------------------
def _wait(env: simpy.Environment, seconds: float):
    yield env.timeout(seconds)


def _rounds(phases: list[Phase]) -> list[tuple]:
    """The phases as :func:`run_phases` takes them; sizes that rotate become one entry per
    repetition, each a view of the one tuple of sizes."""
    out = []
    for ph in phases:
        if isinstance(ph.nbytes, RotatingSizes) and ph.repeat > 1:
            out += [(ph.pairs, ph.nbytes.row(s), 1) for s in range(ph.repeat)]
        else:
            out.append((ph.pairs, ph.nbytes, ph.repeat))
    return out


def run_collective(coll: Collective, p: int, msg: Message, topo: Topology, fidelity: str,
                   env: CountingEnvironment | None = None, *,
                   link_budget: LinkBudget | None = None) -> CollectiveRun:
    """Simulate one collective call on ``p`` ranks of ``topo``. With ``env`` given, the
    SimPy events run on it (starting at its current time) and are counted there. A
    ``link`` run over ``link_budget`` raises ConfigError before it starts."""
    if p <= 1:
        return CollectiveRun(coll.name, 0.0, "analytic", 0, 0.0)
    coll.check(p, msg, topo)
    ch = choose_fidelity(coll, p, msg, topo, fidelity)
    cf_s = ch.closed.value if ch.closed is not None else None
    if ch.level == "analytic":
        return CollectiveRun(coll.name, ch.closed.value, "analytic", 0, cf_s)
    phases = ch.phases
    if ch.level == "link" and ch.link_s is None:
        check_link_budget(coll, p, msg, topo, phases, link_budget)
    own = env is None
    if own:
        env = CountingEnvironment()
    ev0, t0 = env.events_processed, env.now
    if ch.level == "step":
        info = [{"label": ph.label, "repeat": ph.repeat, "seconds": c.seconds,
                 "symmetric": c.symmetric} for ph, c in zip(phases, ch.costs, strict=True)]
        durations = [d for c in ch.costs for d in c.durations]

        def proc():
            for d in durations:
                yield env.timeout(d)

        env.process(proc())
        env.run()
    elif ch.link_s is not None:  # link's time, computed round by round (no flows to run)
        env.process(_wait(env, ch.link_s))
        env.run()
        info = [{"label": ph.label, "repeat": ph.repeat} for ph in phases]
    else:
        for ph in phases:
            topo.prefetch_routes(ph.pairs)
        net = FlowNetwork(env, topo)
        dag = coll.dag(p, msg, topo)
        if dag is not None:
            done = run_dag(env, net, *dag)
        else:
            done = run_phases(env, net, _rounds(phases))
        env.run(until=done)
        info = [{"label": ph.label, "repeat": ph.repeat} for ph in phases]
    # seconds as a difference of clock readings; start at 0 keeps it exact for a fresh env
    return CollectiveRun(coll.name, env.now - t0, ch.level, env.events_processed - ev0, cf_s,
                         info, exact=ch.exact, note=ch.reason)


__all__ = ["AUTO_CANDIDATES", "DEFAULT_LINK_BUDGET", "CollectiveRun", "CountingEnvironment",
           "LinkBudget", "LinkEstimate", "auto_candidates", "check_link_budget",
           "link_estimate", "run_collective"]
