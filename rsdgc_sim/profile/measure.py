"""Measuring a Profile: real forward/backward, gradient-ready times and compression costs.

On every device of the scenario at once (one thread, one model replica per device, so
devices that share hardware contend as real workers would):

* forward, backward and optimizer-step times: medians after ``warmup`` iterations, with
  CUDA events (and synchronization) on GPUs, the host clock on the CPU, timed until they
  are stable (:class:`StopRule`): at least ``min_iterations`` iterations, then more until the
  interquartile range (IQR) of forward and of backward is at most ``spread_target`` of its
  median (or under ``spread_floor_s``), until the stage's time budget ``budget_s`` is spent,
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
:class:`UnstableProfileWarning`\\ s. :func:`rsdgc_sim.report.profile_table.profile_warnings`
gives the same warnings from a saved profile.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..progress import Eta, Transient
from ..report.profile_table import load_warning, spread_ok, spread_warning
from ..stats import iqr
from .devices import cpu_model, device_name, resolve_devices, synchronize
from .schema import DeviceProfile, Profile, TensorCost, TensorInfo

Progress = Callable[[str], None]
Clock = Callable[[], float]


class UnstableProfileWarning(RuntimeWarning):
    """A profile's times are doubtful: a busy machine, or a spread above its target."""


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def relative_spread(xs: Sequence[float]) -> float:
    """IQR / median (0 when the median is 0)."""
    m = _median(xs)
    return iqr(xs) / m if m > 0 else 0.0


@dataclass(frozen=True)
class StopRule:
    """When to stop timing a stage (forward/backward, or one compressor's ``compress_many``).

    After each timed iteration: go on while fewer than ``min_iterations`` are done; stop
    when every watched quantity is stable (:func:`~rsdgc_sim.report.profile_table.spread_ok`:
    IQR <= ``spread_target`` x median, or IQR <= ``spread_floor_s``), when ``max_iterations``
    are done, or when ``budget_s`` seconds have passed since the stage's first timed
    iteration began (it may overrun by one iteration)."""

    min_iterations: int = 5
    max_iterations: int = 100
    spread_target: float = 0.10
    spread_floor_s: float = 1e-4
    budget_s: float = 20.0

    @property
    def cap(self) -> int:
        return max(self.min_iterations, self.max_iterations)

    def stable(self, xs: Sequence[float]) -> bool:
        return bool(xs) and spread_ok(iqr(xs), _median(xs), self.spread_target, self.spread_floor_s)

    def stop(self, watched: Sequence[Sequence[float]], elapsed_s: float) -> str | None:
        """Why to stop now (``stable``, ``cap``, ``budget``), or None to go on."""
        n = min(len(xs) for xs in watched)
        if n < self.min_iterations:
            return None
        if all(self.stable(xs) for xs in watched):
            return "stable"
        if n >= self.cap:
            return "cap"
        if elapsed_s >= self.budget_s:
            return "budget"
        return None


def time_until_stable(
    step: Callable[[], Mapping[str, float]],
    watch: Sequence[str],
    rule: StopRule,
    clock: Clock = time.perf_counter,
    on_progress: Callable[[str], None] | None = None,
    every_s: float = 1.0,
) -> tuple[dict[str, list[float]], str]:
    """Call ``step`` (one timed iteration: seconds per quantity) until ``rule`` says stop;
    the samples of every quantity and why it stopped. ``on_progress`` gets
    ``7/≤100, spread 12%, ~18 s left`` (the largest relative spread of ``watch``) at most
    once per ``every_s`` seconds of ``clock``, which also measures the budget."""
    eta = Eta(rule.cap, budget_s=rule.budget_s, at_least=rule.min_iterations, at_most=True,
              every_s=every_s, clock=clock)
    samples: dict[str, list[float]] = {}
    while True:
        for k, v in step().items():
            samples.setdefault(k, []).append(float(v))
        watched = [samples[k] for k in watch]
        reason = rule.stop(watched, eta.elapsed_s())
        if reason is not None:
            return samples, reason
        if on_progress is not None and eta.due():
            worst = max(relative_spread(xs) for xs in watched)
            on_progress(eta.update(len(watched[0]), f"spread {worst:.0%}"))


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


def _timed(fn: Callable[[], Any], device: str, clock: Clock = time.perf_counter) -> tuple[float, Any]:
    synchronize(device)
    t0 = clock()
    out = fn()
    synchronize(device)
    return clock() - t0, out


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


def _measure_device(worker: int, device: str, job: _Job) -> tuple[list[TensorInfo], DeviceProfile]:
    from ..compress import CompressorState
    from ..compress import create as create_compressor
    from ..compress.neighborhood import compile_mode
    from ..models import create as create_model

    name = f"worker {worker} ({device})"
    say = job.say or (lambda _m: None)
    rule = job.rule
    ctx = torch.cuda.device(torch.device(device)) if device.startswith("cuda") else contextlib.nullcontext()
    spread: dict[str, float] = {}
    samples: dict[str, int] = {}
    with ctx:
        net = create_model(job.model, num_classes=job.num_classes, input_size=job.input_size,
                           seed=job.seed).to(device)
        net.train()
        params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        opt = torch.optim.SGD([p for _, p in params], lr=0.01, momentum=0.9)
        gen = torch.Generator().manual_seed(job.seed)
        x = torch.randn(job.batch_size, 3, job.input_size, job.input_size, generator=gen).to(device)
        y = torch.randint(0, job.num_classes, (job.batch_size,), generator=gen).to(device)

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
            times, reason = time_until_stable(
                iteration, ("forward_s", "backward_s"), rule, job.clock,
                lambda m: say(Transient(f"{name}: forward/backward {m}")), job.every_s)
        finally:
            for h in handles:
                h.remove()
        for key in ("forward_s", "backward_s", "optimizer_s"):
            _store_spread(spread, samples, key, times[key])
        fwd, bwd = _median(times["forward_s"]), _median(times["backward_s"])
        say(f"{name}: forward {fwd * 1e3:.1f} ms ±{spread['forward_s'] / 2 * 1e3:.1f}, backward "
            f"{bwd * 1e3:.1f} ms ±{spread['backward_s'] / 2 * 1e3:.1f} "
            f"({len(times['forward_s'])} iterations, {reason})")
        for key in ("forward_s", "backward_s"):
            _warn_unstable(job.say, name, key, times[key], rule, reason)

        grads = {n: p.grad.detach().clone() for n, p in params}
        compression: dict[str, dict[str, TensorCost]] = {}
        for label, spec in job.compressors.items():
            comp = create_compressor(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
            costs, totals, reason = _compressor_costs(comp, grads, device, job, CompressorState,
                                                      f"{name}: {label}")
            compression[label] = costs
            key = f"compress:{label}"
            _store_spread(spread, samples, key, totals)
            start = steady_state_iteration(comp)
            after = f", after its {start}-iteration warm-up" if start else ""
            say(f"{name}: {label}: compress {_median(totals) * 1e3:.1f} ms "
                f"±{spread[key] / 2 * 1e3:.1f} per iteration ({len(totals)} iterations, "
                f"{reason}{after})")
            _warn_unstable(job.say, name, key, totals, rule, reason)

    tensors = [TensorInfo(name=n, shape=list(p.shape), numel=p.numel(), dtype_bytes=p.element_size()) for n, p in params]
    dev = DeviceProfile(
        device=device,
        device_name=device_name(device),
        forward_s=fwd,
        backward_s=bwd,
        optimizer_s=_median(times["optimizer_s"]),
        grad_ready_s={n: _median(times[f"ready:{n}"]) for n, _ in params},
        compression=compression,
        nsi_compile=compile_mode(),
        spread=spread,
        samples=samples,
    )
    return tensors, dev


def steady_state_iteration(comp: Any) -> int:
    """The first iteration at which ``comp`` compresses at its target density: the end of its
    density warm-up (``warmup_iters`` of ``dgc`` and ``nsi``, the iteration count
    :func:`rsdgc_sim.compress.schedule.density_at` is driven by), 0 without one."""
    return max(0, int(getattr(comp.p, "warmup_iters", 0) or 0))


def _needs_allgather(payload: Any) -> bool:
    """Whether a payload is all-gathered (its own indices) rather than allreduced."""
    return bool(getattr(payload, "needs_allgather", payload.indices is not None))


def _measure_compressor(comp, grads, device, warmup, iterations, seed, state_cls) -> dict[str, TensorCost]:
    """One compressor on one device's real gradients with a fixed count: ``warmup``, then
    exactly ``iterations`` timed ``compress_many`` calls (and ``iterations`` per-tensor rounds)."""
    rule = StopRule(min_iterations=iterations, max_iterations=iterations, budget_s=0.0)
    job = _Job("", 0, 0, 0, {}, warmup, seed, rule, time.perf_counter, 1.0, None)
    return _compressor_costs(comp, grads, device, job, state_cls, "")[0]


def _compressor_costs(comp, grads, device, job: _Job, state_cls, name: str
                      ) -> tuple[dict[str, TensorCost], list[float], str]:
    """One compressor on one device's real gradients (see the module docstring): the
    per-tensor costs, the timed ``compress_many`` totals and why their timing stopped."""
    say = job.say or (lambda _m: None)
    clock = job.clock
    start = steady_state_iteration(comp)
    state = state_cls(seed=job.seed)
    state.iteration = start
    payloads: dict[str, Any] = {}

    def iteration() -> dict[str, float]:
        nonlocal payloads
        dt, payloads = _timed(lambda: comp.compress_many(grads, state), device, clock)
        state.step()
        return {"total": dt}

    if job.warmup:
        say(Transient(f"{name}: compress warm-up, {job.warmup} iterations"))
    for _ in range(job.warmup):
        iteration()
    times, reason = time_until_stable(iteration, ("total",), job.rule, clock,
                                      lambda m: say(Transient(f"{name}: compress {m}")), job.every_s)
    totals = times["total"]
    total = _median(totals)

    single_state = state_cls(seed=job.seed)
    single_state.iteration = start
    per: dict[str, list[float]] = {n: [] for n in grads}
    dec: dict[str, list[float]] = {n: [] for n in grads}
    acc: dict[str, list[float]] = {n: [] for n in grads}
    sums = {n: torch.zeros_like(g) for n, g in grads.items()}
    rounds = max(1, job.rule.min_iterations)
    eta = Eta(rounds, every_s=job.every_s, clock=clock)
    for r in range(rounds):
        for n, g in grads.items():
            dt, _ = _timed(lambda n=n, g=g: comp.compress(n, g, single_state), device, clock)
            per[n].append(dt)
            dt, _ = _timed(lambda n=n: comp.decompress(payloads[n]), device, clock)
            dec[n].append(dt)
            dt, _ = _timed(lambda n=n: comp.accumulate(sums[n], payloads[n]), device, clock)
            acc[n].append(dt)
        single_state.step()
        if r + 1 < rounds and eta.due():
            say(Transient(f"{name}: per-tensor costs {eta.update(r + 1)}"))
    singles = {n: _median(v) for n, v in per.items()}
    scale = total / sum(singles.values()) if sum(singles.values()) > 0 else 0.0
    costs = {
        n: TensorCost(
            compress_s=singles[n] * scale,
            decompress_s=_median(dec[n]),
            accumulate_s=_median(acc[n]),
            wire_bytes=int(payloads[n].wire_bytes),
            sparse=_needs_allgather(payloads[n]),
        )
        for n in grads
    }
    return costs, totals, reason


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
) -> Profile:
    """Measure a Profile on every device at once (one worker per entry of ``devices``).

    ``compressors`` maps a label to ``{"name": ..., **params}``. Each stage (forward/backward,
    then each compressor) runs ``warmup`` untimed iterations, then timed ones until
    :class:`StopRule` (``min_iterations``, default 5; ``max_iterations``; ``spread_target``,
    ``spread_floor_s``; ``budget_s`` seconds per stage and device; ``budget_s=0`` times
    exactly ``min_iterations``) says stop. ``iterations`` is the former name of
    ``min_iterations``. ``clock`` (seconds, default ``time.perf_counter``) times the CPU and
    the budget; tests pass a fake one. See the module doc for ``progress`` and the warnings.
    """
    if iterations is not None and min_iterations is not None and iterations != min_iterations:
        raise ConfigError(f"measure_profile: iterations={iterations} and min_iterations="
                          f"{min_iterations} disagree (iterations is the former name)")
    min_it = next((v for v in (min_iterations, iterations) if v is not None), 5)
    if warmup < 0 or min_it < 1 or max_iterations < 1 or budget_s < 0 or spread_target < 0:
        raise ConfigError(
            f"measure_profile: need warmup >= 0, min_iterations >= 1, max_iterations >= 1, "
            f"budget_s >= 0 and spread_target >= 0 (got {warmup}, {min_it}, {max_iterations}, "
            f"{budget_s}, {spread_target})")
    rule = StopRule(min_iterations=min_it, max_iterations=max_iterations, spread_target=spread_target,
                    spread_floor_s=spread_floor_s, budget_s=budget_s)
    resolved = resolve_devices(devices)
    cpus = os.cpu_count() or 1
    load = load_average()
    if load is not None and load > cpus:
        _warn(progress, load_warning(load, cpus))
    specs = {label: copy.deepcopy(dict(spec)) for label, spec in compressors.items()}
    job = _Job(model, num_classes, input_size, batch_size, specs, warmup, seed, rule,
               clock or time.perf_counter, progress_every_s, progress)
    if len(resolved) == 1:
        results = [_measure_device(0, resolved[0], job)]
    else:
        with ThreadPoolExecutor(max_workers=len(resolved)) as pool:
            results = list(pool.map(lambda wd: _measure_device(*wd, job), enumerate(resolved)))
    tensors = results[0][0]
    settings = {
        "warmup": warmup,
        "min_iterations": rule.min_iterations,
        "max_iterations": rule.cap,
        "spread_target": rule.spread_target,
        "spread_floor_s": rule.spread_floor_s,
        "budget_s": rule.budget_s,
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "cpus": cpus,
        "load_average": load,
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
