"""The Python API of a study: scenario -> profile (measured or cached) -> simulated runs.

>>> from rsdgc_sim.scenario import load_scenario
>>> from rsdgc_sim.run import run_scenario
>>> result = run_scenario(load_scenario())            # doctest: +SKIP
>>> result.runs[0]["iteration_s"]                     # doctest: +SKIP

Nothing here writes files except the profile cache (``ProfileStore``); writing results is
``rsdgc_sim.report.write_results``.
"""

from __future__ import annotations

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
    }


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


def _warn_spread(prof: Profile, progress: Progress | None, why: str) -> None:
    """Say again what was unsteady when a reused profile was measured."""
    from .report.profile_table import profile_warnings

    if progress:
        for w in profile_warnings(prof):
            progress(f"warning: {w} ({why})")


def profile_from_file(scenario: Scenario, path: str, progress: Progress | None = None) -> Profile:
    """A profile measured elsewhere, checked against the scenario (model, input, batch,
    compressors and their parameters); torch-free."""
    from .profile.match import check_matches
    from .profile.store import load_profile

    prof = load_profile(path)
    check_matches(scenario, prof, _profile_compressors(scenario), str(path))
    if progress:
        where = ", ".join(sorted({d.device_name or d.device for d in prof.devices}))
        progress(f"profile from {path}: {where}" + (f" on {prof.host}" if prof.host else "")
                 + (f", torch {prof.torch_version}" if prof.torch_version else ""))
    return prof


def profile_scenario(
    scenario: Scenario,
    store: ProfileStore | None = None,
    refresh: bool = False,
    progress: Progress | None = None,
    profile_file: str | None = None,
) -> tuple[Profile, bool]:
    """The scenario's profile and whether it was reused (from the cache or a file).

    ``profile_file`` (or the scenario's ``profile.file``): simulate that profile, measured
    elsewhere, after checking it matches. ``store=None`` uses the default cache folder;
    ``refresh`` measures again even if cached.
    """
    if (path := profile_file or scenario.profile.file) is not None:
        prof = profile_from_file(scenario, str(path), progress)
        _warn_spread(prof, progress, "from the file")
        return prof, True
    if scenario.device_model() is not None:
        return estimated_profile(scenario, store, refresh, progress)
    from .models.footprint import check_fits
    from .profile.devices import resolve_devices
    from .profile.measure import measure_profile

    say = progress or (lambda _m: None)
    store = store if store is not None else ProfileStore()
    devices = resolve_devices(scenario.device)
    key = profile_key(profile_inputs(scenario, devices))
    if not refresh and (cached := store.get(key, on_invalid=say)) is not None:
        say(f"profile {key} from the cache ({store.path(key)})")
        _warn_spread(cached, say, "cached; --refresh-profile measures again")
        return cached, True
    # one run measures a key at a time: another that misses it meanwhile waits here, then
    # finds this one's profile (the lock dies with its process, crash included)
    with store.lock(key, on_wait=say):
        # measured by another run while this one waited? (an invalid entry was reported above)
        if not refresh and (cached := store.get(key, on_invalid=lambda _m: None)) is not None:
            say(f"profile {key} from the cache ({store.path(key)}), measured by another run")
            _warn_spread(cached, say, "measured by another run")
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
        prof = prof.model_copy(update={"key": key, "compressor_specs": specs})
        store.put(prof)
    return prof, False


#: the fields of one run in results.json / results.csv, in order
RUN_FIELDS = [
    "compressor", "workers", "topology", "collective", "fidelity", "exact", "bandwidth_bytes_per_s",
    "latency_s", "iteration_s", "compute_s", "compression_s", "communication_s",
    "exposed_communication_s", "bytes_sent_per_worker", "bytes_transmitted_per_worker",
    "compression_ratio",
    "speedup_vs_dense", "scaling_efficiency", "samples_per_s",
]


@dataclass
class StudyResult:
    """What `rsdgc-sim run` reports: the resolved scenario, the profile used, one row per
    compressor x grid point, and the simulator's results (for traces)."""

    scenario: Scenario
    profile: Profile
    runs: list[dict[str, Any]]
    sims: list[Any] = field(default_factory=list, repr=False)
    profile_cached: bool = False

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
        return {
            "scenario": self.scenario.model_dump(mode="json"),
            "profile": self.profile_summary(),
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
    * ``bytes_sent_per_worker``: the payload a worker contributes per iteration;
      ``bytes_transmitted_per_worker``: what leaves its NIC (a ring all-gather forwards the
      other p - 1 payloads too);
    * ``scaling_efficiency``: dense iteration time at one worker (same links) / this one:
      the weak-scaling efficiency, since the batch is per worker;
    * ``samples_per_s``: workers x batch_size / iteration_s.

    With ``cluster.calibration`` the simulated links are the calibrated ones (rows keep the
    nominal bandwidth and latency of the grid point).
    """
    from .sim import simulate
    from .units import format_bandwidth, format_duration

    say = progress or (lambda _m: None)
    labels = [c.key for c in scenario.compressors]
    dense = scenario.dense_label()
    sim_point = scenario.sim_point
    if scenario.cluster.calibration:  # the links as calibrated, not as nominal
        from .emulate.calibration import calibrated_point, load_calibration

        cal = load_calibration(scenario.cluster.calibration)

        def sim_point(label, point):
            return calibrated_point(scenario.sim_point(label, point), cal)

    rows: list[dict[str, Any]] = []
    sims: list[Any] = []
    dense_cache: dict[tuple[int, float, float], float] = {}

    def dense_time(workers: int, point) -> float:
        k = (workers, point.bandwidth_bytes_per_s, point.latency_s)
        if k not in dense_cache:
            pt = sim_point(dense, point.model_copy(update={"workers": workers}))
            dense_cache[k] = simulate(profile, pt).iteration_s
        return dense_cache[k]

    grid = scenario.grid()
    for i, point in enumerate(grid):
        say(f"simulating point {i + 1}/{len(grid)}: {point.workers} workers, "
            f"{format_bandwidth(point.bandwidth_bytes_per_s)}, "
            f"{format_duration(point.latency_s)} latency")
        for label in labels:
            res = simulate(profile, sim_point(label, point), trace=trace)
            if label == dense:
                dense_cache[(point.workers, point.bandwidth_bytes_per_s, point.latency_s)] = res.iteration_s
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
                "compute_s": res.compute_s,
                "compression_s": res.compression_s,
                "communication_s": res.communication_s,
                "exposed_communication_s": res.exposed_communication_s,
                "bytes_sent_per_worker": sent,
                "bytes_transmitted_per_worker": res.bytes_transmitted_per_worker,
                "compression_ratio": profile.dense_bytes / sent if sent else None,
                "speedup_vs_dense": dense_time(point.workers, point) / res.iteration_s,
                "scaling_efficiency": dense_time(1, point) / res.iteration_s,
                "samples_per_s": point.workers * scenario.batch_size / res.iteration_s,
            })
    return rows, sims


def run_scenario(
    scenario: Scenario,
    store: ProfileStore | None = None,
    refresh: bool = False,
    trace: bool = False,
    progress: Progress | None = None,
    profile_file: str | None = None,
) -> StudyResult:
    """Profile (or reuse the cached profile, or read ``profile_file``), then simulate every
    compressor x grid point."""
    profile, cached = profile_scenario(scenario, store=store, refresh=refresh, progress=progress,
                                       profile_file=profile_file)
    rows, sims = simulate_scenario(scenario, profile, trace=trace, progress=progress)
    return StudyResult(scenario=scenario, profile=profile, runs=rows, sims=sims, profile_cached=cached)


def train_scenario(scenario: Scenario, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Virtual-worker training of every compressor at every ``train.workers`` count on the
    scenario's first device; one row per run with ``accuracy_delta_vs_dense`` (this final
    accuracy minus dense's at the same worker count, when the scenario has ``none``)."""
    from .models.footprint import check_fits
    from .profile.devices import resolve_devices
    from .train import load_dataset, train_virtual

    tr = scenario.train
    m = scenario.model
    check_fits(m.name, m.num_classes, m.input_size, scenario.batch_size,
               states=max(tr.workers), what="training")
    device = resolve_devices(scenario.device)[0]
    data = load_dataset(tr.dataset, m.num_classes, m.input_size, tr.samples, scenario.seed)
    rows: list[dict[str, Any]] = []
    for workers in tr.workers:
        block = []
        for label, spec in scenario.compressor_specs().items():
            res = train_virtual(
                m.name, m.num_classes, m.input_size, spec, workers, scenario.batch_size, tr.steps,
                data, lr=tr.lr, momentum=tr.momentum, test_fraction=tr.test_fraction,
                eval_every=tr.eval_every, seed=scenario.seed, device=device, label=label,
                progress=progress,
            )
            if progress:
                progress(f"{label}, {workers} workers: test accuracy {res.final_accuracy:.3f}")
            block.append(res.to_dict())
        dense = next((r for r in block if r["compressor"] == scenario.dense_label()), None)
        for r in block:
            r["accuracy_delta_vs_dense"] = None if dense is None else r["final_accuracy"] - dense["final_accuracy"]
        rows += block
    return rows
