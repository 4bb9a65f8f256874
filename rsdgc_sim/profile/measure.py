"""Measuring a Profile: real forward/backward, gradient-ready times and compression costs.

On every device of the scenario at once (one thread, one model replica per device, so
devices that share hardware contend as real workers would):

* forward, backward and optimizer-step times: medians after ``warmup`` iterations, with
  CUDA events (and synchronization) on GPUs, the host clock on the CPU, on the samples no
  other process preempted (the others are discarded and counted in
  ``DeviceProfile.discarded``; the process runs at raised priority where permitted: see
  :mod:`rsdgc_sim.profile.sampling`), timed until they are stable (:class:`StopRule`): at
  least ``min_iterations`` iterations, then more until the interquartile range (IQR) of
  forward and of backward is at most ``spread_target`` of its median (or under
  ``spread_floor_s``), until the stage's time budget ``budget_s`` is spent,
  or ``max_iterations``. The IQR of each quantity and the iterations behind it are stored
  (``DeviceProfile.spread``, ``DeviceProfile.samples``);
* each parameter's gradient-ready time, from the start of backward, through
  ``register_post_accumulate_grad_hook`` (the moment DDP would mark it ready);
* for each compressor, in its steady state (the compressor state's iteration starts where
  the compressor's density warm-up ends, see :func:`steady_state_iteration`): one
  iteration's ``compress_many`` over the real gradients (median after ``warmup``
  iterations, timed until stable by the same rule, error-feedback state carried along as
  in training), the per-tensor split of that time (each tensor's own ``compress`` time
  over ``min_iterations``, scaled so the split sums to the measured ``compress_many``
  total), each tensor's ``decompress`` time (payload -> new dense tensor), its
  ``accumulate`` time (payload added into an existing buffer, the per-rank cost of
  aggregating an all-gather), its payload's wire bytes and whether it is all-gathered;
* the NSI score's effective torch.compile mode (``DeviceProfile.nsi_compile``);
* how it was measured (``Profile.settings``), on what machine (``Profile.machine``), with
  which compressor specs (``Profile.compressor_specs``).

Progress (``progress`` callback): iterations done and an ETA per stage, at most once per
``progress_every_s`` (as :class:`~rsdgc_sim.progress.Transient` messages), the medians of
each stage, and ``warning: ...`` lines when the machine looked busy (load average above
the CPU count) or a spread stayed above its target; without a callback the warnings are
:class:`UnstableProfileWarning`\\ s. :func:`rsdgc_sim.profile.quality.profile_warnings`
gives the same warnings from a saved profile.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F

from ..compress import create as create_compressor
from ..compress.neighborhood import compile_mode
from ..ddp.semantics import DDP_BUCKET_CAP_BYTES, DDP_FIRST_BUCKET_BYTES
from ..errors import ConfigError
from ..models import create as create_model
from ..progress import Transient
from ..stats import iqr
from .bucket_costs import bucket_names, measure_compression, steady_state_iteration
from .devices import cpu_model, device_name, resolve_devices, synchronize
from .powersgd_costs import measure_powersgd
from .quality import load_warning, spread_warning
from .sampling import (  # noqa: F401 (relative_spread: tests import it from here)
    StopRule,
    preempted_warning,
    preemption_method,
    raised_priority,
    relative_spread,
    time_until_stable,
)
from .sampling import median as _median
from .schema import DeviceProfile, Profile, TensorCost, TensorInfo

Progress = Callable[[str], None]
Clock = Callable[[], float]


class UnstableProfileWarning(RuntimeWarning):
    """A profile's times are doubtful: a busy machine, or a spread above its target."""


class _Clock:
    """Timestamps on a device: CUDA events on GPUs (read after a sync), ``host`` on the CPU."""

    def __init__(self, device: str, host: Clock = time.perf_counter):
        self.cuda = device.startswith("cuda")
        self.device = device
        self.host = host

    def mark(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return self.host()

    def seconds(self, a: Any, b: Any) -> float:
        if self.cuda:
            return a.elapsed_time(b) / 1e3
        return b - a


def _warn(say: Progress | None, message: str) -> None:
    if say is not None:
        say(f"warning: {message}")
    else:
        warnings.warn(message, UnstableProfileWarning, stacklevel=3)


def _store_spread(dev_spread: dict[str, float], dev_samples: dict[str, int], key: str,
                  xs: Sequence[float]) -> None:
    dev_spread[key] = iqr(xs)
    dev_samples[key] = len(xs)


def _warn_unstable(say, name, key, xs, rule: StopRule, reason: str) -> None:
    """A warning for quantity ``key`` (samples ``xs``) when it is not stable."""
    if reason != "stable" and not rule.stable(xs):
        _warn(say, spread_warning(name, key, iqr(xs), _median(xs), len(xs), rule.spread_target))


@dataclass(frozen=True)
class _Job:
    """What every device measures (one ``measure_profile`` call)."""

    model: str
    num_classes: int
    input_size: int
    batch_size: int
    compressors: Mapping[str, Mapping[str, Any]]
    warmup: int
    seed: int
    rule: StopRule
    clock: Clock
    every_s: float
    say: Progress | None
    #: DDP's bucket caps in bytes: the first bucket's, the others'
    buckets: tuple[int, int] = (DDP_FIRST_BUCKET_BYTES, DDP_BUCKET_CAP_BYTES)


def _measure_device(worker: int, device: str, job: _Job) -> tuple[list[TensorInfo], DeviceProfile]:
    """Everything ``job`` measures on one device (worker ``worker``): the replica, the
    training step timed until stable, then each compressor per DDP bucket."""
    run = _DeviceRun(worker, device, job)
    ctx = torch.cuda.device(torch.device(device)) if device.startswith("cuda") else contextlib.nullcontext()
    with ctx:
        run.build()
        times = run.time_training()
        buckets = run.buckets(times)
        compression = {label: run.measure_compressor(label, spec, buckets)
                       for label, spec in job.compressors.items()}
    return run.result(times, compression)


class _DeviceRun:
    """One device's measurement, phase by phase: :meth:`build` the model replica and its
    batch, :meth:`time_training` (forward, backward, optimizer, gradient-ready times),
    :meth:`measure_compressor` for each compressor, :meth:`result`. The spreads, sample
    counts and discarded counts of every stage gather here."""

    def __init__(self, worker: int, device: str, job: _Job):
        self.name = f"worker {worker} ({device})"
        self.device = device
        self.job = job
        self.say: Progress = job.say or (lambda _m: None)
        self.spread: dict[str, float] = {}
        self.samples: dict[str, int] = {}
        self.discarded: dict[str, int] = {}

    def build(self) -> None:
        """The replica (seeded), its parameters that train, SGD with momentum and a seeded
        batch, on the device."""
        job, device = self.job, self.device
        self.net = create_model(job.model, num_classes=job.num_classes, input_size=job.input_size,
                                seed=job.seed).to(device)
        self.net.train()
        self.params = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in self.params]
        self.opt = torch.optim.SGD([p for _, p in self.params], lr=0.01, momentum=0.9)
        gen = torch.Generator().manual_seed(job.seed)
        self.x = torch.randn(job.batch_size, 3, job.input_size, job.input_size, generator=gen).to(device)
        self.y = torch.randint(0, job.num_classes, (job.batch_size,), generator=gen).to(device)

    def time_training(self) -> dict[str, list[float]]:
        """Samples of ``forward_s``, ``backward_s``, ``optimizer_s`` and ``ready:<name>``
        (from the start of backward), after the warm-up, timed until stable."""
        job, name, say, device = self.job, self.name, self.say, self.device
        net, opt, x, y, params = self.net, self.opt, self.x, self.y, self.params
        clock = _Clock(device, job.clock)
        marks: dict[str, Any] = {}
        handles = [
            p.register_post_accumulate_grad_hook(lambda _p, n=n: marks.__setitem__(n, clock.mark()))
            for n, p in params
        ]

        def iteration() -> dict[str, float]:
            # SGD's step reads the gradients and leaves them as they are: after the last
            # iteration they are that iteration's, the ones compression is measured on
            opt.zero_grad(set_to_none=True)
            marks.clear()
            synchronize(device)
            t0 = clock.mark()
            loss = F.cross_entropy(net(x), y)
            t1 = clock.mark()
            loss.backward()
            t2 = clock.mark()
            opt.step()
            t3 = clock.mark()
            synchronize(device)
            out = {"forward_s": clock.seconds(t0, t1), "backward_s": clock.seconds(t1, t2),
                   "optimizer_s": clock.seconds(t2, t3)}
            out.update({f"ready:{n}": clock.seconds(t1, marks.get(n, t2)) for n, _ in params})
            return out

        try:
            if job.warmup:
                say(Transient(f"{name}: warm-up, {job.warmup} iterations"))
            for _ in range(job.warmup):
                iteration()
            times, reason, n_dropped = time_until_stable(
                iteration, ("forward_s", "backward_s"), job.rule, job.clock,
                lambda m: say(Transient(f"{name}: forward/backward {m}")), job.every_s)
        finally:
            for h in handles:
                h.remove()
        self._report_training(times, reason, n_dropped)
        return times

    def _report_training(self, times: dict[str, list[float]], reason: str, n_dropped: int) -> None:
        """Store the training step's spreads; say its medians; warn when it was preempted
        or unstable."""
        job, name, spread = self.job, self.name, self.spread
        for key in ("forward_s", "backward_s", "optimizer_s"):
            _store_spread(spread, self.samples, key, times[key])
            self.discarded[key] = n_dropped
        fwd, bwd = _median(times["forward_s"]), _median(times["backward_s"])
        said_dropped = f", {n_dropped} discarded as preempted" if n_dropped else ""
        self.say(f"{name}: forward {fwd * 1e3:.1f} ms ±{spread['forward_s'] / 2 * 1e3:.1f}, backward "
                 f"{bwd * 1e3:.1f} ms ±{spread['backward_s'] / 2 * 1e3:.1f} "
                 f"({len(times['forward_s'])} iterations, {reason}{said_dropped})")
        if reason == "preempted":
            _warn(job.say, preempted_warning(name, "forward/backward", len(times["forward_s"]),
                                             n_dropped))
        for key in ("forward_s", "backward_s"):
            _warn_unstable(job.say, name, key, times[key], job.rule, reason)

    def buckets(self, times: dict[str, list[float]]) -> list[list[str]]:
        """DDP's rebuilt buckets, by the measured gradient-ready times."""
        ready = {n: _median(times[f"ready:{n}"]) for n in self.names}
        return bucket_names(self.names, [p.numel() * p.element_size() for _, p in self.params],
                            ready, *self.job.buckets)

    def backward(self, on_ready) -> dict[str, torch.Tensor]:
        """A real training step, calling ``on_ready(name, grad)`` as each gradient is
        ready (where DDP marks it ready): the gradients training hands DDP, which change
        from step to step as the optimizer moves the weights."""
        self.opt.zero_grad(set_to_none=True)
        hooks = [p.register_post_accumulate_grad_hook(lambda p, n=n: on_ready(n, p.grad))
                 for n, p in self.params]
        try:
            F.cross_entropy(self.net(self.x), self.y).backward()
        finally:
            for h in hooks:
                h.remove()
        grads = {n: p.grad.detach().clone() for n, p in self.params}
        self.opt.step()
        synchronize(self.device)
        return grads

    def measure_compressor(self, label: str, spec: Mapping[str, Any],
                           buckets: list[list[str]]) -> dict[str, TensorCost]:
        """Compressor ``spec``'s per-tensor costs, measured per bucket through the hook's
        code (:func:`rsdgc_sim.profile.bucket_costs.measure_compression`; ``powersgd``, per
        bucket and phase: :func:`rsdgc_sim.profile.powersgd_costs.measure_powersgd`)."""
        job = self.job
        comp = create_compressor(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
        if getattr(comp, "low_rank", False):
            got = measure_powersgd(comp, self.backward, buckets, self.device, job.rule,
                                   warmup=job.warmup, clock=job.clock, say=self.say,
                                   every_s=job.every_s, name=f"{self.name}: {label}")
        else:
            got = measure_compression(comp, self.backward, buckets, self.device, job.rule,
                                      warmup=job.warmup, seed=job.seed, clock=job.clock,
                                      say=self.say, every_s=job.every_s, name=f"{self.name}: {label}")
        self._report_compression(label, comp, got, len(buckets))
        return {n: got.costs[n] for n in self.names}

    def _report_compression(self, label: str, comp: Any, got: Any, n_buckets: int) -> None:
        """Store a compressor's spreads; say its medians; warn when it was preempted or
        unstable."""
        job, name, spread = self.job, self.name, self.spread
        for key, xs in ((f"compress:{label}", got.compress), (f"decompress:{label}", got.decompress)):
            _store_spread(spread, self.samples, key, xs)
            self.discarded[key] = got.discarded
        key = f"compress:{label}"
        start = steady_state_iteration(comp)
        after = f", after its {start}-iteration warm-up" if start else ""
        dropped = f", {got.discarded} discarded as preempted" if got.discarded else ""
        self.say(f"{name}: {label}: compress {_median(got.compress) * 1e3:.1f} ms "
                 f"±{spread[key] / 2 * 1e3:.1f}, decompress {_median(got.decompress) * 1e3:.1f} ms "
                 f"±{spread[f'decompress:{label}'] / 2 * 1e3:.1f} per iteration, {n_buckets} "
                 f"buckets ({len(got.compress)} iterations, {got.reason}{after}{dropped})")
        if got.reason == "preempted":
            _warn(job.say, preempted_warning(name, f"{label} compression", len(got.compress),
                                             got.discarded))
        _warn_unstable(job.say, name, key, got.compress, job.rule, got.reason)

    def result(self, times: dict[str, list[float]], compression: dict[str, dict[str, TensorCost]]
               ) -> tuple[list[TensorInfo], DeviceProfile]:
        """The model's tensors and this device's :class:`DeviceProfile`."""
        params = self.params
        tensors = [TensorInfo(name=n, shape=list(p.shape), numel=p.numel(), dtype_bytes=p.element_size())
                   for n, p in params]
        dev = DeviceProfile(
            device=self.device,
            device_name=device_name(self.device),
            forward_s=_median(times["forward_s"]),
            backward_s=_median(times["backward_s"]),
            optimizer_s=_median(times["optimizer_s"]),
            grad_ready_s={n: _median(times[f"ready:{n}"]) for n, _ in params},
            compression=compression,
            nsi_compile=compile_mode(),
            spread=self.spread,
            samples=self.samples,
            discarded=self.discarded,
        )
        return tensors, dev


def machine_description(devices: Sequence[str]) -> str:
    """``AMD EPYC 7B13, 2 cores, Linux 6.1.0 (x86_64)`` and, for CUDA devices, ``; GPU:
    NVIDIA H200`` (each different name once)."""
    text = (f"{cpu_model()}, {os.cpu_count() or 1} cores, "
            f"{platform.system()} {platform.release()} ({platform.machine()})")
    gpus = list(dict.fromkeys(torch.cuda.get_device_name(torch.device(d))
                              for d in devices if d.startswith("cuda")))
    return text + (f"; GPU: {', '.join(gpus)}" if gpus else "")


def load_average() -> float | None:
    """The 1-minute load average, None where the system has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def measure_profile(
    model: str,
    num_classes: int,
    input_size: int,
    batch_size: int,
    devices: str | list[str],
    compressors: Mapping[str, Mapping[str, Any]],
    warmup: int = 2,
    min_iterations: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    *,
    iterations: int | None = None,
    max_iterations: int = 100,
    spread_target: float = 0.10,
    spread_floor_s: float = 1e-4,
    budget_s: float = 20.0,
    progress_every_s: float = 1.0,
    clock: Clock | None = None,
    buckets: tuple[int, int] = (DDP_FIRST_BUCKET_BYTES, DDP_BUCKET_CAP_BYTES),
) -> Profile:
    """Measure a Profile on every device at once (one worker per entry of ``devices``).

    ``compressors`` maps a label to ``{"name": ..., **params}``. Each stage (forward/backward,
    then each compressor) runs ``warmup`` untimed iterations, then timed ones until
    :class:`StopRule` (``min_iterations``, default 5; ``max_iterations``; ``spread_target``,
    ``spread_floor_s``; ``budget_s`` seconds per stage and device; ``budget_s=0`` times
    exactly ``min_iterations``) says stop. ``buckets``: DDP's first and later bucket caps in
    bytes; compression is measured per bucket (:mod:`rsdgc_sim.profile.bucket_costs`). ``iterations`` is the former name of
    ``min_iterations``. ``clock`` (seconds, default ``time.perf_counter``) times the CPU and
    the budget; tests pass a fake one. See the module doc for ``progress`` and the warnings.
    """
    rule = _stop_rule(warmup, min_iterations, iterations, max_iterations, spread_target,
                      spread_floor_s, budget_s)
    resolved = resolve_devices(devices)
    cpus = os.cpu_count() or 1
    load = load_average()
    if load is not None and load > cpus:
        _warn(progress, load_warning(load, cpus))
    specs = {label: copy.deepcopy(dict(spec)) for label, spec in compressors.items()}
    job = _Job(model, num_classes, input_size, batch_size, specs, warmup, seed, rule,
               clock or time.perf_counter, progress_every_s, progress,
               (int(buckets[0]), int(buckets[1])))
    with raised_priority() as nice:
        results = _measure_devices(resolved, job)
    tensors = results[0][0]
    settings = {
        "warmup": warmup,
        **_rule_settings(rule),
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "buckets": [int(buckets[0]), int(buckets[1])],
        "cpus": cpus,
        "load_average": load,
        "preemption": preemption_method(job.clock),
        "nice": nice,
    }
    return Profile(
        model=model,
        num_classes=num_classes,
        input_size=input_size,
        batch_size=batch_size,
        params=sum(t.numel for t in tensors),
        tensors=tensors,
        devices=[dev for _, dev in results],
        torch_version=torch.__version__,
        host=platform.node(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        compressor_specs=specs,
        settings=settings,
        machine=machine_description(resolved),
    )


def _stop_rule(warmup: int, min_iterations: int | None, iterations: int | None, max_iterations: int,
               spread_target: float, spread_floor_s: float, budget_s: float) -> StopRule:
    """:func:`measure_profile`'s stopping rule, its arguments checked (``iterations``: the
    former name of ``min_iterations``, default 5)."""
    if iterations is not None and min_iterations is not None and iterations != min_iterations:
        raise ConfigError(f"measure_profile: iterations={iterations} and min_iterations="
                          f"{min_iterations} disagree (iterations is the former name)")
    min_it = next((v for v in (min_iterations, iterations) if v is not None), 5)
    if warmup < 0 or min_it < 1 or max_iterations < 1 or budget_s < 0 or spread_target < 0:
        raise ConfigError(
            f"measure_profile: need warmup >= 0, min_iterations >= 1, max_iterations >= 1, "
            f"budget_s >= 0 and spread_target >= 0 (got {warmup}, {min_it}, {max_iterations}, "
            f"{budget_s}, {spread_target})")
    return StopRule(min_iterations=min_it, max_iterations=max_iterations, spread_target=spread_target,
                    spread_floor_s=spread_floor_s, budget_s=budget_s)


def _rule_settings(rule: StopRule) -> dict[str, Any]:
    """The stopping rule as a profile records it (``Profile.settings``)."""
    return {
        "min_iterations": rule.min_iterations,
        "max_iterations": rule.cap,
        "spread_target": rule.spread_target,
        "spread_floor_s": rule.spread_floor_s,
        "budget_s": rule.budget_s,
    }


def _measure_devices(devices: list[str], job: _Job) -> list[tuple[list[TensorInfo], DeviceProfile]]:
    """Every device measured at once: one thread per device (several devices contend as
    real workers would), in the calling thread when there is one."""
    if len(devices) == 1:
        return [_measure_device(0, devices[0], job)]
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        return list(pool.map(lambda wd: _measure_device(*wd, job), enumerate(devices)))
