"""Measure links and fit alpha/beta: on emulated links (two ranks in namespaces behind a
tbf-shaped bridge, one fit per rate), on loopback when namespaces are not available, or on a
real cluster from inside a ``torchrun``-launched process; and, on the same links, the
compute-communication interference (backward alone vs backward while all-reduces are in
flight on every rank, each rank pinned to its cores with the threads an emulated rank will
have) and, once, on the fastest of them, DDP's synchronisation overhead (real DDP with a
hook that does no work, synchronised vs ``no_sync``). And the calibration an emulation uses (:func:`choose_calibration`: given, the
scenario's, or measured now), with what it says about this machine."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..calibration import (
    Calibration,
    DdpOverhead,
    Interference,
    LinkFit,
    calibration_warnings,
    fit_link,
    load_calibration,
    measured_here,
)
from ..errors import ConfigError, EmulationError
from ..strict import Strict
from .cores import core_plan
from .launcher import launch, python_argv
from .netns import Network, capabilities

if TYPE_CHECKING:  # types only
    from ..scenario import Scenario

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
        return launch(
            python_argv("rsdgc_sim.emulate.worker", str(path)), 2, network=network,
            timeout_s=timeout_s, workdir=Path(tmp) / "ranks",
        )  # fmt: skip


class InterferenceSpec(Strict):
    """What the interference measurement runs: a model (name, classes, input size, batch),
    the message size of the all-reduces, the torch threads per rank (None: the cores split
    between the two ranks) and the backward repeats per phase."""

    model: str = "cnn_small"
    num_classes: int = Field(default=10, ge=2)
    input_size: int = Field(default=32, ge=8)
    batch_size: int = Field(default=32, ge=1)
    message_bytes: int = Field(default=4 * 2**20, ge=4)
    threads: int | None = Field(default=None, ge=1)
    repeats: int = Field(default=10, ge=1)
    seed: int = Field(default=0, ge=0)
    #: DDP's synchronisation overhead: alternating blocks of this many synchronised and
    #: ``no_sync`` iterations
    overhead_iterations: int = Field(default=6, ge=1)
    overhead_blocks: int = Field(default=3, ge=1)


def interference_from(results: Sequence[dict[str, Any]], spec: dict[str, Any]) -> Interference:
    """The factor from the ranks' backward times (:func:`~.worker.run_interference`): per
    rank the median while communicating over the median alone (before and after together),
    averaged over ranks; ``factor = ratio - 1``, 0 when backward was not slower."""
    alone = statistics.fmean(statistics.median(r["alone_s"]) for r in results)
    during = statistics.fmean(statistics.median(r["during_s"]) for r in results)
    ratios = [statistics.median(r["during_s"]) / statistics.median(r["alone_s"])
              for r in results]
    return Interference(
        factor=max(0.0, statistics.fmean(ratios) - 1.0), message_bytes=int(spec["message_bytes"]),
        backward_alone_s=alone, backward_during_s=during, model=spec["model"],
        threads=int(spec["threads"]),
    )  # fmt: skip


def measure_interference(network: Network | None, ispec: InterferenceSpec,
                         timeout_s: float = 300.0) -> Interference:
    """Run the interference task on two ranks (on ``network`` or loopback), each pinned to
    its cores with ``ispec``'s threads."""
    spec = _model_task("interference", ispec)
    return interference_from(_run_pair(network, spec, timeout_s), spec)


def _model_task(task: str, ispec: InterferenceSpec, **extra: Any) -> dict[str, Any]:
    """The spec of a rank task that runs ``ispec``'s model on two ranks, each pinned to its
    cores with ``ispec``'s threads."""
    plan = core_plan(2, ispec.threads)
    return {"task": task, **ispec.model_dump(), "threads": plan.threads, "cpus": plan.cpus,
            **extra}


def ddp_overhead_from(results: Sequence[dict[str, Any]], spec: dict[str, Any]) -> DdpOverhead:
    """DDP's synchronisation overhead from the ranks' iteration times
    (:func:`~.worker.run_ddp_overhead`): the median over iterations of the slowest rank's
    synchronised iteration, minus the mean over ranks of each rank's median ``no_sync``
    iteration (0 when not slower)."""
    synced = [max(ts) for ts in zip(*(r["synced_s"] for r in results), strict=True)]
    with_sync = float(statistics.median(synced))
    local = statistics.fmean(statistics.median(r["local_s"]) for r in results)
    return DdpOverhead(
        overhead_s=max(0.0, with_sync - local), synced_s=with_sync, local_s=local,
        model=spec["model"], input_size=int(spec["input_size"]),
        batch_size=int(spec["batch_size"]), threads=int(spec["threads"]),
        iterations=len(synced),
    )  # fmt: skip


def measure_ddp_overhead(network: Network | None, ispec: InterferenceSpec,
                         timeout_s: float = 300.0) -> DdpOverhead:
    """Run the DDP-overhead task on two ranks (on ``network`` or loopback), each pinned to
    its cores with ``ispec``'s threads."""
    spec = _model_task("ddp_overhead", ispec, iterations=ispec.overhead_iterations,
                       blocks=ispec.overhead_blocks)
    return ddp_overhead_from(_run_pair(network, spec, timeout_s), spec)


def _say_overhead(say: Progress, o: DdpOverhead) -> None:
    say(f"  DDP overhead: {o.synced_s * 1e3:.1f} ms per synchronised iteration, "
        f"{o.local_s * 1e3:.1f} ms under no_sync: {o.overhead_s * 1e3:.1f} ms")


def calibrate_links(
    rates_bytes_per_s: Sequence[float],
    *,
    repeats: int = 5,
    max_message_s: float = 0.3,
    max_bytes: int = 64 * 2**20,
    timeout_s: float = 300.0,
    progress: Progress | None = None,
    interference: InterferenceSpec | None = None,
) -> Calibration:
    """One fit per rate on a two-host emulated switch (tbf at that rate). Without root or
    ``ip netns``, one fit on unshaped loopback instead (and ``progress`` says so). With
    ``interference`` (an :class:`InterferenceSpec`), each link also gets its measured
    interference factor, and the calibration DDP's synchronisation overhead, measured on the
    fastest link."""
    say = progress or (lambda _m: None)
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    spec = _spec(repeats, max_message_s, max_bytes)
    caps = capabilities()

    def with_interference(fit: LinkFit, network: Network | None) -> LinkFit:
        if interference is None:
            return fit
        i = measure_interference(network, interference, timeout_s)
        say(f"  interference: backward {i.backward_alone_s * 1e3:.1f} ms alone, "
            f"{i.backward_during_s * 1e3:.1f} ms during all-reduces: k = {i.factor:.3f}")
        return fit.model_copy(update={"interference": i})

    if not (caps.netns and caps.tbf):
        say(f"network namespaces unavailable ({caps.reason}): calibrating loopback, unshaped")
        fit = fit_samples(_run_pair(None, spec, timeout_s)[0]["samples"], None)
        fit = with_interference(fit, None)
        overhead = None
        if interference is not None:
            overhead = measure_ddp_overhead(None, interference, timeout_s)
            _say_overhead(say, overhead)
        return Calibration(source="loopback", links=[fit], ddp_overhead=overhead,
                           **measured_here())
    if not rates_bytes_per_s:
        raise ConfigError("give at least one bandwidth to calibrate")
    fits = []
    overhead = None
    rates = sorted(set(rates_bytes_per_s))
    for rate in rates:
        net = Network(2, rate_bytes_per_s=rate)
        try:
            net.open()
            fit = fit_samples(_run_pair(net, spec, timeout_s)[0]["samples"], rate)
            say(
                f"{rate * 8 / 1e6:g} Mbit/s: alpha {fit.alpha_s * 1e6:.0f} us, "
                f"effective {fit.bandwidth_bytes_per_s * 8 / 1e6:.1f} Mbit/s "
                f"({fit.efficiency:.1%}), r2 {fit.r2:.4f}"
            )
            fit = with_interference(fit, net)
            if interference is not None and rate == rates[-1]:
                overhead = measure_ddp_overhead(net, interference, timeout_s)
                _say_overhead(say, overhead)
        finally:
            net.close()
        fits.append(fit)
    return Calibration(source="emulated", netem=False, links=fits, ddp_overhead=overhead,
                       **measured_here())


def calibrate_in_torchrun(
    *, repeats: int = 5, max_message_s: float = 0.3, max_bytes: int = 64 * 2**20
) -> Calibration | None:
    """Inside a process started by ``torchrun`` (``RANK``/``WORLD_SIZE`` set): ping-pong
    between ranks 0 and 1 (put them on different nodes: ``--nproc-per-node 1``). Returns the
    calibration on rank 0, None on the others."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise EmulationError("not started by torchrun (RANK and WORLD_SIZE are not set)")
    import torch.distributed as dist  # lazy: torch

    from .worker import run_calibrate  # lazy: imports torch, numpy

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
    return Calibration(source="cluster", backend=backend,
                       links=[fit_samples(res["samples"], None)], **measured_here())


def choose_calibration(scenario: Scenario, given: Calibration | str | Path | None, calibrate: bool,
                       rates: list[float], threads: int,
                       say: Callable[[str], None]) -> Calibration | None:
    """``given`` (a calibration or its file), else the scenario's ``cluster.calibration``,
    else with ``calibrate`` one measured now (links at ``rates`` and the interference of
    the scenario's model with ``threads`` per rank), else None (nominal values, k = 0)."""
    if isinstance(given, Calibration):
        return given
    if given is not None:
        return load_calibration(given)
    path = getattr(scenario.cluster, "calibration", None)
    if path:
        return load_calibration(path)
    if not calibrate:
        return None
    say("calibrating the links and the interference (2 ranks)")
    spec = InterferenceSpec(
        model=scenario.model.name, num_classes=scenario.model.num_classes,
        input_size=scenario.model.input_size, batch_size=scenario.batch_size,
        threads=threads, seed=scenario.seed,
    )  # fmt: skip
    return calibrate_links(sorted(set(rates)), repeats=3, progress=say, interference=spec)


def calibration_notes(cal: Calibration | None, mode: str) -> list[str]:
    if cal is None:
        return ["no calibration: predicting with the scenario's nominal links, no interference"]
    notes = calibration_warnings(cal)
    if cal.source == "loopback" and mode == "netns":
        notes.append("calibration was measured on loopback, not on emulated links")
    return notes
