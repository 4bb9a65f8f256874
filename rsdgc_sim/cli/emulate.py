"""The ``emulate`` and ``calibrate`` commands (registered in ``rsdgc_sim.cli``'s group).

Both raise only :class:`~rsdgc_sim.errors.RsdgcError` subclasses for user mistakes and
emulation failures; the group turns them into a one-line message and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..calibration import save_calibration
from ..emulate.calibrate import InterferenceSpec, calibrate_in_torchrun, calibrate_links
from ..emulate.orchestrate import emulate_scenario
from ..files import check_writable_dir
from ..models import check_model
from ..units import format_bandwidth, parse_bandwidth
from .common import SafePath, load, set_option

if TYPE_CHECKING:  # types only
    from ..emulate.report import EmulateReport


def _console():
    from rich.console import Console  # lazy: rich

    return Console(width=100)


def _pct(x) -> str:
    return "-" if x is None else f"{x:+.1%}"


def emulate_table(report: EmulateReport):
    """A rich table of an :class:`~rsdgc_sim.emulate.report.EmulateReport`: per case the
    measured median (and IQR), the prediction and the composition with their errors; ``*``
    after the ranks: oversubscribed; ``~`` after the prediction error: the measured spread
    exceeds it. Fits 100 columns with every label whole
    (:func:`~rsdgc_sim.report.table.fit_labels`)."""
    # lazy: rich
    from ..report.table import add_label_column, fit_labels, new_table

    def build(shown):
        t = new_table(f"emulate: {report.scenario} ({report.model}, {report.mode})")
        add_label_column(t)
        for col in ("ranks", "link", "measured", "IQR", "predicted", "pred. err", "composed",
                    "comp. err", "k"):  # fmt: skip
            t.add_column(col, justify="right", no_wrap=True)
        for c in report.cases:
            t.add_row(
                shown[c.compressor], f"{c.workers}{'*' if c.oversubscribed else ''}",
                format_bandwidth(c.bandwidth_bytes_per_s),
                f"{c.measured_iteration_s * 1e3:.1f} ms", f"{c.measured_iqr_s * 1e3:.1f} ms",
                "-" if c.predicted_iteration_s is None
                else f"{c.predicted_iteration_s * 1e3:.1f} ms",
                _pct(c.prediction_error) + ("~" if c.spread_exceeds_error else ""),
                "-" if c.composed_iteration_s is None
                else f"{c.composed_iteration_s * 1e3:.1f} ms",
                _pct(c.composition_error), f"{c.interference_factor:.2f}",
            )  # fmt: skip
        return t

    return fit_labels(build, (c.compressor for c in report.cases))


@click.command("emulate")
@click.argument("scenario", type=SafePath(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=SafePath(file_okay=False, path_type=Path),
              default=Path("out"), show_default=True, help="folder for emulate.json")
@click.option("--iterations", default=10, show_default=True, type=click.IntRange(1),
              help="timed DDP iterations per case (median and IQR over them)")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(0),
              help="compressed iterations before timing (after the dense warm-up)")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True,
              type=click.FloatRange(1), help="seconds before a launch is stopped as hung")
@click.option("--calibration", type=SafePath(dir_okay=False, path_type=Path), default=None,
              help="calibration file to predict with (default: the scenario's, else measure)")
@click.option("--no-calibrate", is_flag=True, help="predict with the nominal link values")
@click.option("--profile", "profile_file", type=SafePath(dir_okay=False, path_type=Path),
              default=None, help="profile to predict from (default: measured alone first)")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads per rank (default: the cores divided among the ranks)")
@click.option("--max-workers", type=click.IntRange(1), default=None,
              help="skip grid points with more ranks (default: 2 x CPU cores)")
@set_option
def emulate_cmd(scenario: Path, out_dir: Path, iterations: int, warmup: int, timeout_s: float,
                calibration: Path | None, no_calibrate: bool, profile_file: Path | None,
                threads: int | None, max_workers: int | None,
                overrides: tuple[str, ...]) -> None:  # fmt: skip
    """Real DDP training over emulated links, beside the simulator's prediction."""
    console = _console()
    sc = load(str(scenario), overrides=overrides)
    check_writable_dir(out_dir)
    report = emulate_scenario(
        sc, out_dir=out_dir, iterations=iterations, warmup=warmup, timeout_s=timeout_s,
        calibration=calibration, calibrate=not no_calibrate, profile=profile_file,
        threads=threads, max_workers=max_workers,
        progress=lambda m: console.print(f"[dim]{m}[/dim]"),
    )  # fmt: skip
    console.print(emulate_table(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"wrote {out_dir / 'emulate.json'}")


@click.command("calibrate")
@click.option("--out", "out_file", type=SafePath(dir_okay=False, path_type=Path),
              default=Path("calibration.json"), show_default=True,
              help="the calibration file to write (name it in a scenario's cluster.calibration)")
@click.option("--bandwidth", "bandwidths", multiple=True, default=("100Mbit/s",),
              show_default=True, help="emulated link rate(s) to calibrate (repeatable)")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(1),
              help="timed rounds per message size (5x as many up to 64 KiB)")
@click.option("--max-message-time", "max_message_s", default=0.3, show_default=True,
              type=click.FloatRange(0.001), help="stop growing messages once one takes this long")
@click.option("--torchrun", "in_torchrun", is_flag=True,
              help="measure the real network between ranks 0 and 1 of a torchrun launch")
@click.option("--interference/--no-interference", default=True, show_default=True,
              help="also measure backward's slowdown while all-reduces are in flight, and "
                   "DDP's synchronisation overhead per iteration (both with --model)")
@click.option("--model", default="cnn_small", show_default=True,
              help="model whose backward the interference measurement times")
@click.option("--input-size", default=32, show_default=True, type=click.IntRange(8),
              help="interference: the model's square input side, pixels")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1),
              help="interference: the batch whose backward is timed")
@click.option("--num-classes", default=10, show_default=True, type=click.IntRange(2),
              help="interference: the model's output classes")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads per rank (default: the cores split between 2 ranks)")
@click.option("--message-bytes", default=4 * 2**20, show_default=True,
              type=click.IntRange(4), help="size of the all-reduces during backward")
@click.option("--interference-repeats", default=10, show_default=True,
              type=click.IntRange(1), help="backward iterations timed per phase")
@click.option("--overhead-iterations", default=6, show_default=True, type=click.IntRange(1),
              help="DDP overhead: iterations per block (3 blocks each of synchronised and "
                   "no_sync iterations)")
def calibrate_cmd(out_file, bandwidths, repeats, max_message_s, in_torchrun, interference,
                  model, input_size, batch_size, num_classes, threads, message_bytes,
                  interference_repeats, overhead_iterations):
    """Measure point-to-point latency and bandwidth, fit alpha/beta, save a calibration
    file that scenarios can name (cluster.calibration)."""
    console = _console()
    if in_torchrun:
        cal = calibrate_in_torchrun(repeats=repeats, max_message_s=max_message_s)
        if cal is None:  # not rank 0
            return
    else:
        rates = [parse_bandwidth(b, "--bandwidth", unit_required=True) for b in bandwidths]
        ispec = None
        if interference:
            # an unknown model name is a one-line error here, not a rank's traceback
            check_model(model, input_size)
            ispec = InterferenceSpec(model=model, num_classes=num_classes,
                                     input_size=input_size, batch_size=batch_size,
                                     threads=threads, message_bytes=message_bytes,
                                     repeats=interference_repeats,
                                     overhead_iterations=overhead_iterations)
        cal = calibrate_links(
            rates, repeats=repeats, max_message_s=max_message_s,
            progress=lambda m: console.print(f"[dim]{m}[/dim]"), interference=ispec,
        )  # fmt: skip
    save_calibration(cal, out_file)
    for f in cal.links:
        nominal = (
            "-" if f.nominal_bandwidth_bytes_per_s is None
            else format_bandwidth(f.nominal_bandwidth_bytes_per_s)
        )  # fmt: skip
        console.print(
            f"{cal.source} link {nominal}: alpha {f.alpha_s * 1e6:.1f} us, "
            f"beta -> {format_bandwidth(f.bandwidth_bytes_per_s)} effective, r2 {f.r2:.4f}"
            + ("" if f.interference is None else f", interference k {f.interference.factor:.3f}")
        )
    if (o := cal.ddp_overhead) is not None:
        console.print(f"DDP overhead {o.overhead_s * 1e3:.1f} ms per iteration ({o.model}: "
                      f"{o.synced_s * 1e3:.1f} ms synchronised, {o.local_s * 1e3:.1f} ms "
                      f"under no_sync)")
    console.print(f"wrote {out_file}")


#: the names ``rsdgc_sim.cli`` registers
emulate = emulate_cmd
calibrate = calibrate_cmd
