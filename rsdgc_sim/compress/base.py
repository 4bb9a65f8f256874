"""The compressor interface, the registry of compressors, and the error-feedback machinery
that every sparsifier shares.

Compressors are stateless: configuration is a frozen, validated parameter object; every
piece of state (residuals, momenta, importances, iteration, generators) lives in a
:class:`~rsdgc_sim.compress.memory.CompressorState` passed to each call.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from ..errors import ConfigError, GradientError
from ..registry import Registry
from .memory import CompressorState, state_dtype
from .params import Params, SparsifierParams, validate
from .payload import (
    Payload,
    QuantizedPayload,
    accumulate,
    decompress,
    decompress_sum,
    dense_payload,
    sparse_payload,
)
from .select import k_for

__all__ = [
    "COMPRESSORS",
    "Compressor",
    "Params",
    "Sparsifier",
    "SparsifierParams",
    "check_all_finite",
    "check_finite",
    "check_payloads_finite",
    "create",
]

#: every compressor class, by name (``COMPRESSORS.names()``, ``COMPRESSORS.get(name)``);
#: complete once :func:`load_builtins` ran (``create`` and ``import rsdgc_sim.compress`` do)
COMPRESSORS: Registry[type[Compressor]] = Registry("compressor")

#: the modules of the built-in compressors (importing one registers it)
BUILTIN_MODULES = ("dgc", "efsignsgd", "fp16", "none", "nsi", "powersgd", "qsgd", "randomk",
                   "terngrad", "threshold", "topk")


def load_builtins() -> None:
    """Register every built-in compressor in :data:`COMPRESSORS` (imports their modules)."""
    for mod in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{mod}")


def _first_non_finite(tensors: Mapping[str, torch.Tensor]) -> tuple[str, int, int] | None:
    """``(name, bad, numel)`` of the first tensor holding NaN or Inf, or None.

    One reduction pass per tensor (a NaN or Inf makes the sum non-finite) and a single
    host synchronisation per device; only when a sum is not finite are the elements
    counted, so an overflowing sum of finite values is not mistaken for a bad tensor."""
    items = [(n, t) for n, t in tensors.items() if t.numel() and t.is_floating_point()]
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for n, t in items:
        by_device.setdefault(t.device, []).append((n, t))
    for group in by_device.values():
        sums = torch.stack([t.sum(dtype=torch.float32) for _, t in group])
        if bool(torch.isfinite(sums).all()):
            continue
        for n, t in group:
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                return n, bad, t.numel()
    return None


def check_finite(name: str, grad: torch.Tensor) -> None:
    """Raise :class:`GradientError` naming the tensor if it holds NaN or Inf (never sent)."""
    check_all_finite({name: grad})


def check_all_finite(grads: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`GradientError` naming the first gradient that holds NaN or Inf (one
    host synchronisation for all of them)."""
    bad = _first_non_finite(grads)
    if bad is not None:
        n, count, numel = bad
        raise GradientError(f"gradient {n!r} has {count} NaN/Inf value(s) among {numel}; not sent")


def check_payloads_finite(
    payloads: Mapping[str, Payload], grads: Mapping[str, torch.Tensor] | None = None
) -> None:
    """Raise :class:`GradientError` naming the first tensor whose payload values hold NaN or
    Inf: finite gradients can still overflow in the error-feedback residual, in DGC's
    momentum, or when fp32 state is cast back to a half-precision gradient's dtype. Payloads
    whose values are the (already checked) gradient itself are skipped."""
    grads = grads or {}
    values = {}
    for n, p in payloads.items():
        if isinstance(p, QuantizedPayload):  # the codes are integers: only the scale can be
            values[n] = p.scale.reshape(1)  # NaN/Inf (a norm past float32's range)
            continue
        g = grads.get(n)
        aliased = (
            g is not None
            and p.values.numel() == g.numel()
            and p.values.dtype == g.dtype
            and p.values.data_ptr() == g.data_ptr()
        )
        if not aliased:
            values[n] = p.values
    bad = _first_non_finite(values)
    if bad is not None:
        n, count, numel = bad
        raise GradientError(
            f"tensor {n!r}: {count} of the {numel} values to send are NaN/Inf (overflow in the "
            f"error-feedback residual or momentum, or in the cast to the gradient's dtype); "
            f"not sent"
        )


def _checking_payloads(fn: Callable) -> Callable:
    """``compress_many`` that checks the payloads it returns (see :meth:`Compressor.__init_subclass__`)."""

    @functools.wraps(fn)
    def compress_many(self, grads, state):
        out = fn(self, grads, state)
        check_payloads_finite(out, grads)
        return out

    compress_many._checks_payloads = True  # type: ignore[attr-defined]
    return compress_many


def check_same(name: str, buf: torch.Tensor, grad: torch.Tensor) -> None:
    """A state buffer must match the gradient it is combined with (half-precision
    gradients keep their state in float32, see :func:`~rsdgc_sim.compress.memory.state_dtype`)."""
    want = state_dtype(grad.dtype)
    if buf.shape != grad.shape or buf.dtype not in (want, grad.dtype) or buf.device != grad.device:
        raise ConfigError(
            f"tensor {name!r} changed from {tuple(buf.shape)} {buf.dtype} on {buf.device} to "
            f"{tuple(grad.shape)} {grad.dtype} on {grad.device}; use a fresh CompressorState"
        )


class Compressor:
    """Base of all compressors. Subclasses set ``name``, ``sparse``, ``Params`` and implement
    :meth:`_compress` (one tensor) or override :meth:`compress_many` (all tensors of one
    iteration at once, for schemes that share a budget across layers).

    Whatever a subclass does, the payloads of :meth:`compress_many` are checked for NaN/Inf
    (see :func:`check_payloads_finite`): an override is wrapped when the class is made."""

    name: ClassVar[str] = ""
    #: whether payloads are (index, value) pairs (some tensors may still be sent dense)
    sparse: ClassVar[bool] = False
    Params: ClassVar[type[Params]] = Params

    def __init__(self, **params: Any):
        self.p = validate(self.name, self.Params, params)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("compress_many")
        if own is not None and not getattr(own, "_checks_payloads", False):
            cls.compress_many = _checking_payloads(own)

    # -- description -----------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The resolved parameters (defaults filled in), JSON-ready."""
        return self.p.model_dump(mode="json")

    @property
    def label(self) -> str:
        """``name`` plus the parameters that differ from the defaults, e.g. ``nsi(density=0.001)``."""
        default = self.Params().model_dump(mode="json")
        diff = {k: v for k, v in self.params.items() if default.get(k) != v}
        if not diff:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in diff.items())})"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"create({self.name!r}{', ' if args else ''}{args})"

    @property
    def applies_momentum(self) -> bool:
        """True when the compressor applies momentum itself (DGC's momentum correction): the
        optimizer that applies the aggregated gradient must then have no momentum of its own."""
        return False

    def optimizer_momentum(self, momentum: float) -> float:
        """The momentum of the optimizer that applies this compressor's aggregated gradient
        (every trainer uses this rule: the DDP hook's users, virtual workers, emulation):
        ``momentum``, or 0 when the compressor applies momentum itself."""
        return 0.0 if self.applies_momentum else momentum

    def max_sent(self, numels: list[int], iteration: int) -> int | None:
        """The most elements one rank sends, in all, as (index, value) pairs for tensors of
        ``numels`` elements at compressor ``iteration``, known to every rank without
        communication; None when there is no such bound (the DDP hook then exchanges the
        ranks' counts)."""
        return None

    # -- compression -----------------------------------------------------------------
    def compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        """Compress one gradient tensor (a budget of its own for layer-wise schemes)."""
        return self.compress_many({name: grad}, state)[name]

    def compress_many(
        self, grads: Mapping[str, torch.Tensor], state: CompressorState
    ) -> dict[str, Payload]:
        """Compress all gradients of one iteration; returns name -> Payload in input order.
        Layer-wise schemes share the density budget among these tensors. Every gradient is
        checked for NaN/Inf before any state changes, every payload after (a
        :class:`GradientError` naming the tensor)."""
        check_all_finite(grads)
        out = {name: self._compress(name, g.detach(), state) for name, g in grads.items()}
        check_payloads_finite(out, grads)
        return out

    compress_many._checks_payloads = True  # type: ignore[attr-defined]

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        raise NotImplementedError

    # -- decompression ---------------------------------------------------------------
    @staticmethod
    def decompress(payload: Payload) -> torch.Tensor:
        """The dense gradient of a payload (same shape and dtype as the original)."""
        return decompress(payload)

    @staticmethod
    def decompress_sum(payloads, average: bool = False) -> torch.Tensor:
        """Sum (or mean) of several ranks' payloads of one tensor, as one dense tensor."""
        return decompress_sum(payloads, average=average)

    @staticmethod
    def accumulate(out: torch.Tensor, payload: Payload, alpha: float = 1.0) -> torch.Tensor:
        """Add ``alpha * payload`` into ``out`` in place."""
        return accumulate(out, payload, alpha)


class Sparsifier(Compressor):
    """A compressor that sends (index, value) pairs, with error feedback: the values sent are
    those of ``a = grad + residual``; the new residual is ``a`` with the sent entries zeroed,
    so ``decompress(payload) + residual_after == grad + residual_before`` exactly.

    Half-precision gradients (float16, bfloat16) keep ``a`` and the residual in float32; the
    values sent are cast back to the gradient's dtype and the rounding stays in the
    residual (the identity then holds in float32)."""

    sparse = True
    Params = SparsifierParams

    @property
    def error_feedback(self) -> bool:
        """Whether unsent values are kept in the residual."""
        return bool(getattr(self.p, "error_feedback", True))

    @property
    def shared_indices(self) -> bool:
        """Whether every rank chooses the same indices (then only the values are sent, summed
        by allreduce; see :attr:`~rsdgc_sim.compress.payload.Payload.needs_allgather`)."""
        return bool(getattr(self.p, "shared_indices", False))

    @property
    def shares_budget(self) -> bool:
        """Whether :meth:`compress_many` shares one budget among its tensors (layer-wise
        dynamic density, ``dynamic=True``) instead of sending k of each tensor."""
        return bool(getattr(self.p, "dynamic", False))

    def density_at(self, iteration: int) -> float | None:
        """The density at ``iteration`` (schedules override it); None: no fixed density."""
        return getattr(self.p, "density", None)

    def max_sent(self, numels: list[int], iteration: int) -> int | None:
        """``k_for(n, density)`` per tensor, or, when the budget is shared, ``round(density *
        sum(n))`` plus one element of slack for rounding, and never fewer than one element
        per non-empty tensor (a shared budget gives every tensor at least one, so five
        tensors of 100 at density 0.001 send 5); None without a density (a plain
        ``threshold``)."""
        density = self.density_at(iteration)
        if density is None:
            return None
        if self.shares_budget:
            return max(int(round(float(density) * float(sum(numels)))) + 1,
                       sum(1 for n in numels if n > 0))
        return sum(k_for(n, float(density)) for n in numels)

    # steps shared by subclasses ---------------------------------------------------
    def _compensate(self, name: str, grad: torch.Tensor, state: CompressorState) -> torch.Tensor:
        """``a = grad + residual`` in a buffer this compressor owns (the residual's, updated in
        place; float32 for half-precision gradients), or ``grad`` itself when error feedback
        is off."""
        if not self.error_feedback:
            return grad
        r = state.residual(name)
        if r is None:
            return grad.to(
                dtype=state_dtype(grad.dtype), memory_format=torch.contiguous_format, copy=True
            )
        check_same(name, r, grad)
        return r.add_(grad)

    def _send_sparse(
        self,
        name: str,
        a: torch.Tensor,
        idx: torch.Tensor,
        grad: torch.Tensor,
        state: CompressorState,
    ) -> Payload:
        """Payload of ``a`` at flat ``idx`` (in the gradient's dtype); the rest, and the
        rounding of that cast, stays in the residual."""
        if a.is_contiguous():
            flat = a.view(-1)
            values = flat[idx]
            sent = values.to(grad.dtype)
            if self.error_feedback:
                if sent.dtype == values.dtype:
                    flat.index_fill_(0, idx, 0)
                else:
                    flat.index_copy_(0, idx, values - sent.to(values.dtype))
        else:  # a residual kept in a padded buffer (nsi): index its 2-D view in place
            a2d = a.reshape(a.shape[0] if a.dim() >= 2 else 1, -1)
            rows = torch.div(idx, max(1, a2d.shape[1]), rounding_mode="floor")
            cols = idx - rows * a2d.shape[1]
            values = a2d[rows, cols]
            sent = values.to(grad.dtype)
            if self.error_feedback:
                if a2d.data_ptr() != a.data_ptr() or a2d._base is None:
                    raise RuntimeError(f"internal: residual of {name!r} is not a 2-D view")
                if sent.dtype == values.dtype:
                    left = torch.zeros((), dtype=a.dtype, device=a.device)
                else:
                    left = values - sent.to(values.dtype)
                a2d.index_put_((rows, cols), left)
        if self.error_feedback:
            state.set_residual(name, a)
        state.densities[name] = idx.numel() / max(1, a.numel())
        return sparse_payload(name, sent, idx, grad, shared=self.shared_indices)

    def _send_dense(
        self, name: str, a: torch.Tensor, grad: torch.Tensor, state: CompressorState
    ) -> Payload:
        """All of ``a``, dense, in the gradient's dtype; nothing left in the residual but the
        rounding of that cast."""
        sent = a.to(grad.dtype)
        if self.error_feedback:
            rounding = None if sent.dtype == a.dtype else a - sent.to(a.dtype)
            state.set_residual(name, rounding)
        state.densities[name] = 1.0
        return dense_payload(name, sent, grad)

    def _send_dense_if_small(self, grad: torch.Tensor) -> bool:
        """True for tensors under ``min_numel``, and 1-D/0-D ones when ``dense_1d``."""
        p = self.p
        return grad.numel() < getattr(p, "min_numel", 0) or (
            grad.dim() < 2 and getattr(p, "dense_1d", False)
        )


def create(name: str, params: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Compressor:
    """A compressor by name with its parameters (as a mapping and/or keywords).

    Unknown names raise :class:`~rsdgc_sim.errors.UnknownNameError` listing the choices;
    unknown or invalid parameters raise :class:`~rsdgc_sim.errors.ConfigError` listing the
    compressor's parameters (the checks of
    :func:`~rsdgc_sim.compress.params.check_compressor`, with the same classes)."""
    load_builtins()
    cls = COMPRESSORS.get(name)
    merged = dict(params or {})
    merged.update(kwargs)
    return cls(**merged)
