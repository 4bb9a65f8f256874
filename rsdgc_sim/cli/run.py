"""``rsdgc-sim run``: a study (profile, simulate every grid point, write the results)."""

from __future__ import annotations

import time

import click

from ..study.execute import MAX_JOBS
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

#: `run` prints its table up to this many rows (the rest is in results.csv)
TABLE_ROWS = 300


class _RunCommand(click.Command):
    """``run``, whose epilog (the table's columns) is made when help is shown: the table
    module imports rich's tables, which a run of more rows than it prints never needs."""

    @property
    def epilog(self) -> str:
        from ..report.table import columns_help

        return ("Columns of the table (--wide adds latency, compute, comm, ratio and "
                "scaling):\n\n\b\n" + columns_help())

    @epilog.setter
    def epilog(self, _value) -> None:  # click sets it in __init__; it is made above
        pass


@click.command(cls=_RunCommand)
@click.argument("scenario", required=False, type=SafePath(dir_okay=False))
@click.option("--out", "out_dir", default="out", show_default=True, type=SafePath(file_okay=False),
              help="folder for results.json, results.csv, trace.json and the plots (speedup.png, ...)")
@set_option
@profile_cache_options
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
              help=f"print the table even with more than {TABLE_ROWS} rows")
@click.option("--max-variants", type=click.IntRange(min=1, max=1_000_000), default=None,
              metavar="N", help="take a sweep of up to N combinations (default 10,000, at most "
                                "1,000,000: scenario.sweep's MAX_VARIANTS and MAX_VARIANTS_HARD; "
                                "each is validated before anything runs)")
def run(scenario, out_dir, overrides, cache_dir, refresh_profile, pin_profile, profile_file,
        no_trace, no_plot, wide, quiet, jobs, dask_address, fresh, full_table, max_variants):
    """Profile (or reuse the cached profile), simulate every grid point, print the table and
    write results.json, results.csv, trace.json and the plots. Without SCENARIO, runs the
    bundled quickstart.

    A `sweep:` section in the scenario sweeps any field. Every finished point is kept in
    OUT/points: an interrupted or repeated run simulates only what is missing.

    A cached profile is reused (said with who measured it and how stable it is) unless it
    is unstable (a spread above its target): then it is measured again, unless pinned
    (--pin-profile, or `profile: {pin: true}` in the scenario)."""
    from pathlib import Path

    from ..files import check_writable_dir, shown
    from ..report.results import outputs_text, write_results
    from ..study.orchestrate import StudyInterrupted, run_scenario
    from ..study.points import PointStore

    t0 = time.perf_counter()
    if dask_address is not None and jobs > 1:
        raise click.UsageError("--jobs and --dask exclude each other (Dask has its own workers)")
    points_dir = str(Path(out_dir) / "points")
    # the registry checks an earlier run passed are not done again (--fresh: all are)
    known = set() if fresh else PointStore(points_dir).checks()
    checked = set(known)
    sc = load(scenario, max_variants, overrides, checked)
    check_writable_dir(out_dir)
    check_writable_dir(points_dir, "point store")
    store = profile_store(cache_dir)
    err = stderr_console(quiet)
    try:
        with progress_status(err, "starting") as progress:
            res = run_scenario(sc, store=store, refresh=refresh_profile, profile_file=profile_file,
                               trace=not no_trace, progress=progress, points_dir=points_dir,
                               jobs=jobs, dask=dask_address, fresh=fresh, pin=pin_profile)
    except StudyInterrupted as e:
        click.echo(str(e), err=True)
        click.get_current_context().exit(130)
    PointStore(points_dir).keep_checks(known, checked)
    _print_study(res, sc, wide, full_table)
    if not no_trace and not res.sims:
        err.print(f"note: no trace.json: {_no_trace_reason(res, points_dir, jobs, dask_address)}",
                  markup=False, highlight=False, soft_wrap=True)
    skipped, removed, kept = [], [], []
    paths = write_results(res, out_dir, trace=not no_trace, plot=not no_plot, skipped=skipped,
                          removed=removed, kept=kept)
    for kind, why in skipped:
        err.print(f"{kind}.png not drawn: {why}", markup=False, soft_wrap=True)
    err.print(f"points: {res.points_computed} simulated, {res.points_reused} reused from "
              f"{points_dir}; profiles: {res.profiles_measured} measured, "
              f"{res.profiles_reused} reused")
    err.print(f"wrote {outputs_text(paths, removed, kept)} to {shown(out_dir)} in "
              f"{time.perf_counter() - t0:.1f} s", markup=False, soft_wrap=True)


def _no_trace_reason(res, points_dir: str, jobs: int, dask_address: str | None) -> str:
    """Why a study has no traces (they are made only when every point is simulated here,
    serially, and there are at most TRACE_POINTS), with what would give one."""
    from ..study.orchestrate import TRACE_POINTS

    if res.points_reused:
        return (f"{res.points_reused} of {res.points_reused + res.points_computed} points "
                f"were reused from {points_dir}; --fresh simulates them again")
    if res.points_computed > TRACE_POINTS:
        return (f"{res.points_computed} points, more than the {TRACE_POINTS} a trace takes; "
                f"trace a smaller grid")
    if dask_address is not None or jobs > 1:
        return "points simulated in other processes; traces need them here (no --jobs/--dask)"
    return "the simulator kept no spans"  # not reached: every other case traces


def _print_study(res, sc, wide: bool, full_table: bool) -> None:
    """The results table: one per sweep variant (titled with its values), or, past
    :data:`TABLE_ROWS` rows without ``--table``, a line that says where the rows are."""
    out = stdout_console()
    if len(res.runs) > TABLE_ROWS and not full_table:
        out.print(f"{sc.name}: {len(res.runs)} rows ({res.points_computed + res.points_reused} "
                  f"points x {len(sc.compressors)} compressors): see results.csv, or --table")
        return
    from ..report.table import results_table  # lazy: rich's tables, for a table printed
    from ..scenario.sweep import GRID_AXES, describe

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
