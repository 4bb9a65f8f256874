"""The compressor interface, the registry of compressors, and the error-feedback machinery
that every sparsifier shares.

Compressors are stateless: configuration is a frozen, validated parameter object; every
piece of state (residuals, momenta, importances, iteration, generators) lives in a
:class:`~rsdgc_sim.compress.memory.CompressorState` passed to each call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, GradientError
from ..registry import Registry
from .memory import CompressorState
from .payload import (
    Payload,
    accumulate,
    decompress,
    decompress_sum,
    dense_payload,
    sparse_payload,
)

#: every compressor class, by name (``COMPRESSORS.names()``, ``COMPRESSORS.get(name)``)
COMPRESSORS: Registry[type[Compressor]] = Registry("compressor")


class Params(BaseModel):
    """Base of every compressor's parameters: unknown keys rejected, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SparsifierParams(Params):
    """Parameters every sparsifier has."""

    #: fraction of the elements sent, in (0, 1]
    density: float = Field(default=0.01, gt=0, le=1)
    #: keep what was not sent and add it to the next gradient (error feedback)
    error_feedback: bool = True
    #: tensors with fewer elements than this are sent dense
    min_numel: int = Field(default=0, ge=0)
    #: send 1-D (and 0-D) tensors (biases, norm layers) dense, as the DGC reference code does
    dense_1d: bool = False


def _format_validation(name: str, model: type[BaseModel], err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {loc!r}")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            where = f"{loc}: " if loc else ""
            got = f" (got {e['input']!r})" if loc and "input" in e else ""
            parts.append(f"{where}{msg}{got}")
    return (
        f"compressor {name!r}: {'; '.join(parts)}; "
        f"parameters: {', '.join(model.model_fields) or '(none)'}"
    )


def check_finite(name: str, grad: torch.Tensor) -> None:
    """Raise :class:`GradientError` naming the tensor if it holds NaN or Inf (never sent)."""
    check_all_finite({name: grad})


def check_all_finite(grads: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`GradientError` naming the first tensor that holds NaN or Inf.

    One reduction pass per tensor (a NaN or Inf makes the sum non-finite) and a single
    host synchronisation for all of them; only when a sum is not finite are the elements
    counted, so an overflowing sum of finite values is not mistaken for a bad gradient."""
    items = [(n, g) for n, g in grads.items() if g.numel() and g.is_floating_point()]
    if not items:
        return
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for n, g in items:
        by_device.setdefault(g.device, []).append((n, g))
    for group in by_device.values():
        sums = torch.stack([g.sum(dtype=torch.float32) for _, g in group])
        if bool(torch.isfinite(sums).all()):
            continue
        for n, g in group:
            bad = int((~torch.isfinite(g)).sum())
            if bad:
                raise GradientError(
                    f"gradient {n!r} has {bad} NaN/Inf value(s) among {g.numel()}; not sent"
                )


def check_same(name: str, buf: torch.Tensor, grad: torch.Tensor) -> None:
    """A state buffer must match the gradient it is combined with."""
    if buf.shape != grad.shape or buf.dtype != grad.dtype or buf.device != grad.device:
        raise ConfigError(
            f"tensor {name!r} changed from {tuple(buf.shape)} {buf.dtype} on {buf.device} to "
            f"{tuple(grad.shape)} {grad.dtype} on {grad.device}; use a fresh CompressorState"
        )


class Compressor:
    """Base of all compressors. Subclasses set ``name``, ``sparse``, ``Params`` and implement
    :meth:`_compress` (one tensor) or override :meth:`compress_many` (all tensors of one
    iteration at once, for schemes that share a budget across layers)."""

    name: ClassVar[str] = ""
    #: whether payloads are (index, value) pairs (some tensors may still be sent dense)
    sparse: ClassVar[bool] = False
    Params: ClassVar[type[Params]] = Params

    def __init__(self, **params: Any):
        try:
            self.p = self.Params(**params)
        except ValidationError as err:
            raise ConfigError(_format_validation(self.name, self.Params, err)) from None

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

    # -- compression -----------------------------------------------------------------
    def compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        """Compress one gradient tensor (a budget of its own for layer-wise schemes)."""
        return self.compress_many({name: grad}, state)[name]

    def compress_many(
        self, grads: Mapping[str, torch.Tensor], state: CompressorState
    ) -> dict[str, Payload]:
        """Compress all gradients of one iteration; returns name -> Payload in input order.
        Layer-wise schemes share the density budget among these tensors. Every gradient is
        checked for NaN/Inf before any state changes."""
        check_all_finite(grads)
        return {name: self._compress(name, g.detach(), state) for name, g in grads.items()}

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
    so ``decompress(payload) + residual_after == grad + residual_before`` exactly."""

    sparse = True
    Params = SparsifierParams

    @property
    def error_feedback(self) -> bool:
        """Whether unsent values are kept in the residual."""
        return bool(getattr(self.p, "error_feedback", True))

    # steps shared by subclasses ---------------------------------------------------
    def _compensate(self, name: str, grad: torch.Tensor, state: CompressorState) -> torch.Tensor:
        """``a = grad + residual`` in a buffer this compressor owns (the residual's, updated in
        place), or ``grad`` itself when error feedback is off."""
        if not self.error_feedback:
            return grad
        r = state.residual(name)
        if r is None:
            return grad.clone(memory_format=torch.contiguous_format)
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
        """Payload of ``a`` at flat ``idx``; the rest stays in the residual."""
        if a.is_contiguous():
            flat = a.view(-1)
            values = flat[idx]
            if self.error_feedback:
                flat.index_fill_(0, idx, 0)
        else:  # a residual kept in a padded buffer (nsi): index its 2-D view in place
            a2d = a.reshape(a.shape[0] if a.dim() >= 2 else 1, -1)
            rows = torch.div(idx, max(1, a2d.shape[1]), rounding_mode="floor")
            cols = idx - rows * a2d.shape[1]
            values = a2d[rows, cols]
            if self.error_feedback:
                if a2d.data_ptr() != a.data_ptr() or a2d._base is None:
                    raise RuntimeError(f"internal: residual of {name!r} is not a 2-D view")
                a2d.index_put_((rows, cols), torch.zeros((), dtype=a.dtype, device=a.device))
        if self.error_feedback:
            state.set_residual(name, a)
        state.densities[name] = idx.numel() / max(1, a.numel())
        return sparse_payload(name, values, idx, grad)

    def _send_dense(
        self, name: str, a: torch.Tensor, grad: torch.Tensor, state: CompressorState
    ) -> Payload:
        """All of ``a``, dense; nothing left in the residual."""
        if self.error_feedback:
            state.set_residual(name, None)
        state.densities[name] = 1.0
        return dense_payload(name, a, grad)

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
    compressor's parameters."""
    cls = COMPRESSORS.get(name)
    merged = dict(params or {})
    merged.update(kwargs)
    return cls(**merged)
