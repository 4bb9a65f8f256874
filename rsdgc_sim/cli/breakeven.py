"""``rsdgc-sim breakeven``: where compression stops (or starts) paying off."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ..files import check_writable_file, write_bytes_atomic
from ..report.plots import FORMATS
from ..report.plots.axes import axis_of
from .common import SafePath, load, profile_store, progress_status, stderr_console, stdout_console


@click.command()
@click.argument("scenario", type=SafePath(dir_okay=False))
@click.option("--vary", "path", required=True, metavar="PATH",
              help="the field to vary: cluster.bandwidth, cluster.workers, cluster.latency, "
                   "compressors.N.density, or any scenario path (with --lo/--hi)")
@click.option("--lo", default=None, help="low end of the range (units allowed: 100Mbit/s, 1us)")
@click.option("--hi", default=None, help="high end of the range")
@click.option("--plot", "plot_path", type=SafePath(dir_okay=False), default="breakeven.png",
              show_default=True, help="the curve: PNG or SVG by its suffix")
@click.option("--no-plot", is_flag=True, help="do not draw the curve")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON object per compressor: compressor, path, breakeven (null when "
                   "none in range), direction, lo, hi, curve")
@click.option("--cache", "cache_dir", type=SafePath(file_okay=False), default=None,
              help="profile cache folder")
def breakeven(scenario: str, path: str, lo: str | None, hi: str | None, plot_path: str,
              no_plot: bool, as_json: bool, cache_dir: str | None) -> None:
    """Per compressor, the value of PATH at which compression stops (or starts) paying off:
    where its speedup over dense crosses 1, by bisection on the simulator."""
    from rich.table import Table  # lazy: rich

    # lazy: imports pydantic, numpy, networkx, simpy, yaml
    from ..study.breakeven import find_breakeven, to_json_lines
    from ..study.profiles import profile_scenario

    sc = load(scenario)
    if not no_plot:
        check_writable_file(plot_path, "plot", FORMATS)
    store = profile_store(cache_dir)
    lo_v, hi_v = _range_value(path, lo, "--lo"), _range_value(path, hi, "--hi")
    err = stderr_console(quiet=as_json)
    with progress_status(err, "breakeven") as progress:
        res = find_breakeven(sc, path, lambda s: profile_scenario(s, store=store,
                                                                  progress=progress)[0],
                             lo=lo_v, hi=hi_v, progress=progress)
    if as_json:
        click.echo(to_json_lines(res))
    else:
        ax = axis_of(path, [res[0].lo, res[0].hi])
        t = Table(title=f"{sc.name}: where the speedup over dense crosses 1, {path} from "
                        f"{ax.tick(res[0].lo)} to {ax.tick(res[0].hi)}")
        for col in ("compressor", "break-even", "compression", "speedup at lo", "speedup at hi"):
            t.add_column(col, justify="left" if col == "compressor" else "right")
        for r in res:
            at = "none in range" if r.breakeven is None else ax.value_text(r.breakeven)
            t.add_row(r.compressor, at,
                      r.direction or "-", f"{r.curve[0][1]:.3f}", f"{r.curve[-1][1]:.3f}")
        stdout_console().print(t)
    if not no_plot:
        from ..report.plots.breakeven import breakeven_plot  # lazy: imports matplotlib, numpy, PIL

        fmt = plot_path.rsplit(".", 1)[-1].lower()
        write_bytes_atomic(plot_path, breakeven_plot(res, fmt, title=f"{sc.name}: break-even"))
        err.print(f"wrote {plot_path}")


def _range_value(path: str, text: str | None, option: str):
    """--lo/--hi in the unit of PATH (bandwidth, duration) or as a number."""
    if text is None:
        return None
    # lazy: imports pydantic, yaml
    from ..units import parse_bandwidth, parse_duration
    from ..yaml_file import parse_yaml

    if path == "cluster.bandwidth":
        return parse_bandwidth(text, option)
    if path == "cluster.latency":
        return parse_duration(text, option)
    v = parse_yaml(text, option)
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise ConfigError(f"{option}: expected a number, got {text[:40]!r}")
    return v
