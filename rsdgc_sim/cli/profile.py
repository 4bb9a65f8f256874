"""``rsdgc-sim profile``: measure (or show the cached) profile of a scenario."""

from __future__ import annotations

import click

from ..files import check_writable_file
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


@click.command()
@click.argument("scenario", type=SafePath(dir_okay=False))
@click.option("--out", "out_path", type=SafePath(dir_okay=False), default=None,
              help="also save the profile to this JSON file (for `run --profile FILE`)")
@set_option
@profile_cache_options
def profile(scenario: str, out_path: str | None, overrides: tuple[str, ...], cache_dir: str | None,
            refresh_profile: bool, pin_profile: bool) -> None:
    """Measure (or show the cached) profile of SCENARIO: forward/backward, gradient-ready
    times and per-tensor compression costs on the scenario's devices, then its quality
    (stable, or unstable: which times) and the samples discarded while measuring.

    An unstable cached profile is measured again unless pinned (--pin-profile, or
    `profile: {pin: true}` in the scenario)."""

    # lazy: imports rich, pydantic, numpy, networkx, simpy, yaml
    from ..profile.store import save_profile
    from ..report.profile_table import profile_quality_lines, profile_tables
    from ..study.profiles import profile_scenario

    sc = load(scenario, overrides=overrides)
    if out_path:
        check_writable_file(out_path, "profile file", (".json",))
    store = profile_store(cache_dir)
    err = stderr_console()
    with progress_status(err, "profiling") as progress:
        prof, cached = profile_scenario(sc, store=store, refresh=refresh_profile, progress=progress,
                                        pin=pin_profile)
    out = stdout_console()
    for table in profile_tables(prof):
        out.print(table)
    for line in profile_quality_lines(prof):
        out.print(line, markup=False, highlight=False)
    err.print(f"{'cached' if cached else 'saved'}: {store.path(prof.key)}")
    if out_path:
        save_profile(prof, out_path)
        err.print(f"wrote {out_path}")
