"""What :func:`~rsdgc_sim.sim.simulate.simulate` returns: one simulated iteration, its
buckets and (for traces) its spans. Times in seconds, sizes in bytes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BucketResult:
    index: int
    params: list[str]
    #: dense gradient bytes in the bucket
    bytes: int
    #: payload bytes one worker contributes for this bucket (largest over devices)
    wire_bytes: float
    #: bytes that leave one worker's NIC for this bucket (mean over workers)
    transmitted_bytes: float
    #: e.g. "ring", "allgather_ring", "ring+allgather_ring"
    algorithm: str
    #: when the last worker had the bucket compressed (s from iteration start)
    ready: float
    start: float
    duration: float
    fidelity: str
    #: False when the duration is a ``step`` estimate where only ``link`` would be exact
    exact: bool = True
    #: two-round (low-rank) buckets: each collective as (what: whole, P or Q, algorithm,
    #: message bytes), in order; empty for one-round buckets
    messages: list[tuple[str, str, float]] = field(default_factory=list)


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
    #: what leaves one worker's NIC per iteration (mean over workers): a ring all-gather
    #: forwards the p - 1 other payloads too, a ring allreduce sends 2(p-1)/p of the
    #: message; 0 with p = 1
    bytes_transmitted_per_worker: float
    dense_bytes_per_worker: int
    events: int
    wall_s: float
    critical_worker: int
    #: False when some collective's time is a ``step`` estimate (``auto`` settles for one
    #: where an exact ``link`` run would take too long; ``collective --explain`` says why)
    exact: bool = True
    buckets: list[BucketResult] = field(default_factory=list)
    spans: list[Span] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["BucketResult", "SimResult", "Span"]
