"""The ``rsdgc-sim`` command: a thin layer over the Python API.

Only this module turns library errors (:class:`~rsdgc_sim.errors.RsdgcError`) into a one-line
message on stderr and exit code 2; nothing below it exits.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time

import click

from ..errors import RsdgcError
from ..report.table import columns_help
from ..study.execute import MAX_JOBS
from .params import SafePath

#: commands that live beside the code they drive, imported only when used
_LAZY = {
    "collective": "rsdgc_sim.cli.collective:collective",
    "emulate": "rsdgc_sim.cli.emulate:emulate",
    "calibrate": "rsdgc_sim.cli.emulate:calibrate",
    "tta": "rsdgc_sim.cli.tta:tta",
}


class _Group(click.Group):
    """A click group with lazily imported commands and one place for error handling."""

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *_LAZY])

    def get_command(self, ctx, name):
        if name in _LAZY:
            module, attr = _LAZY[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RsdgcError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except click.UsageError as e:  # one line, as for every other mistake
            where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            click.echo(f"error: {e.format_message()}{where}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _console(quiet: bool = False):
    """Progress and messages: stderr."""
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, log_path=False)


@contextlib.contextmanager
def _progress(err, first: str):
    """A status line on stderr that also logs every lasting message (warnings in yellow);
    yields the callback. Transient messages (counts, ETAs) only update the status line."""
    from ..progress import Transient

    with err.status(first) as status:
        def say(m: str) -> None:
            status.update(m)
            if not isinstance(m, Transient):
                err.log(m, markup=False, style="yellow" if m.startswith("warning:") else None)

        yield say


def _stdout():
    """Tables: stdout; a pipe or a file gets the whole table, never cut to 80 columns."""
    from rich.console import Console

    out = Console()
    if not out.is_terminal:
        out.width = 200
    return out


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rsdgc-sim")
def cli():
    """How long will data-parallel training take with compressed gradients (RS-DGC, top-k,
    DGC, ...) on this cluster? Measures on the devices at hand, simulates the network."""


def _load(scenario: str | None):
    from ..scenario import load_scenario

    return load_scenario(scenario)


def _store(cache_dir: str | None):
    """The profile cache, checked writable before anything is measured."""
    from ..files import check_writable_dir
    from ..profile.store import ProfileStore

    store = ProfileStore(cache_dir)
    check_writable_dir(store.root / "profiles", "profile cache")
    return store


#: --pin-profile's help, on every command that takes a cached profile and --refresh
_PIN_HELP = ("reuse the cached profile even when it is unstable (a spread above its target), "
             "with a warning; by default it is measured again. Same as `profile: {pin: true}` "
             "in the scenario")

#: `run` prints its table up to this many rows (the rest is in results.csv)
_TABLE_ROWS = 300


@cli.command(epilog="Columns of the table (--wide adds latency, compute, comm, ratio and scaling):\n\n"
                    "\b\n" + columns_help())
@click.argument("scenario", required=False, type=SafePath(dir_okay=False))
@click.option("--out", "out_dir", default="out", show_default=True, type=SafePath(file_okay=False),
              help="folder for results.json, results.csv, trace.json and the plots (speedup.png, ...)")
@click.option("--refresh-profile", is_flag=True, help="measure again even if a cached profile exists")
@click.option("--pin-profile", is_flag=True, help=_PIN_HELP)
@click.option("--cache", "cache_dir", type=SafePath(file_okay=False), default=None,
              help="profile cache folder (default: $RSDGC_SIM_CACHE or ~/.cache/rsdgc-sim)")
@click.option("--profile", "profile_file", type=SafePath(dir_okay=False), default=None,
              help="simulate with this profile (from `rsdgc-sim profile S --out FILE`, "
                   "possibly measured on another machine) instead of measuring")
@click.option("--no-trace", is_flag=True, help="do not write trace.json")
@click.option("--no-plot", is_flag=True, help="do not write the plots (speedup.png, breakdown.png, ...)")
@click.option("--wide", is_flag=True, help="every column (the default fits 100 columns)")
@click.option("-q", "--quiet", is_flag=True, help="only the table")
@click.option("--jobs", "-j", type=click.IntRange(min=1, max=MAX_JOBS), default=1,
              show_default=True, help=f"simulate the points in N local processes (at most {MAX_JOBS})")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="simulate the points on this Dask distributed scheduler "
                   "(tcp://host:8786; pip install -e '.[dask]')")
@click.option("--fresh", is_flag=True,
              help="simulate every point again (default: reuse the finished points in OUT/points)")
@click.option("--table", "full_table", is_flag=True,
              help=f"print the table even with more than {_TABLE_ROWS} rows")
def run(scenario, out_dir, refresh_profile, pin_profile, cache_dir, profile_file, no_trace,
        no_plot, wide, quiet, jobs, dask_address, fresh, full_table):
    """Profile (or reuse the cached profile), simulate every grid point, print the table and
    write results.json, results.csv, trace.json and the plots. Without SCENARIO, runs the
    bundled quickstart.

    A `sweep:` section in the scenario sweeps any field. Every finished point is kept in
    OUT/points: an interrupted or repeated run simulates only what is missing.

    A cached profile is reused (said with who measured it and how stable it is) unless it
    is unstable (a spread above its target): then it is measured again, unless pinned
    (--pin-profile, or `profile: {pin: true}` in the scenario)."""
    from pathlib import Path

    from ..files import check_writable_dir
    from ..report.results import write_results
    from ..study.orchestrate import TRACE_POINTS, StudyInterrupted, run_scenario

    t0 = time.perf_counter()
    if dask_address is not None and jobs > 1:
        raise click.UsageError("--jobs and --dask exclude each other (Dask has its own workers)")
    sc = _load(scenario)
    check_writable_dir(out_dir)
    points_dir = str(Path(out_dir) / "points")
    check_writable_dir(points_dir, "point store")
    store = _store(cache_dir)
    err = _console(quiet)
    try:
        with _progress(err, "starting") as progress:
            res = run_scenario(sc, store=store, refresh=refresh_profile, profile_file=profile_file,
                               trace=not no_trace, progress=progress, points_dir=points_dir,
                               jobs=jobs, dask=dask_address, fresh=fresh, pin=pin_profile)
    except StudyInterrupted as e:
        click.echo(str(e), err=True)
        click.get_current_context().exit(130)
    _print_study(res, sc, wide, full_table)
    if not no_trace and not res.sims:
        err.print(f"trace.json not written: traces are made when every point is simulated "
                  f"here, serially, and there are at most {TRACE_POINTS} (--fresh, no "
                  f"--jobs/--dask, a smaller grid)")
    paths = write_results(res, out_dir, trace=not no_trace, plot=not no_plot)
    err.print(f"points: {res.points_computed} simulated, {res.points_reused} reused from "
              f"{points_dir}; profiles: {res.profiles_measured} measured, "
              f"{res.profiles_reused} reused")
    err.print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.1f} s")



def _print_study(res, sc, wide: bool, full_table: bool) -> None:
    """The results table: one per sweep variant (titled with its values), or, past
    ``_TABLE_ROWS`` rows without ``--table``, a line that says where the rows are."""
    from ..report.table import results_table
    from ..scenario.sweep import GRID_AXES, describe

    out = _stdout()
    if len(res.runs) > _TABLE_ROWS and not full_table:
        out.print(f"{sc.name}: {len(res.runs)} rows ({res.points_computed + res.points_reused} "
                  f"points x {len(sc.compressors)} compressors): see results.csv, or --table")
        return
    devices = ", ".join(d.source.upper() if d.estimated else d.device
                        for d in res.profile.devices)
    title = f"{sc.name}: {res.profile.model}, batch {sc.batch_size}/worker, {devices}"
    blocks: dict[str, list] = {}
    for r in res.runs:
        swept = {k: v for k, v in r["point"].items() if k not in GRID_AXES}
        blocks.setdefault(describe(swept), []).append(r)
    for values, rows in blocks.items():
        out.print(results_table(rows, title=f"{title}{'; ' if values else ''}{values}",
                                wide=wide))


@cli.command()
@click.argument("scenario", type=SafePath(dir_okay=False))
@click.option("--out", "out_path", type=SafePath(dir_okay=False), default=None,
              help="also save the profile to this JSON file")
@click.option("--refresh", is_flag=True, help="measure again even if a cached profile exists")
@click.option("--pin-profile", is_flag=True, help=_PIN_HELP)
@click.option("--cache", "cache_dir", type=SafePath(file_okay=False), default=None,
              help="profile cache folder")
def profile(scenario, out_path, refresh, pin_profile, cache_dir):
    """Measure (or show the cached) profile of SCENARIO: forward/backward, gradient-ready
    times and per-tensor compression costs on the scenario's devices, then its quality
    (stable, or unstable: which times) and the samples discarded while measuring.

    An unstable cached profile is measured again unless pinned (--pin-profile, or
    `profile: {pin: true}` in the scenario)."""

    from ..files import check_writable_file
    from ..profile.store import save_profile
    from ..report.profile_table import profile_quality_lines, profile_tables
    from ..study.profiles import profile_scenario

    sc = _load(scenario)
    if out_path:
        check_writable_file(out_path, "profile file", (".json",))
    store = _store(cache_dir)
    err = _console()
    with _progress(err, "profiling") as progress:
        prof, cached = profile_scenario(sc, store=store, refresh=refresh, progress=progress,
                                        pin=pin_profile)
    out = _stdout()
    for table in profile_tables(prof):
        out.print(table)
    for line in profile_quality_lines(prof):
        out.print(line, markup=False, highlight=False)
    err.print(f"{'cached' if cached else 'saved'}: {store.path(prof.key)}")
    if out_path:
        save_profile(prof, out_path)
        err.print(f"wrote {out_path}")


@cli.command()
@click.argument("scenario", required=False, type=SafePath(dir_okay=False))
@click.option("--out", "out_dir", default="out", show_default=True, type=SafePath(file_okay=False),
              help="folder for train.json")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override train.steps")
@click.option("--workers", type=click.IntRange(min=1), multiple=True, help="override train.workers (repeatable)")
def train(scenario, out_dir, steps, workers):
    """Train with N virtual workers per compressor (the scenario's `train` section) and report
    the test accuracy each reaches: the accuracy cost of compression at N workers."""
    from pathlib import Path

    from rich.table import Table

    from ..files import check_writable_dir, write_json_atomic
    from ..train.runs import train_scenario
    from ..units import format_size

    sc = _load(scenario)
    check_writable_dir(out_dir)
    update = {k: v for k, v in (("steps", steps), ("workers", list(workers) or None)) if v}
    if update:
        sc = sc.model_copy(update={"train": sc.train.model_copy(update=update)})
    err = _console()
    with _progress(err, "training") as progress:
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
    _stdout().print(t)
    path = write_json_atomic(Path(out_dir) / "train.json",
                             {"scenario": sc.model_dump(mode="json"), "runs": rows})
    err.print(f"wrote {path}")


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


@cli.command()
@click.argument("results", type=SafePath(dir_okay=False))
@click.option("--kind", default="speedup", show_default=True,
              type=click.Choice(["speedup", "iteration", "breakdown", "efficiency", "heatmap",
                                 "timeline"]),
              help="speedup over dense, iteration time, stacked breakdown, scaling "
                   "efficiency, heat map over two swept axes, or one iteration's timeline")
@click.option("--x", "x_path", default=None, metavar="PATH",
              help="swept axis on x (cluster.bandwidth, workers, compressors.1.density, ...; "
                   "default: the swept numeric axis with the most values)")
@click.option("--y", "y_path", default=None, metavar="PATH", help="heat map: the axis on y")
@click.option("--compressor", default=None,
              help="timeline: the compressor drawn under dense (default: the first)")
@click.option("--out", "out_path", type=SafePath(dir_okay=False), default=None,
              help="PNG or SVG file, by its suffix (default: KIND.png beside RESULTS)")
def plot(results, kind, x_path, y_path, compressor, out_path):
    """Draw a plot of a results.json of `run` (the timeline reads trace.json beside it)."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..files import check_writable_file
    from ..report.plots import FORMATS, check_runs, write_plot

    src = Path(results)
    dest = check_writable_file(out_path or src.with_name(f"{kind}.png"), "plot", FORMATS)
    data = _read_results(src)
    check_runs(data.get("runs"), str(src), kind=kind)
    trace = None
    if kind == "timeline":
        tpath = src.with_name("trace.json")
        try:
            trace = json.loads(tpath.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{tpath}: no such file; the timeline reads the trace.json "
                              f"that `run` writes beside results.json (unless --no-trace)") from None
        except (OSError, ValueError) as e:
            raise ConfigError(f"{tpath}: not a trace.json ({str(e)[:80]})") from None
    scen = data.get("scenario")
    name = scen.get("name", src.stem) if isinstance(scen, dict) else src.stem
    try:
        dest = write_plot(data, dest, kind, title=name, x=x_path, y=y_path, trace=trace,
                          compressor=compressor)
    except ConfigError as e:
        raise e.with_context(str(src)) from None
    click.echo(f"wrote {dest}")


@cli.command()
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
def breakeven(scenario, path, lo, hi, plot_path, no_plot, as_json, cache_dir):
    """Per compressor, the value of PATH at which compression stops (or starts) paying off:
    where its speedup over dense crosses 1, by bisection on the simulator."""
    from rich.table import Table

    from ..files import check_writable_file, write_bytes_atomic
    from ..report.plots import FORMATS
    from ..study.breakeven import find_breakeven, to_json_lines
    from ..study.profiles import profile_scenario

    sc = _load(scenario)
    if not no_plot:
        check_writable_file(plot_path, "plot", FORMATS)
    store = _store(cache_dir)
    lo_v, hi_v = _range_value(path, lo, "--lo"), _range_value(path, hi, "--hi")
    err = _console(quiet=as_json)
    with _progress(err, "breakeven") as progress:
        res = find_breakeven(sc, path, lambda s: profile_scenario(s, store=store,
                                                                  progress=progress)[0],
                             lo=lo_v, hi=hi_v, progress=progress)
    if as_json:
        click.echo(to_json_lines(res))
    else:
        from ..report.plots.axes import axis_of

        ax = axis_of(path, [res[0].lo, res[0].hi])
        t = Table(title=f"{sc.name}: where the speedup over dense crosses 1, {path} from "
                        f"{ax.tick(res[0].lo)} to {ax.tick(res[0].hi)}")
        for col in ("compressor", "break-even", "compression", "speedup at lo", "speedup at hi"):
            t.add_column(col, justify="left" if col == "compressor" else "right")
        for r in res:
            at = "none in range" if r.breakeven is None else ax.value_text(r.breakeven)
            t.add_row(r.compressor, at,
                      r.direction or "-", f"{r.curve[0][1]:.3f}", f"{r.curve[-1][1]:.3f}")
        _stdout().print(t)
    if not no_plot:
        from ..report.plots.breakeven import breakeven_plot

        fmt = plot_path.rsplit(".", 1)[-1].lower()
        write_bytes_atomic(plot_path, breakeven_plot(res, fmt, title=f"{sc.name}: break-even"))
        err.print(f"wrote {plot_path}")


def _range_value(path: str, text: str | None, option: str):
    """--lo/--hi in the unit of PATH (bandwidth, duration) or as a number."""
    if text is None:
        return None
    from ..units import parse_bandwidth, parse_duration
    from ..yaml_file import parse_yaml

    if path == "cluster.bandwidth":
        return parse_bandwidth(text, option)
    if path == "cluster.latency":
        return parse_duration(text, option)
    v = parse_yaml(text, option)
    if not isinstance(v, int | float) or isinstance(v, bool):
        from ..errors import ConfigError

        raise ConfigError(f"{option}: expected a number, got {text[:40]!r}")
    return v


@cli.command()
@click.argument("a", type=SafePath(dir_okay=False))
@click.argument("b", type=SafePath(dir_okay=False))
def compare(a, b):
    """Two results.json side by side, matched by point: iteration time and its breakdown
    (compute, compression, exposed and hidden communication), changes highlighted."""
    from rich.console import Console

    from ..report.compare import compare_files, compare_table, unmatched_lines

    cmp, _da, _db = compare_files(a, b)
    out = Console(width=100, force_terminal=None)
    if cmp.matched:
        out.print(compare_table(cmp, a, b))
    else:
        out.print("no point in common")
    for line in unmatched_lines(cmp, "A", "B"):
        out.print(line, markup=False)


@cli.command(name="list")
def list_():
    """List models, compressors, topologies and collectives."""
    from rich.table import Table

    from ..compress import COMPRESSORS
    from ..models import MODELS
    from ..sim import COLLECTIVES, TOPOLOGIES

    t = Table(show_header=True, header_style="bold")
    t.add_column("kind")
    t.add_column("name")
    t.add_column("what it is")
    for kind, reg in (("model", MODELS), ("compressor", COMPRESSORS), ("topology", TOPOLOGIES),
                      ("collective", COLLECTIVES)):
        for name in reg.names():
            t.add_row(kind, name, reg.help(name))
    _stdout().print(t)


@cli.command()
def schema():
    """Print the JSON schema of scenario files."""
    from ..scenario import Scenario

    click.echo(json.dumps(Scenario.model_json_schema(), indent=2))


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="rsdgc-sim")

