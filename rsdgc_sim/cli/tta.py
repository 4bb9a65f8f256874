"""`rsdgc-sim tta`: time to a target accuracy, per compressor and grid point."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError
from ..files import check_writable_dir
from ..report.tta_plot import LOG_TIME_RATIO
from .common import (
    SafePath,
    load,
    profile_cache_options,
    profile_store,
    progress_status,
    set_option,
    stderr_console,
    stdout_console,
)

if TYPE_CHECKING:  # types only
    from ..scenario import Scenario
    from ..study.tta import TtaResult


def _with_train(sc: Scenario, update: dict) -> Scenario:
    """``sc`` with ``update`` in its train section, validated by the strict schema like a
    scenario file's values (``--target nan``, ``--steps 10000001`` are refused there)."""
    from pydantic import ValidationError  # lazy: pydantic

    from ..strict import validation_message  # lazy: imports pydantic

    train = type(sc.train)
    try:
        new = train.model_validate({**sc.train.model_dump(), **update})
    except ValidationError as e:
        opts = ", ".join(f"--{k} {v!r}" for k, v in update.items())
        raise ConfigError(f"{opts}: {validation_message(e, train)}") from None
    return sc.model_copy(update={"train": new})


#: `--time-axis` of `tta` and of `plot --kind tta` (one spelling, one help)
time_axis_option = click.option(
    "--time-axis", type=click.Choice(["auto", "linear", "log"]), default="auto",
    show_default=True,
    help=f"the time axis of tta.png: linear, log, or auto (log in a panel whose curves end "
         f"more than {LOG_TIME_RATIO:g}x apart)")


@click.command()
@click.argument("scenario", type=SafePath(dir_okay=False))
@click.option("--out", "out_dir", default="out", show_default=True, type=SafePath(file_okay=False),
              help="folder for tta.json, tta.csv, tta.png and the training checkpoints")
@click.option("--target", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="override train.target: the test accuracy to reach, in (0, 1]")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override train.steps")
@set_option
@profile_cache_options
@click.option("--profile", "profile_file", type=SafePath(dir_okay=False), default=None,
              help="simulate with this profile (from `rsdgc-sim profile S --out FILE`) instead "
                   "of measuring")
@click.option("--no-plot", is_flag=True, help="do not write tta.png")
@time_axis_option
def tta(scenario: str, out_dir: str, target: float | None, steps: int | None,
        overrides: tuple[str, ...], cache_dir: str | None, refresh_profile: bool,
        pin_profile: bool, profile_file: str | None, no_plot: bool, time_axis: str) -> None:
    """Time to accuracy: train every compressor with as many virtual workers as the cluster
    has until train.steps, find the first step at which the test accuracy reaches
    train.target, and multiply by the simulated iteration time at every grid point.

    A killed run resumes from its checkpoints in OUT/checkpoints (same scenario, same result)."""
    # lazy: imports pydantic, numpy, networkx, simpy, yaml
    from ..report.tta_plot import TIME_AXES
    from ..study.tta import check_tta, tta_scenario, write_tta

    t0 = time.perf_counter()
    sc = load(scenario, overrides=overrides)
    update = {k: v for k, v in (("target", target), ("steps", steps)) if v is not None}
    if update:
        sc = _with_train(sc, update)
    check_tta(sc)
    check_writable_dir(out_dir)
    ckpt = check_writable_dir(Path(out_dir) / "checkpoints", "checkpoint folder")
    store = profile_store(cache_dir)
    err = stderr_console()
    with progress_status(err, "training") as progress:
        res = tta_scenario(sc, store=store, progress=progress, profile_file=profile_file,
                           checkpoint_dir=ckpt, refresh=refresh_profile, pin=pin_profile)
    stdout_console().print(tta_table(res))
    paths = write_tta(res, out_dir, plot=not no_plot, log_time=TIME_AXES[time_axis])
    err.print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.1f} s")


def tta_table(res: TtaResult):
    """The rows as a rich table (fits 100 columns, every label whole:
    :func:`~rsdgc_sim.report.table.fit_labels`)."""
    # lazy: rich
    from ..report.table import add_label_column, fit_labels, new_table
    from ..units import format_bandwidth, format_duration  # lazy: imports pydantic

    sc = res.scenario

    def build(shown):
        t = new_table(f"{sc.name}: steps and simulated time to {sc.train.target:g} test "
                      f"accuracy ({sc.model.name}, {sc.train.steps} steps at most)")
        add_label_column(t)
        for col in ("workers", "link", "latency", "steps", "iteration", "time", "final acc"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in res.rows:
            reached = r["steps_to_target"] is not None
            t.add_row(
                shown[r["compressor"]], str(r["workers"]),
                format_bandwidth(r["bandwidth_bytes_per_s"]), format_duration(r["latency_s"]),
                str(r["steps_to_target"]) if reached else f"not in {r['steps']}",
                format_duration(r["iteration_s"]),
                format_duration(r["time_to_target_s"]) if reached else "-",
                f"{r['final_accuracy']:.3f}",
            )
        return t

    return fit_labels(build, (r["compressor"] for r in res.rows))
