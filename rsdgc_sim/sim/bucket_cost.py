"""What one DDP bucket costs: compression and decompression per device, the payload, the
collectives that move it, their time and the bytes a worker transmits.

Inside a bucket, tensors the compressor leaves dense (``TensorCost.sparse`` false: dense
gradients, fp16, shared-index values) are summed with one allreduce; sparse
``(index, value)`` payloads are all-gathered right after (two collectives back to back).
Decompression: a dense tensor costs its ``decompress_s`` (the summed payload written back);
a sparse tensor costs one ``decompress_s`` (the first of the ``p`` gathered payloads into a
new buffer) plus ``(p - 1) x accumulate_s`` (the others added into it).

Low-rank tensors (``powersgd``, ``TensorCost.q_bytes`` > 0) go in two rounds, as torch's
``powerSGD_hook`` issues them: an allreduce of the tensors sent whole, then an allreduce of
every ``P`` of the bucket; then, on every worker, the middle phase (``middle_s``: P
orthogonalized, ``Q = M^T P``); then an allreduce of every ``Q`` (``second_duration``);
then decompression.

With ``collective: auto`` the sparse tensors may instead go dense in the allreduce (no
compression, no indices) when that is faster than compressing, gathering and aggregating
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..profile.schema import Profile
from .choice import CollectiveChoice
from .collectives import Message
from .fidelity import most_detailed
from .traffic import bytes_transmitted


@dataclass
class BucketCost:
    """One bucket at one point. Lists are per device of the profile (factor 1)."""

    #: compression and decompression seconds
    compress_s: list[float]
    decompress_s: list[float]
    #: payload bytes one worker contributes (dense part + sparse part)
    payload_bytes: list[float]
    #: e.g. "ring", "allgather_ring", "ring+allgather_ring", "none"
    algorithm: str
    #: seconds of the bucket's collectives, back to back
    duration: float
    fidelity: str
    #: bytes that leave one worker's NIC for this bucket (mean over workers)
    transmitted_bytes: float
    #: False when a collective's time is a ``step`` estimate where only ``link`` is exact
    exact: bool = True
    #: low-rank buckets: per device, the work between the two rounds; the seconds of
    #: ``duration`` that come after it (the Q allreduce); each collective as (what: whole, P
    #: or Q, algorithm, message bytes), in order. None / 0 for one-round buckets
    middle_s: list[float] | None = None
    second_duration: float = 0.0
    messages: list[tuple[str, str, float]] | None = None


@dataclass
class _Split:
    """Per device: the dense and sparse tensors' payload bytes and costs."""

    dense_bytes: list[float]
    sparse_bytes: list[float]
    dense_comp: list[float]
    dense_dec: list[float]
    sparse_comp: list[float]
    sparse_dec: list[float]
    #: fp32 bytes of the sparse tensors (what they weigh sent uncompressed)
    sparse_raw: float
    has_sparse: bool


def _split(profile: Profile, label: str, idx: list[int], p: int) -> _Split:
    D = len(profile.devices)
    s = _Split([0.0] * D, [0.0] * D, [0.0] * D, [0.0] * D, [0.0] * D, [0.0] * D, 0.0, False)
    tensors = profile.tensors
    for k, d in enumerate(profile.devices):
        costs = d.compression[label]
        for i in idx:
            c = costs[tensors[i].name]
            if c.sparse:
                s.sparse_bytes[k] += c.wire_bytes
                s.sparse_comp[k] += c.compress_s
                s.sparse_dec[k] += c.decompress_s + (p - 1) * c.accumulate_s
            else:
                s.dense_bytes[k] += c.wire_bytes
                s.dense_comp[k] += c.compress_s
                s.dense_dec[k] += c.decompress_s
    costs0 = profile.devices[0].compression[label]
    sparse_t = [i for i in idx if costs0[tensors[i].name].sparse]
    s.sparse_raw = float(sum(tensors[i].nbytes for i in sparse_t))
    s.has_sparse = bool(sparse_t)
    return s


def _gather_message(s: _Split, p: int, pad: bool) -> Message:
    D = len(s.sparse_bytes)
    m = max(s.sparse_bytes)
    if pad or D == 1 or len(set(s.sparse_bytes)) == 1:
        return Message(p, m)
    return Message(p, m, tuple(s.sparse_bytes[i % D] for i in range(p)))


def _low_rank(profile: Profile, label: str, idx: list[int]) -> bool:
    return any(d.compression[label][profile.tensors[i].name].q_bytes > 0
               for d in profile.devices for i in idx)


def _cost_low_rank(profile: Profile, label: str, idx: list[int],
                   choice: CollectiveChoice) -> BucketCost:
    """A bucket with low-rank tensors: allreduce of the whole tensors, of P, the middle
    phase, allreduce of Q (see the module doc)."""
    p = choice.p
    D = len(profile.devices)
    whole, pb, qb = [0.0] * D, [0.0] * D, [0.0] * D
    comp, dec, mid = [0.0] * D, [0.0] * D, [0.0] * D
    for k, d in enumerate(profile.devices):
        costs = d.compression[label]
        for i in idx:
            c = costs[profile.tensors[i].name]
            comp[k] += c.compress_s
            dec[k] += c.decompress_s
            mid[k] += c.middle_s
            if c.q_bytes > 0:
                pb[k] += c.wire_bytes - c.q_bytes
                qb[k] += c.q_bytes
            else:
                whole[k] += c.wire_bytes
    payload = [a + b + c for a, b, c in zip(whole, pb, qb, strict=True)]
    if p == 1:
        return BucketCost([0.0] * D, [0.0] * D, payload, "none", 0.0, "analytic", 0.0,
                          middle_s=[0.0] * D)
    names, levels, exact, seconds, sent, messages = [], [], [], [], [], []
    for what, nbytes in (("whole", max(whole)), ("P", max(pb)), ("Q", max(qb))):
        if nbytes <= 0:
            continue
        ar, run = choice.allreduce(nbytes)
        names.append(ar.name)
        levels.append(run.fidelity)
        exact.append(run.exact)
        seconds.append(run.seconds)
        messages.append((what, ar.name, float(nbytes)))
        sent.append(bytes_transmitted(ar, p, Message(p, nbytes),
                                      choice.topology(ar.extra_hosts(p))))
    second = seconds[-1] if max(qb) > 0 else 0.0
    return BucketCost(comp, dec, payload, "+".join(names) if names else "none",
                      math.fsum(seconds), most_detailed(levels), math.fsum(sent), all(exact),
                      middle_s=mid, second_duration=second, messages=messages)


def cost_bucket(profile: Profile, label: str, idx: list[int],
                choice: CollectiveChoice) -> BucketCost:
    """The cost of the bucket holding tensors ``idx`` for compressor ``label``."""
    if _low_rank(profile, label, idx):
        return _cost_low_rank(profile, label, idx, choice)
    p = choice.p
    s = _split(profile, label, idx, p)
    D = len(profile.devices)
    if p == 1:  # nothing is sent, so nothing is compressed
        return BucketCost([0.0] * D, [0.0] * D,
                          [a + b for a, b in zip(s.dense_bytes, s.sparse_bytes, strict=True)],
                          "none", 0.0, "analytic", 0.0)
    names: list[str] = []
    levels: list[str] = []
    exact: list[bool] = []
    seconds: list[float] = []
    sent: list[float] = []
    dense_bytes = max(s.dense_bytes)
    send_dense = False
    gathered = None
    if s.has_sparse:
        msg = _gather_message(s, p, choice.point.pad_sparse)
        ag, ag_run = choice.allgather(msg)
        if choice.auto:
            slow = max(range(D), key=lambda k: s.sparse_comp[k] + s.sparse_dec[k])
            sparse_cost = ag_run.seconds + s.sparse_comp[slow] + s.sparse_dec[slow]
            with_sparse = choice.allreduce(dense_bytes + s.sparse_raw)[1].seconds
            without = choice.allreduce(dense_bytes)[1].seconds if dense_bytes > 0 else 0.0
            send_dense = with_sparse < without + sparse_cost
        if not send_dense:
            gathered = (ag, ag_run, msg)
    if send_dense:
        dense_bytes += s.sparse_raw
    if dense_bytes > 0:
        ar, ar_run = choice.allreduce(dense_bytes)
        names.append(ar.name)
        levels.append(ar_run.fidelity)
        exact.append(ar_run.exact)
        seconds.append(ar_run.seconds)
        sent.append(bytes_transmitted(ar, p, Message(p, dense_bytes),
                                      choice.topology(ar.extra_hosts(p))))
    if gathered is not None:
        ag, ag_run, msg = gathered
        names.append(ag.name)
        levels.append(ag_run.fidelity)
        exact.append(ag_run.exact)
        seconds.append(ag_run.seconds)
        sent.append(bytes_transmitted(ag, p, msg, choice.topology()))
    if send_dense:
        comp, dec = s.dense_comp, s.dense_dec
        payload = [b + s.sparse_raw for b in s.dense_bytes]
    else:
        comp = [a + b for a, b in zip(s.dense_comp, s.sparse_comp, strict=True)]
        dec = [a + b for a, b in zip(s.dense_dec, s.sparse_dec, strict=True)]
        payload = [a + b for a, b in zip(s.dense_bytes, s.sparse_bytes, strict=True)]
    algorithm = "+".join(names) if names else "none"
    return BucketCost(comp, dec, payload, ("auto:" if choice.auto else "") + algorithm,
                      math.fsum(seconds), most_detailed(levels), math.fsum(sent), all(exact))


__all__ = ["BucketCost", "cost_bucket"]
