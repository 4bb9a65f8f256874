"""The ``rsdgc-sim`` group: the registry of every command and the one place where library
errors become a one-line message.

Each command lives in its own module of this package (:mod:`.run`, :mod:`.profile`, ...;
a close pair shares one: :mod:`.info` holds ``list`` and ``schema``, :mod:`.emulate`
``emulate`` and ``calibrate``), with the helpers they share in :mod:`.common`.
:data:`COMMANDS` names them all; a command's module is imported only when that command
runs (or shows its own help): ``rsdgc-sim --help`` and ``--version`` import click and this
module, nothing else (no rich, pydantic, numpy or torch), and list the commands with the
short help written in the table (``tests/test_cli.py`` checks it equals each command's own).

Only this module turns library errors (:class:`~rsdgc_sim.errors.RsdgcError`) into a
one-line message on stderr and exit code 2; nothing below it exits.
"""

from __future__ import annotations

import gc
import importlib
import textwrap

import click

from ..errors import RsdgcError

#: every command: name -> ("module:attribute" of its click command, the short help that
#: ``rsdgc-sim --help`` lists: the first sentence of the command's docstring)
COMMANDS: dict[str, tuple[str, str]] = {
    "breakeven": ("rsdgc_sim.cli.breakeven:breakeven",
                  "Per compressor, the value of PATH at which compression stops (or starts) "
                  "paying off: where its speedup over dense crosses 1, by bisection on the "
                  "simulator."),
    "calibrate": ("rsdgc_sim.cli.emulate:calibrate",
                  "Measure point-to-point latency and bandwidth, fit alpha/beta, save a "
                  "calibration file that scenarios can name (cluster.calibration)."),
    "collective": ("rsdgc_sim.cli.collective:collective",
                   "Time of one collective on WORKERS ranks, simulated and (where one exists) "
                   "in closed form."),
    "compare": ("rsdgc_sim.cli.compare:compare",
                "Two results.json side by side, matched by point: iteration time and its "
                "breakdown (compute, compression, exposed and hidden communication), changes "
                "highlighted."),
    "emulate": ("rsdgc_sim.cli.emulate:emulate",
                "Real DDP training over emulated links, beside the simulator's prediction."),
    "list": ("rsdgc_sim.cli.info:list_",
             "List models, compressors, topologies and collectives."),
    "plot": ("rsdgc_sim.cli.plot:plot",
             "Draw a plot of a results.json of `run` (the timeline reads trace.json beside "
             "it)."),
    "profile": ("rsdgc_sim.cli.profile:profile",
                "Measure (or show the cached) profile of SCENARIO: forward/backward, "
                "gradient-ready times and per-tensor compression costs on the scenario's "
                "devices, then its quality (stable, or unstable: which times) and the samples "
                "discarded while measuring."),
    "run": ("rsdgc_sim.cli.run:run",
            "Profile (or reuse the cached profile), simulate every grid point, print the table "
            "and write results.json, results.csv, trace.json and the plots."),
    "schema": ("rsdgc_sim.cli.info:schema",
               "Print the JSON schema of scenario files."),
    "train": ("rsdgc_sim.cli.train:train",
              "Train with N virtual workers per compressor (the scenario's `train` section) and "
              "report the test accuracy each reaches: the accuracy cost of compression at N "
              "workers."),
    "tta": ("rsdgc_sim.cli.tta:tta",
            "Time to accuracy: train every compressor with as many virtual workers as the "
            "cluster has until train.steps, find the first step at which the test accuracy "
            "reaches train.target, and multiply by the simulated iteration time at every grid "
            "point."),
}


def load_command(name: str) -> click.Command:
    """The click command registered as ``name`` (its module imported now)."""
    module, attr = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), attr)


def short_help(text: str, limit: int) -> str:
    """``text`` (a one-sentence short help) cut to ``limit`` characters as click cuts a
    command's help in its group's listing (``Command.get_short_help_str(limit)``)."""
    if len(text) <= limit:
        return text
    if limit < len("..."):
        return "..."

    return textwrap.shorten(text, limit, placeholder="...", break_on_hyphens=False)


class _Group(click.Group):
    """A click group whose commands come from :data:`COMMANDS`, imported when used, and
    the one place for error handling."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        return load_command(name) if name in COMMANDS else None

    def format_commands(self, ctx, formatter):
        """The commands and their short help, from the table: no command is imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        with formatter.section("Commands"):
            formatter.write_dl([(n, short_help(COMMANDS[n][1], limit)) for n in names])

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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rsdgc-sim")
def cli():
    """How long will data-parallel training take with compressed gradients (RS-DGC, top-k,
    DGC, ...) on this cluster? Measures on the devices at hand, simulates the network."""


def main(argv: list[str] | None = None) -> None:
    """The ``rsdgc-sim`` process: the command, then (the process ends) every object left
    frozen out of the garbage collector, so that the interpreter's last collections do not
    walk them all (40-50 ms after a study; they are freed with the process all the same)."""
    try:
        cli.main(args=argv, prog_name="rsdgc-sim")
    finally:
        gc.freeze()
