"""The ``rsdgc-sim`` command: a thin layer over the Python API.

Only this module turns library errors (:class:`~rsdgc_sim.errors.RsdgcError`) into a one-line
message on stderr and exit code 2; nothing below it exits.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time

import click

from .cli_params import SafePath
from .errors import RsdgcError
from .report.table import columns_help

#: commands that live beside the code they drive, imported only when used
_LAZY = {
    "collective": "rsdgc_sim.sim.cli:collective",
    "emulate": "rsdgc_sim.emulate.cli:emulate",
    "calibrate": "rsdgc_sim.emulate.cli:calibrate",
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
    from .progress import Transient

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
    from .scenario import load_scenario

    return load_scenario(scenario)


def _store(cache_dir: str | None):
    """The profile cache, checked writable before anything is measured."""
    from .profile.store import ProfileStore
    from .report.files import check_writable_dir

    store = ProfileStore(cache_dir)
    check_writable_dir(store.root / "profiles", "profile cache")
    return store


@cli.command(epilog="Columns of the table (--wide adds latency, compute, comm, ratio and scaling):\n\n"
                    "\b\n" + columns_help())
@click.argument("scenario", required=False, type=SafePath(dir_okay=False))
@click.option("--out", "out_dir", default="out", show_default=True, type=SafePath(file_okay=False),
              help="folder for results.json, results.csv, trace.json and plot.png")
@click.option("--refresh-profile", is_flag=True, help="measure again even if a cached profile exists")
@click.option("--cache", "cache_dir", type=SafePath(file_okay=False), default=None,
              help="profile cache folder (default: $RSDGC_SIM_CACHE or ~/.cache/rsdgc-sim)")
@click.option("--profile", "profile_file", type=SafePath(dir_okay=False), default=None,
              help="simulate with this profile (from `rsdgc-sim profile S --out FILE`, "
                   "possibly measured on another machine) instead of measuring")
@click.option("--no-trace", is_flag=True, help="do not write trace.json")
@click.option("--no-plot", is_flag=True, help="do not write plot.png")
@click.option("--wide", is_flag=True, help="every column (the default fits 100 columns)")
@click.option("-q", "--quiet", is_flag=True, help="only the table")
def run(scenario, out_dir, refresh_profile, cache_dir, profile_file, no_trace, no_plot, wide,
        quiet):
    """Profile (or reuse the cached profile), simulate every grid point, print the table and
    write results.json, results.csv, trace.json and plot.png. Without SCENARIO, runs the
    bundled quickstart."""

    from .report.files import check_writable_dir
    from .report.results import write_results
    from .report.table import results_table
    from .run import run_scenario

    t0 = time.perf_counter()
    sc = _load(scenario)
    check_writable_dir(out_dir)
    store = _store(cache_dir)
    err = _console(quiet)
    with _progress(err, "starting") as progress:
        res = run_scenario(sc, store=store, refresh=refresh_profile, profile_file=profile_file,
                           trace=not no_trace, progress=progress)
    devices = ", ".join(d.source.upper() if d.estimated else d.device
                        for d in res.profile.devices)
    _stdout().print(results_table(
        res.runs, title=f"{sc.name}: {res.profile.model}, batch {sc.batch_size}/worker, {devices}",
        wide=wide))
    paths = write_results(res, out_dir, trace=not no_trace, plot=not no_plot)
    err.print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.1f} s")


@cli.command()
@click.argument("scenario", type=SafePath(dir_okay=False))
@click.option("--out", "out_path", type=SafePath(dir_okay=False), default=None,
              help="also save the profile to this JSON file")
@click.option("--refresh", is_flag=True, help="measure again even if a cached profile exists")
@click.option("--cache", "cache_dir", type=SafePath(file_okay=False), default=None,
              help="profile cache folder")
def profile(scenario, out_path, refresh, cache_dir):
    """Measure (or show the cached) profile of SCENARIO: forward/backward, gradient-ready
    times and per-tensor compression costs on the scenario's devices."""

    from .profile.store import save_profile
    from .report.files import check_writable_file
    from .report.profile_table import profile_tables
    from .run import profile_scenario

    sc = _load(scenario)
    if out_path:
        check_writable_file(out_path, "profile file", (".json",))
    store = _store(cache_dir)
    err = _console()
    with _progress(err, "profiling") as progress:
        prof, cached = profile_scenario(sc, store=store, refresh=refresh, progress=progress)
    out = _stdout()
    for table in profile_tables(prof):
        out.print(table)
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

    from .report.files import check_writable_dir, write_json_atomic
    from .run import train_scenario
    from .units import format_size

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


@cli.command()
@click.argument("results", type=SafePath(dir_okay=False))
@click.option("--out", "out_path", type=SafePath(dir_okay=False), default=None,
              help="PNG or SVG file, by its suffix (default: plot.png beside RESULTS)")
def plot(results, out_path):
    """Plot iteration time and speedup vs workers from a results.json of `run`."""
    from pathlib import Path

    from .errors import ConfigError
    from .report.files import check_writable_file
    from .report.plots import FORMATS, check_runs, write_plot

    src = Path(results)
    dest = check_writable_file(out_path or src.with_name("plot.png"), "plot", FORMATS)
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{src}: no such file") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{src}: not a results.json of `rsdgc-sim run` (not JSON: "
                          f"{str(e)[:80]})") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if isinstance(runs, list) and runs and isinstance(runs[0], dict) and "final_accuracy" in runs[0]:
        raise ConfigError(f"{src}: a train.json (accuracy per compressor); `plot` draws the "
                          f"results.json of `rsdgc-sim run`")
    check_runs(runs, str(src))
    scen = data.get("scenario")
    name = scen.get("name", src.stem) if isinstance(scen, dict) else src.stem
    dest = write_plot(runs, dest, title=name)
    click.echo(f"wrote {dest}")


@cli.command(name="list")
def list_():
    """List models, compressors, topologies and collectives."""
    from rich.table import Table

    from .compress import COMPRESSORS
    from .models import MODELS
    from .sim import COLLECTIVES, TOPOLOGIES

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
    from .scenario import Scenario

    click.echo(json.dumps(Scenario.model_json_schema(), indent=2))


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="rsdgc-sim")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
