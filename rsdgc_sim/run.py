"""The Python API of a study: scenario -> profile (measured or cached) -> simulated runs.

>>> from rsdgc_sim.scenario import load_scenario
>>> from rsdgc_sim.run import run_scenario
>>> result = run_scenario(load_scenario())            # doctest: +SKIP
>>> result.runs[0]["iteration_s"]                     # doctest: +SKIP

Nothing here writes files except the profile cache (``ProfileStore``); writing results is
``rsdgc_sim.report.write_results``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .profile.schema import Profile
from .profile.store import ProfileStore, profile_key
from .scenario import Scenario

Progress = Callable[[str], None]

def _profile_compressors(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The scenario's compressors plus the dense reference (speedup_vs_dense,
    scaling_efficiency), which every profile carries."""
    specs = scenario.compressor_specs()
    specs.setdefault(scenario.dense_label(), {"name": "none"})
    return specs


def profile_inputs(scenario: Scenario, devices: list[str]) -> dict[str, Any]:
    """Everything a scenario's profile depends on (the cache key's content)."""
    import torch

    from .compress.neighborhood import compile_mode
    from .profile.devices import device_name

    return {
        "model": scenario.model.model_dump(),
        "batch_size": scenario.batch_size,
        "devices": devices,
        "device_names": [device_name(d) for d in devices],
        "compressors": _profile_compressors(scenario),
        "warmup": scenario.profile.warmup,
        "iterations": scenario.profile.iterations,
        "seed": scenario.seed,
        "torch": torch.__version__,
        # torch.compile'd or eager NSI scores (after a failed compile: eager, and the reason)
        "nsi_compile": compile_mode(),
        # compression is measured per DDP bucket
        "buckets": profile_buckets(scenario),
    }


def profile_buckets(scenario: Scenario) -> tuple[int, int]:
    """DDP's first and later bucket caps in bytes, the buckets a profile is measured in."""
    return int(scenario.ddp.first_bucket), int(scenario.ddp.bucket_cap)


def estimated_profile(scenario: Scenario, store: ProfileStore | None = None,
                      refresh: bool = False, progress: Progress | None = None
                      ) -> tuple[Profile, bool]:
    """The profile of a device model (``device: {model: H100-SXM}``): times estimated by a
    roofline from the model's FLOPs and bytes (counted on the meta device: no memory, no GPU),
    cached like a measured one, and whether it came from the cache."""
    import torch

    from .compress.neighborhood import compile_mode
    from .profile.estimate import COST_MODEL_VERSION, estimate_profile

    say = progress or (lambda _m: None)
    store = store if store is not None else ProfileStore()
    dm = scenario.device_model()
    specs = _profile_compressors(scenario)
    key = profile_key({
        "model": scenario.model.model_dump(), "batch_size": scenario.batch_size,
        "device_model": dm.model_dump(mode="json"), "compressors": specs,
        "seed": scenario.seed, "cost_model": COST_MODEL_VERSION, "torch": torch.__version__,
        "nsi_compile": compile_mode()})
    if not refresh and (cached := store.get(key, on_invalid=say)) is not None:
        say(f"estimated profile {key} from the cache ({store.path(key)})")
        return cached, True
    m = scenario.model
    say(f"estimating {m.name} (batch {scenario.batch_size}) on {dm.name} (a device model)")
    prof = estimate_profile(m.name, m.num_classes, m.input_size, scenario.batch_size, specs, dm,
                            seed=scenario.seed, progress=say)
    prof = prof.model_copy(update={"key": key, "compressor_specs": specs})
    store.put(prof)
    return prof, False


#: how a user keeps an unstable profile (said wherever one is measured again)
PIN_HINT = "--pin-profile or `profile: {pin: true}` reuses it as it is"

#: (key, created) of the profiles this process measured: reused here even when unstable
#: (measured again seconds later on the same machine, it would be no steadier)
_MEASURED_HERE: set[tuple[str, str]] = set()


def _measured_here(prof: Profile) -> bool:
    return (prof.key, prof.created) in _MEASURED_HERE and prof.settings.get("pid") == os.getpid()


def _unstable_text(prof: Profile) -> str:
    from .profile.quality import unstable_quantities

    return "; ".join(map(str, unstable_quantities(prof)))


def _say_reused(prof: Profile, say: Progress, where: str, why: str) -> None:
    """Say where the reused ``prof`` comes from, who measured it (host, pid, when, load,
    torch threads, discarded samples) and how stable it is, then warn about a busy machine
    and an unstable profile (``why``: why it is reused all the same)."""
    from .profile.quality import busy_warning, provenance_text, quality_text

    say(f"profile {prof.key or '(no key)'} {where}")
    say(f"  {provenance_text(prof)}; {quality_text(prof)}")
    if busy := busy_warning(prof):
        say(f"warning: {busy}")
    if unstable := _unstable_text(prof):
        say(f"warning: profile {prof.key or '(no key)'} is unstable ({unstable}) and {why}: "
            f"reused as it is, its times are uncertain")


def _reuse_cached(prof: Profile, say: Progress, where: str, pinned: bool) -> bool:
    """Whether the cached ``prof`` is reused, said either way: a stable one is (with who
    measured it); an unstable one only when pinned or measured by this process, else one
    line says it is measured again, what is unstable and how to pin."""
    unstable = _unstable_text(prof)
    if unstable and not pinned and not _measured_here(prof):
        say(f"note: cached profile {prof.key} is unstable ({unstable}): measuring it again "
            f"({PIN_HINT})")
        return False
    why = ("pinned (--pin-profile or profile.pin)" if pinned
           else "was measured by this process moments ago")
    _say_reused(prof, say, where, why)
    return True


def profile_from_file(scenario: Scenario, path: str, progress: Progress | None = None) -> Profile:
    """A profile measured elsewhere, checked against the scenario (model, input, batch,
    compressors and their parameters), said with who measured it and how stable it is (an
    unstable one is warned about: it cannot be measured again); torch-free."""
    from .profile.match import check_matches
    from .profile.store import load_profile

    prof = load_profile(path)
    check_matches(scenario, prof, _profile_compressors(scenario), str(path))
    if progress:
        where = ", ".join(sorted({d.device_name or d.device for d in prof.devices}))
        _say_reused(prof, progress, f"from {path}: {where}"
                    + (f", torch {prof.torch_version}" if prof.torch_version else ""),
                    "came from a file, so it cannot be measured again here")
    return prof


def profile_scenario(
    scenario: Scenario,
    store: ProfileStore | None = None,
    refresh: bool = False,
    progress: Progress | None = None,
    profile_file: str | None = None,
    pin: bool = False,
) -> tuple[Profile, bool]:
    """The scenario's profile and whether it was reused (from the cache or a file).

    ``profile_file`` (or the scenario's ``profile.file``): simulate that profile, measured
    elsewhere, after checking it matches. ``store=None`` uses the default cache folder;
    ``refresh`` measures again even if cached.

    A cached profile is reused, said with who measured it and its quality
    (:mod:`rsdgc_sim.profile.quality`), unless it is *unstable* (a spread above its
    target): then it is measured again, and one line says why, unless ``pin`` (or the
    scenario's ``profile.pin``) keeps it, with a warning. One this process measured is
    reused as it is; so is one another process measured while this one waited for it.
    A profile file is never measured again (only warned about); estimates have no spread.
    Pinning is not part of the cache key. The measuring process's pid is recorded in
    ``settings["pid"]``.
    """
    if (path := profile_file or scenario.profile.file) is not None:
        return profile_from_file(scenario, str(path), progress), True
    if scenario.device_model() is not None:
        return estimated_profile(scenario, store, refresh, progress)
    from .models.footprint import check_fits
    from .profile.devices import resolve_devices
    from .profile.measure import measure_profile
    from .profile.quality import unstable_quantities

    say = progress or (lambda _m: None)
    pinned = pin or scenario.profile.pin
    store = store if store is not None else ProfileStore()
    devices = resolve_devices(scenario.device)
    key = profile_key(profile_inputs(scenario, devices))
    seen = None if refresh else store.get(key, on_invalid=say)
    if seen is not None and _reuse_cached(seen, say, f"from the cache ({store.path(key)})",
                                          pinned):
        return seen, True
    # one run measures a key at a time: another that misses it meanwhile waits here, then
    # finds this one's profile (the lock dies with its process, crash included)
    with store.lock(key, on_wait=say):
        # measured by another run while this one waited? (an invalid entry was reported
        # above); reused even if unstable: measured just now, again it would be no steadier
        if not refresh and (cached := store.get(key, on_invalid=lambda _m: None)) is not None:
            if cached != seen:
                _say_reused(cached, say, f"from the cache ({store.path(key)}), measured by "
                            f"another run while this one waited",
                            "was measured by another run just now")
                return cached, True
        specs = _profile_compressors(scenario)
        m = scenario.model
        check_fits(m.name, m.num_classes, m.input_size, scenario.batch_size, states=2 * len(specs))
        say(f"profiling {m.name} (batch {scenario.batch_size}) on {', '.join(devices)}")
        prof = measure_profile(
            m.name, m.num_classes, m.input_size, scenario.batch_size, devices, specs,
            warmup=scenario.profile.warmup,
            min_iterations=scenario.profile.iterations,
            seed=scenario.seed,
            progress=say,
        )
        # a compile that failed while measuring made this an eager profile: file it as one
        key = profile_key(profile_inputs(scenario, devices))
        prof = prof.model_copy(update={"key": key, "compressor_specs": specs,
                                       "settings": {**prof.settings, "pid": os.getpid()}})
        store.put(prof)
        _MEASURED_HERE.add((prof.key, prof.created))
    if unstable := unstable_quantities(prof):
        said = "; ".join(map(str, unstable))
        say(f"note: profile {key} is unstable ({said}): "
            + ("pinned, so the next run reuses it" if pinned else
               f"the next run measures it again ({PIN_HINT})"))
    return prof, False


#: the fields of one run in results.json / results.csv, in order
RUN_FIELDS = [
    "compressor", "workers", "topology", "collective", "fidelity", "exact", "bandwidth_bytes_per_s",
    "latency_s", "iteration_s", "iteration_s_low", "iteration_s_high", "compute_s",
    "compression_s", "communication_s",
    "exposed_communication_s", "bytes_sent_per_worker", "bytes_transmitted_per_worker",
    "compression_ratio",
    "speedup_vs_dense", "speedup_vs_dense_low", "speedup_vs_dense_high", "scaling_efficiency",
    "samples_per_s",
]


#: a study traces its iterations (trace.json) only up to this many points
TRACE_POINTS = 64

#: the layout of results.json (``format``; a file of another one is refused with its version)
RESULTS_FORMAT = 2


@dataclass
class StudyResult:
    """What `rsdgc-sim run` reports: the resolved scenario, the profile used (the first
    variant's, with a sweep), one row per compressor x point, and the simulator's results
    (for traces: only when every point was simulated here, with traces).

    * ``axes``: dotted scenario path -> its values, for every axis with more than one value
      (the sweep's paths, then ``cluster.workers``, ``cluster.bandwidth``, ``cluster.latency``);
      each row's ``point`` gives every axis's value (single-valued ones too);
    * ``points_computed`` / ``points_reused``: points simulated now / found in the point store;
    * ``profiles_measured`` / ``profiles_reused``: distinct profiles measured (or estimated)
      now / taken from the cache or a file.
    """

    scenario: Scenario
    profile: Profile
    runs: list[dict[str, Any]]
    sims: list[Any] = field(default_factory=list, repr=False)
    profile_cached: bool = False
    axes: dict[str, list[Any]] = field(default_factory=dict)
    points_computed: int = 0
    points_reused: int = 0
    profiles_measured: int = 0
    profiles_reused: int = 0

    def profile_summary(self) -> dict[str, Any]:
        p = self.profile
        return {
            "key": p.key,
            "model": p.model,
            "params": p.params,
            "batch_size": p.batch_size,
            "input_size": p.input_size,
            "devices": [{"device": d.device, "name": d.device_name, "forward_s": d.forward_s,
                         "backward_s": d.backward_s, "optimizer_s": d.optimizer_s,
                         "nsi_compile": d.nsi_compile, "estimated": d.estimated,
                         "source": d.source, "spread": d.spread} for d in p.devices],
            "torch_version": p.torch_version,
            "host": p.host,
            "machine": p.machine,
            "created": p.created,
            "settings": p.settings,
        }

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {
            "format": RESULTS_FORMAT,
            "version": __version__,
            "scenario": self.scenario.model_dump(mode="json"),
            "profile": self.profile_summary(),
            "axes": self.axes,
            "points_computed": self.points_computed,
            "points_reused": self.points_reused,
            "profiles_measured": self.profiles_measured,
            "profiles_reused": self.profiles_reused,
            "runs": self.runs,
        }


def simulate_scenario(
    scenario: Scenario,
    profile: Profile,
    trace: bool = False,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Simulate every compressor at every grid point; rows carry the derived metrics.

    * ``speedup_vs_dense``: the dense (``none``) iteration time at the same point / this one;
    * ``iteration_s_low`` / ``_high``: the least and greatest iteration time simulated with
      the profile at its median and at its lower and upper quartile
      (:mod:`rsdgc_sim.profile.quartiles`; a hook's scheduling can reorder work, so the
      time is not monotone in every duration); equal to ``iteration_s`` for a profile
      without spread (an estimate);
    * ``speedup_vs_dense_low`` / ``_high``: the least and greatest speedup over the same
      three profiles, dense and this one simulated with the same profile (they share its
      forward, backward and optimizer: a slow backward slows both); ``_high`` is None when
      this iteration takes no time under a quartile. Dense's own row: 1, under any profile;
    * ``bytes_sent_per_worker``: the payload a worker contributes per iteration;
      ``bytes_transmitted_per_worker``: what leaves its NIC (a ring all-gather forwards the
      other p - 1 payloads too);
    * ``scaling_efficiency``: dense iteration time at one worker (same links) / this one:
      the weak-scaling efficiency, since the batch is per worker;
    * ``samples_per_s``: workers x batch_size / iteration_s;
    * ``buckets``: per bucket its collective, bytes and simulated time, beside the closed
      form's time and formula where one exists (:func:`rsdgc_sim.sim.explain.bucket_formulas`).

    With ``cluster.calibration`` the simulated links are the calibrated ones (rows keep the
    nominal bandwidth and latency of the grid point), and backward that overlaps a
    collective is stretched by the calibrated interference factor.
    """
    from .profile.quartiles import has_spread, quartile_profiles
    from .sim import simulate
    from .sim.explain import bucket_formulas
    from .units import format_bandwidth, format_duration

    say = progress or (lambda _m: None)
    labels = [c.key for c in scenario.compressors]
    dense = scenario.dense_label()
    sim_point = scenario.sim_point
    if scenario.cluster.calibration:  # the links as calibrated, not as nominal
        from .calibration import calibrated_point, calibration_warnings, load_calibration

        cal = load_calibration(scenario.cluster.calibration)
        for warning in calibration_warnings(cal):  # another host, cores, version or format
            say(f"note: {warning}")

        def sim_point(label, point):
            return calibrated_point(scenario.sim_point(label, point), cal)

    rows: list[dict[str, Any]] = []
    sims: list[Any] = []
    # the profile at its median and, when it has a spread, at its quartiles
    variants = {"median": profile}
    if has_spread(profile):
        variants["low"], variants["high"] = quartile_profiles(profile)
    dense_cache: dict[tuple[str, int, float, float], float] = {}

    def dense_time(workers: int, point, variant: str = "median") -> float:
        k = (variant, workers, point.bandwidth_bytes_per_s, point.latency_s)
        if k not in dense_cache:
            pt = sim_point(dense, point.model_copy(update={"workers": workers}))
            dense_cache[k] = simulate(variants[variant], pt).iteration_s
        return dense_cache[k]

    def times(label: str, point, value: float) -> dict[str, float]:
        """The iteration time under each profile variant (``value``: the median's)."""
        out = {"median": value}
        for v in variants.keys() - {"median"}:
            out[v] = (dense_time(point.workers, point, v) if label == dense
                      else simulate(variants[v], sim_point(label, point)).iteration_s)
        return out

    grid = scenario.grid()
    for i, point in enumerate(grid):
        say(f"simulating point {i + 1}/{len(grid)}: {point.workers} workers, "
            f"{format_bandwidth(point.bandwidth_bytes_per_s)}, "
            f"{format_duration(point.latency_s)} latency")
        for label in labels:
            pt = sim_point(label, point)
            res = simulate(profile, pt, trace=trace)
            if label == dense:
                dense_cache[("median", point.workers, point.bandwidth_bytes_per_s,
                             point.latency_s)] = res.iteration_s
            ts = times(label, point, res.iteration_s)
            it_low, it_high = min(ts.values()), max(ts.values())
            speedup = dense_time(point.workers, point) / res.iteration_s
            # dense and this one under the same profile variant: they share its compute
            sps = [dense_time(point.workers, point, v) / t if t > 0 else None
                   for v, t in ts.items()]
            # None: unbounded (this run takes no time at all under a quartile)
            sp_low = min([speedup, *(x for x in sps if x is not None)])
            sp_high = None if None in sps else max([speedup, *sps])
            sims.append(res)
            sent = res.bytes_sent_per_worker
            rows.append({
                "compressor": label,
                "workers": point.workers,
                "topology": scenario.cluster.topology.name,
                "collective": res.collective,
                "fidelity": res.fidelity,
                "exact": res.exact,
                "bandwidth_bytes_per_s": point.bandwidth_bytes_per_s,
                "latency_s": point.latency_s,
                "iteration_s": res.iteration_s,
                "iteration_s_low": it_low,
                "iteration_s_high": it_high,
                "compute_s": res.compute_s,
                "compression_s": res.compression_s,
                "communication_s": res.communication_s,
                "exposed_communication_s": res.exposed_communication_s,
                "bytes_sent_per_worker": sent,
                "bytes_transmitted_per_worker": res.bytes_transmitted_per_worker,
                "compression_ratio": profile.dense_bytes / sent if sent else None,
                "speedup_vs_dense": speedup,
                "speedup_vs_dense_low": sp_low,
                "speedup_vs_dense_high": sp_high,
                "scaling_efficiency": dense_time(1, point) / res.iteration_s,
                "samples_per_s": point.workers * scenario.batch_size / res.iteration_s,
                # each bucket's collective: simulated, and the closed form where one exists
                "buckets": bucket_formulas(res, pt),
            })
    return rows, sims


def run_scenario(
    scenario: Scenario,
    store: ProfileStore | None = None,
    refresh: bool = False,
    trace: bool = False,
    progress: Progress | None = None,
    profile_file: str | None = None,
    points_dir: str | None = None,
    jobs: int = 1,
    dask: str | None = None,
    fresh: bool = False,
    pin: bool = False,
) -> StudyResult:
    """Profile every variant of the sweep (profiles shared through the cache), then
    simulate every compressor x point: serially, in ``jobs`` local processes, or on the
    Dask scheduler at ``dask``. ``trace``: keep the simulator's results with their spans
    (``StudyResult.sims``, for trace.json) when every point is simulated here, serially,
    and there are at most ``TRACE_POINTS``.

    ``points_dir`` (``OUT/points``): the point store; every finished point is stored there
    as it completes and found there by the next run (an interrupted study resumes, an
    unchanged one computes nothing); ``fresh`` simulates every point again and overwrites
    them. Without it, every point is computed. Rows come in
    sweep order (the first path slowest), then workers, bandwidth, latency, then compressor.
    ``refresh``, ``pin``, ``profile_file``: as for :func:`profile_scenario`.
    """
    from .study.execute import PointTask, run_points
    from .study.points import PointStore, point_key, profile_identity
    from .study.sweep import GRID_AXES

    say = progress or (lambda _m: None)
    variants = scenario.variants()
    # one profile per distinct set of what profiles depend on; the cache shares it further
    profiles: dict[str, Profile] = {}
    by_inputs: dict[str, str] = {}
    variant_profile: list[str] = []
    measured = reused = 0
    for v in variants:
        inputs = v.scenario.model_dump_json(
            include={"model", "batch_size", "device", "seed", "profile", "compressors"})
        if inputs not in by_inputs:
            prof, cached = profile_scenario(v.scenario, store=store, refresh=refresh,
                                            progress=progress, profile_file=profile_file,
                                            pin=pin)
            pid = profile_identity(prof)
            profiles.setdefault(pid, prof)
            by_inputs[inputs] = pid
            reused, measured = reused + cached, measured + (not cached)
        variant_profile.append(by_inputs[inputs])
    if len(variants) > 1:
        say(f"profiles: {measured} measured, {reused} reused (cache or file), "
            f"for {len(variants)} sweep variants")

    tasks: list[PointTask] = []
    for v, pid in zip(variants, variant_profile, strict=True):
        cl = v.scenario.cluster
        for gp in v.scenario.grid():
            one = v.scenario.model_copy(update={"cluster": cl.model_copy(update={
                "workers": [gp.workers], "bandwidth": [gp.bandwidth_bytes_per_s],
                "latency": [gp.latency_s]})})
            point = {**v.values, **{path: getattr(gp, f) for path, f in GRID_AXES.items()}}
            tasks.append(PointTask(index=len(tasks), key=point_key(one, pid), point=point,
                                   scenario=one, profile_id=pid))
    axes: dict[str, list[Any]] = {}
    for path in [*scenario.sweep, *GRID_AXES]:
        values: list[Any] = []
        for t in tasks:
            if t.point[path] not in values:
                values.append(t.point[path])
        if len(values) > 1:
            axes[path] = values

    point_store = PointStore(points_dir) if points_dir is not None else None
    found: dict[int, list[dict[str, Any]]] = {}
    if point_store is not None and not fresh:
        for t in tasks:
            if (rows := point_store.get(t.key)) is not None:
                found[t.index] = rows
    pending = [t for t in tasks if t.index not in found]
    if trace and len(pending) > TRACE_POINTS:
        say(f"warning: no traces: {len(pending)} points to simulate, more than "
            f"{TRACE_POINTS} (trace.json would be huge); trace a smaller grid")
        trace = False
    where = (f"on the Dask cluster at {dask}" if dask else
             f"in {jobs} processes" if jobs > 1 and len(pending) > 1 else "here")
    say(f"points: {len(tasks)}, {len(found)} reused from {points_dir}, {len(pending)} to "
        f"simulate {where}" if point_store is not None else
        f"points: {len(tasks)} to simulate {where}")

    from .progress import Eta, Transient

    done_rows: dict[int, list[dict[str, Any]]] = {}
    done_sims: dict[int, list[Any]] = {}
    eta = Eta(len(pending), every_s=0.25)

    def on_done(task: PointTask, rows: list[dict[str, Any]], sims: list[Any]) -> None:
        if point_store is not None:
            point_store.put(task.key, task.point, rows)
        done_rows[task.index] = rows
        done_sims[task.index] = sims
        n = len(done_rows)
        if eta.due() or n == len(pending):
            say(Transient(_points_bar(n, len(pending), eta)))

    try:
        run_points(pending, profiles, on_done, jobs=jobs, dask=dask, trace=trace)
    except KeyboardInterrupt:
        raise StudyInterrupted(len(done_rows), len(pending), points_dir) from None

    runs: list[dict[str, Any]] = []
    sims: list[Any] = []
    for t in tasks:
        rows = found.get(t.index) or done_rows[t.index]
        runs += [{**r, "point": dict(t.point)} for r in rows]
        sims += done_sims.get(t.index, [])
    first = profiles[variant_profile[0]]
    return StudyResult(
        scenario=scenario, profile=first, runs=runs,
        sims=sims if len(sims) == len(runs) else [],
        profile_cached=measured == 0, axes=axes, points_computed=len(done_rows),
        points_reused=len(found), profiles_measured=measured, profiles_reused=reused)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: ``done`` of ``total`` points were finished (and stored in
    ``points_dir``, when there is one)."""

    def __init__(self, done: int, total: int, points_dir: str | None):
        self.done, self.total, self.points_dir = done, total, points_dir
        kept = (f"; they are kept in {points_dir}: the same command resumes" if points_dir
                else "")
        super().__init__(f"interrupted after {done}/{total} points{kept}")


def _points_bar(done: int, total: int, eta, width: int = 24) -> str:
    """``points ━━━━━━━━━━━━╺━━━━━━━━━━━ 500/1000, 310/s, ~2 s left``."""
    filled = int(width * done / total) if total else width
    bar = "━" * filled + ("╺" if filled < width else "") + "─" * max(0, width - filled - 1)
    elapsed = eta.elapsed_s()
    per_s = done / elapsed if elapsed > 0 else 0.0
    rate = f"{per_s:.0f}/s" if per_s >= 10 else f"{per_s:.2g}/s"
    return eta.update(done, rate).replace(f"{eta.count(done)}", f"points {bar} {eta.count(done)}", 1)


def train_scenario(scenario: Scenario, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Virtual-worker training of every compressor at every ``train.workers`` count on the
    scenario's first device; one row per run with ``accuracy_delta_vs_dense`` (this final
    accuracy minus dense's at the same worker count, when the scenario has ``none``)."""
    from .train.runs import train_compressors

    runs = train_compressors(scenario, scenario.train.workers, progress)
    rows: list[dict[str, Any]] = []
    for workers in scenario.train.workers:
        block = [r for (_, w), r in runs.items() if w == workers]
        dense = next((r for r in block if r["compressor"] == scenario.dense_label()), None)
        for r in block:
            r["accuracy_delta_vs_dense"] = None if dense is None else r["final_accuracy"] - dense["final_accuracy"]
        rows += block
    return rows
