"""``emulate``: real DDP training over emulated links, beside the simulator's prediction.

For each grid point of a scenario that fits the machine (workers, bandwidth), one launch of
N ranks on an emulated switch (:mod:`.netns`, tbf at the point's bandwidth) runs every
compressor of the scenario in turn (:mod:`.worker`): a Profile measured by every rank at
once (compute contends for the CPU as in training), then real DDP iterations through the
compression hook. The prediction simulates the same configuration with that measured
profile (averaged over ranks; compute scaled to the same iterations run without
communication under DDP's ``no_sync``, i.e. with DDP's own overheads and the CPU shared as
it is during the run; compression and decompression scaled to what the hook measured during
training, compression pausing backward as it does in a DDP hook: the simulator's
``ddp.compression_blocks_backward``) and the link calibration (fitted effective bandwidth and
per-message latency, :mod:`.calibration`; with more ranks than cores the latency of a
one-float allreduce measured in the run when larger), and the comparison is written to
``emulate.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EmulationError
from .calibration import Calibration, load_calibration
from .launcher import launch, python_argv
from .netns import Network, capabilities, remove_stale

Progress = Callable[[str], None]


@dataclass
class EmulateCase:
    compressor: str
    workers: int
    bandwidth_bytes_per_s: float
    measured_iteration_s: float
    predicted_iteration_s: float | None
    error: float | None  # (predicted - measured) / measured
    #: link values the prediction used (calibrated)
    predicted_bandwidth_bytes_per_s: float
    predicted_latency_s: float
    #: the simulator with compression beside backward (as configured), for comparison
    predicted_overlapped_s: float | None
    compute_s: float  # measured forward + backward + optimizer per rank (profile, mean)
    compress_s: float  # hook's compression time per iteration (mean over ranks)
    decompress_s: float  # hook's decompression (callback) time per iteration
    forward_s: float  # median forward time during the timed DDP iterations (mean over ranks)
    sent_bytes: float  # per rank per iteration, as sent by the hook
    iteration_s: list[float] = field(default_factory=list)  # per timed iteration, max over ranks


@dataclass
class EmulateReport:
    scenario: str
    model: str
    mode: str  # "netns" or "loopback"
    netem: bool
    notes: list[str]
    calibration: dict[str, Any] | None
    cases: list[EmulateCase]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return d


def _merge_profiles(raw: list[dict[str, Any]]):
    """One Profile whose single device is the mean of the ranks' measured devices."""
    from ..profile.schema import DeviceProfile, Profile, TensorCost

    profs = [Profile.model_validate(r) for r in raw]
    devs = [p.devices[0] for p in profs]

    def mean(xs):
        return float(statistics.fmean(xs))

    comp = {}
    times = [f for f in ("compress_s", "decompress_s", "accumulate_s") if f in TensorCost.model_fields]
    for label, costs in devs[0].compression.items():
        comp[label] = {
            name: c.model_copy(update={
                f: mean([getattr(d.compression[label][name], f) for d in devs]) for f in times
            })  # fmt: skip
            for name, c in costs.items()
        }
    dev = DeviceProfile(
        device=devs[0].device,
        device_name=devs[0].device_name,
        forward_s=mean([d.forward_s for d in devs]),
        backward_s=mean([d.backward_s for d in devs]),
        optimizer_s=mean([d.optimizer_s for d in devs]),
        grad_ready_s={n: mean([d.grad_ready_s[n] for d in devs]) for n in devs[0].grad_ready_s},
        compression=comp,
    )
    return profs[0].model_copy(update={"devices": [dev]})


def _predict(profile, sim_point) -> float:
    from ..sim import simulate

    return float(simulate(profile, sim_point).iteration_s)


def with_compute_scale(profile, factor: float):
    """The profile with forward, backward, gradient-ready and optimizer times times
    ``factor`` (compression costs are set separately)."""
    dev = profile.devices[0]
    new = dev.model_copy(update={
        "forward_s": dev.forward_s * factor, "backward_s": dev.backward_s * factor,
        "optimizer_s": dev.optimizer_s * factor,
        "grad_ready_s": {n: t * factor for n, t in dev.grad_ready_s.items()},
    })  # fmt: skip
    return profile.model_copy(update={"devices": [new]})


def with_measured_compression(profile, label: str, compress_s: float, decompress_s: float,
                              workers: int):  # fmt: skip
    """The profile with ``label``'s per-tensor compression and decompression times scaled so
    that one iteration's totals equal what the hook measured during training (under the
    same CPU contention): compression sums to ``compress_s``; decompression, counted as the
    simulator counts it (a dense tensor's ``decompress_s``; a sparse one's ``decompress_s``
    plus ``workers - 1`` times ``accumulate_s``), to ``decompress_s``."""
    dev = profile.devices[0]
    costs = dev.compression[label]
    total_c = sum(c.compress_s for c in costs.values())
    total_d = sum(c.decompress_s + ((workers - 1) * c.accumulate_s if c.sparse else 0.0)
                  for c in costs.values())
    fc = compress_s / total_c if total_c > 0 else 0.0
    fd = decompress_s / total_d if total_d > 0 else 0.0
    new = {}
    for n, c in costs.items():
        new[n] = c.model_copy(update={"compress_s": c.compress_s * fc,
                                      "decompress_s": c.decompress_s * fd,
                                      "accumulate_s": c.accumulate_s * fd})
    comp = dict(dev.compression)
    comp[label] = new
    return profile.model_copy(update={"devices": [dev.model_copy(update={"compression": comp})]})


def fits_machine(workers: int, max_workers: int | None) -> bool:
    limit = max_workers if max_workers is not None else max(2, 2 * (os.cpu_count() or 1))
    return 1 <= workers <= limit


def emulate_scenario(
    scenario,
    *,
    out_dir: str | Path | None = None,
    iterations: int = 3,
    warmup: int = 1,
    timeout_s: float = 600.0,
    calibration: Calibration | str | Path | None = None,
    calibrate: bool = True,
    max_workers: int | None = None,
    progress: Progress | None = None,
) -> EmulateReport:
    """Emulate every (compressor, workers, bandwidth) of ``scenario`` that fits the machine
    and compare with the simulator. ``calibration``: a calibration (or its file) to predict
    with; else, with ``calibrate``, the links are calibrated first at the scenario's
    bandwidths; else the scenario's nominal values are used. Writes ``emulate.json`` into
    ``out_dir`` when given."""
    from ..report.files import write_json_atomic

    say = progress or (lambda _m: None)
    if iterations < 1 or warmup < 0:
        raise ConfigError(f"iterations must be >= 1 and warmup >= 0, got {iterations}, {warmup}")
    notes: list[str] = []
    caps = capabilities()
    mode = "netns" if caps.netns and caps.tbf else "loopback"
    if mode == "loopback":
        notes.append(
            f"network namespaces unavailable ({caps.reason}): ranks run on loopback, UNSHAPED; "
            "the scenario's bandwidth is not emulated"
        )
    else:
        remove_stale()
    if not caps.netem:
        notes.append(
            "tc netem is not available on this kernel: no latency is added to the links; "
            "predictions use the links' own (calibrated) per-message latency instead of the "
            "scenario's latency"
        )
    for n in notes:
        say(n)

    points: list[tuple[int, float, float]] = []
    skipped = []
    lats = sorted(set(scenario.cluster.latency))
    if not caps.netem and len(lats) > 1:
        notes.append(f"latency axis {lats} not emulated (no netem): one run per bandwidth")
        say(notes[-1])
    for gp in scenario.grid():
        # without netem the latency axis cannot be emulated: one run per (workers, bandwidth)
        key = (gp.workers, gp.bandwidth_bytes_per_s, gp.latency_s if caps.netem else 0.0)
        if key in points:
            continue
        if not fits_machine(gp.workers, max_workers):
            skipped.append(gp.workers)
            continue
        points.append(key)
    if skipped:
        notes.append(f"skipped {sorted(set(skipped))} workers: more ranks than this machine holds")
        say(notes[-1])
    if not points:
        raise EmulationError("no grid point of the scenario fits this machine")

    cal = _calibration(scenario, calibration, calibrate, mode, points, say)
    if cal is not None and cal.source == "loopback" and mode == "netns":
        notes.append("calibration was measured on loopback, not on emulated links")

    compressors = [
        {"label": c.key, "name": c.name, "params": c.params} for c in scenario.compressors
    ]
    cores = os.cpu_count() or 1
    cases: list[EmulateCase] = []
    for workers, bw, lat in points:
        say(f"emulating {workers} ranks at {bw * 8 / 1e6:g} Mbit/s ({mode})")
        spec = {
            "task": "train", "model": scenario.model.name,
            "num_classes": scenario.model.num_classes, "input_size": scenario.model.input_size,
            "batch_size": scenario.batch_size, "seed": scenario.seed,
            "threads": max(1, cores // workers), "compressors": compressors,
            "warmup": warmup, "iterations": iterations, "dense_iters": 2, "warmup_comm": False,
            "bucket_cap_bytes": scenario.ddp.bucket_cap,
            "first_bucket_bytes": scenario.ddp.first_bucket,
            "profile_warmup": 1, "profile_iterations": max(2, scenario.profile.iterations // 2),
            "collective_timeout_s": timeout_s,
        }  # fmt: skip
        results = _run_point(workers, bw if mode == "netns" else None, lat, spec, timeout_s)
        profile = _merge_profiles([r["profile"] for r in results])
        compute = profile.devices[0].forward_s + profile.devices[0].backward_s
        compute += profile.devices[0].optimizer_s
        # the links' latency: what the calibration measured plus what netem added (if any)
        if cal is not None:
            pbw, plat = cal.link(bw, lat)
        else:
            pbw, plat = bw, lat
        # the per-message latency at this rank count (a ring allreduce of one float is
        # 2 (p - 1) messages); with more ranks than cores a message also waits for its
        # receiver to get a CPU, which a 2-rank calibration does not see
        probe = statistics.median(statistics.median(r["small_allreduce_s"]) for r in results)
        run_alpha = probe / (2 * (workers - 1)) if workers > 1 else 0.0
        if run_alpha > plat:
            notes.append(
                f"{workers} ranks at {bw * 8 / 1e6:g} Mbit/s: per-message latency measured in the "
                f"run ({run_alpha * 1e6:.0f} us) exceeds the calibrated one "
                f"({plat * 1e6:.0f} us); predicting with the measured one"
            )
            plat = run_alpha
        from ..scenario.model import GridPoint

        for c in compressors:
            label = c["label"]
            per_rank = [r["cases"][label] for r in results]
            times = [max(ts) for ts in zip(*[pr["iteration_s"] for pr in per_rank], strict=True)]
            measured = float(statistics.median(times))
            point = scenario.sim_point(
                label, GridPoint(workers=workers, bandwidth_bytes_per_s=pbw, latency_s=plat)
            )
            comp_s = statistics.fmean(pr["compress_s"] for pr in per_rank)
            dec_s = statistics.fmean(pr["decompress_s"] for pr in per_rank)
            fwd_s = statistics.fmean(statistics.median(pr["forward_s"]) for pr in per_rank)
            local_s = statistics.fmean(
                statistics.median(pr["local_iteration_s"]) for pr in per_rank
            )
            # compute as it runs inside DDP on this host now (DDP's own overheads, the CPU
            # shared as it is): the profile's compute scaled to the same iterations run
            # without communication (no_sync)
            scale = local_s / compute if compute > 0 else 1.0
            prof = with_compute_scale(profile, scale)
            prof = with_measured_compression(prof, label, comp_s, dec_s, workers)
            try:
                blocking = point.ddp.model_copy(update={"compression_blocks_backward": True})
                beside = point.ddp.model_copy(update={"compression_blocks_backward": False})
                predicted = _predict(prof, point.model_copy(update={"ddp": blocking}))
                overlapped = _predict(prof, point.model_copy(update={"ddp": beside}))
            except ImportError as e:  # the simulator is not installed in this build
                notes.append(f"no prediction: {e}")
                predicted = overlapped = None
            err = None if predicted is None else (predicted - measured) / measured
            cases.append(
                EmulateCase(
                    compressor=label, workers=workers, bandwidth_bytes_per_s=bw,
                    measured_iteration_s=measured, predicted_iteration_s=predicted, error=err,
                    predicted_bandwidth_bytes_per_s=pbw, predicted_latency_s=plat,
                    predicted_overlapped_s=overlapped, compute_s=compute * scale,
                    compress_s=comp_s, decompress_s=dec_s, forward_s=fwd_s,
                    sent_bytes=statistics.fmean(pr["sent_bytes"] for pr in per_rank),
                    iteration_s=times,
                )  # fmt: skip
            )
            say(
                f"  {label}: measured {measured:.3f} s"
                + ("" if predicted is None else f", predicted {predicted:.3f} s ({err:+.1%})")
            )
    report = EmulateReport(
        scenario=scenario.name, model=scenario.model.name, mode=mode, netem=caps.netem,
        notes=notes, calibration=None if cal is None else json.loads(cal.model_dump_json()),
        cases=cases,
    )  # fmt: skip
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "emulate.json", report.to_json())
    return report


def _calibration(scenario, given, calibrate, mode, points, say) -> Calibration | None:
    if isinstance(given, Calibration):
        return given
    if given is not None:
        return load_calibration(given)
    path = getattr(scenario.cluster, "calibration", None)
    if path:
        return load_calibration(path)
    if not calibrate:
        return None
    from .calibrate import calibrate_links

    say("calibrating the links (ping-pong, 2 ranks)")
    return calibrate_links(sorted({p[1] for p in points}), repeats=3, progress=say)


def _run_point(
    workers: int, rate: float | None, delay_s: float, spec: dict, timeout_s: float
) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="rsdgc-emu-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        argv = python_argv("rsdgc_sim.emulate.worker", str(path))
        if rate is None:
            return launch(argv, workers, timeout_s=timeout_s, workdir=Path(tmp) / "ranks")
        net = Network(workers, rate_bytes_per_s=rate, delay_s=delay_s)
        try:
            net.open()
            return launch(argv, workers, network=net, timeout_s=timeout_s,
                          workdir=Path(tmp) / "ranks")  # fmt: skip
        finally:
            net.close()
