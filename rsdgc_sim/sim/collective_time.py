"""The public answer for one collective: :func:`collective_time`.

Besides the time, the answer carries nccl-tests' bandwidths (its ``doc/PERFORMANCE.md``):
``algbw = S / t`` with ``S`` the message of an allreduce and the whole gathered (or
reduce-scattered) array of an all-gather (reduce-scatter), ``p`` blocks; ``busbw = algbw *
2(p-1)/p`` for an allreduce and ``algbw * (p-1)/p`` for the other two.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from .collectives import Collective, Message, make_collective
from .config import TopologySpec
from .explain import explain, explain_auto
from .fidelity import FIDELITIES
from .runner import LinkBudget, auto_candidates, run_collective
from .topology.build import build_topology
from .topology.gpu_cluster import check_link_values
from .topology.graph import Topology
from .topology.guards import UNUSED_BANDWIDTH
from .topology.link_bandwidth import links_carry_bandwidth


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
    #: ``auto``: the algorithm it picked; the NCCL collectives: ``algorithm/protocol``
    chosen: str | None = None
    exact: bool = True
    #: nccl-tests' algorithm and bus bandwidths (bytes/s; module docstring), None when the
    #: time is 0 (one rank)
    algbw_bytes_per_s: float | None = None
    busbw_bytes_per_s: float | None = None
    #: the NCCL collectives: the algorithm and protocol NCCL's tuner chose (or was forced to)
    nccl_algorithm: str | None = None
    nccl_protocol: str | None = None

    @property
    def time_s(self) -> float:
        """The collective's time: the simulated one."""
        return self.simulated_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bandwidths(kind: str, p: int, nbytes: float, seconds: float,
               per_rank: list[float] | None = None) -> tuple[float | None, float | None]:
    """nccl-tests' ``(algbw, busbw)`` (bytes/s, module docstring) of a collective of
    ``kind`` (allreduce, allgather, reduce_scatter) on ``p`` ranks moving ``nbytes`` (the
    message, or each rank's block; ``per_rank``: each rank's own) in ``seconds``; None for
    both when ``seconds`` is 0."""
    if not seconds > 0:
        return None, None
    if kind == "allreduce":
        size, factor = nbytes, 2 * (p - 1) / p
    else:
        size = math.fsum(per_rank) if per_rank is not None else p * nbytes
        factor = (p - 1) / p
    algbw = size / seconds
    return algbw, algbw * factor


def _finish(res: CollectiveResult, coll: Collective | None, msg: Message | None,
            topo: Topology | None, per_rank: list[float] | None) -> None:
    """Fill in the bandwidths and NCCL's choice."""
    kind = coll.kind if coll is not None else "allreduce"
    res.algbw_bytes_per_s, res.busbw_bytes_per_s = bandwidths(
        kind, res.workers, res.bytes, res.simulated_s, per_rank)
    if coll is not None and getattr(coll, "analytic_only", False) and topo is not None:
        best = coll.choice(res.workers, msg, topo).best
        res.nccl_algorithm, res.nccl_protocol = best.algorithm, best.protocol
        if res.chosen is None:
            res.chosen = f"{best.algorithm}/{best.protocol}"


def _check_finite(res: CollectiveResult, bandwidth: float | None,
                  latency: float) -> CollectiveResult:
    at = "its links' bandwidths" if bandwidth is None else f"bandwidth {bandwidth:.6g} B/s"
    for what, v in (("simulated time", res.simulated_s), ("closed form", res.closed_form_s)):
        if v is not None and not math.isfinite(v):
            raise ConfigError(
                f"{what} is not a finite number of seconds ({v}): {res.bytes:.6g} bytes at "
                f"{at} and latency {latency:.6g} s overflow; check the units")
    return res


def needs_bandwidth(topology: TopologySpec, extra_hosts: int = 0) -> bool:
    """True when building ``topology`` takes a host link bandwidth: its links do not all
    carry their own (:func:`~rsdgc_sim.sim.topology.links_carry_bandwidth`), or servers
    beyond the workers are added (their links take it)."""
    return extra_hosts > 0 or not links_carry_bandwidth(topology.name, topology.params)


def build_bandwidth(bw: float | None, topology: TopologySpec, extra_hosts: int) -> float:
    """The bandwidth to build with: ``bw``, or when it is None and the topology's links
    carry their own, :data:`UNUSED_BANDWIDTH`; else ConfigError."""
    if bw is not None:
        return bw
    if needs_bandwidth(topology, extra_hosts):
        why = ("its parameter servers' links take it" if extra_hosts > 0 else
               "its links take the host link bandwidth")
        raise ConfigError(
            f"bandwidth: required for topology {topology.name!r} ({why}); give the host link "
            f"bandwidth (--bandwidth), or use a topology whose links carry their own, such "
            f"as gpu_cluster with a preset")
    return UNUSED_BANDWIDTH


def collective_time(algorithm: str, workers: int, nbytes: float,
                    bandwidth_bytes_per_s: float | None, latency_s: float,
                    topology: TopologySpec | None = None, fidelity: str = "auto",
                    params: dict[str, Any] | None = None, per_rank: list[float] | None = None,
                    *, link_budget: LinkBudget | None = None,
                    built: Topology | None = None) -> CollectiveResult:
    """Time of one collective: ``algorithm`` on ``workers`` ranks moving ``nbytes`` (the
    message for allreduce algorithms, each rank's contribution for all-gather ones, each
    rank's block of the result for reduce-scatter; give ``per_rank`` for exact unequal
    all-gather sizes), on ``topology`` built with host links of ``bandwidth_bytes_per_s``
    (None: the topology's links carry their own, else ConfigError) and ``latency_s``.
    ``built``: that topology already built for ``workers`` (with the algorithm's extra
    hosts), so that it is not built again. ``auto`` picks the fastest allreduce among
    :func:`~rsdgc_sim.sim.runner.auto_candidates` (ring, halving_doubling, tree,
    double_binary_tree, and hierarchical where whole nodes exist). Inputs whose result is
    not a finite number of seconds (a bandwidth of 1e-320 B/s) raise ConfigError. The
    answer carries nccl-tests' algbw and busbw (module docstring) and, for the NCCL
    collectives, the algorithm and protocol chosen."""
    t_wall = time.perf_counter()
    topology = topology or TopologySpec()
    FIDELITIES.get(fidelity)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers: must be an integer >= 1, got {workers!r}")
    if not (nbytes >= 0) or not math.isfinite(nbytes):
        raise ConfigError(f"bytes: must be a finite number >= 0, got {nbytes!r}")
    bw, lat = bandwidth_bytes_per_s, latency_s
    if algorithm == "auto" and workers > 1:
        topo = built or build_topology(topology.name, workers, build_bandwidth(bw, topology, 0),
                                       lat, topology.params)
        check_link_values(topo, None if bw is None else [bw], None, what="--")
        msg = Message(workers, float(nbytes))
        runs = []
        for name in auto_candidates(topo, workers):
            coll = make_collective(name)
            runs.append((coll, run_collective(coll, workers, msg, topo, fidelity,
                                              link_budget=link_budget)))
        coll, best = min(runs, key=lambda x: x[1].seconds)
        text = explain_auto([(c.name, r) for c, r in runs], coll.name,
                            explain(coll, best, workers, msg, topo, bw, lat))
        res = _check_finite(CollectiveResult(
            "auto", workers, nbytes, best.seconds, best.closed_form_s,
            sum(r.events for _, r in runs), best.fidelity, text, time.perf_counter() - t_wall,
            chosen=coll.name, exact=best.exact), bw, lat)
        _finish(res, coll, msg, topo, None)
        return res
    coll = make_collective(algorithm, params) if algorithm != "auto" else None
    if workers == 1:
        extra = coll.extra_hosts(1) if coll else 0
        if built is None:  # reject bad ones
            build_topology(topology.name, 1, build_bandwidth(bw, topology, extra), lat,
                           topology.params, extra_hosts=extra)
        return CollectiveResult(algorithm, 1, nbytes, 0.0, 0.0, 0, "analytic",
                                f"{algorithm}: p = 1, nothing to communicate: T = 0 s",
                                time.perf_counter() - t_wall)
    extra = coll.extra_hosts(workers)
    topo = built or build_topology(topology.name, workers, build_bandwidth(bw, topology, extra),
                                   lat, topology.params, extra_hosts=extra)
    # a bandwidth a nic parameter overrules would be printed beside a time it never made
    check_link_values(topo, None if bw is None else [bw], None, what="--")
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
    _finish(res, coll, msg, topo, per_rank)
    res.explain = explain(coll, run, workers, msg, topo, bw, lat)
    res.wall_s = time.perf_counter() - t_wall
    return res


__all__ = ["UNUSED_BANDWIDTH", "CollectiveResult", "bandwidths", "build_bandwidth",
           "collective_time", "needs_bandwidth"]
