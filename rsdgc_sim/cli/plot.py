"""``rsdgc-sim plot``: draw a plot of a results.json of ``run``."""

from __future__ import annotations

import click

from .common import SafePath
from .tta import time_axis_option


def _read_results(src) -> dict:
    """A results.json for plotting: any version (older files keep plotting: their axes
    are read off the rows); one line saying what the file is otherwise."""
    from ..errors import ConfigError
    from ..report.results import read_results_json

    data = read_results_json(src)
    runs = data.get("runs") if isinstance(data, dict) else None
    if isinstance(runs, list) and runs and isinstance(runs[0], dict) and "final_accuracy" in runs[0]:
        raise ConfigError(f"{src}: a train.json (accuracy per compressor); `plot` draws the "
                          f"results.json of `rsdgc-sim run`")
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: not a results.json of `rsdgc-sim run` (not an object)")
    return data


@click.command()
@click.argument("results", type=SafePath(dir_okay=False))
@click.option("--kind", default="speedup", show_default=True,
              type=click.Choice(["speedup", "iteration", "breakdown", "efficiency", "heatmap",
                                 "timeline", "tta"]),
              help="speedup over dense, iteration time, stacked breakdown, scaling "
                   "efficiency, heat map over two swept axes, one iteration's timeline, or "
                   "(RESULTS a tta.json of `tta`) accuracy against simulated time")
@click.option("--x", "x_path", default=None, metavar="PATH",
              help="swept axis on x (cluster.bandwidth, workers, compressors.1.density, ...; "
                   "default: the swept numeric axis with the most values)")
@click.option("--y", "y_path", default=None, metavar="PATH", help="heat map: the axis on y")
@click.option("--compressor", default=None,
              help="timeline: the compressor drawn under dense (default: the first)")
@click.option("--where", "where", multiple=True, metavar="PATH=VALUE",
              help="draw the slice of the study at this value of a swept axis (repeatable; "
                   "the axis paths of results.json, e.g. ddp.overlap=true, "
                   "cluster.bandwidth=10Gbit/s, cluster.topology.name=fat_tree); the "
                   "timeline's case")
@click.option("--out", "out_path", type=SafePath(dir_okay=False), default=None,
              help="PNG or SVG file, by its suffix (default: KIND.png beside RESULTS; with "
                   "--where KIND--key=value....png, the name `run` gives a slice)")
@time_axis_option
def plot(results, kind, x_path, y_path, compressor, where, out_path, time_axis):
    """Draw a plot of a results.json of `run` (the timeline reads trace.json beside it).
    --kind tta draws a tta.json of `tta` instead. A study with more swept axes than one
    figure draws is drawn a slice at a time: --where PATH=VALUE fixes an axis."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..files import check_writable_file
    from ..report.plots import FORMATS, check_runs, write_plot
    from ..report.plots.slices import file_stem, parse_where, select

    src = Path(results)
    given = _given(("x_path", x_path), ("y_path", y_path), ("compressor", compressor),
                   ("where", where), ("time_axis", None))
    if kind == "tta":
        if stray := [o for o in given if o != "--time-axis"]:
            raise ConfigError(f"{', '.join(stray)}: not for --kind tta (it draws every grid "
                              f"point of a tta.json)")
        dest = check_writable_file(out_path or src.with_name("tta.png"), "plot", FORMATS)
        _plot_tta(src, dest, time_axis)
        click.echo(f"wrote {dest}")
        return
    if "--time-axis" in given:
        raise ConfigError(f"--time-axis: only for --kind tta (not --kind {kind})")
    pairs = parse_where(where)
    if out_path or not pairs:
        dest = check_writable_file(out_path or src.with_name(f"{kind}.png"), "plot", FORMATS)
    data = _read_results(src)
    check_runs(data.get("runs"), str(src), kind=kind)
    if pairs:
        try:
            part = select(data, pairs)
        except ConfigError as e:
            raise e.with_context(str(src)) from None
        if not out_path:
            dest = check_writable_file(src.with_name(f"{file_stem(kind, part.where)}.png"),
                                       "plot", FORMATS)
    trace = None
    if kind == "timeline":
        trace = _read_trace(src.with_name("trace.json"))
    scen = data.get("scenario")
    name = scen.get("name", src.stem) if isinstance(scen, dict) else src.stem
    try:
        dest = write_plot(data, dest, kind, title=name, x=x_path, y=y_path, trace=trace,
                          compressor=compressor, where=pairs)
    except ConfigError as e:
        raise e.with_context(str(src)) from None
    click.echo(f"wrote {dest}")


def _given(*params) -> list[str]:
    """The options among ``params`` (name, value) that the command line gave: ``--x`` for
    ``x_path``; a value of None asks click whether the option came from the command line."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    return [flags[name] for name, value in params
            if (value if value is not None else
                ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE)]


def _plot_tta(src, dest, time_axis: str) -> None:
    """Draw the tta.json ``src`` into ``dest`` (PNG or SVG by its suffix) with the time
    axis ``time_axis`` (auto, linear, log); a file that is no tta.json is one ConfigError."""
    from ..data_file import InvalidFile, read_json_data
    from ..errors import ConfigError
    from ..files import write_bytes_atomic
    from ..report.tta_plot import TIME_AXES, check_tta_data, plot_tta

    try:
        data = read_json_data(src)
    except InvalidFile as e:
        if e.missing:
            raise ConfigError(f"{src}: no such file") from None
        raise ConfigError(f"{src}: not a tta.json of `rsdgc-sim tta` ({e})") from None
    check_tta_data(data, str(src))
    write_bytes_atomic(dest, plot_tta(data, fmt=dest.suffix[1:].lower(),
                                      log_time=TIME_AXES[time_axis]))


def _read_trace(path):
    """The trace.json beside a results.json, read as users' data (a regular file only, no
    NaN or infinity) and checked drawable; every problem is one ConfigError naming it."""
    from ..data_file import InvalidFile, read_json_data
    from ..errors import ConfigError
    from ..report.plots.timeline import runs_of_trace

    try:
        trace = read_json_data(path)
    except InvalidFile as e:
        if e.missing:
            raise ConfigError(f"{path}: no such file; the timeline reads the trace.json that "
                              f"`run` writes beside results.json (unless --no-trace)") from None
        raise ConfigError(f"{path}: not a trace.json ({e})") from None
    try:
        runs_of_trace(trace)
    except ConfigError as e:
        raise e.with_context(str(path)) from None
    return trace
