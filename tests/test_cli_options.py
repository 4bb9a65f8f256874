"""One vocabulary of options across every command (the table in rsdgc_sim/cli/app.py): each
option has help, shows its default, and a concept shared by several commands is spelled
(and explained) one way everywhere."""

from __future__ import annotations

import click
import pytest

from rsdgc_sim.cli.app import COMMANDS, load_command

#: a concept's one spelling -> spellings it must never have in any command
SPELLINGS = {
    "--refresh-profile": ("--refresh", "--force", "--remeasure", "--refresh-cache"),
    "--pin-profile": ("--pin",),
    "--cache": ("--cache-dir", "--profile-cache"),
    "--out": ("--output", "-o", "--out-dir", "--outdir", "--plot", "--dest"),
    "--jobs": ("--processes", "--procs", "--nproc", "--workers-jobs"),
    "--set": ("--override", "--define", "-D", "--param-set"),
    "--profile": ("--profile-file",),
}
#: options that mean one thing wherever they appear: the same help text in every command
SAME_HELP = ("--cache", "--refresh-profile", "--pin-profile", "--set")
#: every command that takes a scenario loads it through --set; compare takes two results
#: files, not a scenario (nothing to set), and plot, list, schema, collective, calibrate
#: take none
SCENARIO_COMMANDS = ("breakeven", "emulate", "profile", "run", "train", "tta")
#: every command that takes a cached profile has the three options of the cache
CACHE_OPTIONS = ("--cache", "--refresh-profile", "--pin-profile")


def _options(name: str) -> list[tuple[click.Option, str]]:
    """The command's options with the text its --help shows for each."""
    cmd = load_command(name)
    ctx = click.Context(cmd, info_name=name)
    out = []
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.hidden:
            record = p.get_help_record(ctx)
            assert record is not None, (name, p.opts)
            out.append((p, record[1]))
    return out


#: click's marker of "no default given" (click >= 8.2)
_UNSET = getattr(click.core, "UNSET", None)


def _real_default(p: click.Option):
    """The option's default as a user sees it (None: it has none)."""
    ctx = click.Context(click.Command("x"))
    value = p.get_default(ctx, call=False)
    if value is _UNSET or value in (None, (), []) or (
            p.is_flag and not p.secondary_opts and value is False):
        return None
    return value


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_shows_its_default(name):
    """Every option of every command says what it does, and one with a default shows it in
    --help (`[default: ...]`); --cache shows where the cache is by default."""
    for p, text in _options(name):
        own = text.split("[default:")[0].strip()
        assert own and p.help, f"{name} {p.opts[0]}: no help"
        if _real_default(p) is not None:
            assert "[default: " in text, f"{name} {p.opts[0]}: its default is not shown"
        if p.opts[0] == "--cache":
            assert "[default: ($RSDGC_SIM_CACHE or ~/.cache/rsdgc-sim)]" in text, name


def test_a_concept_has_one_spelling_across_commands():
    """No command spells a shared concept another way (`profile --refresh` beside `run
    --refresh-profile`); an option name used by several commands has the same short
    kind (flag or value) in all of them, and the options of one concept carry the same
    short aliases and help everywhere."""
    seen: dict[str, tuple[str, tuple, bool, str]] = {}
    for name in sorted(COMMANDS):
        for p, text in _options(name):
            names = set(p.opts) | set(p.secondary_opts)
            for one, others in SPELLINGS.items():
                bad = names & set(others)
                assert not bad, f"{name}: {sorted(bad)} where every command says {one}"
            key = p.opts[0] if p.opts[0].startswith("--") else sorted(p.opts)[-1]
            shared = key in SAME_HELP
            sig = (name, p.is_flag, tuple(sorted(p.opts)) if shared else (),
                   text if shared else "")
            if key in seen:
                first = seen[key]
                assert sig[1] == first[1], f"{key}: a flag in one of {first[0]}, {name} only"
                assert sig[2:] == first[2:], f"{key}: spelled or explained differently in " \
                                             f"{first[0]} and {name}"
            else:
                seen[key] = sig


def test_scenario_commands_take_set_and_cache_commands_take_all_cache_options():
    """Every command that loads a scenario takes --set; every one that has --cache also
    has --refresh-profile and --pin-profile (`tta` had no refresh option)."""
    for name in SCENARIO_COMMANDS:
        opts = {o for p, _ in _options(name) for o in p.opts}
        assert "--set" in opts, name
    for name in sorted(COMMANDS):
        opts = {o for p, _ in _options(name) for o in p.opts}
        if "--cache" in opts:
            assert set(CACHE_OPTIONS) <= opts, (name, sorted(set(CACHE_OPTIONS) - opts))
    for name in ("run", "profile", "tta", "breakeven"):
        assert "--cache" in {o for p, _ in _options(name) for o in p.opts}, name
