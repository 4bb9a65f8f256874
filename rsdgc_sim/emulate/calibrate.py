"""Measure links and fit alpha/beta: on emulated links (two ranks in namespaces behind a
tbf-shaped bridge, one fit per rate), on loopback when namespaces are not available, or on a
real cluster from inside a ``torchrun``-launched process."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EmulationError
from .calibration import Calibration, LinkFit, fit_link
from .launcher import launch, python_argv
from .netns import Network, capabilities

Progress = Callable[[str], None]


def _spec(repeats: int, max_message_s: float, max_bytes: int, mode: str = "allreduce") -> dict[str, Any]:
    return {
        "task": "calibrate", "repeats": repeats, "max_message_s": max_message_s,
        "max_bytes": max_bytes, "threads": 1, "mode": mode,
    }  # fmt: skip


def fit_samples(samples: Sequence[dict[str, Any]], nominal: float | None) -> LinkFit:
    """Fit the ping-pong samples of :func:`rsdgc_sim.emulate.worker.run_calibrate`: beta on
    each size's median time, alpha on the lower quartile of the latency-dominated sizes (on
    a loaded host a rank waiting for a CPU adds milliseconds now and then: scheduling, not
    link latency, and not what the collectives of a training step mostly see)."""
    sizes, times, low = [], [], []
    for s in samples:
        sizes.append(s["bytes"])
        times.append(float(statistics.median(s["seconds"])))
        xs = sorted(s["seconds"])
        low.append(float(xs[(len(xs) - 1) // 4]))
    return fit_link(sizes, times, nominal, latency_seconds=low)


def _run_pair(network: Network | None, spec: dict[str, Any], timeout_s: float) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="rsdgc-cal-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        results = launch(
            python_argv("rsdgc_sim.emulate.worker", str(path)), 2, network=network,
            timeout_s=timeout_s, workdir=Path(tmp) / "ranks",
        )  # fmt: skip
    return results[0]["samples"]


def calibrate_links(
    rates_bytes_per_s: Sequence[float],
    *,
    repeats: int = 5,
    max_message_s: float = 0.3,
    max_bytes: int = 64 * 2**20,
    timeout_s: float = 300.0,
    progress: Progress | None = None,
) -> Calibration:
    """One fit per rate on a two-host emulated switch (tbf at that rate). Without root or
    ``ip netns``, one fit on unshaped loopback instead (and ``progress`` says so)."""
    say = progress or (lambda _m: None)
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    spec = _spec(repeats, max_message_s, max_bytes)
    caps = capabilities()
    if not (caps.netns and caps.tbf):
        say(f"network namespaces unavailable ({caps.reason}): calibrating loopback, unshaped")
        fit = fit_samples(_run_pair(None, spec, timeout_s), None)
        return Calibration(source="loopback", links=[fit])
    if not rates_bytes_per_s:
        raise ConfigError("give at least one bandwidth to calibrate")
    fits = []
    for rate in sorted(set(rates_bytes_per_s)):
        net = Network(2, rate_bytes_per_s=rate)
        try:
            net.open()
            fit = fit_samples(_run_pair(net, spec, timeout_s), rate)
        finally:
            net.close()
        say(
            f"{rate * 8 / 1e6:g} Mbit/s: alpha {fit.alpha_s * 1e6:.0f} us, "
            f"effective {fit.bandwidth_bytes_per_s * 8 / 1e6:.1f} Mbit/s "
            f"({fit.efficiency:.1%}), r2 {fit.r2:.4f}"
        )
        fits.append(fit)
    return Calibration(source="emulated", netem=False, links=fits)


def calibrate_in_torchrun(
    *, repeats: int = 5, max_message_s: float = 0.3, max_bytes: int = 64 * 2**20
) -> Calibration | None:
    """Inside a process started by ``torchrun`` (``RANK``/``WORLD_SIZE`` set): ping-pong
    between ranks 0 and 1 (put them on different nodes: ``--nproc-per-node 1``). Returns the
    calibration on rank 0, None on the others."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise EmulationError("not started by torchrun (RANK and WORLD_SIZE are not set)")
    import torch.distributed as dist

    from .worker import run_calibrate

    backend = "gloo"
    dist.init_process_group(backend=backend)
    try:
        if dist.get_world_size() < 2:
            raise EmulationError("calibration needs at least 2 ranks")
        res = run_calibrate(_spec(repeats, max_message_s, max_bytes))
    finally:
        dist.destroy_process_group()
    if res["rank"] != 0:
        return None
    return Calibration(source="cluster", backend=backend, links=[fit_samples(res["samples"], None)])
