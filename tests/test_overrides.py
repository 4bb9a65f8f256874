"""Overrides (`--set PATH=VALUE`): the paths of `sweep:`, values read as YAML, set in the
plain data before the strict schema validates it, on every command that loads a scenario."""

from __future__ import annotations

import copy
import json
import time

import pytest
import yaml
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.scenario import load_scenario
from rsdgc_sim.scenario.overrides import apply_overrides, parse_override
from tests.conftest import TINY
from tests.helpers import one_line_error

#: TINY on a device model (estimated, nothing measured), three worker counts
FAST = {**copy.deepcopy(TINY), "device": {"model": "V100"},
        "cluster": {**TINY["cluster"], "workers": [1, 4, 16]}}


@pytest.fixture
def fast(write_scenario):
    return write_scenario(copy.deepcopy(FAST))


@pytest.mark.parametrize("text, expected", [
    ("cluster.workers=8", ("cluster.workers", 8)),
    ("cluster.bandwidth=10Gbit/s", ("cluster.bandwidth", "10Gbit/s")),
    ("sweep.compressors.1.density=[0.1, 0.01]", ("sweep.compressors.1.density", [0.1, 0.01])),
    ("device={model: V100}", ("device", {"model": "V100"})),
    ("ddp.overlap=false", ("ddp.overlap", False)),
    ("name=a=b", ("name", "a=b")),
    ("train.target=", ("train.target", None)),
])
def test_parse_reads_the_value_as_yaml(text, expected):
    """PATH=VALUE splits at the first `=`; the value is YAML (numbers, lists, mappings,
    booleans, null; anything else a string such as `10Gbit/s`)."""
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["cluster.workers", "=8", " =8"])
def test_parse_needs_path_and_value(text):
    """Without `=` or without a path: an error that shows the form."""
    with pytest.raises(ConfigError, match=r"^--set: expected PATH=VALUE \(e\.g\. cluster\.workers=8\)"):
        parse_override(text)


def test_overrides_set_values_and_leave_the_input_alone():
    """Each path is set in a copy: present keys replaced, list entries by index, absent
    fields of the schema (ddp.overlap with no ddp section) created, new compressor
    parameters added; the input is unchanged."""
    data = {"model": {"name": "mlp"}, "compressors": [{"name": "none"}, {"name": "topk"}],
            "cluster": {"workers": [1, 4, 16], "bandwidth": "1Gbit/s"}}
    before = copy.deepcopy(data)
    out = apply_overrides(data, [("cluster.workers", 8), ("ddp.overlap", False),
                                 ("compressors.1.density", 0.01),
                                 ("cluster.topology.name", "fat_tree"),
                                 ("sweep.cluster.collective", ["ring", "tree"])])
    assert data == before
    assert out["cluster"] == {"workers": 8, "bandwidth": "1Gbit/s",
                              "topology": {"name": "fat_tree"}}
    assert out["ddp"] == {"overlap": False}
    assert out["compressors"][1] == {"name": "topk", "density": 0.01}
    assert out["sweep"] == {"cluster.collective": ["ring", "tree"]}


@pytest.mark.parametrize("path, pattern", [
    ("cluster.wrkers", r"^--set 'cluster\.wrkers' is not a field of this scenario; nearest "
                       r"valid path: cluster\.workers$"),
    ("ddp.overlapp", r"nearest valid path: ddp\.overlap$"),
    ("compressors.5.density", r"indexes past the end of compressors \(2 entries\)"),
    ("model.name.x", r"goes inside model\.name, which is a value"),
    ("cluster..workers", r"is not a dotted path"),
])
def test_unknown_paths_name_the_nearest(path, pattern):
    """A path in neither the data nor the schema is one error naming the nearest valid
    path, as `sweep:` does."""
    data = {"model": {"name": "mlp"}, "compressors": [{"name": "none"}, {"name": "topk"}],
            "cluster": {"workers": [1], "bandwidth": "1Gbit/s"}}
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(data, [(path, 1)])


def test_sweep_paths_take_lists_and_a_path_once():
    """`sweep.PATH` takes a list; a path given twice is refused."""
    with pytest.raises(ConfigError, match=r"takes a list of values"):
        apply_overrides({"cluster": {}}, [("sweep.ddp.overlap", True)])
    with pytest.raises(ConfigError, match=r"--set cluster\.workers: given twice"):
        apply_overrides({"cluster": {}}, [("cluster.workers", 1), ("cluster.workers", 2)])


def test_load_validates_after_overriding(tmp_path, write_scenario):
    """Overrides go through the schema as the file does: units read (`10Gbit/s`), bad
    values one error naming the file, the override and the path; relative paths start at
    the scenario's folder; `sweep.PATH` swept (checked like the file's sweep)."""
    sub = tmp_path / "sub"
    sub.mkdir()
    path = sub / "s.yaml"
    path.write_text(yaml.safe_dump(FAST))
    sc = load_scenario(path, overrides=[("cluster.workers", 8), ("cluster.bandwidth", "10Gbit/s"),
                                        ("profile.file", "p.json")])
    assert sc.cluster.workers == [8] and sc.cluster.bandwidth == [1.25e9]
    assert sc.profile.file == str(sub / "p.json")
    with pytest.raises(ConfigError, match=r"s\.yaml with --set cluster\.workers=0: "
                                          r"cluster\.workers\[0\]: Input should be greater"):
        load_scenario(path, overrides=[("cluster.workers", 0)])
    with pytest.raises(ConfigError, match=r"cluster\.latency\[0\]: 5 has no unit"):
        load_scenario(path, overrides=[("cluster.latency", 5)])
    swept = load_scenario(path, overrides=[("sweep.compressors.1.density", [0.1, 0.01])])
    assert swept.sweep == {"compressors.1.density": [0.1, 0.01]}
    with pytest.raises(ConfigError, match=r"sweep: 'compressors\.7\.density' indexes past"):
        load_scenario(path, overrides=[("sweep.compressors.7.density", [0.1])])


# --- every command ---------------------------------------------------------------------

def _run(args):
    return CliRunner().invoke(cli, args)


def test_run_set(fast, tmp_path):
    """`run --set`: one worker count instead of the file's three, a swept density added."""
    out = tmp_path / "o"
    r = _run(["run", str(fast), "--out", str(out), "--no-plot", "--no-trace",
              "--set", "cluster.workers=4", "--set", "sweep.compressors.1.density=[0.1, 0.5]"])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())
    assert data["scenario"]["cluster"]["workers"] == [4]
    assert {(x["point"]["cluster.workers"], x["point"]["compressors.1.density"])
            for x in data["runs"]} == {(4, 0.1), (4, 0.5)}


def test_profile_set(fast, tmp_path):
    """`profile --set batch_size=8`: the profile is of batch 8."""
    r = _run(["profile", str(fast), "--out", str(tmp_path / "p.json"), "--set", "batch_size=8"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "p.json").read_text())["batch_size"] == 8


def test_breakeven_set_makes_the_scenario_one_point(fast):
    """`breakeven --vary cluster.bandwidth` on a file with three worker counts is refused;
    `--set cluster.workers=4` makes it one point, and nothing is written without --out."""
    r = _run(["breakeven", str(fast), "--vary", "cluster.bandwidth", "--json"])
    assert r.exit_code == 2 and "also varies cluster.workers (3 values)" in r.stderr
    r = _run(["breakeven", str(fast), "--vary", "cluster.bandwidth", "--json",
              "--set", "cluster.workers=4"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["compressor"] for line in r.stdout.splitlines()] == [
        "topk(density=0.1)"]


def test_train_set(tmp_path, write_scenario):
    """`train --set train.steps=1`: one step, recorded in train.json's scenario."""
    data = copy.deepcopy(FAST)
    data["train"] = {"samples": 64, "workers": 1, "steps": 50}
    out = tmp_path / "o"
    r = _run(["train", str(write_scenario(data)), "--out", str(out), "--set", "train.steps=1",
              "--set", "compressors=[{name: none}]"])
    assert r.exit_code == 0, r.output
    got = json.loads((out / "train.json").read_text())
    assert got["scenario"]["train"]["steps"] == 1
    assert [(x["compressor"], x["steps"]) for x in got["runs"]] == [("none", 1)]


def test_tta_set(tmp_path, write_scenario):
    """`tta --set train.target=...`: the target set on the command line is the one used."""
    data = copy.deepcopy(FAST)
    data["train"] = {"samples": 64, "steps": 2, "eval_every": 1}
    out = tmp_path / "o"
    r = _run(["tta", str(write_scenario(data)), "--out", str(out), "--no-plot",
              "--set", "train.target=0.01", "--set", "cluster.workers=1",
              "--set", "compressors=[{name: none}]"])
    assert r.exit_code == 0, r.output
    got = json.loads((out / "tta.json").read_text())
    assert got["scenario"]["train"]["target"] == 0.01
    assert {row["workers"] for row in got["rows"]} == {1}


@pytest.mark.parametrize("command", ["run", "profile", "train", "tta", "breakeven", "emulate"])
def test_every_scenario_command_validates_its_sets(command, fast):
    """On every command that loads a scenario, a bad `--set` is one line and exit 2 before
    anything runs: an unknown path names the nearest, a bad value its path."""
    extra = ["--vary", "cluster.bandwidth"] if command == "breakeven" else []
    t0 = time.perf_counter()
    one_line_error(_run([command, str(fast), *extra, "--set", "cluster.wrkers=4"]),
                   r"^error: --set 'cluster\.wrkers' is not a field of this scenario; nearest "
                   r"valid path: cluster\.workers$", t0, limit_s=30)
    one_line_error(_run([command, str(fast), *extra, "--set", "cluster.workers=0"]),
                   r"with --set cluster\.workers=0: cluster\.workers\[0\]: Input should be "
                   r"greater than or equal to 1", t0, limit_s=30)
