"""The public answer for one collective: :func:`collective_time`."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from .collectives import Message, make_collective
from .config import TopologySpec
from .explain import explain, explain_auto
from .fidelity import FIDELITIES
from .runner import LinkBudget, auto_candidates, run_collective
from .topology.build import build_topology


@dataclass
class CollectiveResult:
    """Answer of :func:`collective_time`. ``exact`` is False when ``auto`` fidelity settled
    for a ``step`` estimate (the explanation says why)."""

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
    exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_finite(res: CollectiveResult, bandwidth: float, latency: float) -> CollectiveResult:
    for what, v in (("simulated time", res.simulated_s), ("closed form", res.closed_form_s)):
        if v is not None and not math.isfinite(v):
            raise ConfigError(
                f"{what} is not a finite number of seconds ({v}): {res.bytes:.6g} bytes at "
                f"bandwidth {bandwidth:.6g} B/s and latency {latency:.6g} s overflow; check "
                f"the units")
    return res


def collective_time(algorithm: str, workers: int, nbytes: float, bandwidth_bytes_per_s: float,
                    latency_s: float, topology: TopologySpec | None = None,
                    fidelity: str = "auto", params: dict[str, Any] | None = None,
                    per_rank: list[float] | None = None, *,
                    link_budget: LinkBudget | None = None) -> CollectiveResult:
    """Time of one collective: ``algorithm`` on ``workers`` ranks moving ``nbytes`` (the
    message for allreduce algorithms, each rank's contribution for all-gather ones; give
    ``per_rank`` for exact unequal all-gather sizes), on ``topology`` built with host links
    of ``bandwidth_bytes_per_s`` and ``latency_s``. ``auto`` picks the fastest allreduce
    among :func:`~rsdgc_sim.sim.runner.auto_candidates` (ring, halving_doubling, tree,
    double_binary_tree, and hierarchical where whole nodes exist). Inputs whose result is
    not a finite number of seconds (a bandwidth of 1e-320 B/s) raise ConfigError."""
    t_wall = time.perf_counter()
    topology = topology or TopologySpec()
    FIDELITIES.get(fidelity)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers: must be an integer >= 1, got {workers!r}")
    if not (nbytes >= 0) or not math.isfinite(nbytes):
        raise ConfigError(f"bytes: must be a finite number >= 0, got {nbytes!r}")
    bw, lat = bandwidth_bytes_per_s, latency_s
    if algorithm == "auto" and workers > 1:
        topo = build_topology(topology.name, workers, bw, lat, topology.params)
        msg = Message(workers, float(nbytes))
        runs = []
        for name in auto_candidates(topo, workers):
            coll = make_collective(name)
            runs.append((coll, run_collective(coll, workers, msg, topo, fidelity,
                                              link_budget=link_budget)))
        coll, best = min(runs, key=lambda x: x[1].seconds)
        text = explain_auto([(c.name, r) for c, r in runs], coll.name,
                            explain(coll, best, workers, msg, topo, bw, lat))
        return _check_finite(CollectiveResult(
            "auto", workers, nbytes, best.seconds, best.closed_form_s,
            sum(r.events for _, r in runs), best.fidelity, text, time.perf_counter() - t_wall,
            chosen=coll.name, exact=best.exact), bw, lat)
    coll = make_collective(algorithm, params) if algorithm != "auto" else None
    if workers == 1:
        build_topology(topology.name, 1, bw, lat, topology.params,
                       extra_hosts=coll.extra_hosts(1) if coll else 0)  # reject bad ones
        return CollectiveResult(algorithm, 1, nbytes, 0.0, 0.0, 0, "analytic",
                                f"{algorithm}: p = 1, nothing to communicate: T = 0 s",
                                time.perf_counter() - t_wall)
    topo = build_topology(topology.name, workers, bw, lat, topology.params,
                          extra_hosts=coll.extra_hosts(workers))
    if per_rank is not None:
        if len(per_rank) != workers:
            raise ConfigError(f"per_rank: {len(per_rank)} sizes for {workers} workers")
        msg = Message(workers, float(max(per_rank)), tuple(float(x) for x in per_rank))
    else:
        msg = Message(workers, float(nbytes))
    run = run_collective(coll, workers, msg, topo, fidelity, link_budget=link_budget)
    res = CollectiveResult(algorithm, workers, nbytes, run.seconds, run.closed_form_s,
                           run.events, run.fidelity, "", time.perf_counter() - t_wall,
                           exact=run.exact)
    _check_finite(res, bw, lat)
    res.explain = explain(coll, run, workers, msg, topo, bw, lat)
    res.wall_s = time.perf_counter() - t_wall
    return res


__all__ = ["CollectiveResult", "collective_time"]
