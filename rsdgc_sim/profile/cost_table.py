"""What compressing costs, estimated: each compressor's payload by its own rules
(:func:`tensor_payload`) and its memory traffic from a cost table (:data:`COST_TABLE`),
timed by the roofline (:class:`rsdgc_sim.profile.roofline.Traffic`). Part of an estimated
profile (:mod:`rsdgc_sim.profile.estimate`).

**Payloads.** ``wire_bytes`` and ``sparse`` follow each compressor's rules exactly
(:func:`tensor_payload`): ``k = k_for(numel, density)``; tensors under ``min_numel`` and
(with ``dense_1d``) 1-D ones sent dense; values in the gradient's dtype plus int32 indices
when all-gathered; ``fp16`` 2 bytes per element; ``randomk`` with ``shared_indices`` values
only, allreduced; the quantizers (``qsgd``, ``terngrad``, ``efsignsgd``) every tensor's
packed codes and a float32 scale, ``ceil(numel * bits / 8) + 4`` bytes, all-gathered
(:func:`quantized_wire_bytes`). Where the count depends on the gradients' values the estimate is the
compressor's cap: ``dgc``/``nsi`` with the ``sampled`` selector send at most k (k assumed),
``threshold`` at most ``density`` (required: without it the count is unknowable, except for
``threshold: 0``, which sends everything), and layer-wise ``nsi`` (``dynamic``) shares
``round(density * sum(numel))`` elements among its layers by importance: the estimate gives
every layer the same importance, so the total is exact and each layer's share is its
static one.

**Times** are memory traffic at the device's bandwidth, from the cost table (steady state:
residuals and momenta exist, fp32 gradients): bytes read and written in full passes over
the tensor, sequential bytes per sent element, random accesses per sent element (each
costs :data:`~rsdgc_sim.profile.roofline.RANDOM_ACCESS_BYTES`: a 32-byte sector on GPUs, a
64-byte cache line on CPUs), FLOPs (NSI's fused CPU score only) and launched ops (each
``op_overhead``), counted from the code in :mod:`rsdgc_sim.compress`; new tensors' bytes
count as fresh memory (page faults on CPUs) when the tensor is at least
:data:`~rsdgc_sim.profile.meta_count.FRESH_MIN_BYTES`.

Per-call work (one NaN check and sync per ``compress_many``, NSI's importance vector) is
left out. The table is an estimate of memory traffic, not a measurement:
``benchmarks/estimate_vs_measured.py`` compares it with measured profiles. On CPUs the
selection steps (compare, ``nonzero``, ``torch.topk``) and ``avg_pool2d`` run at a few ns
per element, slower than memory: there the table underestimates sparsifiers 2-4x (a lower
``efficiency`` for a CPU model absorbs it); GPUs run them as bandwidth-bound kernels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..compress.bitpack import packed_bytes
from ..compress.layerwise import allocate
from ..compress.neighborhood import compiled_enabled
from ..compress.params import COMPRESSOR_PARAMS, validate
from ..compress.payload import INDEX_BYTES, SCALE_BYTES
from ..compress.powersgd import compressed_rank, matrix_shape, wire_elements
from ..compress.select import FILTER_MIN_NUMEL, MIN_SAMPLE_HITS, MIN_SAMPLES, k_for
from ..errors import ConfigError
from .device_models import DeviceModel
from .meta_count import FRESH_MIN_BYTES
from .roofline import Traffic
from .schema import TensorCost, TensorInfo

__all__ = ["COST_TABLE", "PayloadEstimate", "compressor_payloads", "estimate_compression",
           "quantized_bits", "quantized_wire_bytes", "tensor_cost", "tensor_payload"]


#: The cost table: what each step of each compressor reads and writes, for a tensor of n
#: fp32 elements (s = 4 bytes) of which k are sent (c: candidates), in steady state, read
#: from rsdgc_sim/compress/*.py. Per row: ``n`` bytes per element of full passes (read +
#: written), ``k`` sequential bytes per sent element, ``rand`` random accesses per sent
#: element, ``flops`` per element, ``ops`` kernels launched, ``fresh`` bytes per element of
#: new tensors (page faults on CPUs when the tensor is large).
COST_TABLE: dict[str, dict[str, float]] = {
    # check_all_finite: one sum over the gradient
    "check": {"n": 4, "ops": 1},
    # error feedback, residual.add_(grad): read 2, write 1, in place
    "compensate": {"n": 12, "ops": 1},
    # a.reshape(-1).abs()
    "abs": {"n": 8, "ops": 1, "fresh": 4},
    # exact top-k, CPU filter path (n >= 2**16, 8k <= n): score >= thr (read 4, write 1),
    # nonzero (read 1, write 8 per candidate, ~1.25k), score[cand], top-k of the
    # candidates, cand[idx]; the strided sample's top-k is small
    "topk_cpu_filter": {"n": 6, "k": 58, "rand": 1.25, "ops": 7, "fresh": 1},
    # exact top-k, torch.topk on the whole tensor: on GPUs a radix select, 4 digit passes
    # and a gather pass over the scores (5 reads); on CPUs (small tensors) a copy into
    # (value, index) pairs and a partial sort (~10 element-passes)
    "topk_gpu": {"n": 20, "k": 12, "ops": 8},
    "topk_cpu": {"n": 40, "k": 12, "ops": 1},
    # DGC's sampled threshold (select.sampled_topk): score >= thr, nonzero (~1.2k
    # candidates), top-k of the candidates; the sample itself (randint, gather) is charged
    # per sampled element: 20 bytes and one random access
    "sampled": {"n": 6, "k": 60, "rand": 2.4, "ops": 8, "fresh": 1},
    # send the selected values (contiguous a): a[idx] (read 8 idx + random value, write 4),
    # index_fill_ of the residual (read 8, random write), indices to int32 (read 8, write
    # 4), the payload's NaN check (read 4)
    "send_sparse": {"k": 36, "rand": 2, "ops": 4},
    "send_sparse_no_ef": {"k": 28, "rand": 1, "ops": 3},
    # the same from NSI's zero-bordered residual (2-D indexing: rows, cols, a2d[rows, cols],
    # index_put_)
    "send_sparse_2d": {"k": 108, "rand": 2, "ops": 7},
    # a small tensor sent dense: the residual was dropped, so a = grad copied (read 4,
    # write 4), and the payload's NaN check (read 4); without error feedback the payload
    # is the gradient itself (no copy, no check)
    "send_dense": {"n": 12, "ops": 2, "fresh": 4},
    # DGC momentum correction u = m u + g (mul_, add_), Nesterov adds inc = u + g
    "momentum": {"n": 20, "ops": 2},
    "momentum_nesterov": {"n": 32, "ops": 3, "fresh": 4},
    # DGC: v.add_(inc); small tensors: v = inc.clone(); clip: the norm (the scaling only
    # when it clips, not charged)
    "accumulate_v": {"n": 12, "ops": 1},
    "clone": {"n": 8, "ops": 1, "fresh": 4},
    "clip_norm": {"n": 4, "ops": 1},
    "momentum_masking": {"k": 8, "rand": 1, "ops": 1},
    # fp16: clamp (read 4, write 4), cast (read 4, write 2), payload NaN check (read 2);
    # with error feedback also: residual + grad (read 8, write 4), half back to fp32
    # (read 2, write 4), a - that (read 8, write 4)
    "fp16": {"n": 16, "ops": 3, "fresh": 6},
    "fp16_ef": {"n": 30, "ops": 3, "fresh": 12},
    # random-k draw: randperm(n)[:k] when 4k >= n; else randint of 1.1k, cat, unique
    # (a sort), randperm of the survivors, gather
    "randperm": {"n": 24, "ops": 1, "fresh": 8},
    "draw": {"k": 120, "rand": 1, "ops": 6},
    # threshold: |a| >= t (read 4, write 1), nonzero (read 1); per candidate: nonzero's
    # write (8); with more candidates than the cap k: mag[idx] (read 8 + 4, write 4), then
    # an exact top-k of the candidates and idx[sel] (read 8, write 8, random 1 per sent)
    "threshold": {"n": 6, "ops": 2, "fresh": 1},
    "candidates": {"k": 8},
    "threshold_cap": {"k": 16, "ops": 1},
    "cap_gather": {"k": 16, "rand": 1, "ops": 1},
    # NSI score, eager (mean_std: abs, a*a, stack, avg_pool2d of 3 planes, sigma: 7 passes,
    # add_), per statistic; compiled (CPU, n >= 2**16): one fused kernel reading the padded
    # residual and writing the score, ~64 FLOPs per element (9 window positions x 6, and
    # sigma), plus the row/column counts
    "score_mean_std": {"n": 138, "ops": 12, "fresh": 57},
    "score_mean_abs": {"n": 16, "ops": 2, "fresh": 8},
    "score_snr": {"n": 130, "ops": 10, "fresh": 49},
    # abs (read 4, write 4), avg_pool2d of 1 plane (read 4, write 4), then |a| + lam * m
    # (read 8, write 4 twice); abs_times_mean adds the tensor's mean |a| (read 4) and the
    # division (read 4, write 4)
    "score_abs_plus_mean": {"n": 40, "ops": 5, "fresh": 16},
    "score_abs_times_mean": {"n": 52, "ops": 7, "fresh": 20},
    "score_compiled": {"n": 8, "flops": 64, "ops": 10, "fresh": 4},
    # layer importance: score.mean(dtype=float64)
    "importance": {"n": 4, "ops": 1},
    # decompress: zeros(n), out[indices] = values; accumulate: index_add_ (read-modify-
    # write at random); dense: add_ (read 8, write 4); fp16 values cast first (read 2,
    # write 4)
    "decompress_sparse": {"n": 4, "k": 16, "rand": 1, "ops": 2, "fresh": 4},
    "accumulate_sparse": {"k": 8, "rand": 2, "ops": 1},
    "accumulate_dense": {"n": 12, "ops": 1},
    "cast_fp16": {"n": 6, "ops": 1, "fresh": 4},
    # quantizers (compress/qsgd.py, terngrad.py, efsignsgd.py, quantizer.py, bitpack.py).
    # One uniform draw per element (qsgd, terngrad): torch.rand writes 4 bytes, and its
    # generator's arithmetic is charged as ~20 FLOPs
    "uniform": {"n": 4, "flops": 20, "ops": 1, "fresh": 4},
    # qsgd: the norm (read 4), abs (read 4, write 4), *= s / norm (8), floor (8), the
    # fraction (read 8, write 4), u < fraction (read 8, write 1), level += (read 5,
    # write 4), clamp_ (8)
    "quantize_qsgd": {"n": 61, "ops": 8, "fresh": 9},
    # terngrad: the scale abs().max() (read 4, write 4, read 4), u *= scale (8), abs
    # (8), u < |a| (read 8, write 1)
    "quantize_terngrad": {"n": 37, "ops": 5, "fresh": 9},
    # terngrad's clip: mean (4), a - mean (8), ** 2 (8), mean (4), clamp (8)
    "clip_std": {"n": 32, "ops": 5, "fresh": 12},
    # efsignsgd: the scale abs().mean() (read 4, write 4, read 4), a < 0 (read 4, write 1)
    "quantize_sign": {"n": 17, "ops": 3, "fresh": 5},
    # sign and level into one byte code: to uint8 (read 4, write 1), a < 0 (read 4,
    # write 1), level > 0, &=, <<=, |= (one byte each way)
    "signed_codes": {"n": 19, "ops": 6, "fresh": 3},
    # bitpack.pack, per element (one byte per code, 8 per int64 word): the zero-padded
    # copy (3), three rounds of and / shift / and / or (9 each), the cut (2)
    "pack": {"n": 32, "ops": 15, "fresh": 2},
    # bitpack.unpack: the padded copies (4), three rounds of shift / and / shift / and /
    # or (11 each)
    "unpack": {"n": 37, "ops": 17, "fresh": 2},
    # dequantize from the codes: qsgd/terngrad (codes >> 1, to float, codes & 1, bool,
    # -mag, where, scale / s * q: ~44), efsignsgd (to float, 1 - 2 q, scale * q: ~24)
    "dequantize": {"n": 44, "ops": 7, "fresh": 22},
    "dequantize_sign": {"n": 24, "ops": 4, "fresh": 12},
    # error feedback of a quantizer: r + grad (read 8, write 4), residual a - sent (read
    # 8, write 4)
    "quantize_ef": {"n": 24, "ops": 2, "fresh": 8},
}

#: the quantizers: bit-packed codes and a float32 scale per tensor, all-gathered
QUANTIZERS = ("qsgd", "terngrad", "efsignsgd")


def quantized_bits(name: str, p: Any) -> int:
    """Bits per element of quantizer ``name`` with parameters ``p``: ``qsgd`` 1 +
    ``ceil(log2(levels + 1))``, ``terngrad`` 2, ``efsignsgd`` 1."""
    if name == "qsgd":
        return 1 + math.ceil(math.log2(p.levels + 1))
    return {"terngrad": 2, "efsignsgd": 1}[name]


def quantized_wire_bytes(name: str, p: Any, numel: int) -> int:
    """A quantizer's payload of a tensor of ``numel`` elements: ``ceil(numel * bits / 8)``
    bytes of codes and the 4-byte scale."""
    return packed_bytes(numel, quantized_bits(name, p)) + SCALE_BYTES


def _charge(t: Traffic, step: str, n: int, k: int = 0, s: int = 4) -> None:
    """Add one row of :data:`COST_TABLE` for ``n`` elements (``s`` bytes each, the table is
    per fp32 element: its per-element bytes scale with ``s / 4``) and ``k`` sent; the row's
    new tensors count as fresh memory when the tensor is at least :data:`FRESH_MIN_BYTES`."""
    row = COST_TABLE[step]
    scale = s / 4
    fresh = row.get("fresh", 0) * n * scale if n * s >= FRESH_MIN_BYTES else 0.0
    t.add(bytes=row.get("n", 0) * n * scale + row.get("k", 0) * k, random=row.get("rand", 0) * k,
          flops=row.get("flops", 0) * n, ops=int(row.get("ops", 0)), fresh=fresh)


@dataclass(frozen=True)
class PayloadEstimate:
    """What a compressor sends for one tensor: ``k`` values (``numel`` when dense), whether
    the tensor is sent dense, the payload's ``wire_bytes``, and ``sparse`` (all-gathered)."""

    k: int
    dense: bool
    wire_bytes: int
    sparse: bool


def _small(p: Any, info: TensorInfo) -> bool:
    """The sparsifiers' ``_send_dense_if_small``."""
    return info.numel < getattr(p, "min_numel", 0) or (len(info.shape) < 2 and getattr(p, "dense_1d", False))


def tensor_payload(name: str, p: Any, info: TensorInfo, k: int | None = None) -> PayloadEstimate:
    """The payload compressor ``name`` (parameters ``p``) sends for tensor ``info`` in steady
    state; ``k`` overrides the per-tensor count (layer-wise NSI's share)."""
    n, s = info.numel, info.dtype_bytes
    if name == "none":
        return PayloadEstimate(n, True, n * s, False)
    if name == "fp16":
        return PayloadEstimate(n, True, n * 2, False)
    if name in QUANTIZERS:
        return PayloadEstimate(n, False, quantized_wire_bytes(name, p, n), True)
    if name == "powersgd":  # torch's rule: (n + m) r' values when worth it, else all of them
        return PayloadEstimate(n, True, wire_elements(info.shape, p.rank, p.min_compression_rate) * s,
                               False)
    if _small(p, info):
        return PayloadEstimate(n, True, n * s, False)
    if k is None:
        if name == "threshold":
            if p.density is None:
                if p.threshold != 0:
                    raise ConfigError(
                        "compressor 'threshold' without density: how many elements pass the "
                        "threshold depends on the gradients' values, so an estimate needs "
                        "density (the cap, assumed reached)")
                k = n  # |a| >= 0 holds everywhere
            else:
                k = k_for(n, p.density)
        else:
            k = k_for(n, p.density)
    allgather = not (name == "randomk" and p.shared_indices)
    return PayloadEstimate(k, False, k * s + (k * INDEX_BYTES if allgather else 0), allgather)


def _select(t: Traffic, selector: str, n: int, k: int, kind: str, sample_ratio: float = 0.01) -> None:
    """Top-k selection over a score of n elements: exact (``select.exact_topk``) or sampled
    (``select.sampled_topk``, which falls back to exact for small tensors)."""
    if selector == "sampled" and 0 < k < n:
        ns = max(MIN_SAMPLES, math.ceil(n * sample_ratio), math.ceil(MIN_SAMPLE_HITS * n / k))
        if 2 * ns < n:
            _charge(t, "sampled", n, k)
            t.add(bytes=20 * ns, random=ns, ops=0)  # randint (write 8), gather (read 8, write 4)
            return
    if k >= n or k <= 0:
        return
    if kind == "cpu":
        _charge(t, "topk_cpu_filter" if n >= FILTER_MIN_NUMEL and k * 8 <= n else "topk_cpu", n, k)
    else:
        _charge(t, "topk_gpu", n, k)


def _compiled_score(n: int, kind: str) -> bool:
    return compiled_enabled(n, torch.device("cpu" if kind == "cpu" else "cuda"))


def _sparsifier_cost(comp: Traffic, name: str, p: Any, n: int, s: int, k: int, kind: str,
                     ef: bool) -> None:
    """Charge to ``comp`` what a sparsifier (top-k, random-k, threshold, NSI) does to one
    tensor it sends sparse: error compensation, its selection and the sparse payload."""
    if ef:
        _charge(comp, "compensate", n, s=s)
    if name == "topk":
        _charge(comp, "abs", n, s=s)
        _select(comp, "exact", n, k, kind)
    elif name == "randomk":
        _charge(comp, "randperm" if 4 * k >= n else "draw", n, k)
    elif name == "threshold":
        _charge(comp, "abs", n, s=s)
        _charge(comp, "threshold", n, s=s)
        # candidates: all of them at threshold 0 (|a| >= 0), else assumed to be k
        cand = n if p.threshold == 0 else k
        _charge(comp, "candidates", n, cand)
        if cand > k:
            _charge(comp, "threshold_cap", n, cand)
            _select(comp, "exact", cand, k, kind)
            _charge(comp, "cap_gather", n, k)
    elif name == "nsi":
        if _compiled_score(n, kind):
            _charge(comp, "score_compiled", n, s=s)
        else:
            _charge(comp, f"score_{p.statistic}", n, s=s)
        if p.dynamic:
            _charge(comp, "importance", n, s=s)
        _select(comp, p.selector, n, k, kind, p.sample_ratio)
    else:
        raise ConfigError(f"no cost model for compressor {name!r}")
    padded = name == "nsi" and ef and p.kernel > 1 and _compiled_score(n, kind)
    step = "send_sparse_2d" if padded else ("send_sparse" if ef else "send_sparse_no_ef")
    _charge(comp, step, n, k)


def tensor_cost(
    name: str, p: Any, info: TensorInfo, payload: PayloadEstimate, device: DeviceModel
) -> TensorCost:
    """The estimated :class:`TensorCost` of compressing one tensor (see :data:`COST_TABLE`)."""
    n, s, k, kind = info.numel, info.dtype_bytes, payload.k, device.kind
    comp, dec, acc = Traffic(), Traffic(), Traffic()
    _charge(comp, "check", n, s=s)
    ef = bool(getattr(p, "error_feedback", True))
    if name == "none":
        pass
    elif name == "fp16":
        _charge(comp, "fp16", n, s=s)
        if p.error_feedback:
            _charge(comp, "fp16_ef", n, s=s)
        _charge(dec, "cast_fp16", n, s=s)
        _charge(acc, "cast_fp16", n, s=s)
    elif name == "powersgd":
        return _powersgd_cost(p, info, payload, device)
    elif name in QUANTIZERS:
        _quantizer_cost(comp, dec, acc, name, p, n, s)
        return TensorCost(compress_s=comp.seconds(device), decompress_s=dec.seconds(device),
                          accumulate_s=acc.seconds(device), wire_bytes=payload.wire_bytes,
                          sparse=payload.sparse)
    elif name == "dgc":
        if p.clip_norm is not None:
            _charge(comp, "clip_norm", n, s=s)
        _charge(comp, "momentum_nesterov" if p.nesterov else "momentum", n, s=s)
        if payload.dense:
            _charge(comp, "clone", n, s=s)
            _charge(comp, "check", n, s=s)  # the payload's NaN check
        else:
            _charge(comp, "accumulate_v", n, s=s)
            _charge(comp, "abs", n, s=s)
            _select(comp, p.selector, n, k, kind, p.sample_ratio)
            if p.momentum_masking:
                _charge(comp, "momentum_masking", n, k)
            _charge(comp, "send_sparse", n, k)
    elif payload.dense:  # a sparsifier's small tensor
        if ef:
            _charge(comp, "send_dense", n, s=s)
    else:
        _sparsifier_cost(comp, name, p, n, s, k, kind, ef)
    if not payload.dense:
        _charge(dec, "decompress_sparse", n, k, s=s)
        _charge(acc, "accumulate_sparse", n, k, s=s)
    else:
        _charge(acc, "accumulate_dense", n, s=s)
    return TensorCost(
        compress_s=comp.seconds(device),
        decompress_s=dec.seconds(device),
        accumulate_s=acc.seconds(device),
        wire_bytes=payload.wire_bytes,
        sparse=payload.sparse,
    )


def _quantizer_cost(comp: Traffic, dec: Traffic, acc: Traffic, name: str, p: Any, n: int,
                    s: int) -> None:
    """A quantizer's traffic (see :data:`COST_TABLE`): compress (error feedback, the draws,
    the levels, the codes, the packing), decompress (unpack, dequantize, the sum's zeros and
    add) and accumulate (unpack, dequantize, add). Past the gradient itself every pass runs
    in float32 for half-precision gradients (``s`` is the gradient's element size)."""
    f = max(s, 4)
    if p.error_feedback:
        _charge(comp, "quantize_ef", n, s=f)
    if name == "qsgd":
        _charge(comp, "uniform", n, s=f)
        _charge(comp, "quantize_qsgd", n, s=f)
    elif name == "terngrad":
        if p.clip is not None:
            _charge(comp, "clip_std", n, s=f)
        _charge(comp, "uniform", n, s=f)
        _charge(comp, "quantize_terngrad", n, s=f)
    else:
        _charge(comp, "quantize_sign", n, s=f)
    deq = "dequantize_sign" if name == "efsignsgd" else "dequantize"
    if name != "efsignsgd":
        _charge(comp, "signed_codes", n)
    if p.error_feedback:
        _charge(comp, deq, n, s=f)
    _charge(comp, "pack", n)
    for t in (dec, acc):
        _charge(t, "unpack", n)
        _charge(t, deq, n, s=f)
        _charge(t, "accumulate_dense", n, s=s)


def _powersgd_cost(p: Any, info: TensorInfo, payload: PayloadEstimate,
                   device: DeviceModel) -> TensorCost:
    """PowerSGD's three phases of one tensor (:mod:`rsdgc_sim.ddp.powersgd`), steady state
    (warm start: no draw). Every tensor: error feedback (``add_``: read 8, write 4), the
    bucket's copy (read 4, write 4) and, after the rounds, the error (read 8, write 4).
    Compressed (n x m, rank r): compress orthogonalizes Q (~5 m r FLOPs) and computes
    ``P = M Q`` (2 n m r FLOPs, M read once); the middle orthogonalizes P (~5 n r) and computes
    ``Q = M^T P`` (2 n m r, M read once); decompress ``M = P Q^T`` (2 n m r, M written once).
    Sent whole: the concatenation (read 4, write 4) and the copy back of the mean (read 4,
    write 4, and the division: read 4, write 4)."""
    n, s = info.numel, info.dtype_bytes
    comp, mid, dec = Traffic(), Traffic(), Traffic()
    if p.error_feedback:
        comp.add(bytes=20 * n * s / 4, ops=2)
        dec.add(bytes=12 * n * s / 4, ops=1)
    r = compressed_rank(info.shape, p.rank, p.min_compression_rate)
    q_bytes = 0
    if r:
        rows, cols = matrix_shape(info.shape)  # type: ignore[misc]
        comp.add(bytes=(n + cols * r + rows * r) * s, flops=2 * n * r + 5 * cols * r, ops=2 + 3 * r)
        mid.add(bytes=(n + cols * r + rows * r) * s, flops=2 * n * r + 5 * rows * r, ops=1 + 3 * r)
        dec.add(bytes=(n + cols * r + rows * r) * s, flops=2 * n * r, ops=2)
        q_bytes = cols * r * s
    else:
        comp.add(bytes=8 * n * s / 4, ops=1)
        dec.add(bytes=16 * n * s / 4, ops=2)
    return TensorCost(compress_s=comp.seconds(device), decompress_s=dec.seconds(device),
                      accumulate_s=0.0, wire_bytes=payload.wire_bytes, sparse=False,
                      q_bytes=q_bytes, middle_s=mid.seconds(device) if r else 0.0)


def compressor_payloads(name: str, p: Any, tensors: list[TensorInfo]) -> dict[str, PayloadEstimate]:
    """Every tensor's payload for one compressor; layer-wise NSI shares its budget among
    the tensors it sparsifies (equal importances: see the module docstring)."""
    shares: dict[str, int] = {}
    if name == "nsi" and p.dynamic:
        work = [t for t in tensors if not _small(p, t)]
        if work:
            ks = allocate([t.numel for t in work], [1.0] * len(work), p.density,
                          min(1.0, p.d_min), min(1.0, p.d_max))
            shares = {t.name: k for t, k in zip(work, ks, strict=True)}
    return {t.name: tensor_payload(name, p, t, shares.get(t.name)) for t in tensors}


def estimate_compression(
    spec: Mapping[str, Any], tensors: list[TensorInfo], device: DeviceModel
) -> dict[str, TensorCost]:
    """Per tensor, the estimated cost of compressor ``spec`` (``{"name": ..., **params}``)."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"compressor spec needs a name, got {name!r}")
    p = validate(name, COMPRESSOR_PARAMS.get(name), spec)
    payloads = compressor_payloads(name, p, tensors)
    return {t.name: tensor_cost(name, p, t, payloads[t.name], device) for t in tensors}
