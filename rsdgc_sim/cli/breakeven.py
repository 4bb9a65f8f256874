"""``rsdgc-sim breakeven``: where compression stops (or starts) paying off."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from ..files import check_writable_dir, write_bytes_atomic
from ..report.plots.axes import axis_of
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

#: the plot's name under --out
PLOT_NAME = "breakeven.png"


@click.command()
@click.argument("scenario", type=SafePath(dir_okay=False))
@click.option("--vary", "path", required=True, metavar="PATH",
              help="the field to vary: cluster.bandwidth, cluster.workers, cluster.latency, "
                   "compressors.N.density, or any scenario path (with --lo/--hi)")
@click.option("--lo", default=None,
              help="low end of the range, with its unit for a bandwidth or a latency (100Mbit/s, "
                   "1us); default: 100Mbit/s, 1us, 2 workers, density 0.0001")
@click.option("--hi", default=None,
              help="high end of the range; default: 1Tbit/s, 10ms, 1024 workers, density 1")
@click.option("--out", "out_dir", type=SafePath(file_okay=False), default=None,
              help=f"folder for the curve, {PLOT_NAME} (default: nothing is written, the "
                   f"table only)")
@click.option("--no-plot", is_flag=True, help=f"do not write {PLOT_NAME} under --out")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON object per compressor: compressor, path, breakeven (null when "
                   "none in range), direction, lo, hi, curve")
@set_option
@profile_cache_options
def breakeven(scenario: str, path: str, lo: str | None, hi: str | None, out_dir: str | None,
              no_plot: bool, as_json: bool, overrides: tuple[str, ...], cache_dir: str | None,
              refresh_profile: bool, pin_profile: bool) -> None:
    """Per compressor, the value of PATH at which compression stops (or starts) paying off:
    where its speedup over dense crosses 1, by bisection on the simulator.

    The scenario must be one point but for PATH: give the other axes one value each, in the
    file or with --set (e.g. --set cluster.workers=8). The curve is drawn only with --out."""
    # lazy: imports pydantic, numpy, networkx, simpy, yaml
    from ..study.breakeven import find_breakeven, to_json_lines
    from ..study.profiles import profile_scenario

    sc = load(scenario, overrides=overrides)
    plot_path = None if out_dir is None or no_plot else Path(out_dir) / PLOT_NAME
    if plot_path is not None:
        check_writable_dir(out_dir)
    store = profile_store(cache_dir)
    lo_v, hi_v = _range_value(path, lo, "--lo"), _range_value(path, hi, "--hi")
    err = stderr_console(quiet=as_json)
    with progress_status(err, "breakeven") as progress:
        res = find_breakeven(sc, path, lambda s: profile_scenario(
            s, store=store, progress=progress, refresh=refresh_profile, pin=pin_profile)[0],
            lo=lo_v, hi=hi_v, progress=progress)
    if as_json:
        click.echo(to_json_lines(res))
    else:
        stdout_console().print(breakeven_table(sc.name, path, res))
    if plot_path is not None:
        from ..report.plots.breakeven import breakeven_plot  # lazy: imports matplotlib, numpy, PIL

        write_bytes_atomic(plot_path, breakeven_plot(res, "png", title=f"{sc.name}: break-even"))
        err.print(f"wrote {plot_path}")


def breakeven_table(name: str, path: str, res):
    """The break-evens of :func:`~rsdgc_sim.study.breakeven.find_breakeven` as a rich table
    (fits 100 columns, every label whole: :func:`~rsdgc_sim.report.table.fit_labels`)."""
    from ..report.table import add_label_column, fit_labels, new_table  # lazy: rich

    ax = axis_of(path, [res[0].lo, res[0].hi])

    def build(shown):
        t = new_table(f"{name}: where the speedup over dense crosses 1, {path} from "
                      f"{ax.tick(res[0].lo)} to {ax.tick(res[0].hi)}")
        add_label_column(t)
        for col in ("break-even", "compression", "speedup at lo", "speedup at hi"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in res:
            at = "none in range" if r.breakeven is None else ax.value_text(r.breakeven)
            t.add_row(shown[r.compressor], at, r.direction or "-", f"{r.curve[0][1]:.3f}",
                      f"{r.curve[-1][1]:.3f}")
        return t

    return fit_labels(build, (r.compressor for r in res))


def _range_value(path: str, text: str | None, option: str):
    """--lo/--hi in the unit of PATH (a bandwidth or a duration: with its unit) or as a
    number."""
    if text is None:
        return None
    # lazy: imports pydantic, yaml
    from ..units import parse_bandwidth, parse_duration
    from ..yaml_file import parse_yaml

    if path == "cluster.bandwidth":
        return parse_bandwidth(text, option, unit_required=True)
    if path == "cluster.latency":
        return parse_duration(text, option, unit_required=True)
    v = parse_yaml(text, option)
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise ConfigError(f"{option}: expected a number, got {text[:40]!r}")
    return v
