"""A scenario's training runs: every compressor at every worker count, with the data set,
device, hyper-parameters and DDP buckets the scenario gives (used by `train` and `tta`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import check_writable_file
from ..models.footprint import check_fits
from ..profile.devices import training_device
from .data import load_dataset
from .virtual import train_virtual

if TYPE_CHECKING:
    from ..scenario import Scenario

#: (label, workers, TrainResult as a dict) -> the line to say when a run ends
Describe = Callable[[str, int, dict[str, Any]], str]


def checkpoint_name(label: str, workers: int) -> str:
    """A file name for the checkpoint of ``label`` at ``workers`` workers."""
    return f"{re.sub(r'[^A-Za-z0-9._=-]+', '_', label)}-{workers}w.pt"


def _checkpoints(scenario: Scenario, worker_counts: Sequence[int],
                 checkpoint_dir: str | Path | None) -> dict[tuple[str, int], Path]:
    """Every run's checkpoint file, each checked writable (not a folder, its folder
    writable) before any run trains: a checkpoint replaced by a folder is one OutputError
    at the start, not a crash after the first run's minutes of training."""
    if checkpoint_dir is None:
        return {}

    out = {}
    for workers in worker_counts:
        for label in scenario.compressor_specs():
            path = Path(checkpoint_dir) / checkpoint_name(label, workers)
            out[(label, workers)] = check_writable_file(path, "checkpoint")
    return out


def train_compressors(
    scenario: Scenario, worker_counts: Sequence[int], progress=None, *, eval_every: int | None = None,
    checkpoint_dir: str | Path | None = None, describe: Describe | None = None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Train every compressor of ``scenario`` at every count in ``worker_counts``; returns
    ``{(label, workers): TrainResult.to_dict()}``. ``eval_every`` overrides
    ``train.eval_every``; ``checkpoint_dir`` keeps a resumable checkpoint per run."""
    tr, m = scenario.train, scenario.model
    checkpoints = _checkpoints(scenario, worker_counts, checkpoint_dir)
    check_fits(m.name, m.num_classes, m.input_size, scenario.batch_size,
               states=max(worker_counts), what="training")
    device = training_device(scenario.device)
    data = load_dataset(tr.dataset, m.num_classes, m.input_size, tr.samples, scenario.seed,
                        difficulty=tr.difficulty, data_dir=tr.data_dir, progress=progress)
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for workers in worker_counts:
        for label, spec in scenario.compressor_specs().items():
            ckpt = checkpoints.get((label, workers))
            res = train_virtual(
                m.name, m.num_classes, m.input_size, spec, workers, scenario.batch_size, tr.steps,
                data, lr=tr.lr, momentum=tr.momentum, test_fraction=tr.test_fraction,
                eval_every=tr.eval_every if eval_every is None else eval_every,
                seed=scenario.seed, device=device, label=label, progress=progress,
                first_bucket_bytes=scenario.ddp.first_bucket,
                bucket_cap_bytes=scenario.ddp.bucket_cap, checkpoint=ckpt,
            ).to_dict()
            if progress:
                progress(describe(label, workers, res) if describe else
                         f"{label}, {workers} workers: test accuracy {res['final_accuracy']:.3f}")
            runs[(label, workers)] = res
    return runs


def train_scenario(scenario: Scenario, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Virtual-worker training of every compressor at every ``train.workers`` count on the
    scenario's first device; one row per run with ``accuracy_delta_vs_dense`` (this final
    accuracy minus dense's at the same worker count, when the scenario has ``none``)."""
    runs = train_compressors(scenario, scenario.train.workers, progress)
    rows: list[dict[str, Any]] = []
    for workers in scenario.train.workers:
        block = [r for (_, w), r in runs.items() if w == workers]
        dense = next((r for r in block if r["compressor"] == scenario.dense_label()), None)
        for r in block:
            r["accuracy_delta_vs_dense"] = None if dense is None else r["final_accuracy"] - dense["final_accuracy"]
        rows += block
    return rows
