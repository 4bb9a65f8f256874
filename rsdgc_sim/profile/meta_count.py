"""Counting one training step on the ``meta`` device: every aten op's FLOPs and bytes, as
eager mode would run them (no memory is allocated, nothing is computed). The counts feed
the roofline (:mod:`rsdgc_sim.profile.roofline`) of an estimated profile
(:mod:`rsdgc_sim.profile.estimate`).

The model runs one training step on ``meta`` tensors (shapes only) under a
``TorchDispatchMode`` that sees every aten op PyTorch dispatches, as eager mode runs them:
the forward pass with the loss (``F.cross_entropy``), ``loss.backward()``, and the SGD
step with momentum 0.9 (what :mod:`rsdgc_sim.profile.measure` times: the second step, once
momentum buffers exist; ``foreach`` kernels on GPUs, one loop per parameter on CPUs, as
``torch.optim.SGD`` picks by default). Per op (:class:`OpCount`):

* ``flops``: torch's own FLOP formulas (``torch.utils.flop_counter.flop_registry``, the
  table ``FlopCounterMode`` uses: 2 per multiply-accumulate of convolutions, matmuls,
  attention, forward and backward); 0 for ops it has no formula for (element-wise ops,
  norms, pooling: memory-bound);
* ``bytes``: every tensor the op reads plus every tensor it writes, once each, in full
  (inputs + outputs; weights are inputs; an in-place op reads and writes its tensor; a
  broadcast input counts its distinct elements only; ``copy_``, ``fill_``, ``zero_`` do
  not read their destination). No cache reuse between ops, as in eager mode;
* ``conv``: a convolution (forward or backward), run at the device's convolution peak;
* ``launched``: every op that is not a view or alias (``view``, ``t``, ``expand``,
  ``detach``...), an allocation (``empty``), or a profiler marker;
* ``fresh``: bytes of the op's new (not in-place) outputs of at least
  :data:`FRESH_MIN_BYTES`: on CPUs such tensors are fresh pages every time (PyTorch's CPU
  allocator keeps no cache, glibc maps them anew), whose first touch costs page faults.

Per module, ops are attributed to the innermost module running
(``torch.utils.module_tracker.ModuleTracker``, see :func:`count_training_step`). A
parameter's gradient is ready after the backward op after which its
``post_accumulate_grad`` hook fired on ``meta`` (the moment DDP would mark it ready; the
autograd engine's order, not a guess from module order, so ResNet's shortcut branches land
where they run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry
from torch.utils.module_tracker import ModuleTracker

from ..errors import ConfigError
from ..models import create as create_model
from .schema import TensorInfo

__all__ = ["FRESH_MIN_BYTES", "OpCount", "StepCount", "count_training_step", "op_count"]

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

