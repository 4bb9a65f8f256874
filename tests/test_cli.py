"""The command line: user mistakes are one line on stderr and exit code 2, never a traceback;
`run` writes complete result files."""

import json

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def _one_line_error(result, pattern):
    import re

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d["cluster"].update(bandwith="1Gbit/s"), r"^error: .*cluster\.bandwith: unknown key"),
        (lambda d: d.update(batch_size=[1]), r"^error: .*batch_size: Input should be a valid integer"),
        (lambda d: d["cluster"].update(bandwidth="1 Gfoo"), r"^error: .*cluster\.bandwidth\[0\]: cannot read '1 Gfoo'"),
        (lambda d: d["model"].update(name="alexnet"), r"^error: .*unknown model 'alexnet'; choose one of: cnn_small"),
        (lambda d: d["compressors"][1].update(name="zip"), r"^error: .*unknown compressor 'zip'; choose one of:"),
        (lambda d: d.update(compressors=[]), r"^error: .*compressors: List should have at least 1 item"),
        (lambda d: d["cluster"].update(workers=0), r"^error: .*cluster\.workers\[0\]: Input should be greater than or equal to 1"),
        (lambda d: d["compressors"][1].update(density=2.0), r"^error: .*compressors\[1\]: .*density"),
    ],
)
def test_run_bad_scenario_exits_2_with_one_line(runner, tiny, write_scenario, tmp_path, mutate, pattern):
    """A bad scenario stops `run` before any work with one line and exit 2; no output is written."""
    mutate(tiny)
    out = tmp_path / "out"
    result = runner.invoke(cli, ["run", str(write_scenario(tiny)), "--out", str(out)])
    _one_line_error(result, pattern)
    assert not out.exists()


def test_run_missing_file(runner, tmp_path):
    """A missing scenario file is one line and exit 2."""
    result = runner.invoke(cli, ["run", str(tmp_path / "missing.yaml")])
    _one_line_error(result, r"^error: .*missing\.yaml: no such file")


def test_profile_missing_file(runner, tmp_path):
    """`profile` reports a missing file the same way."""
    result = runner.invoke(cli, ["profile", str(tmp_path / "missing.yaml")])
    _one_line_error(result, r"no such file")


def test_list_names_every_kind(runner):
    """`list` shows models, compressors, topologies and collectives."""
    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    for word in ("resnet50", "vgg19_bn", "nsi", "topk", "switch", "ring", "allgather_ring"):
        assert word in result.output


def test_schema_is_json_schema_of_scenarios(runner):
    """`schema` prints a JSON schema that forbids unknown keys at the top level."""
    result = runner.invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["additionalProperties"] is False
    assert {"model", "compressors", "cluster", "ddp"} <= set(schema["properties"])


def test_list_does_not_cut_descriptions(runner):
    """`list` shows each entry's whole first paragraph, not its first source line."""
    from rsdgc_sim.compress import COMPRESSORS

    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0
    assert COMPRESSORS.help("dgc").endswith("density warm-up.")
    assert "density" in result.output and "warm-up." in result.output
