"""The command group (rsdgc_sim.cli.app): one registry names every command, `rsdgc-sim
--help` lists them from it without importing any command module or heavy library, and the
registry's short help is what each command itself would show."""

import importlib
import pkgutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import rsdgc_sim.cli
from rsdgc_sim.cli import cli
from rsdgc_sim.cli.app import COMMANDS, load_command, short_help

#: what the group's help and --version must not import (seconds of start-up between them)
HEAVY = ("torch", "pydantic", "rich", "numpy", "scipy", "matplotlib", "networkx", "simpy",
         "dask", "yaml")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_registry_short_help_is_the_commands_own(name):
    """Each registered short help equals the command's own (its docstring's first
    sentence), cut as click cuts it at every width; the command's name is its key."""
    cmd = load_command(name)
    assert isinstance(cmd, click.Command)
    assert cmd.name == name
    text = COMMANDS[name][1]
    for limit in (10**6, 200, 74, 61, 45, 20, 3, 2):
        assert short_help(text, limit) == cmd.get_short_help_str(limit), limit


def test_every_command_module_is_registered():
    """Every click command defined in a module of rsdgc_sim.cli is in the registry (under
    its own name), so that none is left out of `rsdgc-sim --help`."""
    found = set()
    for mod in pkgutil.iter_modules(rsdgc_sim.cli.__path__):
        if mod.name == "__main__":
            continue
        module = importlib.import_module(f"rsdgc_sim.cli.{mod.name}")
        for attr, value in vars(module).items():
            if (isinstance(value, click.Command) and value is not cli
                    and getattr(value.callback, "__module__", None) == module.__name__):
                found.add(value.name)
                assert value.name in COMMANDS, f"{module.__name__}.{attr} is not registered"
                assert load_command(value.name) is value, f"{module.__name__}.{attr}"
    assert found == set(COMMANDS)


def test_group_help_lists_the_commands_as_click_would():
    """The group's listing of the commands is what click's own would print after importing
    every command (same names, same cut short help, same layout), at several widths."""
    for width in (None, 30, 50, 80):
        ctx = click.Context(cli, info_name="rsdgc-sim", terminal_width=width)
        ours, clicks = ctx.make_formatter(), ctx.make_formatter()
        cli.format_commands(ctx, ours)
        click.Group.format_commands(cli, ctx, clicks)  # imports every command
        assert ours.getvalue() == clicks.getvalue(), width
        assert all(f"  {name} " in ours.getvalue() for name in COMMANDS)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], []])
def test_help_and_version_import_no_command_and_no_heavy_library(args):
    """The group's help (also with no arguments) and --version import click and the
    registry only: no command module, none of torch, pydantic, rich, numpy, matplotlib."""
    code = ("import sys\n"
            "from rsdgc_sim.cli import main\n"
            "try:\n"
            f"    main({args!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            "mods = sorted(sys.modules)\n"
            f"print('heavy:', [m for m in mods if m.split('.')[0] in {HEAVY!r}])\n"
            "print('ours:', [m for m in mods if m.startswith('rsdgc_sim')])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines()
                 if line.startswith(("heavy: ", "ours: ")))
    assert lines["heavy"] == "[]"
    assert lines["ours"] == repr(["rsdgc_sim", "rsdgc_sim.cli", "rsdgc_sim.cli.app",
                                  "rsdgc_sim.errors"])


def test_unknown_command_is_one_line():
    """An unknown command name is a one-line usage error, exit code 2, nothing imported."""
    res = CliRunner().invoke(cli, ["nosuch"])
    assert res.exit_code == 2
    assert res.stderr == "error: No such command 'nosuch'. (see `cli --help`)\n"
