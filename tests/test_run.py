"""End to end: a tiny scenario through profile, simulation and result files."""

import csv
import json

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.run import RUN_FIELDS, run_scenario
from rsdgc_sim.scenario import scenario_from_dict


@pytest.fixture(scope="module")
def study():
    from tests.conftest import TINY

    return run_scenario(scenario_from_dict(TINY), trace=True)


def test_one_row_per_compressor_and_grid_point(study):
    """2 compressors x (2 worker counts x 2 bandwidths) = 8 rows with every field."""
    assert len(study.runs) == 8
    for row in study.runs:
        assert list(row) == RUN_FIELDS
    assert {r["compressor"] for r in study.runs} == {"none", "topk(density=0.1)"}


def test_dense_speedup_is_exactly_one(study):
    """The dense compressor is its own reference: speedup_vs_dense == 1 exactly."""
    assert all(r["speedup_vs_dense"] == 1.0 for r in study.runs if r["compressor"] == "none")


def test_derived_metrics_follow_their_definitions(study):
    """compression_ratio, samples_per_s and scaling_efficiency are what their names say."""
    dense_bytes = study.profile.dense_bytes
    one = {(r["bandwidth_bytes_per_s"]): r["iteration_s"] for r in study.runs
           if r["compressor"] == "none" and r["workers"] == 1}
    for r in study.runs:
        assert r["compression_ratio"] == pytest.approx(dense_bytes / r["bytes_sent_per_worker"], rel=1e-12)
        assert r["samples_per_s"] == pytest.approx(r["workers"] * 4 / r["iteration_s"], rel=1e-12)
        assert r["scaling_efficiency"] == pytest.approx(one[r["bandwidth_bytes_per_s"]] / r["iteration_s"], rel=1e-12)
        assert r["iteration_s"] >= r["compute_s"] > 0
        assert 0 <= r["exposed_communication_s"] <= r["iteration_s"]


def test_one_worker_has_no_communication(study):
    """A single worker sends nothing over the network."""
    for r in study.runs:
        if r["workers"] == 1:
            assert r["communication_s"] == 0 and r["exposed_communication_s"] == 0


def test_dense_sends_the_whole_gradient_and_topk_less(study):
    """Dense workers contribute the fp32 gradient; top-k 10% sends fewer bytes."""
    for r in study.runs:
        if r["compressor"] == "none":
            assert r["bytes_sent_per_worker"] == study.profile.dense_bytes
            assert r["compression_ratio"] == 1.0
        else:
            assert r["bytes_sent_per_worker"] < study.profile.dense_bytes


def test_more_bandwidth_is_never_slower(study):
    """At 4 workers, 10 Gbit/s links give an iteration no longer than 1 Gbit/s links."""
    for comp in ("none", "topk(density=0.1)"):
        t = {r["bandwidth_bytes_per_s"]: r["iteration_s"] for r in study.runs
             if r["compressor"] == comp and r["workers"] == 4}
        assert t[1.25e9] <= t[1.25e8]


def test_cli_run_writes_complete_files(tiny, write_scenario, tmp_path):
    """`rsdgc-sim run` prints the table and writes results.json, results.csv and trace.json."""
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(write_scenario(tiny)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "topk(density=0.1)" in result.stdout
    data = json.loads((out / "results.json").read_text())
    assert set(data) == {"scenario", "profile", "runs"}
    assert data["scenario"]["cluster"]["bandwidth"] == [1.25e8, 1.25e9]
    assert data["profile"]["model"] == "cnn_small" and data["profile"]["batch_size"] == 4
    assert len(data["runs"]) == 8
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 8 and list(rows[0]) == RUN_FIELDS
    trace = json.loads((out / "trace.json").read_text())
    assert trace["traceEvents"]
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # no leftovers of the atomic writes
    # the second run reuses the cached profile
    again = CliRunner().invoke(cli, ["run", str(write_scenario(tiny)), "--out", str(out)])
    assert again.exit_code == 0 and "from the cache" in again.stderr


def test_plot_command_redraws_from_results(tiny, write_scenario, tmp_path):
    """`rsdgc-sim plot results.json --out p.png` draws a PNG; a file that is not a results.json
    is one line and exit 2."""
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["run", str(write_scenario(tiny)), "--out", str(out), "--no-plot",
                                    "--no-trace"]).exit_code == 0
    assert not (out / "plot.png").exists() and not (out / "trace.json").exists()
    r = CliRunner().invoke(cli, ["plot", str(out / "results.json"), "--out", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(cli, ["plot", str(out / "results.csv")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and "not a results.json" in bad.stderr


def test_calibration_file_replaces_the_links(tiny, write_scenario, tmp_path):
    """`cluster.calibration` (a path relative to the scenario file) makes the simulator use the
    calibrated links: a cluster calibration of 1 Gbit/s and 50 us gives the same times as a
    nominal 1 Gbit/s, 50 us scenario without it; a missing file is an error at load."""
    from rsdgc_sim.emulate.calibration import Calibration, LinkFit, save_calibration
    from rsdgc_sim.errors import ScenarioFileError
    from rsdgc_sim.scenario import load_scenario

    save_calibration(Calibration(source="cluster", links=[LinkFit(alpha_s=5e-5, beta_s_per_byte=1 / 1.25e8)]),
                     tmp_path / "cal.json")
    tiny["cluster"].update(workers=4, bandwidth="10Gbit/s", latency="1us", calibration="cal.json")
    calibrated = run_scenario(load_scenario(write_scenario(tiny)))
    assert load_scenario(write_scenario(tiny)).cluster.calibration == str(tmp_path / "cal.json")
    tiny["cluster"].update(bandwidth="1Gbit/s", latency="50us", calibration=None)
    nominal = run_scenario(load_scenario(write_scenario(tiny, "nominal.yaml")))
    assert [r["iteration_s"] for r in calibrated.runs] == [r["iteration_s"] for r in nominal.runs]
    assert calibrated.runs[0]["bandwidth_bytes_per_s"] == 1.25e9  # rows keep the grid's values
    tiny["cluster"]["calibration"] = "missing.json"
    with pytest.raises(ScenarioFileError, match=r"cluster\.calibration: calibration file .*missing\.json.* not found"):
        load_scenario(write_scenario(tiny))


def test_load_and_simulate_without_torch(tmp_path):
    """Loading a scenario (names and compressor parameters checked through the registries)
    and simulating it from a saved profile never import torch."""
    import subprocess
    import sys

    code = """
import sys
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.run import simulate_scenario
from rsdgc_sim.sim.synthetic import synthetic_profile
from rsdgc_sim.profile.schema import TensorInfo
sc = scenario_from_dict({
    "model": {"name": "resnet18", "num_classes": 10, "input_size": 32}, "batch_size": 4,
    "compressors": [{"name": "none"}, {"name": "topk", "density": 0.01, "label": "topk"}],
    "cluster": {"workers": [1, 4], "bandwidth": "1Gbit/s"}})
prof = synthetic_profile([TensorInfo(name="w", shape=[100, 100], numel=10000),
                          TensorInfo(name="b", shape=[100], numel=100)])
rows, _ = simulate_scenario(sc, prof)
assert len(rows) == 4, rows
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_profile_cache_key_follows_the_nsi_compile_mode(tiny):
    """A profile measured with eager NSI scores is never reused for compiled ones (or the
    other way round): the compile mode is part of the cache key."""
    from rsdgc_sim.compress import compile_mode, set_compiled
    from rsdgc_sim.profile.store import profile_key
    from rsdgc_sim.run import profile_inputs
    from rsdgc_sim.scenario import scenario_from_dict

    sc = scenario_from_dict(tiny)
    before = compile_mode()
    try:
        set_compiled(False)
        off = profile_key(profile_inputs(sc, ["cpu"]))
        set_compiled(True)
        on = profile_key(profile_inputs(sc, ["cpu"]))
    finally:
        set_compiled({"on": True, "off": False}.get(before, "auto"))
    assert off != on
