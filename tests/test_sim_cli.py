"""The `collective` command (invoked directly with click's CliRunner)."""

import json
import re

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli.collective import collective
from rsdgc_sim.errors import ConfigError, TopologyError, UnitError, UnknownNameError

BASE = ["--workers", "64", "--bytes", "100MB", "--bandwidth", "10Gbit/s", "--latency", "5us"]


def run(*args):
    return CliRunner().invoke(collective, list(args))


def test_json_has_the_fields_and_closed_form():
    """--json prints one object; ring on 64 workers: 2*63*5us + 2*63/64*1e8/1.25e9."""
    r = run("--algorithm", "ring", *BASE, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    for k in ("algorithm", "workers", "bytes", "simulated_s", "closed_form_s", "events",
              "wall_s"):
        assert k in out
    want = 2 * 63 * 5e-6 + 2 * 63 / 64 * 1e8 / 1.25e9
    assert out["simulated_s"] == pytest.approx(want, rel=1e-9)
    assert out["closed_form_s"] == pytest.approx(want, rel=1e-9)
    assert out["workers"] == 64 and out["bytes"] == 1e8


def test_json_null_closed_form_and_link_fidelity():
    """Where no closed form exists closed_form_s is null; --fidelity link counts events."""
    r = run("--algorithm", "double_binary_tree", *BASE, "--json", "--fidelity", "link")
    out = json.loads(r.output)
    assert out["closed_form_s"] is None and out["events"] > 0


def test_explain_prints_formula_with_numbers():
    r = run("--algorithm", "ring", *BASE, "--explain")
    assert r.exit_code == 0
    assert "T = 2(p-1)·alpha + 2(p-1)/p·n·beta" in r.output
    assert "2·63·5e-06 + 2·63/64·1e+08·8e-10" in r.output


def test_plain_output_and_auto():
    r = run("--algorithm", "auto", *BASE)
    assert r.exit_code == 0 and "(chose " in r.output


def test_topology_and_algorithm_params():
    """--topology-param and --param pass generator and algorithm parameters."""
    r = run("--algorithm", "hierarchical", "--workers", "16", "--bytes", "1MB", "--bandwidth",
            "10Gbit/s", "--topology", "two_level", "--topology-param", "gpus_per_node=8",
            "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["closed_form_s"] is not None
    r = run("--algorithm", "parameter_server", *BASE, "--param", "shards=4", "--json")
    want = 2 * 5e-6 + 2 * 64 / 4 * 1e8 / 1.25e9
    assert json.loads(r.output)["simulated_s"] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("args,exc,match", [
    (["--algorithm", "butterfly", *BASE], UnknownNameError, "unknown collective 'butterfly'"),
    (["--algorithm", "ring", *BASE, "--topology", "mesh"], UnknownNameError,
     "unknown topology 'mesh'"),
    (["--algorithm", "ring", "--workers", "4", "--bytes", "1MB", "--bandwidth", "0Gbit/s"],
     ConfigError, r"--bandwidth: '0Gbit/s' is 0 bytes/s; expected 1 byte/s to 1e\+15"),
    (["--algorithm", "ring", "--workers", "4", "--bytes", "1MB", "--bandwidth", "fast"],
     UnitError, "--bandwidth: cannot read 'fast'"),
    (["--algorithm", "ring", "--workers", "0", "--bytes", "1MB", "--bandwidth", "1Gbit/s"],
     ConfigError, "--workers: must be >= 1"),
    (["--algorithm", "ring", "--workers", "10", "--bytes", "1MB", "--bandwidth", "1Gbit/s",
      "--topology", "two_level"], TopologyError, "10 workers do not fill whole nodes"),
    (["--algorithm", "ring", *BASE, "--param", "chunks"], ConfigError, "KEY=VALUE"),
])
def test_bad_input_raises_rsdgc_errors(args, exc, match):
    """User mistakes raise RsdgcError subclasses (the group turns them into exit 2)."""
    r = run(*args)
    assert isinstance(r.exception, exc)
    assert re.search(match, str(r.exception))


@pytest.mark.parametrize("args,match", [
    (["--workers", "4", "--bytes", "1MB", "--bandwidth", "1e-320B/s"],
     r"--bandwidth: '1e-320B/s' is 9.99989e-321 bytes/s; expected 1 byte/s"),
    (["--workers", "64", "--bytes", "1e308B", "--bandwidth", "1B/s"],
     r"simulated time is not a finite number of seconds \(inf\)"),
])
def test_absurd_inputs_are_config_errors_not_infinity(args, match):
    """A bandwidth below 1 byte/s (1e-320 B/s: its reciprocal overflowed to Infinity in
    --json before), or a result that overflows (2*63/64 * 1e308 bytes at 1 B/s > 1.8e308
    s), is a one-line ConfigError (the group turns it into exit 2); nothing is printed."""
    r = run("--algorithm", "ring", *args, "--json")
    assert isinstance(r.exception, ConfigError) and r.output == ""
    assert re.search(match, str(r.exception)) and "\n" not in str(r.exception)


def test_json_is_strict():
    """--json output is strict JSON (no NaN or Infinity), with every field for every
    algorithm, including `exact` (false where auto settled for a step estimate)."""
    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))

    for alg in ("ring", "double_binary_tree", "auto"):
        r = run("--algorithm", alg, *BASE, "--json", "--explain")
        out = strict(r.output)
        assert out["exact"] is True and out["simulated_s"] > 0
    r = run("--algorithm", "halving_doubling", "--workers", "128", "--bytes", "1MB",
            "--bandwidth", "10Gbit/s", "--topology", "ring", "--json")
    assert strict(r.output)["exact"] is False


@pytest.mark.parametrize("args", [
    ["-a", "ring", "-p", "64", "--bytes", "100MB", "--bandwidth", "10Gbit/s", "--latency", "5us"],
    ["-a", "hierarchical", "-p", "64", "--bytes", "100MB", "--bandwidth", "10Gbit/s",
     "--topology", "two_level", "--topology-param", "gpus_per_node=8", "--explain"],
], ids=["summary", "explain"])
def test_collective_output_fits_100_columns_and_keeps_every_word(args, monkeypatch):
    """The summary and the formula with its numbers put in (121 and 106 characters before)
    wrap at spaces within the terminal's width, 100 columns at most; at any width they say
    the same words."""
    from rsdgc_sim.cli import cli

    monkeypatch.setenv("COLUMNS", "100")
    out = CliRunner().invoke(cli, ["collective", *args]).output
    assert all(len(line) <= 100 for line in out.splitlines()), out
    monkeypatch.setenv("COLUMNS", "60")
    narrow = CliRunner().invoke(cli, ["collective", *args]).output
    assert all(len(line) <= 60 for line in narrow.splitlines()), narrow
    assert out.split() == narrow.split()
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: still 100 at most
    assert CliRunner().invoke(cli, ["collective", *args]).output == out
