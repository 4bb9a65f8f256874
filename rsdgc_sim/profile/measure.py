"""Measuring a Profile: real forward/backward, gradient-ready times and compression costs.

On every device of the scenario at once (one thread, one model replica per device, so
devices that share hardware contend as real workers would):

* forward, backward and optimizer-step times: median over ``iterations`` after ``warmup``,
  with CUDA events (and synchronization) on GPUs, ``perf_counter`` on the CPU;
* each parameter's gradient-ready time, from the start of backward, through
  ``register_post_accumulate_grad_hook`` (the moment DDP would mark it ready);
* for each compressor, in its steady state (the compressor state's iteration starts where
  the compressor's density warm-up ends, see :func:`steady_state_iteration`): one
  iteration's ``compress_many`` over the real gradients (median after ``warmup`` timed
  iterations, error-feedback state carried along as in training), the per-tensor split of
  that time (each tensor's own ``compress`` time, scaled so the split sums to the measured
  ``compress_many`` total), each tensor's ``decompress`` time (payload -> new dense tensor),
  its ``accumulate`` time (payload added into an existing buffer, the per-rank cost of
  aggregating an all-gather), its payload's wire bytes and whether it is all-gathered;
* the NSI score's effective torch.compile mode (``DeviceProfile.nsi_compile``).
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F

from .devices import device_name, resolve_devices, synchronize
from .schema import DeviceProfile, Profile, TensorCost, TensorInfo

Progress = Callable[[str], None]


class _Clock:
    """Timestamps on a device: CUDA events on GPUs (read after a sync), host time on the CPU."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.device = device

    def mark(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def seconds(self, a: Any, b: Any) -> float:
        if self.cuda:
            return a.elapsed_time(b) / 1e3
        return b - a


def _timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - t0, out


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _measure_device(
    worker: int,
    device: str,
    model: str,
    num_classes: int,
    input_size: int,
    batch_size: int,
    compressors: Mapping[str, Mapping[str, Any]],
    warmup: int,
    iterations: int,
    seed: int,
    progress: Progress,
) -> tuple[list[TensorInfo], DeviceProfile]:
    from ..compress import CompressorState
    from ..compress import create as create_compressor
    from ..compress.neighborhood import compile_mode
    from ..models import create as create_model

    name = f"worker {worker} ({device})"
    ctx = torch.cuda.device(torch.device(device)) if device.startswith("cuda") else contextlib.nullcontext()
    with ctx:
        net = create_model(model, num_classes=num_classes, input_size=input_size, seed=seed).to(device)
        net.train()
        params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        opt = torch.optim.SGD([p for _, p in params], lr=0.01, momentum=0.9)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch_size, 3, input_size, input_size, generator=gen).to(device)
        y = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)

        clock = _Clock(device)
        marks: dict[str, Any] = {}
        handles = [
            p.register_post_accumulate_grad_hook(lambda _p, n=n: marks.__setitem__(n, clock.mark()))
            for n, p in params
        ]
        fwd, bwd, step = [], [], []
        ready: dict[str, list[float]] = {n: [] for n, _ in params}
        try:
            for it in range(warmup + iterations):
                opt.zero_grad(set_to_none=True)
                marks.clear()
                synchronize(device)
                t0 = clock.mark()
                loss = F.cross_entropy(net(x), y)
                t1 = clock.mark()
                loss.backward()
                t2 = clock.mark()
                if it < warmup + iterations - 1:  # keep the last gradients for compression
                    opt.step()
                t3 = clock.mark()
                synchronize(device)
                if it >= warmup:
                    fwd.append(clock.seconds(t0, t1))
                    bwd.append(clock.seconds(t1, t2))
                    step.append(clock.seconds(t2, t3))
                    for n in ready:
                        ready[n].append(clock.seconds(t1, marks.get(n, t2)))
            # the last iteration skipped its step: time one now on the same gradients
            t_step, _ = _timed(opt.step, device)
            step[-1] = t_step
        finally:
            for h in handles:
                h.remove()
        progress(f"{name}: forward {_median(fwd) * 1e3:.1f} ms, backward {_median(bwd) * 1e3:.1f} ms")

        grads = {n: p.grad.detach().clone() for n, p in params}
        comps = {
            label: create_compressor(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
            for label, spec in compressors.items()
        }
        compression = {
            label: _measure_compressor(comp, grads, device, warmup, iterations, seed, CompressorState)
            for label, comp in comps.items()
        }
        for label, costs in compression.items():
            total = sum(c.compress_s for c in costs.values())
            start = steady_state_iteration(comps[label])
            after = f" (after its {start}-iteration warm-up)" if start else ""
            progress(f"{name}: {label}: compress {total * 1e3:.1f} ms per iteration{after}")

    tensors = [TensorInfo(name=n, shape=list(p.shape), numel=p.numel(), dtype_bytes=p.element_size()) for n, p in params]
    dev = DeviceProfile(
        device=device,
        device_name=device_name(device),
        forward_s=_median(fwd),
        backward_s=_median(bwd),
        optimizer_s=_median(step),
        grad_ready_s={n: _median(v) for n, v in ready.items()},
        compression=compression,
        nsi_compile=compile_mode(),
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
    """One compressor on one device's real gradients (see the module docstring)."""
    start = steady_state_iteration(comp)
    state = state_cls(seed=seed)
    state.iteration = start
    totals = []
    payloads = {}
    for it in range(warmup + iterations):
        dt, payloads = _timed(lambda: comp.compress_many(grads, state), device)
        state.step()
        if it >= warmup:
            totals.append(dt)
    total = _median(totals)

    single_state = state_cls(seed=seed)
    single_state.iteration = start
    per: dict[str, list[float]] = {n: [] for n in grads}
    dec: dict[str, list[float]] = {n: [] for n in grads}
    acc: dict[str, list[float]] = {n: [] for n in grads}
    sums = {n: torch.zeros_like(g) for n, g in grads.items()}
    for _ in range(max(1, iterations)):
        for n, g in grads.items():
            dt, _ = _timed(lambda n=n, g=g: comp.compress(n, g, single_state), device)
            per[n].append(dt)
            dt, _ = _timed(lambda n=n: comp.decompress(payloads[n]), device)
            dec[n].append(dt)
            dt, _ = _timed(lambda n=n: comp.accumulate(sums[n], payloads[n]), device)
            acc[n].append(dt)
        single_state.step()
    singles = {n: _median(v) for n, v in per.items()}
    scale = total / sum(singles.values()) if sum(singles.values()) > 0 else 0.0
    return {
        n: TensorCost(
            compress_s=singles[n] * scale,
            decompress_s=_median(dec[n]),
            accumulate_s=_median(acc[n]),
            wire_bytes=int(payloads[n].wire_bytes),
            sparse=_needs_allgather(payloads[n]),
        )
        for n in grads
    }


def measure_profile(
    model: str,
    num_classes: int,
    input_size: int,
    batch_size: int,
    devices: str | list[str],
    compressors: Mapping[str, Mapping[str, Any]],
    warmup: int = 2,
    iterations: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> Profile:
    """Measure a Profile on every device at once (one worker per entry of ``devices``).

    ``compressors`` maps a label to ``{"name": ..., **params}``.
    """
    say = progress or (lambda _msg: None)
    resolved = resolve_devices(devices)
    args = (model, num_classes, input_size, batch_size, compressors, warmup, iterations, seed, say)
    if len(resolved) == 1:
        results = [_measure_device(0, resolved[0], *args)]
    else:
        with ThreadPoolExecutor(max_workers=len(resolved)) as pool:
            results = list(pool.map(lambda wd: _measure_device(*wd, *args), enumerate(resolved)))
    tensors = results[0][0]
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
    )
