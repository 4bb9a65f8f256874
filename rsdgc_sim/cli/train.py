"""``rsdgc-sim train``: N virtual workers per compressor, the accuracy each reaches."""

from __future__ import annotations

from pathlib import Path

import click

from ..files import check_writable_dir, write_json_atomic
from .common import SafePath, load, progress_status, stderr_console, stdout_console


@click.command()
@click.argument("scenario", required=False, type=SafePath(dir_okay=False))
@click.option("--out", "out_dir", default="out", show_default=True, type=SafePath(file_okay=False),
              help="folder for train.json")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override train.steps")
@click.option("--workers", type=click.IntRange(min=1), multiple=True, help="override train.workers (repeatable)")
def train(scenario: str | None, out_dir: str, steps: int | None, workers: tuple[int, ...]) -> None:
    """Train with N virtual workers per compressor (the scenario's `train` section) and report
    the test accuracy each reaches: the accuracy cost of compression at N workers."""
    from rich.table import Table  # lazy: rich

    # lazy: imports torch, pydantic, numpy, networkx, simpy, yaml
    from ..train.runs import train_scenario
    from ..units import format_size

    sc = load(scenario)
    check_writable_dir(out_dir)
    update = {k: v for k, v in (("steps", steps), ("workers", list(workers) or None)) if v}
    if update:
        sc = sc.model_copy(update={"train": sc.train.model_copy(update=update)})
    err = stderr_console()
    with progress_status(err, "training") as progress:
        rows = train_scenario(sc, progress=progress)
    t = Table(title=f"{sc.name}: {sc.model.name} on {sc.train.dataset}, {sc.train.steps} steps, "
                    f"batch {sc.batch_size}/worker")
    for col in ("compressor", "workers", "test accuracy", "vs dense", "test loss", "sent/worker/step", "wall s"):
        t.add_column(col, justify="left" if col == "compressor" else "right")
    for r in rows:
        d = r["accuracy_delta_vs_dense"]
        t.add_row(r["compressor"], str(r["workers"]), f"{r['final_accuracy']:.3f}",
                  "-" if d is None else f"{d:+.3f}", f"{r['final_loss']:.3f}",
                  format_size(r["bytes_sent_per_worker"]), f"{r['wall_s']:.1f}")
    stdout_console().print(t)
    path = write_json_atomic(Path(out_dir) / "train.json",
                             {"scenario": sc.model_dump(mode="json"), "runs": rows})
    err.print(f"wrote {path}")
