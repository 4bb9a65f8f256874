"""Time to accuracy: how many steps each compressor needs to reach ``train.target`` test
accuracy (virtual-worker training, :mod:`rsdgc_sim.train`), and how long those steps take on
the scenario's cluster (the simulator's iteration time at every grid point).

For compressor ``c`` at ``p`` workers and grid point ``g`` (bandwidth, latency)::

    steps_to_target(c, p)  = first evaluated step whose test accuracy >= target
    time_to_target_s(c, g) = steps_to_target(c, p) x iteration_s(c, g)

``iteration_s`` is the simulated steady-state iteration (the profile's compressed payloads),
so the two dense warm-up steps count at the compressed rate; the accuracy is evaluated every
``train.eval_every`` steps (default: 20 evaluations per run), so ``steps_to_target`` is
known to that resolution. Training uses as many virtual workers as the cluster has: the
global batch (workers x ``batch_size``), and so the accuracy reached per step, depends on
it. Neither number comes from the other: the simulator never sees the training run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import csv_bytes, json_bytes, write_files_atomic
from ..profile.store import ProfileStore
from ..report.tta_plot import plot_tta
from ..scenario import Scenario
from ..scenario.model import MAX_TRAIN_WORKERS
from .profiles import profile_scenario
from .simulate import simulate_scenario

#: the columns of ``tta.csv`` (``tta.json``'s rows have these keys)
TTA_FIELDS = [
    "compressor", "workers", "bandwidth_bytes_per_s", "latency_s", "target", "steps_to_target",
    "iteration_s", "time_to_target_s", "final_accuracy", "steps", "bytes_sent_per_worker",
]


@dataclass
class TtaResult:
    scenario: Scenario
    #: one row per compressor and grid point (:data:`TTA_FIELDS`)
    rows: list[dict[str, Any]]
    #: the training runs (``TrainResult.to_dict()``), with their accuracy histories
    runs: list[dict[str, Any]] = field(default_factory=list)
    profile_cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario.model_dump(mode="json"), "rows": self.rows,
                "runs": self.runs}


def steps_to_target(history: list[dict[str, float]], target: float) -> int | None:
    """The first evaluated step whose accuracy reaches ``target`` (None: never)."""
    for h in history:
        if h["accuracy"] >= target:
            return int(h["step"])
    return None


def tta_workers(scenario: Scenario) -> list[int]:
    """The worker counts to train with: the cluster's. An explicit ``train.workers`` that
    differs is an error (the global batch would not be the cluster's)."""
    cluster = list(scenario.cluster.workers)
    if "workers" in scenario.train.model_fields_set and list(scenario.train.workers) != cluster:
        raise ConfigError(
            f"train.workers {list(scenario.train.workers)} differs from cluster.workers {cluster}: "
            f"tta trains with as many virtual workers as the cluster has, because the global "
            f"batch (workers x batch_size) sets the accuracy reached per step; remove "
            f"train.workers or make it equal")
    if too_many := [w for w in cluster if w > MAX_TRAIN_WORKERS]:
        raise ConfigError(
            f"cluster.workers {too_many}: tta trains as many virtual workers as the cluster "
            f"has, at most {MAX_TRAIN_WORKERS} (train.workers' limit); for larger clusters "
            f"`rsdgc-sim run` gives the time per iteration, and `train` the accuracy at up to "
            f"{MAX_TRAIN_WORKERS} workers")
    return cluster


def check_tta(scenario: Scenario) -> None:
    """Everything `tta` needs from the scenario, checked before any work."""
    if scenario.train.target is None:
        raise ConfigError("train.target: set the test accuracy to reach, in (0, 1] (e.g. 0.8)")
    if getattr(scenario, "sweep", None):
        raise ConfigError("tta does not take a `sweep:` section; sweep with `rsdgc-sim run`")
    tta_workers(scenario)


def tta_scenario(
    scenario: Scenario,
    store: ProfileStore | None = None,
    progress: Callable[[str], None] | None = None,
    profile_file: str | None = None,
    checkpoint_dir: str | Path | None = None,
    refresh: bool = False,
    pin: bool = False,
) -> TtaResult:
    """Train every compressor at every cluster worker count, simulate every grid point, and
    join them (see the module docstring). ``checkpoint_dir``: training checkpoints, so that
    a killed run resumes (to the same result) when started again. ``refresh``, ``pin``,
    ``profile_file``: as for :func:`~rsdgc_sim.study.profiles.profile_scenario`."""
    from ..train.runs import train_compressors  # lazy: imports torch

    check_tta(scenario)
    tr = scenario.train
    target = float(tr.target)

    def describe(label: str, workers: int, res: dict[str, Any]) -> str:
        reached = steps_to_target(res["history"], target)
        return (f"{label}, {workers} workers: test accuracy {res['final_accuracy']:.3f}, "
                + (f"target {target:g} at step {reached}" if reached is not None
                   else f"target {target:g} not reached in {tr.steps} steps"))

    runs = train_compressors(scenario, tta_workers(scenario), progress,
                             eval_every=tr.eval_every or max(1, tr.steps // 20),
                             checkpoint_dir=checkpoint_dir, describe=describe)
    profile, cached = profile_scenario(scenario, store=store, progress=progress,
                                       profile_file=profile_file, refresh=refresh, pin=pin)
    sim_rows, _ = simulate_scenario(scenario, profile, progress=progress)
    rows = []
    for r in sim_rows:
        run = runs[(r["compressor"], r["workers"])]
        reached = steps_to_target(run["history"], target)
        rows.append({
            "compressor": r["compressor"],
            "workers": r["workers"],
            "bandwidth_bytes_per_s": r["bandwidth_bytes_per_s"],
            "latency_s": r["latency_s"],
            "target": target,
            "steps_to_target": reached,
            "iteration_s": r["iteration_s"],
            "time_to_target_s": None if reached is None else reached * r["iteration_s"],
            "final_accuracy": run["final_accuracy"],
            "steps": run["steps"],
            "bytes_sent_per_worker": run["bytes_sent_per_worker"],
        })
    return TtaResult(scenario=scenario, rows=rows, runs=list(runs.values()), profile_cached=cached)


def write_tta(result: TtaResult, out_dir: str | Path, plot: bool = True,
              log_time: bool | None = None) -> list[Path]:
    """``tta.json``, ``tta.csv`` and ``tta.png`` (accuracy against simulated wall-clock
    time; ``log_time`` as :func:`~rsdgc_sim.report.tta_plot.plot_tta` takes it), all or
    nothing: every file is made and every path checked before any is written."""
    out = Path(out_dir)
    files = {out / "tta.json": json_bytes(result.to_dict(), str(out / "tta.json")),
             out / "tta.csv": csv_bytes(result.rows, TTA_FIELDS)}
    if plot:
        files[out / "tta.png"] = plot_tta(result.to_dict(), log_time=log_time)
    return write_files_atomic(files)
