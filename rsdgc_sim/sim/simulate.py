"""One training iteration of ``p`` data-parallel workers: :func:`simulate`.

1. Worker ``i`` takes device profile ``i mod D`` and a compute factor
   ``f_i = speed_factor[i mod S] * jitter_i`` (jitter ``~ lognormal(0, sigma)`` from
   ``numpy.random.default_rng(seed)``, one draw per worker). All of its measured times
   (forward, backward, gradient-ready, compression, decompression, optimizer) are scaled by
   ``f_i``.
2. Gradients fill DDP's rebuilt buckets (:mod:`.buckets`, gradient-ready order).
3. Each bucket is costed (:mod:`.bucket_cost`): compression and decompression per device,
   the collectives that move it (:mod:`.choice`, ``auto`` picks the fastest) and their time
   at the point's fidelity, and the bytes a worker transmits (:mod:`.traffic`).
4. The timeline (:mod:`.timeline`) places compute, compression, collectives and
   decompression causally: a collective starts when every worker has compressed its
   bucket and the previous collective has ended; a bucket is decompressed only after its
   collective; with ``ddp.compression_blocks_backward`` (a DDP hook) the hook's work pauses
   backward while backward runs; the optimizer waits for every bucket; with
   ``interference_factor`` ``k`` (a calibration's) backward runs ``1 + k`` times slower
   while a collective is in flight. The iteration time is the slowest worker's.

Collectives of one iteration never overlap (one stream), and their duration does not depend
on when they start, so each is simulated on its own and the timeline is composed from their
durations. The timeline is monotone in a worker's compute factor, so only the slowest
worker of each device needs simulating.

``exposed_communication_s`` is ``iteration_s`` minus the iteration time of the same
configuration with every collective taking zero time: the part of communication that
compute and compression do not hide. With ``p = 1`` there is no communication and no
compression at all (the one-worker baseline).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import ConfigError, ProfileError, UnknownNameError
from ..profile.schema import Profile
from .bucket_cost import BucketCost, cost_bucket
from .buckets import assign_buckets
from .choice import CollectiveChoice
from .collectives import COLLECTIVES
from .config import SimPoint
from .fidelity import FIDELITIES, most_detailed
from .result import BucketResult, SimResult, Span
from .runner import CountingEnvironment
from .timeline import Timeline, WorkerCosts, run_timeline

#: workers whose timelines go into a trace besides the slowest one
TRACE_WORKERS = 8


def compute_factors(point: SimPoint) -> np.ndarray:
    """Each worker's compute factor (speed factor times seeded lognormal jitter)."""
    p = point.workers
    st = point.stragglers
    f = np.ones(p)
    if st.speed_factors:
        sf = np.asarray(st.speed_factors, dtype=float)  # > 0 and finite (StragglerConfig)
        f = f * sf[np.arange(p) % len(sf)]
    if st.jitter_sigma > 0:
        rng = np.random.default_rng(st.seed)
        f = f * rng.lognormal(0.0, st.jitter_sigma, size=p)
    return f


def _check_profile(profile: Profile, label: str) -> None:
    if not profile.devices:
        raise ProfileError("profile has no devices")
    for d in profile.devices:
        if label not in d.compression:
            raise UnknownNameError("compressor (in the profile)", label, d.compression)
        costs = d.compression[label]
        for t in profile.tensors:
            if t.name not in d.grad_ready_s:
                raise ProfileError(f"profile device {d.device}: no grad_ready_s for {t.name!r}")
            if t.name not in costs:
                raise ProfileError(
                    f"profile device {d.device}: compressor {label!r} has no cost for {t.name!r}")


def _worker_costs(profile: Profile, buckets: list[list[int]], costs: list[BucketCost],
                  device: int, f: float, sync_overhead_s: float = 0.0) -> WorkerCosts:
    """One worker's costs; ``sync_overhead_s`` (DDP's, per iteration) lengthens backward,
    every bucket's ready time stretched in the same proportion."""
    d = profile.devices[device]
    names = [t.name for t in profile.tensors]
    stretch = 1.0 + sync_overhead_s / d.backward_s if d.backward_s > 0 else 1.0
    return WorkerCosts(
        forward=f * d.forward_s,
        backward=f * (d.backward_s + sync_overhead_s),
        optimizer=f * d.optimizer_s,
        ready=tuple(f * stretch * max(d.grad_ready_s[names[i]] for i in b) for b in buckets),
        compress=tuple(f * c.compress_s[device] for c in costs),
        decompress=tuple(f * c.decompress_s[device] for c in costs),
        middle=tuple(f * c.middle_s[device] if c.middle_s else 0.0 for c in costs),
    )


def _second(costs: list[BucketCost], zero: bool = False) -> list[float | None] | None:
    """Per bucket, its second round's seconds (low-rank buckets), None for one-round
    buckets; None when no bucket has two rounds. ``zero``: the rounds take no time."""
    if not any(c.messages for c in costs):
        return None
    return [(0.0 if zero else c.second_duration) if c.messages else None for c in costs]


def simulate(profile: Profile, point: SimPoint, trace: bool = False) -> SimResult:
    """Simulate one training iteration of ``point.workers`` workers (see the module doc)."""
    t_wall = time.perf_counter()
    FIDELITIES.get(point.fidelity)
    label = point.compressor
    _check_profile(profile, label)
    p = point.workers
    env = CountingEnvironment()
    choice = CollectiveChoice(point, env)
    buckets = assign_buckets(profile.tensors, point.ddp, profile.devices[0].grad_ready_s)
    costs = [cost_bucket(profile, label, idx, choice) for idx in buckets]

    f = compute_factors(point)
    D = len(profile.devices)
    dev_of = np.arange(p) % D
    crit = []  # the slowest worker of each device: the latest at everything, given the device
    for k in range(D):
        idx = np.nonzero(dev_of == k)[0]
        if len(idx):
            crit.append(int(idx[np.argmax(f[idx])]))
    sync = point.sync_overhead_s if p > 1 else 0.0
    workers = [_worker_costs(profile, buckets, costs, int(dev_of[w]), float(f[w]), sync)
               for w in crit]
    durations = [c.duration for c in costs]
    ddp = point.ddp
    mode = dict(blocking=ddp.compression_blocks_backward, overlap=ddp.overlap,
                interference=point.interference_factor)
    tl = run_timeline(workers, durations, **mode, second=_second(costs))
    free = run_timeline(workers, [0.0] * len(costs), **mode, second=_second(costs, zero=True))
    if not math.isfinite(tl.end):
        raise ConfigError(
            f"the simulated iteration overflows ({tl.end} s) at {p} workers, "
            f"{point.bandwidth_bytes_per_s:g} B/s, {point.latency_s:g} s latency; "
            f"check the bandwidth and latency")
    k = max(range(len(crit)), key=lambda j: (tl.workers[j].end, -crit[j]))
    critical = crit[k]
    fc = float(f[critical])
    dc = profile.devices[int(dev_of[critical])]

    result = SimResult(
        compressor=label,
        workers=p,
        topology=point.topology.name,
        collective=_collective_name(costs, choice.auto),
        fidelity=most_detailed(choice.levels) if choice.levels else "analytic",
        bandwidth_bytes_per_s=point.bandwidth_bytes_per_s,
        latency_s=point.latency_s,
        iteration_s=tl.end,
        compute_s=fc * (dc.forward_s + dc.backward_s + sync + dc.optimizer_s),
        compression_s=(math.fsum(workers[k].compress) + math.fsum(workers[k].decompress)
                       + math.fsum(workers[k].middle)),
        communication_s=math.fsum(durations),
        exposed_communication_s=max(0.0, tl.end - free.end),
        bytes_sent_per_worker=math.fsum(max(c.payload_bytes) for c in costs),
        bytes_transmitted_per_worker=math.fsum(c.transmitted_bytes for c in costs),
        dense_bytes_per_worker=profile.dense_bytes,
        events=env.events_processed,
        wall_s=0.0,
        critical_worker=critical,
        exact=all(c.exact for c in costs),
        buckets=[BucketResult(b, [profile.tensors[i].name for i in buckets[b]],
                              sum(profile.tensors[i].nbytes for i in buckets[b]),
                              max(c.payload_bytes), c.transmitted_bytes, c.algorithm,
                              tl.ready[b], tl.starts[b], c.duration, c.fidelity, c.exact,
                              list(c.messages or []))
                 for b, c in enumerate(costs)],
    )
    if trace:
        result.spans = _spans(profile, buckets, costs, f, dev_of, critical, tl, mode, sync)
    result.wall_s = time.perf_counter() - t_wall
    return result


def _collective_name(costs: list[BucketCost], auto: bool) -> str:
    """The algorithms used, allreduce ones first, e.g. ``auto:ring+allgather_ring``."""
    used: list[str] = []
    for c in costs:
        for part in c.algorithm.removeprefix("auto:").split("+"):
            if part != "none" and part not in used:
                used.append(part)
    used.sort(key=lambda a: COLLECTIVES.get(a).kind != "allreduce")
    return ("auto:" if auto else "") + ("+".join(used) if used else "none")


def _spans(profile: Profile, buckets, costs: list[BucketCost], f, dev_of, critical: int,
           tl: Timeline, mode: dict, sync_overhead_s: float = 0.0) -> list[Span]:
    """Spans of the first ``TRACE_WORKERS`` workers and the critical one, each simulated
    against the iteration's collectives (its own timeline, the same network)."""
    p = len(f)
    traced = sorted(set(range(min(p, TRACE_WORKERS))) | {critical})
    spans: list[Span] = []
    for b, c in enumerate(costs):
        if c.duration > 0:
            spans.append(Span(-1, f"bucket {b}: {c.algorithm}", "communication",
                              tl.starts[b], c.duration))
    for w in traced:
        wc = _worker_costs(profile, buckets, costs, int(dev_of[w]), float(f[w]), sync_overhead_s)
        own = _replay(wc, tl, mode, costs)
        spans.append(Span(w, "forward", "compute", 0.0, wc.forward))
        spans.append(Span(w, "backward", "compute", wc.forward,
                          own.backward_end - wc.forward))
        for what, pairs in (("compress", own.compress), ("decompress", own.decompress),
                            ("orthogonalize + M^T P", own.middle)):
            for b, (s, e) in enumerate(pairs):
                if e > s:
                    spans.append(Span(w, f"{what} bucket {b}", "compression", s, e - s))
        if p > 1:
            for b, c in enumerate(costs):
                spans.append(Span(w, f"bucket {b}: {c.algorithm}", "communication",
                                  tl.starts[b], c.duration))
        spans.append(Span(w, "optimizer", "compute", own.end - wc.optimizer, wc.optimizer))
    return spans


def _replay(wc: WorkerCosts, tl: Timeline, mode: dict, costs: list[BucketCost]):
    """One worker's own timeline against collectives that end when they ended in ``tl``
    (a worker that is not the slowest does not move them); two-round buckets' first rounds
    end when they ended too."""
    second = _second(costs, zero=True)
    return run_timeline([wc], [0.0] * len(tl.ends), **mode, collective_ends=tl.ends,
                        second=second, first_ends=tl.first_ends if second else None).workers[0]


__all__ = ["BucketResult", "SimResult", "Span", "TRACE_WORKERS", "compute_factors", "simulate"]
