"""``emulate``: real DDP training over emulated links, beside the simulator's prediction.

For each grid point of a scenario that fits the machine (workers, bandwidth), in order:

1. before anything runs, the calibration (:mod:`.calibrate`: given, the scenario's, or
   measured now) and a profile measured alone with the threads and cores of one rank
   (:mod:`.profile_alone`, or ``profile`` given: e.g. ``rsdgc-sim profile``'s);
2. one launch of N ranks (:mod:`.point`), each pinned to its cores, running every
   compressor of the scenario: warm-up, then timed DDP iterations through the hook;
3. per compressor, the measured iteration time (median and IQR over the timed iterations
   of the slowest rank), the *prediction* from step 1 alone and the *composition*: step 1's
   profile with its compute and compression totals replaced by the run's own
   (:mod:`.predict`), both as relative errors;
4. ``emulate.json`` (:mod:`.report`) rewritten atomically; a rerun with the same
   ``out_dir`` skips the points whose cases are there with the same configuration.

A crashed or hung rank stops the point's ranks, removes its namespaces and qdiscs and
raises an :class:`~rsdgc_sim.errors.EmulationError` naming the rank; the points measured
before it stay in ``emulate.json``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..calibration import Calibration, apply_calibration
from ..errors import ConfigError, EmulationError
from ..profile.store import load_profile
from ..stats import iqr
from .calibrate import calibration_notes, choose_calibration
from .cores import CorePlan, available_cores, core_plan
from .netns import capabilities, remove_stale
from .point import launch_point, train_spec
from .predict import (
    compose_from_run,
    compression_totals,
    compute_s,
    predict_before,
    run_latency_s,
)
from .profile_alone import measure_profile_alone
from .report import (
    EmulateCase,
    EmulateReport,
    load_cases,
    relative_error,
    write_report,
)

if TYPE_CHECKING:  # types only
    from ..profile.schema import Profile
    from ..scenario import Scenario

Progress = Callable[[str], None]


def fits_machine(workers: int, max_workers: int | None) -> bool:
    limit = max_workers if max_workers is not None else max(2, 2 * len(available_cores()))
    return 1 <= workers <= limit


def case_key(scenario: Scenario, compressor: dict, workers: int, bw: float, lat: float, *,
             iterations: int, warmup: int, threads: int, mode: str) -> dict:
    """Everything a measured case depends on: a rerun reuses a case only when equal."""
    return {
        "model": scenario.model.name, "num_classes": scenario.model.num_classes,
        "input_size": scenario.model.input_size, "batch_size": scenario.batch_size,
        "seed": scenario.seed, "compressor": compressor, "workers": workers,
        "bandwidth_bytes_per_s": bw, "latency_s": lat, "iterations": iterations,
        "warmup": warmup, "threads": threads, "mode": mode,
        "bucket_cap_bytes": scenario.ddp.bucket_cap,
        "first_bucket_bytes": scenario.ddp.first_bucket,
    }  # fmt: skip


def _points(scenario: Scenario, netem: bool, max_workers: int | None, notes: list[str]):
    points: list[tuple[int, float, float]] = []
    skipped = []
    lats = sorted(set(scenario.cluster.latency))
    if not netem and len(lats) > 1:
        notes.append(f"latency axis {lats} not emulated (no netem): one run per bandwidth")
    for gp in scenario.grid():
        # without netem the latency axis cannot be emulated: one run per (workers, bandwidth)
        key = (gp.workers, gp.bandwidth_bytes_per_s, gp.latency_s if netem else 0.0)
        if key in points:
            continue
        if not fits_machine(gp.workers, max_workers):
            skipped.append(gp.workers)
            continue
        points.append(key)
    if skipped:
        notes.append(f"skipped {sorted(set(skipped))} workers: more ranks than this machine holds")
    if not points:
        raise EmulationError("no grid point of the scenario fits this machine")
    return points


def emulate_scenario(
    scenario: Scenario,
    *,
    out_dir: str | Path | None = None,
    iterations: int = 10,
    warmup: int = 2,
    timeout_s: float = 600.0,
    calibration: Calibration | str | Path | None = None,
    calibrate: bool = True,
    profile: Profile | str | Path | None = None,
    max_workers: int | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
) -> EmulateReport:
    """Emulate every (compressor, workers, bandwidth) of ``scenario`` that fits the machine
    and compare with the simulator (module docstring). ``calibration``: a calibration (or
    its file); else the scenario's; else, with ``calibrate``, measured first; else nominal
    links and no interference. ``profile``: a Profile (or its file) to predict from; else
    measured alone before each thread count's first point. ``threads``: torch threads per
    rank (default: the cores divided among the ranks)."""
    say = progress or (lambda _m: None)
    if iterations < 1 or warmup < 0:
        raise ConfigError(f"iterations must be >= 1 and warmup >= 0, got {iterations}, {warmup}")
    notes: list[str] = []
    caps, mode = _link_mode(notes)
    points = _points(scenario, caps.netem, max_workers, notes)
    for n in notes:
        say(n)
    first = core_plan(min(p[0] for p in points), threads)
    cal = choose_calibration(scenario, calibration, calibrate, [p[1] for p in points],
                             first.threads, say)  # fmt: skip
    for n in calibration_notes(cal, mode):
        notes.append(n)
        say(n)
    report = EmulateReport(
        scenario=scenario.name, model=scenario.model.name, mode=mode, netem=caps.netem,
        notes=notes, calibration=None if cal is None else json.loads(cal.model_dump_json()),
        cases=[],
    )  # fmt: skip
    emulation = _Emulation(scenario, report, cal, _given_profile(profile), out_dir=out_dir,
                           iterations=iterations, warmup=warmup, timeout_s=timeout_s,
                           threads=threads, say=say)
    for workers, bw, lat in points:
        emulation.point(workers, bw, lat)
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _link_mode(notes: list[str]):
    """This machine's capabilities and how links are emulated: ``netns`` (network namespaces
    with tbf, stale ones removed first) or ``loopback`` (unshaped); what is missing goes to
    ``notes``."""
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
    return caps, mode


class _Emulation:
    """The grid points of one :func:`emulate_scenario` run, one at a time (:meth:`point`),
    into ``report`` (its notes and cases): the cases measured before (in ``out_dir``) are
    reused, the profiles measured alone are kept per thread count and cores."""

    def __init__(self, scenario: Scenario, report: EmulateReport, cal: Calibration | None,
                 given_profile: Profile | None, *,
                 out_dir: str | Path | None, iterations: int, warmup: int, timeout_s: float,
                 threads: int | None, say: Progress):
        self.scenario = scenario
        self.report = report
        self.cal = cal
        self.given_profile = given_profile
        self.out_dir = out_dir
        self.iterations, self.warmup, self.timeout_s = iterations, warmup, timeout_s
        self.threads = threads
        self.say = say
        self.compressors = [
            {"label": c.key, "name": c.name, "params": c.params} for c in scenario.compressors
        ]
        self.done = {json.dumps(c.key, sort_keys=True): c for c in load_cases(out_dir)}
        self.profiles: dict[tuple, object] = {}

    def point(self, workers: int, bw: float, lat: float) -> None:
        """Every compressor at one grid point: reused when all its cases were measured
        with the same configuration, else one launch of ``workers`` ranks, compared with
        the predictions; the report rewritten."""
        report, say, mode = self.report, self.say, self.report.mode
        plan = core_plan(workers, self.threads)
        keys = {c["label"]: case_key(self.scenario, c, workers, bw, lat, iterations=self.iterations,
                                     warmup=self.warmup, threads=plan.threads, mode=mode)
                for c in self.compressors}  # fmt: skip
        old = [self.done.get(json.dumps(k, sort_keys=True)) for k in keys.values()]
        if all(c is not None for c in old):
            say(f"{workers} ranks at {bw * 8 / 1e6:g} Mbit/s: already measured, skipped")
            report.cases.extend(old)
            return
        if plan.oversubscribed:
            note = (f"{workers} ranks x {plan.threads} threads on {plan.available} cores: "
                    "oversubscribed")
            if note not in report.notes:
                report.notes.append(note)
        prof = self._profile(plan)
        say(f"emulating {workers} ranks at {bw * 8 / 1e6:g} Mbit/s ({mode})")
        results = self._launch(workers, bw, lat, plan)
        new = _cases(self.scenario, self.compressors, keys, results, prof, self.cal, plan, workers,
                     bw, lat, report.notes, say)  # fmt: skip
        report.cases.extend(new)
        if self.out_dir is not None:
            write_report(report, self.out_dir)

    def _profile(self, plan: CorePlan) -> Profile:
        """The profile to predict from: the given one, else one measured alone with the
        plan's threads on its first rank's cores (once per threads and cores)."""
        if self.given_profile is not None:
            return self.given_profile
        pk = (plan.threads, tuple(plan.cpus[0]))
        if pk not in self.profiles:
            self.say(f"profiling alone with {plan.threads} thread(s) on cores {plan.cpus[0]}")
            self.profiles[pk] = measure_profile_alone(self.scenario, self.compressors, plan.threads,
                                                      plan.cpus[0], self.timeout_s)  # fmt: skip
        return self.profiles[pk]

    def _launch(self, workers: int, bw: float, lat: float, plan: CorePlan) -> list[dict[str, Any]]:
        """One launch of ``workers`` ranks running every compressor; the ranks' results. A
        failed launch keeps the cases measured before in the report and raises."""
        spec = train_spec(self.scenario, self.compressors, plan, warmup=self.warmup,
                          iterations=self.iterations, timeout_s=self.timeout_s)  # fmt: skip
        shaped = bw if self.report.mode == "netns" else None
        try:
            return launch_point(workers, shaped, lat, spec, self.timeout_s)
        except EmulationError as e:
            cases, out_dir = self.report.cases, self.out_dir
            if out_dir is not None and cases:
                write_report(self.report, out_dir)
            kept = f"; the {len(cases)} case(s) measured before are in emulate.json" \
                if out_dir is not None and cases else ""
            raise EmulationError(f"{workers} ranks at {bw * 8 / 1e6:g} Mbit/s: {e}{kept}") from None


def _given_profile(profile: Profile | str | Path | None) -> Profile | None:
    if profile is None:
        return None
    if isinstance(profile, str | Path):
        return load_profile(profile)
    return profile


def _mean_measured(per_rank: list[dict[str, Any]], key: str) -> float | None:
    """The mean over ranks of ``key``; None where a rank could not measure it."""
    xs = [pr[key] for pr in per_rank]
    return None if any(x is None for x in xs) else statistics.fmean(xs)


def _cases(scenario: Scenario, compressors: list[dict[str, Any]], keys: dict[str, dict],
           results: list[dict[str, Any]], prof: Profile, cal: Calibration | None, plan: CorePlan,
           workers: int, bw: float, lat: float, notes: list[str],
           say: Progress) -> list[EmulateCase]:
    link = apply_calibration(cal, bw, lat)
    # the composition's latency: the calibrated one, or the run's when larger (with more
    # ranks than cores a message also waits for its receiver to get a CPU)
    run_alpha = run_latency_s(results, workers)
    comp_link = link
    if run_alpha > link.latency_s:
        comp_link = dataclasses.replace(link, latency_s=run_alpha)
        notes.append(
            f"{workers} ranks at {bw * 8 / 1e6:g} Mbit/s: per-message latency measured in the "
            f"run ({run_alpha * 1e6:.0f} us) exceeds the calibrated one "
            f"({link.latency_s * 1e6:.0f} us); the composition uses the measured one"
        )
    out = []
    for c in compressors:
        label = c["label"]
        per_rank = [r["cases"][label] for r in results]
        times = [max(ts) for ts in zip(*[pr["iteration_s"] for pr in per_rank], strict=True)]
        measured = float(statistics.median(times))
        spread = iqr(times)
        comp_s = statistics.fmean(pr["compress_s"] for pr in per_rank)
        dec_measured = dec_s = _mean_measured(per_rank, "decompress_s")
        if dec_s is None:  # powersgd: not measurable around torch's hook; the profile's
            dec_s = compression_totals(prof, label, workers)[1]
            notes.append(f"{label}: decompression is not measurable around torch's PowerSGD "
                         f"hook (its callbacks block on the next all-reduce); the "
                         f"composition uses the profile's")
        local_s = statistics.fmean(statistics.median(pr["local_iteration_s"]) for pr in per_rank)
        predicted = predict_before(prof, scenario, label, workers, link)
        composed, run_compute = compose_from_run(
            prof, scenario, label, workers, comp_link, local_s=local_s,
            compress_s=comp_s, decompress_s=dec_s)  # fmt: skip
        overlapped, _ = compose_from_run(
            prof, scenario, label, workers, comp_link, local_s=local_s,
            compress_s=comp_s, decompress_s=dec_s, blocking=False)  # fmt: skip
        prof_c, prof_d = compression_totals(prof, label, workers)
        p_err = relative_error(predicted, measured)
        c_err = relative_error(composed, measured)
        case = EmulateCase(
            compressor=label, workers=workers, bandwidth_bytes_per_s=bw, latency_s=lat,
            measured_iteration_s=measured, measured_iqr_s=spread,
            predicted_iteration_s=predicted, prediction_error=p_err,
            composed_iteration_s=composed, composition_error=c_err,
            predicted_bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
            predicted_latency_s=link.latency_s,
            interference_factor=link.interference_factor, composed_overlapped_s=overlapped,
            profiled_compute_s=compute_s(prof), profiled_compress_s=prof_c,
            profiled_decompress_s=prof_d, compute_s=run_compute, compress_s=comp_s,
            decompress_s=dec_measured,
            forward_s=statistics.fmean(statistics.median(pr["forward_s"]) for pr in per_rank),
            sent_bytes=statistics.fmean(pr["sent_bytes"] for pr in per_rank),
            threads=plan.threads, cpus=plan.cpus, oversubscribed=plan.oversubscribed,
            spread_exceeds_error=spread / measured > abs(p_err), key=keys[label],
            iteration_s=times,
            compress_cpu_s=statistics.fmean(pr["compress_cpu_s"] for pr in per_rank),
            decompress_cpu_s=_mean_measured(per_rank, "decompress_cpu_s"),
            sync_overhead_s=link.sync_overhead_s,
        )  # fmt: skip
        out.append(case)
        say(f"  {label}: measured {measured:.3f} s (IQR {spread:.3f} s), predicted "
            f"{predicted:.3f} s ({p_err:+.1%}), composed {composed:.3f} s ({c_err:+.1%})")
    return out


__all__ = ["EmulateCase", "EmulateReport", "emulate_scenario", "fits_machine"]
