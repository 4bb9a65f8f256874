"""End to end: a tiny scenario through profile, simulation and result files."""

import csv
import json
import re

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.report.results import RUN_FIELDS
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.orchestrate import run_scenario


@pytest.fixture(scope="module")
def study():
    from tests.conftest import TINY

    return run_scenario(scenario_from_dict(TINY), trace=True)


def test_one_row_per_compressor_and_grid_point(study):
    """2 compressors x (2 worker counts x 2 bandwidths) = 8 rows with every field."""
    assert len(study.runs) == 8
    for row in study.runs:
        assert list(row) == [*RUN_FIELDS, "buckets", "point"]
    assert {r["compressor"] for r in study.runs} == {"none", "topk(density=0.1)"}


def test_dense_speedup_is_exactly_one(study):
    """The dense compressor is its own reference: speedup_vs_dense == 1 exactly."""
    assert all(r["speedup_vs_dense"] == 1.0 for r in study.runs if r["compressor"] == "none")


def test_rows_carry_the_measured_profiles_range(study):
    """A measured profile has a spread: each row's iteration time and speedup lie in their
    range, and every range is wider than a point (forward and backward have a spread)."""
    assert any(study.profile.devices[0].spread.values())
    for r in study.runs:
        assert r["iteration_s_low"] <= r["iteration_s"] <= r["iteration_s_high"]
        assert r["speedup_vs_dense_low"] <= r["speedup_vs_dense"] <= r["speedup_vs_dense_high"]
    assert all(r["iteration_s_low"] < r["iteration_s_high"] for r in study.runs)


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
    assert set(data) == {"format", "version", "scenario", "profile", "axes", "points_computed",
                         "points_reused", "profiles_measured", "profiles_reused", "runs"}
    assert data["scenario"]["cluster"]["bandwidth"] == [1.25e8, 1.25e9]
    assert data["profile"]["model"] == "cnn_small" and data["profile"]["batch_size"] == 4
    assert len(data["runs"]) == 8
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 8 and list(rows[0]) == RUN_FIELDS
    trace = json.loads((out / "trace.json").read_text())
    assert trace["traceEvents"]
    assert (out / "speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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
    assert not list(out.glob("*.png")) and not (out / "trace.json").exists()
    r = CliRunner().invoke(cli, ["plot", str(out / "results.json"), "--out", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(cli, ["plot", str(out / "results.csv")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and "not a results.json" in bad.stderr


def test_calibration_file_replaces_the_links(tiny, write_scenario, tmp_path):
    """`cluster.calibration` (a path relative to the scenario file) makes the simulator use the
    calibrated links: a cluster calibration of 1 Gbit/s and 50 us gives the same times as a
    nominal 1 Gbit/s, 50 us scenario without it; a missing file is an error at load."""
    from rsdgc_sim.calibration import Calibration, LinkFit, save_calibration
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
from rsdgc_sim.study.simulate import simulate_scenario
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
    from rsdgc_sim.scenario import scenario_from_dict
    from rsdgc_sim.study.profiles import profile_inputs

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


def test_random_k_is_costed_by_how_it_aggregates(tiny):
    """Random-k with per-rank indices must all-gather (index, value) pairs; with indices
    shared by every rank its values are allreduced and no index is sent: the profile marks
    those tensors dense, and the simulator moves them with the allreduce."""
    tiny["compressors"] = [
        {"name": "randomk", "density": 0.1, "min_numel": 100, "label": "own"},
        {"name": "randomk", "density": 0.1, "min_numel": 100, "shared_indices": True,
         "label": "shared"}]
    tiny["cluster"]["workers"] = [4]
    tiny["cluster"]["bandwidth"] = ["100Mbit/s"]
    study = run_scenario(scenario_from_dict(tiny))
    rows = {r["compressor"]: r for r in study.runs}
    assert "allgather" in rows["own"]["collective"]
    assert "allgather" not in rows["shared"]["collective"]
    # values only (4 B each) against values and int32 indices (8 B each) for the big tensors
    assert rows["shared"]["bytes_sent_per_worker"] < rows["own"]["bytes_sent_per_worker"]
    # an allreduce transmits 2(p-1)/p of it; the all-gather forwards p - 1 payloads
    assert (rows["shared"]["bytes_transmitted_per_worker"]
            < rows["own"]["bytes_transmitted_per_worker"] / 2)


def test_simulates_a_profile_written_by_another_process(tiny, tmp_path):
    """`profile --out FILE` in one process, `run --profile FILE` in another (torch never
    imported there): the same rows as simulating the cached profile directly."""
    import subprocess
    import sys

    import yaml

    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(tiny))
    prof = tmp_path / "p.json"
    r = CliRunner().invoke(cli, ["profile", str(scen), "--out", str(prof)])
    assert r.exit_code == 0, r.output
    code = (
        "import sys; from rsdgc_sim.cli import main\n"
        f"sys.argv = ['rsdgc-sim', 'run', {str(scen)!r}, '--profile', {str(prof)!r}, "
        f"'--out', {str(tmp_path / 'out')!r}, '-q', '--no-plot']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    from rsdgc_sim.profile.store import load_profile
    from rsdgc_sim.study.simulate import simulate_scenario

    want, _ = simulate_scenario(scenario_from_dict(tiny), load_profile(prof))
    assert [r["iteration_s"] for r in rows] == [r["iteration_s"] for r in want]


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d.update(batch_size=8), r"batch_size 4 in the profile, 8 in the scenario"),
    (lambda d: d["model"].update(name="resnet18", input_size=32),
     r"model 'cnn_small' in the profile, 'resnet18' in the scenario; input_size 16 in the profile, 32"),
    (lambda d: d["compressors"][1].update(density=0.2),
     r"compressor 'topk\(density=0\.2\)' is not in the profile \(it has: none, topk\(density=0\.1\)\)"),
    (lambda d: d["compressors"][1].update(label="topk(density=0.1)", density=0.3),
     r"compressor 'topk\(density=0\.1\)' was profiled as .*'density': 0\.1.*asks for .*0\.3"),
])
def test_a_mismatched_profile_is_one_line_naming_every_difference(tiny, tmp_path, change, pattern):
    """A profile file that does not answer the scenario (model, input, batch, compressors or
    their parameters) is refused in one line that names the file and what differs."""
    import yaml

    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(tiny))
    prof = tmp_path / "p.json"
    assert CliRunner().invoke(cli, ["profile", str(scen), "--out", str(prof)]).exit_code == 0
    change(tiny)
    scen.write_text(yaml.safe_dump(tiny))
    r = CliRunner().invoke(cli, ["run", str(scen), "--profile", str(prof), "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    import re

    assert re.search(r"profile .*p\.json does not match the scenario: " + pattern, lines[0]), lines[0]


@pytest.mark.slow
def test_two_runs_on_an_empty_cache_measure_once(tiny, tmp_path):
    """Two `profile` processes started together on an empty cache: one measures, the other
    waits for its lock and reuses that profile, so both report the same numbers."""
    import os
    import subprocess
    import sys

    import yaml

    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(tiny))
    env = {**os.environ, "RSDGC_SIM_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "rsdgc_sim.cli", "profile", str(scen),
                               "--out", str(tmp_path / f"p{i}.json")], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    measured = sum("profiling cnn_small" in err for _, err in outs)
    assert measured == 1, [err for _, err in outs]
    assert (tmp_path / "p0.json").read_text() == (tmp_path / "p1.json").read_text()


def test_device_model_profile_is_estimated_and_marked(tiny, tmp_path):
    """`device: {model: H100-SXM}` estimates the profile (nothing measured, no GPU needed),
    marks it estimated in the profile, results.json and the table's title, and caches it."""
    import yaml

    tiny["device"] = {"model": "H100-SXM"}
    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(tiny))
    r = CliRunner().invoke(cli, ["run", str(scen), "--out", str(tmp_path / "o"), "--no-plot"])
    assert r.exit_code == 0, r.output
    assert "ESTIMATED: H100-SXM" in r.stdout
    summary = json.loads((tmp_path / "o" / "results.json").read_text())["profile"]
    assert [d["estimated"] for d in summary["devices"]] == [True]
    assert summary["devices"][0]["source"].startswith("estimated: H100-SXM")
    again = CliRunner().invoke(cli, ["run", str(scen), "--out", str(tmp_path / "o2"), "--no-plot"])
    assert "from the cache" in again.stderr


def test_unknown_device_model_fails_at_load(tiny):
    """An unknown device model is a load-time error listing the known ones."""
    from rsdgc_sim.errors import ConfigError

    tiny["device"] = {"model": "TPU-9000"}
    with pytest.raises(ConfigError, match=r"device.*TPU-9000.*H100-SXM"):
        scenario_from_dict(tiny)


def test_rows_show_each_buckets_closed_form_beside_the_simulated_time(study):
    """Every row lists its buckets; on the switch with the ring allreduce (dense) the closed
    form exists for every bucket at p > 1 and equals the simulated time, whose formula is
    written out with the numbers; at one worker there is no collective and no formula."""
    for row in study.runs:
        assert row["buckets"], row["compressor"]
        for b in row["buckets"]:
            if row["workers"] == 1:
                assert b["formula"] is None
            elif row["compressor"] == "none":
                assert b["algorithm"] == "ring" and b["formula"].startswith("T = ")
                assert b["closed_form_s"] == pytest.approx(b["simulated_s"], rel=1e-12)


def test_no_trace_is_said_once_on_one_line(tiny, write_scenario, tmp_path):
    """Without traces (more points than a trace takes; points reused from OUT/points) the
    run says so once, on one plain line with the reason and the remedy (it used to warn
    and then note it again, wrapped over several lines)."""
    tiny["device"], tiny["compressors"] = {"model": "V100"}, [{"name": "none"}]
    tiny["cluster"].update(workers=[1, 2, 4, 8, 16], bandwidth=["1Gbit/s", "10Gbit/s",
                                                                "25Gbit/s", "100Gbit/s"],
                           latency=["1us", "5us", "20us", "100us"])
    scen, out = str(write_scenario(tiny)), str(tmp_path / "o")
    for expected in (r"note: no trace\.json: 80 points, more than the 64 a trace takes; "
                     r"trace a smaller grid",
                     r"note: no trace\.json: 80 of 80 points were reused from .*points; "
                     r"--fresh simulates them again"):
        r = CliRunner().invoke(cli, ["run", scen, "--out", out, "--no-plot"])
        assert r.exit_code == 0, r.output
        lines = [ln for ln in r.stderr.splitlines() if "trace.json" in ln or "traces" in ln]
        assert len(lines) == 1 and re.fullmatch(expected, lines[0]), lines
