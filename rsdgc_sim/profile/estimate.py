"""Estimating a Profile for a device one does not have: a roofline per aten op, from FLOPs
and bytes counted on the ``meta`` device (no memory, no GPU), and a cost table per
compressor.

**Compute.** The model runs one training step on ``meta`` tensors (shapes only) under a
``TorchDispatchMode`` that sees every aten op PyTorch dispatches, as eager mode runs them:
the forward pass with the loss (``F.cross_entropy``), ``loss.backward()``, and the SGD
step with momentum 0.9 (what :mod:`rsdgc_sim.profile.measure` times: the second step, once
momentum buffers exist; ``foreach`` kernels on GPUs, one loop per parameter on CPUs, as
``torch.optim.SGD`` picks by default). Each op costs

    t_op = max(flops / (P * e), bytes / (W * e)) + fresh / F + op_overhead   (launched ops)
    t_op = 0                                                     (views, allocations)

* ``flops``: torch's own FLOP formulas (``torch.utils.flop_counter.flop_registry``, the
  table ``FlopCounterMode`` uses: 2 per multiply-accumulate of convolutions, matmuls,
  attention, forward and backward); 0 for ops it has no formula for (element-wise ops,
  norms, pooling: memory-bound);
* ``bytes``: every tensor the op reads plus every tensor it writes, once each, in full
  (inputs + outputs; weights are inputs; an in-place op reads and writes its tensor; a
  broadcast input counts its distinct elements only; ``copy_``, ``fill_``, ``zero_`` do
  not read their destination). No cache reuse between ops, as in eager mode;
* ``P``: ``conv_peak_flops`` for convolutions (forward and backward), ``peak_flops``
  otherwise (see :mod:`rsdgc_sim.profile.device_models`), ``W``: ``memory_bandwidth``,
  ``e``: ``efficiency``;
* launched ops: every op that is not a view or alias (``view``, ``t``, ``expand``,
  ``detach``...), an allocation (``empty``), or a profiler marker;
* ``fresh``: bytes of the op's new (not in-place) outputs of at least
  :data:`FRESH_MIN_BYTES`, and ``F`` the device's ``page_fault_bandwidth``: on CPUs such
  tensors are fresh pages every time (PyTorch's CPU allocator keeps no cache, glibc maps
  them anew), whose first touch costs page faults; 0 where ``F`` is None (GPUs: the
  caching allocator).

Forward, backward and optimizer times are the sums over their ops; per module, ops are
attributed to the innermost module running (``torch.utils.module_tracker.ModuleTracker``,
see :func:`count_training_step`). A parameter's gradient-ready time is the backward time
summed up to the op after which its ``post_accumulate_grad`` hook fired on ``meta`` (the
moment DDP would mark it ready; the autograd engine's order, not a guess from module order,
so ResNet's shortcut branches land where they run).

**Compression.** ``wire_bytes`` and ``sparse`` follow each compressor's rules exactly
(:func:`tensor_payload`): ``k = k_for(numel, density)``; tensors under ``min_numel`` and
(with ``dense_1d``) 1-D ones sent dense; values in the gradient's dtype plus int32 indices
when all-gathered; ``fp16`` 2 bytes per element; ``randomk`` with ``shared_indices`` values
only, allreduced. Where the count depends on the gradients' values the estimate is the
compressor's cap: ``dgc``/``nsi`` with the ``sampled`` selector send at most k (k assumed),
``threshold`` at most ``density`` (required: without it the count is unknowable, except for
``threshold: 0``, which sends everything), and layer-wise ``nsi`` (``dynamic``) shares
``round(density * sum(numel))`` elements among its layers by importance: the estimate gives
every layer the same importance, so the total is exact and each layer's share is its
static one.

Times are memory traffic at the device's bandwidth, from the cost table
(:data:`COST_TABLE`, steady state: residuals and momenta exist, fp32 gradients): bytes read
and written in full passes over the tensor, sequential bytes per sent element, random
accesses per sent element (each costs :data:`RANDOM_ACCESS_BYTES`: a 32-byte sector on
GPUs, a 64-byte cache line on CPUs), FLOPs (NSI's fused CPU score only) and launched ops
(each ``op_overhead``), counted from the code in :mod:`rsdgc_sim.compress`::

    t = max((bytes + random * granule) / (W * e), flops / (P * e)) + fresh / F
        + max(1, ops) * op_overhead

(``fresh``: new tensors' bytes when the tensor is at least :data:`FRESH_MIN_BYTES`; every
call costs at least one dispatch.)

Per-call work (one NaN check and sync per ``compress_many``, NSI's importance vector) is
left out. The table is an estimate of memory traffic, not a measurement:
``benchmarks/estimate_vs_measured.py`` compares it with measured profiles. On CPUs the
selection steps (compare, ``nonzero``, ``torch.topk``) and ``avg_pool2d`` run at a few ns
per element, slower than memory: there the table underestimates sparsifiers 2-4x (a lower
``efficiency`` for a CPU model absorbs it); GPUs run them as bandwidth-bound kernels.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry
from torch.utils.module_tracker import ModuleTracker

from ..compress.layerwise import allocate
from ..compress.params import COMPRESSOR_PARAMS, validate
from ..compress.payload import INDEX_BYTES
from ..compress.select import FILTER_MIN_NUMEL, MIN_SAMPLE_HITS, MIN_SAMPLES, k_for
from ..errors import ConfigError
from .device_models import DeviceModel
from .schema import DeviceProfile, Profile, TensorCost, TensorInfo

__all__ = [
    "COST_TABLE",
    "RANDOM_ACCESS_BYTES",
    "OpCount",
    "StepCount",
    "Traffic",
    "count_training_step",
    "estimate_compute",
    "estimate_profile",
    "op_seconds",
    "tensor_cost",
    "tensor_payload",
]

#: version of the cost model below (part of an estimated profile's settings)
COST_MODEL_VERSION = 1

#: bytes one random access moves: an L2 sector on GPUs, a cache line on CPUs
RANDOM_ACCESS_BYTES = {"gpu": 32, "cpu": 64}

#: new tensors at least this large are fresh pages on CPUs (glibc's largest mmap threshold,
#: DEFAULT_MMAP_THRESHOLD_MAX on 64-bit; below it freed memory is mostly reused)
FRESH_MIN_BYTES = 32 << 20

aten = torch.ops.aten

#: ops that launch no kernel: allocations (their memory is written by the next op)
_NO_KERNEL = {
    aten.empty.memory_format, aten.empty_strided.default, aten.empty_like.default,
    aten.new_empty.default, aten.new_empty_strided.default, aten.lift_fresh.default,
}
#: in-place ops that do not read the tensor they write
_WRITE_ONLY = {aten.copy_.default, aten.fill_.Scalar, aten.fill_.Tensor, aten.zero_.default}


# -- compute: counting one training step on meta ----------------------------------------


@dataclass(frozen=True)
class OpCount:
    """One aten op of a training step: its FLOPs, bytes moved, whether it runs on the
    convolution peak, whether it launches a kernel, and the module it ran in."""

    op: str
    module: str
    flops: int
    bytes: int
    conv: bool
    launched: bool
    #: bytes of new outputs of at least FRESH_MIN_BYTES (page faults on CPUs)
    fresh: int = 0


def _tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct elements of ``t`` (a broadcast dimension, stride 0, counts once)."""
    n = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if size == 0:
            return 0
        if stride != 0:
            n *= size
    return n * t.element_size()


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor)]


def _key(t: torch.Tensor) -> tuple:
    return (t.untyped_storage()._cdata, t.storage_offset(), tuple(t.shape), tuple(t.stride()))


def _mutated(func: Any, args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """The tensors an op writes in place (its schema's ``Tensor(a!)`` arguments)."""
    out: list[torch.Tensor] = []
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is not None and arg.alias_info.is_write:
            out += _tensors(args[i] if i < len(args) else kwargs.get(arg.name))
    return out


def op_count(func: Any, args: tuple, kwargs: dict, out: Any, module: str = "") -> OpCount:
    """The :class:`OpCount` of one dispatched op (see the module docstring for the rules)."""
    name = str(func)
    packet = func._overloadpacket
    ins = _tensors((args, kwargs))
    outs = _tensors(out)
    mutable = func._schema.is_mutable
    storages = {t.untyped_storage()._cdata for t in ins}
    alias_only = bool(getattr(func, "is_view", False)) or (
        not mutable and bool(outs) and all(t.untyped_storage()._cdata in storages for t in outs)
    )
    if alias_only or func in _NO_KERNEL or func.namespace == "profiler":
        return OpCount(name, module, 0, 0, False, False)
    seen: set[tuple] = set()
    nbytes = 0
    skip_first = func in _WRITE_ONLY
    for i, t in enumerate(ins):
        k = _key(t)
        if k in seen or (skip_first and i == 0):
            seen.add(k)
            continue
        seen.add(k)
        nbytes += _tensor_bytes(t)
    written: set[tuple] = set()
    fresh = 0
    for t in outs + _mutated(func, args, kwargs):  # in-place foreach ops return nothing
        k = _key(t)
        if k not in written:
            written.add(k)
            b = _tensor_bytes(t)
            nbytes += b
            if not mutable and t.untyped_storage()._cdata not in storages and b >= FRESH_MIN_BYTES:
                fresh += b
    flops = 0
    formula = flop_registry.get(packet)
    if formula is not None:
        flops = int(formula(*args, **kwargs, out_val=out))
    return OpCount(name, module, flops, nbytes, "convolution" in packet.__name__, True, fresh)


class _Recorder(TorchDispatchMode):
    """Records an :class:`OpCount` per dispatched op into ``self.ops``."""

    def __init__(self, tracker: ModuleTracker, names: Mapping[str, str]):
        super().__init__()
        self.ops: list[OpCount] = []
        self.tracker = tracker
        self.names = names

    def _module(self) -> str:
        parents = [p for p in self.tracker.parents if p != "Global"]
        if not parents:
            return ""
        inner = max(parents, key=lambda p: p.count("."))
        return self.names.get(inner, inner)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append(op_count(func, args, kwargs, out, self._module()))
        return out


@dataclass
class StepCount:
    """The ops of one training step, counted on ``meta``: ``forward`` (with the loss),
    ``backward``, ``optimizer`` (the second SGD step); ``ready[name]`` is the number of
    backward ops done when parameter ``name``'s gradient was ready."""

    model: str
    tensors: list[TensorInfo]
    forward: list[OpCount]
    backward: list[OpCount]
    optimizer: list[OpCount]
    ready: dict[str, int]

    def flops(self, phase: str = "forward") -> int:
        return sum(o.flops for o in getattr(self, phase))


def count_training_step(
    model: str, num_classes: int, input_size: int, batch_size: int, foreach: bool = False
) -> StepCount:
    """Run one training step of zoo ``model`` on ``meta`` tensors and count its ops (no
    memory is allocated, nothing is computed). ``foreach``: the optimizer's multi-tensor
    kernels (PyTorch's default on GPUs) instead of a loop over parameters (CPUs)."""
    from ..models import create as create_model

    net = create_model(model, num_classes=num_classes, input_size=input_size, device="meta")
    net.train()
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    # ModuleTracker names modules "<RootClass>.<fqn>"; map them back to fqns
    root = type(net).__name__
    names = {f"{root}.{n}" if n else root: n for n, _ in net.named_modules()}
    x = torch.empty(batch_size, 3, input_size, input_size, device="meta")
    y = torch.empty(batch_size, dtype=torch.long, device="meta")
    tracker = ModuleTracker()
    ready: dict[str, int] = {}
    with tracker:
        with _Recorder(tracker, names) as fwd:
            loss = F.cross_entropy(net(x), y)
        with _Recorder(tracker, names) as bwd:
            hooks = [
                p.register_post_accumulate_grad_hook(lambda _p, n=n: ready.__setitem__(n, len(bwd.ops)))
                for n, p in params
            ]
            try:
                loss.backward()
            finally:
                for h in hooks:
                    h.remove()
    opt = torch.optim.SGD([p for _, p in params], lr=0.01, momentum=0.9, foreach=foreach)
    opt.step()  # makes the momentum buffers; the steady-state step is the next one
    with _Recorder(tracker, names) as step:
        opt.step()
    tensors = [TensorInfo(name=n, shape=list(p.shape), numel=p.numel(), dtype_bytes=p.element_size())
               for n, p in params]
    missing = [n for n, _ in params if n not in ready]
    if missing:
        raise ConfigError(f"model {model!r}: no gradient reached {', '.join(missing[:5])} on meta")
    return StepCount(model, tensors, fwd.ops, bwd.ops, step.ops, ready)


def _fault_seconds(fresh: float, device: DeviceModel) -> float:
    return fresh / device.page_fault_bandwidth if device.page_fault_bandwidth and fresh else 0.0


def op_seconds(op: OpCount, device: DeviceModel) -> float:
    """The roofline time of one op: ``max(flops / (P * e), bytes / (W * e)) + fresh / F +
    op_overhead`` for a launched op (P the convolution peak for convolutions), 0 otherwise."""
    if not op.launched:
        return 0.0
    peak = device.conv_flops if op.conv else device.peak_flops
    e = device.efficiency
    return (max(op.flops / (peak * e), op.bytes / (device.memory_bandwidth * e))
            + _fault_seconds(op.fresh, device) + device.op_overhead)


@dataclass
class ComputeEstimate:
    """Estimated times of one training step on a device model (seconds), and per module
    ``(forward_s, backward_s)``."""

    forward_s: float
    backward_s: float
    optimizer_s: float
    grad_ready_s: dict[str, float]
    modules: dict[str, tuple[float, float]] = field(default_factory=dict)


def estimate_compute(step: StepCount, device: DeviceModel) -> ComputeEstimate:
    """Forward, backward, optimizer and gradient-ready times of a counted step."""
    fwd = [op_seconds(o, device) for o in step.forward]
    bwd = [op_seconds(o, device) for o in step.backward]
    cum = [0.0]
    for t in bwd:
        cum.append(cum[-1] + t)
    modules: dict[str, list[float]] = {}
    for o, t in zip(step.forward, fwd, strict=True):
        modules.setdefault(o.module, [0.0, 0.0])[0] += t
    for o, t in zip(step.backward, bwd, strict=True):
        modules.setdefault(o.module, [0.0, 0.0])[1] += t
    return ComputeEstimate(
        forward_s=math.fsum(fwd),
        backward_s=cum[-1],
        optimizer_s=math.fsum(op_seconds(o, device) for o in step.optimizer),
        grad_ready_s={n: cum[i] for n, i in step.ready.items()},
        modules={m: (f, b) for m, (f, b) in modules.items()},
    )


# -- compression: payloads and the cost table ------------------------------------------


@dataclass
class Traffic:
    """Memory traffic of one call: sequential ``bytes`` read + written, ``random``
    accesses, ``flops``, launched ``ops``, ``fresh`` bytes of large new tensors."""

    bytes: float = 0.0
    random: float = 0.0
    flops: float = 0.0
    ops: int = 0
    fresh: float = 0.0

    def add(self, bytes: float = 0.0, random: float = 0.0, flops: float = 0.0, ops: int = 1,
            fresh: float = 0.0) -> Traffic:
        self.bytes += bytes
        self.random += random
        self.flops += flops
        self.ops += ops
        self.fresh += fresh
        return self

    def seconds(self, device: DeviceModel) -> float:
        """``max((bytes + random * granule) / (W e), flops / (P e)) + fresh / F +
        max(1, ops) * op_overhead`` (a call costs at least one dispatch)."""
        e = device.efficiency
        mem = (self.bytes + self.random * RANDOM_ACCESS_BYTES[device.kind]) / (device.memory_bandwidth * e)
        return (max(mem, self.flops / (device.peak_flops * e)) + _fault_seconds(self.fresh, device)
                + max(1, self.ops) * device.op_overhead)


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
}


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
    from ..compress.neighborhood import compiled_enabled

    return compiled_enabled(n, torch.device("cpu" if kind == "cpu" else "cuda"))


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


# -- the profile ------------------------------------------------------------------------


def estimate_profile(
    model: str,
    num_classes: int,
    input_size: int,
    batch_size: int,
    compressors: Mapping[str, Mapping[str, Any]],
    device: DeviceModel,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """A :class:`Profile` of zoo ``model`` on ``device``, estimated (see the module
    docstring), marked ``estimated=True``. ``compressors`` maps a label to
    ``{"name": ..., **params}``, as for :func:`rsdgc_sim.profile.measure.measure_profile`.
    ``seed`` is recorded only (nothing random is drawn)."""
    from ..compress.neighborhood import compile_mode

    if not isinstance(device, DeviceModel):
        raise ConfigError(f"device must be a DeviceModel, got {type(device).__name__}")
    say = progress or (lambda _msg: None)
    step = count_training_step(model, num_classes, input_size, batch_size, foreach=device.kind == "gpu")
    comp = estimate_compute(step, device)
    say(f"{device.name} (estimated): forward {comp.forward_s * 1e3:.2f} ms, "
        f"backward {comp.backward_s * 1e3:.2f} ms")
    compression = {label: estimate_compression(spec, step.tensors, device)
                   for label, spec in compressors.items()}
    for label, costs in compression.items():
        say(f"{device.name} (estimated): {label}: compress "
            f"{sum(c.compress_s for c in costs.values()) * 1e3:.2f} ms per iteration")
    dev = DeviceProfile(
        device=f"model:{device.name}",
        device_name=device.name,
        forward_s=comp.forward_s,
        backward_s=comp.backward_s,
        optimizer_s=comp.optimizer_s,
        grad_ready_s=comp.grad_ready_s,
        compression=compression,
        nsi_compile=compile_mode(),
        estimated=True,
        source=f"estimated: {device.describe()}",
    )
    return Profile(
        model=model,
        num_classes=num_classes,
        input_size=input_size,
        batch_size=batch_size,
        params=sum(t.numel for t in step.tensors),
        tensors=step.tensors,
        devices=[dev],
        torch_version=torch.__version__,
        host=platform.node(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        compressor_specs={label: dict(spec) for label, spec in compressors.items()},
        settings={
            "method": "roofline",
            "cost_model": COST_MODEL_VERSION,
            "device_model": device.model_dump(mode="json"),
            "optimizer": {"name": "SGD", "momentum": 0.9, "foreach": device.kind == "gpu"},
            "seed": seed,
        },
        machine=f"device model {device.name} ({device.kind}): {device.source}",
    )
