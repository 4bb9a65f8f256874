"""The ``emulate`` and ``calibrate`` commands (registered in ``rsdgc_sim.cli``'s group).

Both raise only :class:`~rsdgc_sim.errors.RsdgcError` subclasses for user mistakes and
emulation failures; the group turns them into a one-line message and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..cli_params import SafePath
from ..units import format_bandwidth, parse_bandwidth


def _console():
    from rich.console import Console

    width = Console().width
    return Console(width=max(width, 120))  # the table has 8 columns: do not squash them


def emulate_table(report):
    """A rich table of an :class:`~rsdgc_sim.emulate.run.EmulateReport`."""
    from rich.table import Table

    t = Table(title=f"emulate: {report.scenario} ({report.model}, {report.mode})")
    for col in ("compressor", "workers", "bandwidth", "measured", "predicted", "error",
                "compute", "sent/rank"):  # fmt: skip
        t.add_column(col, justify="left" if col == "compressor" else "right")
    for c in report.cases:
        t.add_row(
            c.compressor, str(c.workers), format_bandwidth(c.bandwidth_bytes_per_s),
            f"{c.measured_iteration_s * 1e3:.1f} ms",
            "-" if c.predicted_iteration_s is None else f"{c.predicted_iteration_s * 1e3:.1f} ms",
            "-" if c.error is None else f"{c.error:+.1%}",
            f"{c.compute_s * 1e3:.1f} ms", f"{c.sent_bytes / 1e3:.1f} kB",
        )  # fmt: skip
    return t


@click.command("emulate")
@click.argument("scenario", type=SafePath(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=SafePath(file_okay=False, path_type=Path),
              default=Path("out"), show_default=True, help="folder for emulate.json")
@click.option("--iterations", default=3, show_default=True, type=click.IntRange(1),
              help="timed DDP iterations per case")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0),
              help="compressed iterations before timing (after the dense warm-up)")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True,
              type=click.FloatRange(1), help="seconds before a launch is stopped as hung")
@click.option("--calibration", type=SafePath(dir_okay=False, path_type=Path), default=None,
              help="calibration file to predict with (default: the scenario's, else measure)")
@click.option("--no-calibrate", is_flag=True, help="predict with the nominal link values")
@click.option("--max-workers", type=click.IntRange(1), default=None,
              help="skip grid points with more ranks (default: 2 x CPU cores)")
def emulate_cmd(scenario, out_dir, iterations, warmup, timeout_s, calibration, no_calibrate,
                max_workers):  # fmt: skip
    """Real DDP training over emulated links, beside the simulator's prediction."""
    from ..scenario import load_scenario
    from .run import emulate_scenario

    console = _console()
    sc = load_scenario(scenario)
    report = emulate_scenario(
        sc, out_dir=out_dir, iterations=iterations, warmup=warmup, timeout_s=timeout_s,
        calibration=calibration, calibrate=not no_calibrate, max_workers=max_workers,
        progress=lambda m: console.print(f"[dim]{m}[/dim]"),
    )  # fmt: skip
    console.print(emulate_table(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"wrote {out_dir / 'emulate.json'}")


@click.command("calibrate")
@click.option("--out", "out_file", type=SafePath(dir_okay=False, path_type=Path),
              default=Path("calibration.json"), show_default=True)
@click.option("--bandwidth", "bandwidths", multiple=True, default=("100Mbit/s",),
              show_default=True, help="emulated link rate(s) to calibrate (repeatable)")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(1))
@click.option("--max-message-time", "max_message_s", default=0.3, show_default=True,
              type=click.FloatRange(0.001), help="stop growing messages once one takes this long")
@click.option("--torchrun", "in_torchrun", is_flag=True,
              help="measure the real network between ranks 0 and 1 of a torchrun launch")
def calibrate_cmd(out_file, bandwidths, repeats, max_message_s, in_torchrun):
    """Measure point-to-point latency and bandwidth, fit alpha/beta, save a calibration
    file that scenarios can name (cluster.calibration)."""
    from .calibrate import calibrate_in_torchrun, calibrate_links
    from .calibration import save_calibration

    console = _console()
    if in_torchrun:
        cal = calibrate_in_torchrun(repeats=repeats, max_message_s=max_message_s)
        if cal is None:  # not rank 0
            return
    else:
        rates = [parse_bandwidth(b, "--bandwidth") for b in bandwidths]
        cal = calibrate_links(
            rates, repeats=repeats, max_message_s=max_message_s,
            progress=lambda m: console.print(f"[dim]{m}[/dim]"),
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
        )
    console.print(f"wrote {out_file}")


#: the names ``rsdgc_sim.cli`` registers
emulate = emulate_cmd
calibrate = calibrate_cmd
