"""Runs one collective at a fidelity level and answers ``collective_time``.

Fidelity levels (all agree to 1e-9 relative on uniform, uncontended cases):

* ``analytic``: the closed form (no events); only where one exists for the topology;
* ``step``: one SimPy event per phase; each phase's duration is read off the topology
  (``repeat·L + repeat·bytes·c`` with ``L`` the route latency and ``c`` the most loaded
  link's ``flows/bandwidth`` on the route, worst transfer of the pattern); exact when every
  transfer of every phase sees the same cost (symmetric patterns);
* ``link``: every transfer a flow on the flow-level network (contention, rank-local
  dependencies); exact by construction of the model, and the slowest;
* ``auto``: the cheapest exact one: ``analytic`` if a closed form applies, else ``step``
  if every phase is symmetric, else ``link``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import simpy

from ..errors import ConfigError
from ..registry import Registry
from .collectives import COLLECTIVES, Collective, Message, Phase, make_collective
from .config import TopologySpec
from .network import FlowNetwork, run_dag, run_rounds
from .topology import Topology, build_topology

FIDELITIES: Registry = Registry("fidelity")
for _name, _help in (
    ("analytic", "closed form where one exists (no events)"),
    ("step", "one event per collective phase; exact for symmetric patterns"),
    ("link", "one flow per transfer, with link contention"),
    ("auto", "the cheapest level that is exact for the configuration"),
):
    FIDELITIES.add(_name, _name, _help)
_ORDER = {"analytic": 0, "step": 1, "link": 2}


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
    """One collective's simulated duration and how it was obtained."""

    algorithm: str
    seconds: float
    fidelity: str
    events: int
    closed_form_s: float | None
    phases: list[dict[str, Any]] = field(default_factory=list)


# -- step level --------------------------------------------------------------------------
def _pattern_cost(topo: Topology, phase: Phase) -> tuple[list[float], list[float]]:
    """Per transfer of the pattern: route latency L and seconds per byte c (the most loaded
    link on the route: flows on it / its bandwidth). Cached per topology and pattern."""
    cache = topo._pattern_cache
    hit = cache.get(phase.key)
    if hit is not None:
        return hit
    routes = [topo.route(s, d) for s, d in phase.pairs]
    count: dict[int, int] = {}
    for r in routes:
        for ln in r.links:
            count[ln] = count.get(ln, 0) + 1
    bw = topo.link_bw
    lat = [r.latency for r in routes]
    per_byte = [max((count[ln] / bw[ln] for ln in r.links), default=0.0) for r in routes]
    cache[phase.key] = (lat, per_byte)
    return lat, per_byte


def phase_time(topo: Topology, phase: Phase) -> tuple[float, bool]:
    """(duration, symmetric): the phase's duration at ``step`` fidelity and whether every
    transfer saw the same cost (then the duration is exact)."""
    lat, per_byte = _pattern_cost(topo, phase)
    r, c = phase.repeat, phase.chunks
    if isinstance(phase.nbytes, tuple):
        t = max((L + b * k for L, b, k in zip(lat, phase.nbytes, per_byte, strict=True)), default=0.0)
        symmetric = len(set(zip(lat, per_byte, phase.nbytes, strict=True))) <= 1
        return r * t, symmetric
    uniq = set(zip(lat, per_byte, strict=True))
    nb = phase.nbytes
    if c == 1:
        t = max((r * L + r * nb * k for L, k in uniq), default=0.0)
    else:
        m = nb / c
        t = max((max(r * nb * k + L, r * L + (r + c - 1) * m * k) for L, k in uniq),
                default=0.0)
    return t, len(uniq) <= 1


def _closed(coll: Collective, p: int, msg: Message, topo: Topology):
    """The closed form on a uniform topology (alpha = host-to-host latency, beta =
    1/bandwidth), or the collective's own formula for a structured one, or None."""
    if topo.uniform:
        return coll.closed_form(p, msg, topo.alpha, 1.0 / topo.bandwidth, topo)
    return coll.closed_form_on(p, msg, topo)


def resolve_fidelity(coll: Collective, p: int, msg: Message, topo: Topology,
                     fidelity: str) -> str:
    FIDELITIES.get(fidelity)
    if fidelity != "auto":
        return fidelity
    if _closed(coll, p, msg, topo) is not None:
        return "analytic"
    phases = coll.phases(p, msg, topo)
    if coll.lockstep and all(phase_time(topo, ph)[1] for ph in phases):
        return "step"
    return "link"


def run_collective(coll: Collective, p: int, msg: Message, topo: Topology, fidelity: str,
                   env: CountingEnvironment | None = None) -> CollectiveRun:
    """Simulate one collective call on ``p`` ranks of ``topo``. With ``env`` given, the
    SimPy events run on it (starting at its current time) and are counted there."""
    if p <= 1:
        return CollectiveRun(coll.name, 0.0, "analytic", 0, 0.0)
    coll.check(p, msg, topo)
    level = resolve_fidelity(coll, p, msg, topo, fidelity)
    cf = _closed(coll, p, msg, topo)
    cf_s = cf.value if cf is not None else None
    if level == "analytic":
        if cf is None:
            raise ConfigError(
                f"fidelity 'analytic': collective {coll.name!r} has no closed form on "
                f"topology {topo.name!r} (non-uniform links or no formula); use step or link")
        return CollectiveRun(coll.name, cf.value, level, 0, cf_s)
    own = env is None
    if own:
        env = CountingEnvironment()
    ev0, t0 = env.events_processed, env.now
    phases = coll.phases(p, msg, topo)
    info = []
    if level == "step":
        durations = []
        for ph in phases:
            d, sym = phase_time(topo, ph)
            durations.append(d)
            info.append({"label": ph.label, "repeat": ph.repeat, "seconds": d,
                         "symmetric": sym})

        def proc():
            for d in durations:
                yield env.timeout(d)

        env.process(proc())
        env.run()
    else:
        net = FlowNetwork(env, topo)
        dag = coll.dag(p, msg, topo)
        if dag is not None:
            done = run_dag(env, net, *dag)
        else:
            rounds = []
            for ph in phases:
                sizes = ph.nbytes if isinstance(ph.nbytes, tuple) else (ph.nbytes,) * len(
                    ph.pairs)
                rnd = [(s, d, b) for (s, d), b in zip(ph.pairs, sizes, strict=True)]
                rounds.extend([rnd] * ph.repeat)
            done = run_rounds(env, net, rounds)
        env.run(until=done)
        info = [{"label": ph.label, "repeat": ph.repeat} for ph in phases]
    # seconds as a difference of clock readings; start at 0 keeps it exact for a fresh env
    return CollectiveRun(coll.name, env.now - t0, level, env.events_processed - ev0, cf_s,
                         info)


# -- public: collective_time -------------------------------------------------------------
@dataclass
class CollectiveResult:
    """Answer of :func:`collective_time`."""

    algorithm: str
    workers: int
    bytes: float
    simulated_s: float
    closed_form_s: float | None
    events: int
    fidelity: str
    explain: str
    wall_s: float
    chosen: str | None = None  # ``auto``: the algorithm it picked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


AUTO_CANDIDATES = ("ring", "halving_doubling", "tree", "double_binary_tree")


def _explain(coll: Collective, run: CollectiveRun, p: int, msg: Message, topo: Topology,
             bandwidth: float, latency: float) -> str:
    doc = (sys.modules[type(coll).__module__].__doc__ or coll.name).strip().splitlines()[0]
    lines = [f"{coll.name}: {doc}",
             f"p = {p} ranks, n = {msg.nbytes:.6g} bytes"
             + (" per rank" if coll.kind == "allgather" else "")
             + f", topology {topo.name}, host link {bandwidth:.6g} B/s, latency "
               f"{latency:.6g} s"]
    cf = _closed(coll, p, msg, topo)
    if cf is not None:
        if topo.uniform:
            lines.append(f"alpha = {latency:.6g} s, beta = 1/bandwidth = {1 / bandwidth:.6g} s/B")
        lines.append(cf.symbolic)
        lines.append(cf.numeric)
    else:
        lines.append("no closed form here; phases read off the topology:")
        for ph in coll.phases(p, msg, topo):
            d, sym = phase_time(topo, ph)
            nb = ph.nbytes if not isinstance(ph.nbytes, tuple) else max(ph.nbytes, default=0)
            lines.append(f"  {ph.label}: {ph.repeat} x {len(ph.pairs)} transfers of "
                         f"{nb:.6g} B -> {d:.6g} s" + ("" if sym else " (asymmetric)"))
    lines.append(f"simulated ({run.fidelity}, {run.events} events): {run.seconds:.6g} s")
    return "\n".join(lines)


def collective_time(algorithm: str, workers: int, nbytes: float, bandwidth_bytes_per_s: float,
                    latency_s: float, topology: TopologySpec | None = None,
                    fidelity: str = "auto", params: dict[str, Any] | None = None,
                    per_rank: list[float] | None = None) -> CollectiveResult:
    """Time of one collective: ``algorithm`` on ``workers`` ranks moving ``nbytes`` (the
    message for allreduce algorithms, each rank's contribution for all-gather ones; give
    ``per_rank`` for exact unequal all-gather sizes), on ``topology`` built with host links
    of ``bandwidth_bytes_per_s`` and ``latency_s``. ``auto`` picks the fastest allreduce
    among ring, halving_doubling, tree and double_binary_tree (and hierarchical where the
    topology has nodes)."""
    t_wall = time.perf_counter()
    topology = topology or TopologySpec()
    FIDELITIES.get(fidelity)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers: must be an integer >= 1, got {workers!r}")
    if not (nbytes >= 0) or not math.isfinite(nbytes):
        raise ConfigError(f"bytes: must be a finite number >= 0, got {nbytes!r}")
    if algorithm == "auto" and workers > 1:
        topo = build_topology(topology.name, workers, bandwidth_bytes_per_s, latency_s,
                              topology.params)
        cands = list(AUTO_CANDIDATES) + (["hierarchical"] if topo.groups else [])
        results = [collective_time(c, workers, nbytes, bandwidth_bytes_per_s, latency_s,
                                   topology, fidelity) for c in cands]
        best = min(results, key=lambda r: r.simulated_s)
        lines = ["auto: the fastest allreduce for this message on this topology"]
        lines += [f"  {r.algorithm}: {r.simulated_s:.6g} s ({r.fidelity})" for r in results]
        lines += [f"chosen: {best.algorithm}", "", best.explain]
        return CollectiveResult("auto", workers, nbytes, best.simulated_s, best.closed_form_s,
                                sum(r.events for r in results), best.fidelity,
                                "\n".join(lines), time.perf_counter() - t_wall,
                                chosen=best.algorithm)
    coll = make_collective(algorithm, params) if algorithm != "auto" else None
    if workers == 1:
        build_topology(topology.name, 1, bandwidth_bytes_per_s, latency_s, topology.params,
                       extra_hosts=coll.extra_hosts(1) if coll else 0)  # reject bad ones
        return CollectiveResult(algorithm, 1, nbytes, 0.0, 0.0, 0, "analytic",
                                f"{algorithm}: p = 1, nothing to communicate: T = 0 s",
                                time.perf_counter() - t_wall)
    topo = build_topology(topology.name, workers, bandwidth_bytes_per_s, latency_s,
                          topology.params, extra_hosts=coll.extra_hosts(workers))
    if per_rank is not None:
        if len(per_rank) != workers:
            raise ConfigError(f"per_rank: {len(per_rank)} sizes for {workers} workers")
        msg = Message(workers, float(max(per_rank)), tuple(float(x) for x in per_rank))
    else:
        msg = Message(workers, float(nbytes))
    run = run_collective(coll, workers, msg, topo, fidelity)
    explain = _explain(coll, run, workers, msg, topo, bandwidth_bytes_per_s, latency_s)
    return CollectiveResult(algorithm, workers, nbytes, run.seconds, run.closed_form_s,
                            run.events, run.fidelity, explain, time.perf_counter() - t_wall)


def most_detailed(levels: list[str]) -> str:
    """The most detailed fidelity among those used (``analytic`` if none)."""
    return max(levels, key=lambda x: _ORDER[x], default="analytic")


__all__ = ["COLLECTIVES", "FIDELITIES", "CollectiveResult", "CollectiveRun",
           "CountingEnvironment", "collective_time", "phase_time", "run_collective"]
