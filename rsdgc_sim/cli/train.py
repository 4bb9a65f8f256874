"""``rsdgc-sim train``: N virtual workers per compressor, the accuracy each reaches."""

from __future__ import annotations

from pathlib import Path

import click

from ..files import check_writable_dir, write_json_atomic
from .common import SafePath, load, progress_status, set_option, stderr_console, stdout_console


@click.command()
@click.argument("scenario", required=False, type=SafePath(dir_okay=False))
@click.option("--out", "out_dir", default="out", show_default=True, type=SafePath(file_okay=False),
              help="folder for train.json")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override train.steps")
@click.option("--workers", type=click.IntRange(min=1), multiple=True, help="override train.workers (repeatable)")
@set_option
def train(scenario: str | None, out_dir: str, steps: int | None, workers: tuple[int, ...],
          overrides: tuple[str, ...]) -> None:
    """Train with N virtual workers per compressor (the scenario's `train` section) and report
    the test accuracy each reaches: the accuracy cost of compression at N workers.

    Without SCENARIO, trains the bundled train_quickstart (a small CNN on synthetic
    remote-sensing scenes, 5 compressors, 100 steps: about a minute on one core); time to
    accuracy is `rsdgc-sim tta scenarios/tta_quickstart.yaml`."""
    # lazy: imports torch, pydantic, numpy, networkx, simpy, yaml
    from ..scenario import bundled_path
    from ..train.runs import train_scenario

    sc = load(scenario or str(bundled_path("train_quickstart")), overrides=overrides)
    check_writable_dir(out_dir)
    update = {k: v for k, v in (("steps", steps), ("workers", list(workers) or None)) if v}
    if update:
        sc = sc.model_copy(update={"train": sc.train.model_copy(update=update)})
    err = stderr_console()
    with progress_status(err, "training") as progress:
        rows = train_scenario(sc, progress=progress)
    stdout_console().print(train_table(sc, rows))
    path = write_json_atomic(Path(out_dir) / "train.json",
                             {"scenario": sc.model_dump(mode="json"), "runs": rows})
    err.print(f"wrote {path}")


def train_table(sc, rows):
    """The rows of :func:`~rsdgc_sim.train.runs.train_scenario` as a rich table (fits 100
    columns, every label whole: :func:`~rsdgc_sim.report.table.fit_labels`)."""
    from ..report.table import add_label_column, fit_labels, new_table  # lazy: rich
    from ..units import format_size  # lazy: imports pydantic

    def build(shown):
        t = new_table(f"{sc.name}: {sc.model.name} on {sc.train.dataset}, {sc.train.steps} "
                      f"steps, batch {sc.batch_size}/worker")
        add_label_column(t)
        for col in ("workers", "test accuracy", "vs dense", "test loss", "sent/worker/step",
                    "wall s"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            d = r["accuracy_delta_vs_dense"]
            t.add_row(shown[r["compressor"]], str(r["workers"]), f"{r['final_accuracy']:.3f}",
                      "-" if d is None else f"{d:+.3f}", f"{r['final_loss']:.3f}",
                      format_size(r["bytes_sent_per_worker"]), f"{r['wall_s']:.1f}")
        return t

    return fit_labels(build, (r["compressor"] for r in rows))
