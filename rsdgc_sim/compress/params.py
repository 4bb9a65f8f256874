"""Every compressor's parameters, and their check, without torch.

Scenario loading validates compressor names and parameters with :func:`check_compressor`,
so that simulating from a saved profile never imports torch; :func:`rsdgc_sim.compress.create`
validates with the same classes (each compressor's ``Params`` is the class registered here
under its name) and so raises the same errors.

>>> check_compressor("topk", {"density": 0.1})["density"]
0.1

This module imports only pydantic and rsdgc_sim's errors and registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..registry import Registry
from ..strict import excerpt, loc_text

#: how sparsifiers choose their elements (see :mod:`rsdgc_sim.compress.select`)
SELECTORS = ("exact", "sampled")

#: NSI's score statistics (see :mod:`rsdgc_sim.compress.neighborhood`)
STATISTICS = ("mean_std", "mean_abs", "snr", "abs_plus_mean", "abs_times_mean")

#: a density warm-up: one of the named schedules or the stage densities themselves
#: (see :mod:`rsdgc_sim.compress.schedule`)
Warmup = Literal["none", "exponential", "dgc"] | list[float]


class Params(BaseModel):
    """Base of every compressor's parameters: unknown keys rejected, strict types (a bool is
    not a number), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, defer_build=True)


class NoneParams(Params):
    """``none`` has no parameters."""


class SparsifierParams(Params):
    """Parameters every sparsifier has (``topk`` has these and no others)."""

    #: fraction of the elements sent, in (0, 1]
    density: float = Field(default=0.01, gt=0, le=1)
    #: keep what was not sent and add it to the next gradient (error feedback)
    error_feedback: bool = True
    #: tensors with fewer elements than this are sent dense
    min_numel: int = Field(default=0, ge=0)
    #: send 1-D (and 0-D) tensors (biases, norm layers) dense, as the DGC reference code does
    dense_1d: bool = False


class FP16Params(Params):
    #: keep the rounding (and clamping) error and add it to the next gradient
    error_feedback: bool = Field(default=False)


class RandomKParams(SparsifierParams):
    #: every rank draws the same indices (from ``index_seed``, the iteration and the tensor
    #: name, as GRACE does): only the values are sent, summed by allreduce. False: each rank
    #: draws its own, and (index, value) pairs are all-gathered
    shared_indices: bool = False
    #: seed of the shared draws (the same on every rank); unused without ``shared_indices``
    index_seed: int = Field(default=0, ge=0)


class ThresholdParams(Params):
    #: send elements with |a| >= threshold
    threshold: float = Field(default=1e-3, ge=0)
    #: optional cap on the fraction sent, in (0, 1]; None: no cap
    density: float | None = Field(default=None, gt=0, le=1)
    error_feedback: bool = True
    min_numel: int = Field(default=0, ge=0)
    dense_1d: bool = False


def _check_selector(selector: str) -> None:
    if selector not in SELECTORS:
        raise ValueError(f"unknown selector {selector!r}; choose one of: {', '.join(SELECTORS)}")


def _check_warmup(warmup: Any) -> None:
    if isinstance(warmup, list) and not all(0 < x <= 1 for x in warmup):
        raise ValueError(f"warm-up densities must be in (0, 1] (got {warmup})")


class DGCParams(Params):
    density: float = Field(default=0.01, gt=0, le=1)
    #: momentum m of the momentum correction (0: plain sampled top-k with error feedback)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    #: momentum factor masking: zero the momentum of the sent elements
    momentum_masking: bool = True
    #: local gradient clipping by L2 norm per tensor (None: off)
    clip_norm: float | None = Field(default=None, gt=0)
    #: exact | sampled
    selector: str = "sampled"
    sample_ratio: float = Field(default=0.01, gt=0, le=1)
    warmup_iters: int = Field(default=0, ge=0)
    warmup: Warmup = "exponential"
    #: tensors with fewer elements are sent dense (momentum applied, nothing masked)
    min_numel: int = Field(default=0, ge=0)
    #: send 1-D tensors (biases, norm layers) dense, as the DGC reference code does
    dense_1d: bool = False

    @model_validator(mode="after")
    def _check(self) -> DGCParams:
        _check_selector(self.selector)
        _check_warmup(self.warmup)
        return self


class NSIParams(SparsifierParams):
    #: window size p (odd): the p x p neighborhood
    kernel: int = Field(default=3, ge=1)
    #: score: mean_std | mean_abs | snr | abs_plus_mean | abs_times_mean (formulas:
    #: :mod:`rsdgc_sim.compress.neighborhood`); the default did best in
    #: ``benchmarks/nsi_ablation.py``
    statistic: str = "abs_times_mean"
    #: weight of the window term: the local std in ``mean_std``, the local mean |a| in
    #: ``abs_plus_mean`` and ``abs_times_mean``
    lam: float = Field(default=1.0, ge=0)
    #: exact | sampled
    selector: str = "exact"
    #: fraction sampled by the ``sampled`` selector
    sample_ratio: float = Field(default=0.01, gt=0, le=1)
    #: layer-wise dynamic density (budget shared across the tensors of compress_many)
    dynamic: bool = True
    #: EMA weight of the previous importance, in [0, 1)
    ema: float = Field(default=0.5, ge=0, lt=1)
    #: per-layer density bounds (None: density / 10 and min(1, 10 * density))
    d_min: float | None = Field(default=None, ge=0, le=1)
    d_max: float | None = Field(default=None, gt=0, le=1)
    #: warm-up: iterations it lasts (0: none) and its schedule
    warmup_iters: int = Field(default=0, ge=0)
    warmup: Warmup = "exponential"
    #: tensors with fewer elements are sent dense (0: every tensor of 2 or more dimensions
    #: is compressed, so that NSI sends top-k's bytes; a threshold of 1000 once made NSI send
    #: 3.5x top-k's bytes on cnn_small)
    min_numel: int = Field(default=0, ge=0)
    #: 1-D tensors (biases, norm layers) are sent dense (False: scored as one row)
    dense_1d: bool = True
    #: added to the std in ``snr``
    eps: float = Field(default=1e-12, gt=0)

    @model_validator(mode="after")
    def _check(self) -> NSIParams:
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (got {self.kernel})")
        if self.statistic not in STATISTICS:
            raise ValueError(
                f"unknown statistic {self.statistic!r}; choose one of: {', '.join(STATISTICS)}"
            )
        _check_selector(self.selector)
        d_min = self.density / 10 if self.d_min is None else self.d_min
        d_max = min(1.0, 10 * self.density) if self.d_max is None else self.d_max
        if d_min > d_max:
            raise ValueError(f"d_min > d_max ({d_min} > {d_max})")
        if not d_min <= self.density <= d_max:
            raise ValueError(
                f"density {self.density} must lie in [d_min, d_max] = [{d_min}, {d_max}]"
            )
        _check_warmup(self.warmup)
        object.__setattr__(self, "d_min", d_min)
        object.__setattr__(self, "d_max", d_max)
        return self


class PowerSGDParams(Params):
    """PyTorch's ``PowerSGDState`` (torch/distributed/algorithms/ddp_comm_hooks/
    powerSGD_hook.py), its fields under shorter names, with its defaults except
    ``start_iter``."""

    #: ``matrix_approximation_rank``: the rank r of P (n x r) and Q (m x r)
    rank: int = Field(default=1, ge=1)
    #: ``start_powerSGD_iter``: iterations before it are averaged densely. torch defaults to
    #: 1000 and requires > 1 with error feedback or warm start (DDP rebuilds its buckets after
    #: iteration 0); here 2, the earliest torch allows, as the other compressors' hook
    #: (``dense_iters``). Compression starts at ``max(start_iter, dense_iters)``
    start_iter: int = Field(default=2, ge=0)
    #: a tensor (n x m, r' = min(n, m, rank)) is compressed iff
    #: ``(n + m) r' min_compression_rate < n m``
    min_compression_rate: float = Field(default=2.0, ge=0)
    #: ``use_error_feedback``: per bucket, what the approximation missed (and, for the
    #: tensors sent whole, the local minus the mean) is added to the next gradient
    error_feedback: bool = True
    #: reuse the last iteration's Q (orthogonalized) instead of drawing a new one
    warm_start: bool = True
    #: added to each column's norm in the Gram-Schmidt orthogonalization (0: none)
    orthogonalization_epsilon: float = Field(default=0.0, ge=0)
    #: torch's name: the seed of the numpy RandomState that seeds Q's draws (the same on every
    #: rank); not ``seed``, which make_comm_hook, train and emulate already take for the
    #: per-rank compressor state
    random_seed: int = Field(default=0, ge=0, lt=2**32)

    @model_validator(mode="after")
    def _check(self) -> PowerSGDParams:
        if (self.error_feedback or self.warm_start) and self.start_iter <= 1:
            raise ValueError(
                f"start_iter must be > 1 with error_feedback or warm_start (got "
                f"{self.start_iter}): DDP rebuilds its buckets after iteration 0, as torch's "
                f"PowerSGDState requires")
        return self


#: the most levels ``qsgd`` takes: a code (sign bit and level) of at most 16 bits
QSGD_MAX_LEVELS = 2**15 - 1


class QSGDParams(Params):
    """``qsgd`` (Alistarh et al. 2017; GRACE's ``QSGDCompressor``)."""

    #: s: each element's |a| / ||a||_2 is rounded stochastically to one of ``0, 1/s, ...,
    #: 1`` (GRACE's ``quantum_num``); a code is a sign bit and ``ceil(log2(s + 1))`` level
    #: bits, in 1 to 32,767
    levels: int = Field(default=16, ge=1, le=QSGD_MAX_LEVELS)
    #: keep the quantization error and add it to the next gradient (QSGD is unbiased and
    #: GRACE runs it without; off by default)
    error_feedback: bool = False


class TernGradParams(Params):
    """``terngrad`` (Wen et al. 2017; GRACE's ``TernGradCompressor``)."""

    #: TernGrad's gradient clipping: clamp the tensor to ``clip`` standard deviations
    #: around 0 before quantizing (GRACE clips at 2.5); None: no clipping, which keeps the
    #: quantization unbiased
    clip: float | None = Field(default=None, gt=0)
    #: keep the quantization (and clipping) error and add it to the next gradient (off by
    #: default, as in GRACE)
    error_feedback: bool = False


class EFSignSGDParams(Params):
    """``efsignsgd`` (Karimireddy et al. 2019; GRACE's ``EFSignSGDCompressor``)."""

    #: keep what the scaled sign missed and add it to the next gradient (the "EF"; False:
    #: scaled signSGD without memory)
    error_feedback: bool = True


#: each compressor's parameter class, by compressor name (the names of ``COMPRESSORS``)
COMPRESSOR_PARAMS: Registry[type[Params]] = Registry("compressor")
for _name, _cls in {
    "dgc": DGCParams,
    "efsignsgd": EFSignSGDParams,
    "fp16": FP16Params,
    "none": NoneParams,
    "nsi": NSIParams,
    "powersgd": PowerSGDParams,
    "qsgd": QSGDParams,
    "randomk": RandomKParams,
    "terngrad": TernGradParams,
    "threshold": ThresholdParams,
    "topk": SparsifierParams,
}.items():
    COMPRESSOR_PARAMS.add(_name, _cls)


def format_validation(name: str, model: type[BaseModel], err: ValidationError) -> str:
    """The message of a bad parameter: each problem with its field and the bad value, then
    the compressor's parameters."""
    parts = []
    for e in err.errors():
        loc = loc_text(tuple(e["loc"])) if e["loc"] else ""
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {loc!r}")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            where = f"{loc}: " if loc else ""
            got = f" (got {excerpt(e['input'])})" if loc and "input" in e else ""
            parts.append(f"{where}{msg}{got}")
    return (
        f"compressor {name!r}: {'; '.join(parts)}; "
        f"parameters: {', '.join(model.model_fields) or '(none)'}"
    )


def validate(name: str, cls: type[Params], params: Mapping[str, Any]) -> Params:
    """``params`` checked by ``cls``, with a bad parameter raised as the :class:`ConfigError`
    of :func:`format_validation`."""
    try:
        return cls.model_validate(dict(params))
    except ValidationError as err:
        raise ConfigError(format_validation(name, cls, err)) from None


def check_compressor(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved parameters (defaults filled in, JSON-ready, as ``create(name,
    **params).params``) of compressor ``name``, without importing torch.

    Raises what :func:`rsdgc_sim.compress.create` raises: an
    :class:`~rsdgc_sim.errors.UnknownNameError` listing the compressors for an unknown name,
    a :class:`~rsdgc_sim.errors.ConfigError` listing the compressor's parameters for a bad
    one."""
    cls = COMPRESSOR_PARAMS.get(name)
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"compressor {name!r}: parameters must be a mapping, got {type(params).__name__}"
        )
    return validate(name, cls, params).model_dump(mode="json")
