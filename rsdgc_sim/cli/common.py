"""What the command modules share: the path parameter type, the consoles (messages on
stderr, tables on stdout), the status line, loading a scenario and opening the profile
cache. Only click is imported here; rich and the library are imported when used."""

from __future__ import annotations

import contextlib

import click

from ..files import check_writable_dir
from ..progress import Transient

#: --pin-profile's help, on every command that takes a cached profile
PIN_HELP = ("reuse the cached profile even when it is unstable (a spread above its target), "
            "with a warning; by default it is measured again. Same as `profile: {pin: true}` "
            "in the scenario")
#: --refresh-profile's help
REFRESH_HELP = "measure the profile again even if a cached one exists"
#: --cache's help and the default it shows
CACHE_HELP = "profile cache folder"
CACHE_DEFAULT = "$RSDGC_SIM_CACHE or ~/.cache/rsdgc-sim"
#: --set's help
SET_HELP = ("set a scenario field before it is validated: the dotted paths of `sweep:`, the "
            "value read as YAML, e.g. cluster.workers=8, cluster.bandwidth=10Gbit/s, "
            "compressors.1.density=0.01, device={model: V100}; sweep.PATH=[...] adds or "
            "replaces a swept path (repeatable)")


def set_option(f):
    """``--set PATH=VALUE`` (repeatable), on every command that loads a scenario; the
    command passes its ``overrides`` to :func:`load`."""
    return click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
                        help=SET_HELP)(f)


def profile_cache_options(f):
    """``--cache``, ``--refresh-profile`` and ``--pin-profile``: every command that takes a
    cached profile has the three, spelled and explained alike."""
    f = click.option("--pin-profile", is_flag=True, help=PIN_HELP)(f)
    f = click.option("--refresh-profile", is_flag=True, help=REFRESH_HELP)(f)
    return click.option("--cache", "cache_dir", type=SafePath(file_okay=False), default=None,
                        show_default=CACHE_DEFAULT, help=CACHE_HELP)(f)


class SafePath(click.Path):
    """``click.Path`` that reports a NUL byte or an over-long name as a usage error (click's
    own check would raise ValueError from ``os.stat``, a traceback)."""

    def convert(self, value, param, ctx):
        text = str(value)
        if "\0" in text:
            self.fail("the path contains a NUL byte", param, ctx)
        try:
            return super().convert(value, param, ctx)
        except (OSError, ValueError) as e:
            self.fail(f"{text[:200]!r}: {getattr(e, 'strerror', None) or e}", param, ctx)


def stderr_console(quiet: bool = False):
    """Progress and messages: stderr."""
    from rich.console import Console  # lazy: rich

    return Console(stderr=True, quiet=quiet, log_path=False)


@contextlib.contextmanager
def progress_status(err, first: str):
    """A status line on stderr that also logs every lasting message (warnings in yellow);
    yields the callback. Transient messages (counts, ETAs) only update the status line.
    Where stderr is not a terminal (a pipe, a file) the status line is never drawn, so none
    is made (rich's status, live display and spinners are not imported): the same output."""
    def log(m: str) -> None:
        if not isinstance(m, Transient):
            err.log(m, markup=False, style="yellow" if m.startswith("warning:") else None)

    if not (err.is_terminal or err.is_jupyter):
        yield log
        return
    with err.status(first) as status:
        def say(m: str) -> None:
            status.update(m)
            log(m)

        yield say


def stdout_console():
    """Tables: stdout; a pipe or a file gets the whole table, never cut to 80 columns."""
    from rich.console import Console  # lazy: rich

    out = Console()
    if not out.is_terminal:
        out.width = 200
    return out


def load(scenario: str | None, max_variants: int | None = None, overrides: tuple[str, ...] = (),
         checked: set[tuple] | None = None):
    """The scenario of the command line (None: the bundled quickstart); ``max_variants``:
    the cap on its sweep's combinations (``run --max-variants``); ``overrides``: the
    ``--set PATH=VALUE`` items, set in the file's data before it is validated;
    ``checked``: the registry checks passed already, filled with those passed now
    (:func:`rsdgc_sim.scenario.validate.check_names`)."""
    # lazy: imports pydantic and yaml (numpy, networkx and simpy where topologies are built)
    from ..scenario import load_scenario
    from ..scenario.overrides import parse_override

    return load_scenario(scenario, max_variants=max_variants,
                         overrides=[parse_override(item) for item in overrides],
                         checked=checked)


def profile_store(cache_dir: str | None):
    """The profile cache, checked writable before anything is measured."""
    from ..profile.store import ProfileStore  # lazy: imports pydantic

    store = ProfileStore(cache_dir)
    check_writable_dir(store.root / "profiles", "profile cache")
    return store


__all__ = ["CACHE_DEFAULT", "PIN_HELP", "REFRESH_HELP", "SET_HELP", "SafePath", "load",
           "profile_cache_options", "profile_store", "progress_status", "set_option",
           "stderr_console", "stdout_console"]
