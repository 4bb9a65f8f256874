"""One training iteration of ``p`` data-parallel workers: :func:`simulate`.

The model, as PyTorch DDP runs it:

1. Worker ``i`` takes device profile ``i mod D`` and a compute factor
   ``f_i = speed_factor[i mod S] * jitter_i`` (jitter ``~ lognormal(0, sigma)`` from
   ``numpy.random.default_rng(seed)``, one draw per worker and iteration). All of its
   measured times (forward, backward, gradient-ready, compression, optimizer) are scaled
   by ``f_i``.
2. Gradients fill DDP buckets (:mod:`.ddp`). A worker's bucket is compressed when its last
   gradient is ready. By default (``ddp.compression_blocks_backward``, as a DDP
   communication hook runs) the compression pauses backward, and so does the decompression
   of every bucket but the last; otherwise buckets are compressed one after the other,
   beside backward. With ``overlap: false`` nothing starts before backward ends.
3. A bucket's collective starts when *every* worker has it compressed (synchronous) and
   the previous bucket's collective has ended (one communication stream). Inside a bucket,
   tensors the compressor leaves dense (``TensorCost.sparse`` false) are allreduced with
   ``point.collective``, sparse ``(index, value)`` payloads are all-gathered with
   ``point.sparse_collective`` right after (two collectives back to back).
4. Each worker decompresses a bucket after its collective: the dense tensors'
   ``decompress_s``, and for each sparse tensor its ``p`` gathered payloads: one
   ``decompress_s`` (into a new buffer) plus ``(p - 1) x accumulate_s`` (added into it).
   With blocking hooks only the last bucket's decompression stays here (see 2).
5. The iteration of a worker ends when backward and its last decompression are done, plus
   its optimizer step; the iteration time is the slowest worker's.

Collectives of one iteration never overlap (one stream), and their duration does not depend
on when they start, so each is simulated on its own (at the point's fidelity, on one SimPy
environment whose events are counted) and the timeline is composed from their durations.

``exposed_communication_s`` is ``iteration_s`` minus the iteration time of the same
configuration with every collective taking zero time: the part of communication that
compute and compression do not hide. With ``p = 1`` there is no communication and no
compression at all (the one-worker baseline).

``collective: auto``: per bucket, the dense part goes by the fastest of ring,
halving_doubling, tree and double_binary_tree (and hierarchical on node topologies), and
the sparse part either by the cheaper all-gather (ring or recursive doubling) or, when that
is cheaper, by sending those tensors dense (uncompressed) in the allreduce.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, ProfileError, UnknownNameError
from ..profile.schema import Profile
from .collectives import COLLECTIVES, Message, make_collective
from .config import DDPConfig, SimPoint
from .ddp import assign_buckets
from .engine import (
    AUTO_CANDIDATES,
    FIDELITIES,
    CountingEnvironment,
    most_detailed,
    run_collective,
)
from .topology import Topology, build_topology

#: workers whose timelines go into a trace besides the slowest one
TRACE_WORKERS = 8


@dataclass
class BucketResult:
    index: int
    params: list[str]
    #: dense fp32 gradient bytes in the bucket
    bytes: int
    #: payload bytes one worker contributes for this bucket (largest over devices)
    wire_bytes: float
    #: e.g. "ring", "allgather_ring", "ring+allgather_ring"
    algorithm: str
    #: when the last worker had the bucket compressed (s from iteration start)
    ready: float
    start: float
    duration: float
    fidelity: str


@dataclass
class Span:
    """One span of the timeline (Chrome trace): ``worker`` -1 is the network."""

    worker: int
    name: str
    cat: str
    start: float
    duration: float


@dataclass
class SimResult:
    """One simulated iteration. Times in seconds, sizes in bytes."""

    compressor: str
    workers: int
    topology: str
    collective: str
    fidelity: str
    bandwidth_bytes_per_s: float
    latency_s: float
    iteration_s: float
    #: forward + backward + optimizer of the worker that finished last
    compute_s: float
    #: compression + decompression of that worker (summed over buckets)
    compression_s: float
    #: sum of the collectives' durations
    communication_s: float
    #: iteration_s minus the iteration with zero-time collectives
    exposed_communication_s: float
    #: payload one worker contributes per iteration (compressed values + indices, or the
    #: dense gradient), the same with p = 1 (what it would send)
    bytes_sent_per_worker: float
    dense_bytes_per_worker: int
    events: int
    wall_s: float
    critical_worker: int
    buckets: list[BucketResult] = field(default_factory=list)
    spans: list[Span] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _factors(point: SimPoint) -> np.ndarray:
    p = point.workers
    st = point.stragglers
    f = np.ones(p)
    if st.speed_factors:
        sf = np.asarray(st.speed_factors, dtype=float)
        if not np.all(sf > 0) or not np.all(np.isfinite(sf)):
            raise ConfigError(
                f"stragglers.speed_factors: every factor must be > 0, got {st.speed_factors}")
        f = f * sf[np.arange(p) % len(sf)]
    if st.jitter_sigma > 0:
        rng = np.random.default_rng(st.seed)
        f = f * rng.lognormal(0.0, st.jitter_sigma, size=p)
    return f


@dataclass
class _Dev:
    """Per-device base times (factor 1) per bucket."""

    fwd: float
    bwd: float
    opt: float
    ready: list[float]      # gradient-ready of the bucket's last tensor, from iter start
    comp: list[float]       # compression seconds per bucket
    dec: list[float]        # decompression seconds per bucket (sparse: p payloads summed)
    dense_wire: list[float]
    sparse_wire: list[float]


def _chain(dev: _Dev, f: float, ddp: DDPConfig) -> tuple[list[float], list[float], float]:
    """(compression start, compression end) per bucket and the end of backward, for a worker
    of factor f.

    With ``ddp.compression_blocks_backward`` (DDP hooks run on the autograd thread), handing
    a bucket to the hook pauses backward for its compression and, for every bucket but the
    last, its decompression (that callback runs while backward still computes, or beside the
    next bucket's collective, off the critical path); every later gradient and the end of
    backward move by that time. Without it, compression runs beside backward."""
    starts, ends = [], []
    t = 0.0
    shift = 0.0
    bwd_end = f * (dev.fwd + dev.bwd)
    blocking = ddp.compression_blocks_backward and ddp.overlap
    last = len(dev.ready) - 1
    for b, (r, c) in enumerate(zip(dev.ready, dev.comp, strict=True)):
        ready = f * r + shift if ddp.overlap else max(f * r, bwd_end)
        s = max(ready, t)
        t = s + f * c
        starts.append(s)
        ends.append(t)
        if blocking:
            shift += f * c + (f * dev.dec[b] if b < last else 0.0)
    return starts, ends, bwd_end + shift


def _finish(dev: _Dev, f: float, coll_end: list[float], bwd_end: float,
            ddp: DDPConfig) -> tuple[float, list[float]]:
    """(iteration end, decompression ends) of a worker of factor f whose backward ends at
    ``bwd_end`` (see :func:`_chain` for where blocking decompressions went)."""
    blocking = ddp.compression_blocks_backward and ddp.overlap
    last = len(coll_end) - 1
    t = 0.0
    ends = []
    for b, (e, d) in enumerate(zip(coll_end, dev.dec, strict=True)):
        t = max(e, t) + (0.0 if blocking and b < last else f * d)
        ends.append(t)
    return max(bwd_end, t) + f * dev.opt, ends


def _timeline(ready_all: list[float], durations: list[float]) -> tuple[list[float], list[float]]:
    starts, ends = [], []
    t = 0.0
    for r, d in zip(ready_all, durations, strict=True):
        s = max(r, t)
        t = s + d
        starts.append(s)
        ends.append(t)
    return starts, ends


def simulate(profile: Profile, point: SimPoint, trace: bool = False) -> SimResult:
    """Simulate one training iteration of ``point.workers`` workers (see the module doc)."""
    t_wall = time.perf_counter()
    FIDELITIES.get(point.fidelity)
    if not profile.devices:
        raise ProfileError("profile has no devices")
    label = point.compressor
    for d in profile.devices:
        if label not in d.compression:
            raise UnknownNameError("compressor (in the profile)", label, d.compression)
    p = point.workers
    auto = point.collective == "auto"
    if not auto:
        dense_coll = make_collective(point.collective, point.collective_params)
        if dense_coll.kind != "allreduce":
            raise ConfigError(f"collective: {point.collective!r} is not an allreduce algorithm")
    sparse_auto = point.sparse_collective == "auto"
    if not sparse_auto:
        sparse_coll = make_collective(point.sparse_collective)
        if sparse_coll.kind != "allgather":
            raise ConfigError(
                f"sparse_collective: {point.sparse_collective!r} is not an all-gather algorithm; "
                f"choose allgather_ring, allgather_recursive_doubling or auto")
    tensors = profile.tensors
    buckets = assign_buckets(tensors, point.ddp)
    nb = len(buckets)

    # -- compute side, per device (factor 1) -------------------------------------------
    devs: list[_Dev] = []
    for d in profile.devices:
        costs = d.compression[label]
        for t in tensors:
            if t.name not in d.grad_ready_s:
                raise ProfileError(f"profile device {d.device}: no grad_ready_s for {t.name!r}")
            if t.name not in costs:
                raise ProfileError(
                    f"profile device {d.device}: compressor {label!r} has no cost for {t.name!r}")
        devs.append(_Dev(
            d.forward_s, d.backward_s, d.optimizer_s,
            [d.forward_s + max(d.grad_ready_s[tensors[i].name] for i in b) for b in buckets],
            [], [], [], []))

    f = _factors(point)
    D = len(devs)
    dev_of = np.arange(p) % D
    # the slowest worker of each device (the latest at everything, given the device)
    crit = []
    for k in range(D):
        idx = np.nonzero(dev_of == k)[0]
        if len(idx):
            crit.append(int(idx[np.argmax(f[idx])]))

    topo_box: list[Topology] = []

    def topo_for(extra: int) -> Topology:
        if not topo_box or topo_box[0].n_hosts < p + extra:
            topo_box[:] = [build_topology(point.topology.name, p, point.bandwidth_bytes_per_s,
                                          point.latency_s, point.topology.params,
                                          extra_hosts=extra)]
        return topo_box[0]

    env = CountingEnvironment()
    levels: list[str] = []

    def run(coll, msg: Message):
        topo = topo_for(coll.extra_hosts(p))
        r = run_collective(coll, p, msg, topo, point.fidelity, env=env)
        levels.append(r.fidelity)
        return r

    def best_allreduce(nbytes: float):
        if not auto:
            return dense_coll, run(dense_coll, Message(p, nbytes))
        cands = list(AUTO_CANDIDATES)
        if topo_for(0).groups:
            cands.append("hierarchical")
        runs = [(c, run(c, Message(p, nbytes))) for c in map(make_collective, cands)]
        return min(runs, key=lambda x: x[1].seconds)

    def best_allgather(msg: Message):
        if not sparse_auto:
            return sparse_coll, run(sparse_coll, msg)
        runs = [(c, run(c, msg)) for c in map(make_collective,
                                               ("allgather_ring", "allgather_recursive_doubling"))]
        return min(runs, key=lambda x: x[1].seconds)

    # -- per bucket: payloads, algorithm choice, collective durations --------------------
    durations: list[float] = []
    algos: list[str] = []
    fids: list[str] = []
    wire: list[float] = []
    for b, idx in enumerate(buckets):
        dense_nb = [0.0] * D
        sparse_nb = [0.0] * D
        comp_d = [0.0] * D
        dec_d = [0.0] * D
        sp_comp = [0.0] * D
        sp_dec = [0.0] * D
        for k, d in enumerate(profile.devices):
            costs = d.compression[label]
            for i in idx:
                c = costs[tensors[i].name]
                if c.sparse:
                    sparse_nb[k] += c.wire_bytes
                    sp_comp[k] += c.compress_s
                    # one payload into a new buffer, the other p - 1 added into it
                    sp_dec[k] += c.decompress_s + (p - 1) * c.accumulate_s
                else:
                    dense_nb[k] += c.wire_bytes
                    comp_d[k] += c.compress_s
                    dec_d[k] += c.decompress_s
        sparse_t = [i for i in idx if profile.devices[0].compression[label][tensors[i].name].sparse]
        dense_raw = sum(tensors[i].nbytes for i in sparse_t)
        has_sparse = bool(sparse_t)
        dense_bytes = max(dense_nb)
        names, secs, flv = [], 0.0, []
        send_dense = False
        if p > 1 and has_sparse:
            per_rank = tuple(sparse_nb[i % D] for i in range(p)) if D > 1 else None
            m = max(sparse_nb)
            if point.pad_sparse or per_rank is None or len(set(sparse_nb)) == 1:
                msg = Message(p, m)
            else:
                msg = Message(p, m, per_rank)
            ag, ag_run = best_allgather(msg)
            if auto:
                # compare with sending these tensors dense in the allreduce
                slow = max(range(D), key=lambda k: sp_comp[k] + sp_dec[k])
                sparse_cost = ag_run.seconds + sp_comp[slow] + sp_dec[slow]
                ar_sp, ar_sp_run = best_allreduce(dense_bytes + dense_raw)
                ar_only = best_allreduce(dense_bytes)[1].seconds if dense_bytes > 0 else 0.0
                send_dense = ar_sp_run.seconds < ar_only + sparse_cost
            if not send_dense:
                names.append(ag.name)
                secs += ag_run.seconds
                flv.append(ag_run.fidelity)
        if send_dense:
            dense_bytes += dense_raw
        if p > 1 and dense_bytes > 0:
            ar, ar_run = best_allreduce(dense_bytes)
            names.insert(0, ar.name)
            secs += ar_run.seconds
            flv.insert(0, ar_run.fidelity)
        for k, dev in enumerate(devs):
            if p == 1:
                dev.comp.append(0.0)
                dev.dec.append(0.0)
            elif send_dense:
                dev.comp.append(comp_d[k])
                dev.dec.append(dec_d[k])
            else:
                dev.comp.append(comp_d[k] + sp_comp[k])
                dev.dec.append(dec_d[k] + sp_dec[k])
            dev.dense_wire.append(dense_nb[k] + (dense_raw if send_dense else 0))
            dev.sparse_wire.append(0.0 if send_dense else sparse_nb[k])
        durations.append(secs if p > 1 else 0.0)
        label_alg = "+".join(names) if names else "none"
        algos.append(("auto:" if auto else "") + label_alg)
        fids.append(most_detailed(flv))
        wire.append(max(devs[k].dense_wire[b] + devs[k].sparse_wire[b] for k in range(D)))

    # -- timeline --------------------------------------------------------------------------
    ddp = point.ddp
    chains = {w: _chain(devs[dev_of[w]], float(f[w]), ddp) for w in crit}
    ready_all = [max(chains[w][1][b] for w in crit) for b in range(nb)]
    starts, ends = _timeline(ready_all, durations)
    fin = {w: _finish(devs[dev_of[w]], float(f[w]), ends, chains[w][2], ddp)[0] for w in crit}
    critical = max(crit, key=lambda w: (fin[w], -w))
    iteration = fin[critical]
    _, ends0 = _timeline(ready_all, [0.0] * nb)
    iteration0 = max(_finish(devs[dev_of[w]], float(f[w]), ends0, chains[w][2], ddp)[0]
                     for w in crit)
    dc = devs[dev_of[critical]]
    fc = float(f[critical])

    used = []
    for a in algos:
        for part in a.removeprefix("auto:").split("+"):
            if part != "none" and part not in used:
                used.append(part)
    used.sort(key=lambda a: COLLECTIVES.get(a).kind != "allreduce")  # allreduce first
    coll_name = ("auto:" if auto else "") + ("+".join(used) if used else "none")
    result = SimResult(
        compressor=label,
        workers=p,
        topology=point.topology.name,
        collective=coll_name,
        fidelity=most_detailed(levels) if levels else "analytic",
        bandwidth_bytes_per_s=point.bandwidth_bytes_per_s,
        latency_s=point.latency_s,
        iteration_s=iteration,
        compute_s=fc * (dc.fwd + dc.bwd + dc.opt),
        compression_s=fc * (math.fsum(dc.comp) + math.fsum(dc.dec)),
        communication_s=math.fsum(durations),
        exposed_communication_s=max(0.0, iteration - iteration0),
        bytes_sent_per_worker=math.fsum(wire),
        dense_bytes_per_worker=profile.dense_bytes,
        events=env.events_processed,
        wall_s=0.0,
        critical_worker=critical,
        buckets=[BucketResult(b, [tensors[i].name for i in buckets[b]],
                              sum(tensors[i].nbytes for i in buckets[b]), wire[b], algos[b],
                              ready_all[b], starts[b], durations[b], fids[b])
                 for b in range(nb)],
    )
    if trace:
        result.spans = _spans(devs, dev_of, f, critical, ddp, starts, ends, algos, p)
    result.wall_s = time.perf_counter() - t_wall
    return result


def _spans(devs, dev_of, f, critical, ddp, starts, ends, algos, p) -> list[Span]:
    workers = sorted(set(range(min(p, TRACE_WORKERS))) | {critical})
    spans: list[Span] = []
    for w in workers:
        dev, fw = devs[dev_of[w]], float(f[w])
        cs, ce, bwd_end = _chain(dev, fw, ddp)
        spans.append(Span(w, "forward", "compute", 0.0, fw * dev.fwd))
        spans.append(Span(w, "backward", "compute", fw * dev.fwd, bwd_end - fw * dev.fwd))
        for b, (s, e) in enumerate(zip(cs, ce, strict=True)):
            if e > s:
                spans.append(Span(w, f"compress bucket {b}", "compression", s, e - s))
        end, dends = _finish(dev, fw, ends, bwd_end, ddp)
        prev = 0.0
        for b, (e, de) in enumerate(zip(ends, dends, strict=True)):
            s = max(e, prev)
            if de > s:
                spans.append(Span(w, f"decompress bucket {b}", "compression", s, de - s))
            prev = de
        if p > 1:
            for b, (s, e) in enumerate(zip(starts, ends, strict=True)):
                spans.append(Span(w, f"bucket {b}: {algos[b]}", "communication", s, e - s))
        spans.append(Span(w, "optimizer", "compute", end - fw * dev.opt, fw * dev.opt))
    return spans


__all__ = ["BucketResult", "SimResult", "Span", "simulate", "COLLECTIVES"]
