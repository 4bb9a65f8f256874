"""Link calibration: the fitted per-message latency (alpha, seconds) and inverse bandwidth
(beta, seconds per byte) of point-to-point messages, as ``t(n) = alpha + beta * n``.

and the host's compute-communication interference ``k``: while a collective is in flight,
backward runs ``1 + k`` times slower (gloo's threads and the kernel's packet processing take
cycles from it on a CPU rank; NCCL kernels take SMs and memory bandwidth on a GPU);

and DDP's synchronisation overhead: the seconds per iteration that DDP's synchronised path
adds beyond compute when the collectives take (almost) no time: the gradients' copy into
the buckets and back, the reducer's and the futures' work per bucket, and the ranks waiting
for the slowest at every synchronisation (measured with a hook that does no work of its
own, so no compression is in it).

This module is plain data and arithmetic (no torch), a property of the links and hosts that
``rsdgc_sim.study``, ``rsdgc_sim.sim`` and ``rsdgc_sim.emulate`` all read through
:func:`load_calibration` and :func:`apply_calibration` (:func:`calibrated_point` for a
simulation point). Measuring is done by ``rsdgc_sim.emulate.calibrate`` (two ranks, on
emulated links or under ``torchrun`` on a real cluster).

File format (JSON, ``kind: rsdgc-calibration``, ``version: 3``; version 1 files, which have
no interference, still load and mean ``k = 0``; version 1 and 2 files have no
``ddp_overhead`` and mean none)::

    {"kind": "rsdgc-calibration", "version": 2, "source": "emulated", "backend": "gloo",
     "host": "...", "cpu_count": 2, "package_version": "0.1.0", "created": "...",
     "netem": false,
     "links": [{"nominal_bandwidth_bytes_per_s": 12500000.0,
                "alpha_s": 0.00021, "beta_s_per_byte": 8.4e-08, "r2": 0.9999,
                "samples": [{"bytes": 4, "seconds": 0.0002}, ...],
                "interference": {"factor": 0.31, "message_bytes": 4194304,
                                 "backward_alone_s": 0.021, "backward_during_s": 0.0275,
                                 "model": "cnn_small", "threads": 1}}, ...],
     "ddp_overhead": {"overhead_s": 0.031, "synced_s": 0.318, "local_s": 0.287,
                      "model": "resnet18", "input_size": 32, "batch_size": 16, "threads": 1,
                      "iterations": 18}}
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError

from . import __version__
from .data_file import InvalidFile, read_json_data
from .errors import ConfigError, ScenarioFileError
from .files import write_text_atomic
from .strict import Strict, validation_message

if TYPE_CHECKING:
    from .sim.config import SimPoint

CALIBRATION_KIND = "rsdgc-calibration"
CALIBRATION_VERSION = 3


class Sample(Strict):
    """One message size and its median one-way time."""

    bytes: int = Field(ge=0)
    seconds: float = Field(gt=0)


class Interference(Strict):
    """Backward alone vs backward while a collective (an all-reduce of ``message_bytes``,
    issued back to back) is in flight, on every rank at once: ``factor = during / alone - 1``
    (0 when backward is not slower)."""

    factor: float = Field(ge=0)
    message_bytes: int = Field(gt=0)
    backward_alone_s: float = Field(gt=0)
    backward_during_s: float = Field(gt=0)
    #: the model whose backward was timed and the torch threads of each rank
    model: str
    threads: int = Field(ge=1)


class DdpOverhead(Strict):
    """DDP's synchronised iteration with a hook that does no work (one all-gather of a few
    bytes per bucket) against the same iterations under ``no_sync``, on every rank at once:
    ``synced_s`` the median over iterations of the slowest rank's iteration, ``local_s`` the
    mean over ranks of each rank's median ``no_sync`` iteration, ``overhead_s =
    max(0, synced_s - local_s)``."""

    overhead_s: float = Field(ge=0)
    synced_s: float = Field(gt=0)
    local_s: float = Field(gt=0)
    #: the model whose iterations were timed, its input size and batch per rank, the torch
    #: threads of each rank and the iterations per kind
    model: str
    input_size: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    threads: int = Field(ge=1)
    iterations: int = Field(ge=1)


class LinkFit(Strict):
    """``t(n) = alpha_s + beta_s_per_byte * n`` for one link setting."""

    #: the shaped rate (tbf) when measured on emulated links; None on a real cluster
    nominal_bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    alpha_s: float = Field(ge=0)
    beta_s_per_byte: float = Field(gt=0)
    r2: float = 1.0
    samples: list[Sample] = Field(default_factory=list)
    #: compute slowdown while a collective is in flight on this link (None: not measured)
    interference: Interference | None = None

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """Effective bandwidth, 1 / beta."""
        return 1.0 / self.beta_s_per_byte

    @property
    def latency_s(self) -> float:
        """Per-message latency, alpha."""
        return self.alpha_s

    @property
    def efficiency(self) -> float | None:
        """Effective over nominal bandwidth (TCP/IP and Ethernet overheads), when nominal."""
        if self.nominal_bandwidth_bytes_per_s is None:
            return None
        return self.bandwidth_bytes_per_s / self.nominal_bandwidth_bytes_per_s


class Calibration(Strict):
    kind: Literal["rsdgc-calibration"] = CALIBRATION_KIND
    version: Literal[1, 2, 3] = CALIBRATION_VERSION
    #: emulated: namespaces + tc; loopback: unshaped loopback; cluster: a real cluster
    source: Literal["emulated", "loopback", "cluster"]
    backend: str = "gloo"
    host: str = Field(default_factory=platform.node)
    #: the measuring machine's cores and this package's version (None in version 1 files)
    #: ``measured_here()`` fills them in when measuring
    cpu_count: int | None = None
    package_version: str | None = None
    created: str = Field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    netem: bool = False
    links: list[LinkFit] = Field(min_length=1)
    #: DDP's synchronisation overhead per iteration (None: not measured, none applied)
    ddp_overhead: DdpOverhead | None = None

    def link(self, bandwidth_bytes_per_s: float, latency_s: float = 0.0) -> tuple[float, float]:
        """``(bandwidth_bytes_per_s, latency_s)`` the simulator should use instead of a
        scenario's nominal values.

        * Measured on a real cluster or on unshaped loopback (no nominal rate): the fitted
          values replace the scenario's (the calibration *is* the network).
        * Measured on emulated (tbf-shaped) links: bandwidth = the scenario's bandwidth times
          the fitted efficiency at that rate (interpolated in log-rate between calibrated
          rates, the nearest one outside them); latency = the fitted per-message latency
          plus the scenario's latency (the emulated links add no propagation delay of their
          own; where netem emulated it, it is already in the fit and not added again).
        """
        if bandwidth_bytes_per_s <= 0:
            raise ConfigError(f"bandwidth must be positive, got {bandwidth_bytes_per_s}")
        shaped = [f for f in self.links if f.nominal_bandwidth_bytes_per_s is not None]
        if not shaped:
            f = self.links[0]
            return f.bandwidth_bytes_per_s, f.latency_s
        shaped.sort(key=lambda f: f.nominal_bandwidth_bytes_per_s)
        x = math.log(bandwidth_bytes_per_s)
        xs = [math.log(f.nominal_bandwidth_bytes_per_s) for f in shaped]
        effs = [f.efficiency for f in shaped]
        alphas = [f.alpha_s for f in shaped]
        eff, alpha = _interp(x, xs, effs), _interp(x, xs, alphas)
        extra = 0.0 if self.netem else latency_s
        return bandwidth_bytes_per_s * eff, alpha + extra

    def interference(self, bandwidth_bytes_per_s: float) -> float:
        """The interference factor ``k`` at a nominal bandwidth: the measured one at a
        calibrated rate, interpolated in log-rate between calibrated rates, the nearest one
        outside them; a link without a nominal rate (cluster, loopback) gives its own.
        0 when nothing was measured (version 1 files): the simulator then does not stretch
        compute."""
        if bandwidth_bytes_per_s <= 0:
            raise ConfigError(f"bandwidth must be positive, got {bandwidth_bytes_per_s}")
        measured = [f for f in self.links if f.interference is not None]
        if not measured:
            return 0.0
        shaped = sorted((f for f in measured if f.nominal_bandwidth_bytes_per_s is not None),
                        key=lambda f: f.nominal_bandwidth_bytes_per_s)
        if not shaped:
            return measured[0].interference.factor
        xs = [math.log(f.nominal_bandwidth_bytes_per_s) for f in shaped]
        return _interp(math.log(bandwidth_bytes_per_s), xs,
                       [f.interference.factor for f in shaped])


def _package_version() -> str:
    return __version__


def measured_here() -> dict[str, object]:
    """The fields of a :class:`Calibration` that say where and by what it was measured
    (host, cores, package version)."""
    return {"host": platform.node(), "cpu_count": os.cpu_count(),
            "package_version": _package_version()}


def calibration_warnings(cal: Calibration, *, host: str | None = None,
                         cpu_count: int | None = None) -> list[str]:
    """What makes ``cal`` doubtful on this machine (``host``/``cpu_count`` default to this
    one's): measured on another host, with another number of cores or by another version of
    this package, or an old file format without interference. Empty when none."""
    host = platform.node() if host is None else host
    cores = os.cpu_count() if cpu_count is None else cpu_count
    out = []
    if cal.host != host:
        out.append(f"calibration was measured on host {cal.host!r}, not on this one ({host!r})")
    if cal.cpu_count is not None and cal.cpu_count != cores:
        out.append(f"calibration was measured with {cal.cpu_count} cores, this machine has {cores}")
    if cal.package_version is not None and cal.package_version != _package_version():
        out.append(f"calibration was written by rsdgc-sim {cal.package_version}, "
                   f"this is {_package_version()}")
    if cal.version < 2:
        out.append(f"calibration file version {cal.version} has no interference "
                   "measurement: compute is not stretched (re-run `rsdgc-sim calibrate`)")
    elif cal.version < 3:
        out.append(f"calibration file version {cal.version} has no DDP overhead measurement: "
                   "DDP's synchronised path is taken to cost nothing beyond compute (re-run "
                   "`rsdgc-sim calibrate`)")
    return out


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]) if xs[i] > xs[i - 1] else 1.0
            return ys[i - 1] + t * (ys[i] - ys[i - 1])
    return ys[-1]


def fit_link(
    sizes: Sequence[float],
    seconds: Sequence[float],
    nominal_bandwidth_bytes_per_s: float | None = None,
    latency_seconds: Sequence[float] | None = None,
) -> LinkFit:
    """Fit ``t = alpha + beta * n`` (Hockney's model) in two steps, robust to the token
    bucket of a shaped link (messages smaller than its burst pass at line rate):

    1. beta: least squares on absolute times over all samples with ``alpha >= 0, beta > 0``
       (large messages dominate it, as they should);
    2. alpha: the median of ``t - beta * n`` over the latency-dominated samples (those with
       ``beta * n < t / 10``), or the fitted intercept when there are none. With
       ``latency_seconds`` (e.g. a lower quantile per size), those times are used here
       instead of ``seconds``.
    """
    # lazy: numpy, scipy
    import numpy as np
    from scipy.optimize import lsq_linear

    n = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if n.shape != t.shape or n.size < 2:
        raise ConfigError(f"need at least two (size, time) samples of equal count, got {n.size}")
    if np.any(t <= 0) or np.any(n < 0):
        raise ConfigError("sample times must be positive and sizes non-negative")
    if np.unique(n).size < 2:
        raise ConfigError("need at least two different message sizes to fit alpha and beta")
    scale = max(float(n.max()), 1.0)  # both unknowns O(1) for the solver
    a = np.stack([np.ones_like(n), n / scale], axis=1)
    tscale = float(t.max())
    res = lsq_linear(a, t / tscale, bounds=([0.0, 1e-30], [np.inf, np.inf]))
    alpha, beta = float(res.x[0]) * tscale, float(res.x[1]) * tscale / scale
    small = beta * n < t / 10
    if np.any(small):
        tl = t if latency_seconds is None else np.asarray(latency_seconds, dtype=np.float64)
        if tl.shape != t.shape:
            raise ConfigError("latency_seconds must have one entry per sample")
        alpha = max(0.0, float(np.median(tl[small] - beta * n[small])))
    pred = alpha + beta * n
    ss_res = float(((t - pred) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return LinkFit(
        nominal_bandwidth_bytes_per_s=nominal_bandwidth_bytes_per_s,
        alpha_s=alpha,
        beta_s_per_byte=beta,
        r2=r2,
        samples=[Sample(bytes=int(b), seconds=float(s)) for b, s in zip(n, t, strict=True)],
    )


def save_calibration(cal: Calibration, path: str | Path) -> Path:
    """Write ``cal`` as JSON, atomically (temporary file, then rename); a failure is an
    :class:`~rsdgc_sim.errors.OutputError` naming the file."""
    return write_text_atomic(path, cal.model_dump_json(indent=2) + "\n")


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration file written by ``rsdgc-sim calibrate``. Every problem (no such
    file, a directory or FIFO in its place, not JSON, not a calibration, a missing,
    mistyped, out-of-range or non-finite field) is one
    :class:`~rsdgc_sim.errors.ScenarioFileError` naming the file and the field."""
    p = Path(path)
    name = f"calibration file {str(p)!r}"
    try:
        data = read_json_data(p)
    except InvalidFile as e:
        if e.missing:
            raise ScenarioFileError(f"{name} not found") from None
        raise ScenarioFileError(f"{name}: {e}" if e.field else f"{name} is {e}") from None
    if not isinstance(data, dict) or data.get("kind") != CALIBRATION_KIND:
        raise ScenarioFileError(
            f"{str(p)!r} is not a calibration file (kind must be {CALIBRATION_KIND!r})")
    try:
        return Calibration.model_validate(data)
    except ValidationError as e:
        raise ScenarioFileError(f"{name}: {validation_message(e, Calibration)}") from None


@dataclass(frozen=True)
class LinkValues:
    """What the simulator takes for a link at one nominal point: its bandwidth, its
    per-message latency, the compute-communication interference factor ``k`` and DDP's
    synchronisation overhead per iteration."""

    bandwidth_bytes_per_s: float
    latency_s: float
    interference_factor: float
    sync_overhead_s: float = 0.0


def apply_calibration(calibration: Calibration | None, bandwidth_bytes_per_s: float,
                      latency_s: float) -> LinkValues:
    """The link at a nominal bandwidth and latency as ``calibration`` says it delivers
    (:meth:`Calibration.link`, :meth:`Calibration.interference`); without one, the nominal
    values and no interference. The one place a calibration meets a simulation point."""
    if calibration is None:
        return LinkValues(bandwidth_bytes_per_s, latency_s, 0.0)
    bw, lat = calibration.link(bandwidth_bytes_per_s, latency_s)
    ovh = calibration.ddp_overhead
    return LinkValues(bw, lat, calibration.interference(bandwidth_bytes_per_s),
                      0.0 if ovh is None else ovh.overhead_s)


def on_link(point: SimPoint, link: LinkValues) -> SimPoint:
    """``point`` with its bandwidth, latency, interference factor and DDP synchronisation
    overhead taken from ``link``; everything else unchanged."""
    return point.model_copy(update={"bandwidth_bytes_per_s": link.bandwidth_bytes_per_s,
                                    "latency_s": link.latency_s,
                                    "interference_factor": link.interference_factor,
                                    "sync_overhead_s": link.sync_overhead_s})


def calibrated_point(point: SimPoint, calibration: Calibration) -> SimPoint:
    """A :class:`~rsdgc_sim.sim.config.SimPoint` with its link replaced by what
    ``calibration`` says the link delivers at that nominal point
    (:func:`apply_calibration`); everything else unchanged."""
    return on_link(point, apply_calibration(calibration, point.bandwidth_bytes_per_s,
                                            point.latency_s))
