"""`rsdgc-sim breakeven`: bisection on the simulator for where compression stops (or
starts) paying off, checked against the closed form d = 1/p (rsdgc_sim/study/breakeven.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.profile.schema import TensorInfo
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.sim.synthetic import synthetic_profile
from rsdgc_sim.study.breakeven import find_breakeven, to_json_lines
from tests.helpers import one_line_error

TEACHING = Path(__file__).resolve().parent.parent / "scenarios" / "teaching"
#: 2-D tensors of 2^20 elements: every density 1/p (p a power of two) is whole elements
TENSORS = [TensorInfo(name=f"w{i}", shape=[1024, 1024], numel=2**20) for i in range(4)]


def closed_form_scenario(workers: int, density: float, bandwidth: str = "10Gbit/s"):
    """The closed form's setting: switch, latency 0, no overlap, dense ring allreduce
    against a sparse ring all-gather of 4-byte values + 4-byte indices."""
    return scenario_from_dict({
        "name": "closed-form", "model": {"name": "cnn_small"}, "batch_size": 8, "device": "cpu",
        "compressors": [{"name": "none"}, {"name": "topk", "density": density, "label": "topk"}],
        "cluster": {"workers": workers, "bandwidth": bandwidth, "latency": "0us",
                    "collective": "ring", "sparse_collective": "allgather_ring"},
        "ddp": {"overlap": False}})


def free_compression(sc):
    """A profile whose top-k costs nothing to compute and sends 8 bytes per kept value."""
    return synthetic_profile(TENSORS, density=sc.compressors[1].params["density"],
                             compress_s_per_element=0.0, decompress_s_per_element=0.0)


@pytest.mark.parametrize("p", [4, 16, 64])
def test_breakeven_density_is_one_over_p(p):
    """Bisection on the density finds 1/p, where sparse all-gather and dense allreduce
    take the same time (to the element granularity, 1e-4 relative)."""
    (res,) = find_breakeven(closed_form_scenario(p, 0.5), "compressors.1.density",
                            free_compression, lo=1e-4, hi=1.0)
    assert res.breakeven == pytest.approx(1 / p, rel=1e-4)
    assert res.direction == "stops paying off"
    assert res.path == "compressors.1.density" and res.compressor == "topk"


def test_breakeven_does_not_depend_on_bandwidth():
    """The closed form has no bandwidth in it: the same 1/p at 1 and 100 Gbit/s."""
    for bw in ("1Gbit/s", "100Gbit/s"):
        (res,) = find_breakeven(closed_form_scenario(8, 0.5, bw), "compressors.1.density",
                                free_compression, lo=1e-4, hi=1.0)
        assert res.breakeven == pytest.approx(1 / 8, rel=1e-4)


def test_breakeven_workers_is_the_first_integer_past_one_over_d():
    """At density 0.06, 1/d = 16.7: sparse wins at 16 workers and loses from 17 on; the
    integer answer is 17 (workers are bisected as integers)."""
    (res,) = find_breakeven(closed_form_scenario(16, 0.06), "cluster.workers",
                            free_compression, lo=2, hi=256)
    assert res.breakeven == 17 and isinstance(res.breakeven, int)
    assert res.direction == "stops paying off"
    speed = dict(res.curve)
    assert all((s > 1) == (w < 1 / 0.06) for w, s in speed.items())


def test_no_crossing_is_none():
    """With free compression and no latency the speedup does not depend on bandwidth: no
    break-even in range, and --json says null."""
    (res,) = find_breakeven(closed_form_scenario(8, 0.01), "cluster.bandwidth", free_compression)
    assert res.breakeven is None and res.direction is None
    assert json.loads(to_json_lines([res]))["breakeven"] is None


def test_compression_that_costs_time_starts_paying_off_as_bandwidth_falls():
    """On the teaching profile (real compression costs) top-k 1 % at 16 workers stops
    paying off as bandwidth grows: slower than dense at 1 Tbit/s, faster at 100 Mbit/s;
    the break-even lies between, where the simulator says speedup = 1 (to 1e-6)."""
    from rsdgc_sim.scenario import load_scenario
    from rsdgc_sim.study.profiles import profile_scenario

    sc = load_scenario(TEACHING / "overlap.yaml")
    sc = sc.model_copy(update={"sweep": {}, "compressors": [
        *sc.compressors, type(sc.compressors[0])(name="topk", density=0.01)]})
    sc = sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"bandwidth": [1.25e9]})})
    (res,) = find_breakeven(sc, "cluster.bandwidth", lambda s: profile_scenario(s)[0])
    assert res.direction == "stops paying off"
    assert res.curve[0][1] > 1 > res.curve[-1][1]
    assert 1.25e8 < res.breakeven < 1.25e11
    from rsdgc_sim.study.breakeven import _Study

    st = _Study(sc, "cluster.bandwidth", lambda s: profile_scenario(s)[0])
    assert st.speedups(res.breakeven * (1 - 1e-5))[0] > 1 > st.speedups(res.breakeven * (1 + 1e-5))[0]


def test_bad_paths_and_ranges():
    """A path that does not exist names the nearest (a compressor parameter: the
    compressor's parameters); other swept axes, a range upside
    down, a path without a default range: ConfigError each."""
    sc = closed_form_scenario(8, 0.1)
    with pytest.raises(ConfigError, match=r"--vary 'cluster.bandwith' is not a field of this "
                                          r"scenario; nearest valid path: cluster.bandwidth"):
        find_breakeven(sc, "cluster.bandwith", free_compression)
    with pytest.raises(ConfigError, match=r"unknown parameter 'densty'; parameters: density"):
        find_breakeven(sc, "compressors.1.densty", free_compression, lo=0.01, hi=1)
    two = sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"bandwidth": [1e8, 1e9]})})
    with pytest.raises(ConfigError, match=r"also varies cluster.bandwidth \(2 values\)"):
        find_breakeven(two, "cluster.workers", free_compression)
    with pytest.raises(ConfigError, match=r"need finite lo < hi"):
        find_breakeven(sc, "compressors.1.density", free_compression, lo=0.5, hi=0.1)
    with pytest.raises(ConfigError, match=r"give the range with --lo and --hi"):
        find_breakeven(sc, "batch_size", free_compression)


def test_cli_json_one_object_per_compressor(tmp_path):
    """`breakeven S --vary cluster.workers --json`: one JSON object per line with
    compressor, path and breakeven; the curve is drawn to OUT/breakeven.png."""
    r = CliRunner().invoke(cli, ["breakeven", str(TEACHING / "sparse_vs_dense.yaml"), "--vary",
                                 "cluster.workers", "--json", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(o["compressor"], o["path"], o["breakeven"]) for o in objs] == [
        ("topk(density=0.01)", "cluster.workers", 74), ("topk(density=0.001)", "cluster.workers", 168)]
    assert (tmp_path / "b" / "breakeven.png").read_bytes().startswith(b"\x89PNG")


def test_cli_table_and_units(tmp_path):
    """Without --json a table, the break-even with its unit; --lo/--hi narrow the range."""
    r = CliRunner().invoke(cli, ["breakeven", str(TEACHING / "sparse_vs_dense.yaml"), "--vary",
                                 "cluster.workers", "--lo", "32", "--hi", "256", "--no-plot"])
    assert r.exit_code == 0, r.output
    assert "74 workers" in r.stdout and "stops paying off" in r.stdout


def test_cli_bad_input(tmp_path):
    """Bad path, bad --lo, another swept axis: one line, exit 2."""
    multi = tmp_path / "m.yaml"
    data = yaml.safe_load((TEACHING / "overlap.yaml").read_text())
    data["profile"]["file"] = str(TEACHING / data["profile"]["file"])
    multi.write_text(yaml.safe_dump(data))
    cases = [
        (["--vary", "cluster.bandwith"], str(TEACHING / "sparse_vs_dense.yaml"),
         r"cluster\.bandwith.*cluster\.bandwidth"),
        (["--vary", "cluster.bandwidth", "--lo", "fast"], str(TEACHING / "sparse_vs_dense.yaml"),
         r"--lo"),
        (["--vary", "cluster.workers"], str(multi), r"also varies .*cluster\.bandwidth"),
    ]
    for args, scen, pattern in cases:
        one_line_error(CliRunner().invoke(cli, ["breakeven", scen, *args, "--no-plot"]), pattern,
                       time.perf_counter(), limit_s=30)


@pytest.mark.parametrize("args, pattern", [
    (["--vary", "cluster.bandwidth", "--lo", "0bit/s"],
     r"cluster\.bandwidth = 0: bandwidth\[0\]: Input should be greater than or equal to 1"),
    (["--vary", "cluster.bandwidth", "--lo", "-5B/s"], r"cluster\.bandwidth = -5: "),
    (["--vary", "cluster.bandwidth", "--hi", "1e30bit/s"],
     r"cluster\.bandwidth = 1\.25e\+29: bandwidth\[0\]: Input should be less than or equal"),
    (["--vary", "cluster.latency", "--lo", "-1us"],
     r"cluster\.latency = -1e-06: latency\[0\]: Input should be greater than or equal to 0"),
    (["--vary", "cluster.latency", "--hi", "100000s"], r"cluster\.latency = 100000: latency"),
    (["--vary", "cluster.workers", "--hi", "1000000000"],
     r"cluster\.workers = 1e\+09: workers\[0\]: Input should be less than or equal to 65536"),
    (["--vary", "cluster.workers", "--hi", "100000"], r"cluster\.workers = 100000: workers"),
])
def test_cli_range_beyond_a_fields_limits_is_one_line(args, pattern, tmp_path):
    """--lo / --hi outside the limits the scenario schema holds a grid axis to (bandwidth
    1 B/s to 1 PB/s, latency 0 to 3600 s, workers up to 65,536) are refused at once, like the
    same value in a scenario file: one line naming the path, exit 2 (0 bandwidth was a
    pydantic traceback, 10^9 workers a hang)."""
    data = yaml.safe_load((TEACHING / "sparse_vs_dense.yaml").read_text())
    data["cluster"].update(workers=8, bandwidth="1Gbit/s", latency="5us")
    if data.get("profile", {}).get("file"):
        data["profile"]["file"] = str(TEACHING / data["profile"]["file"])
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump(data))
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["breakeven", str(one), *args, "--no-plot"])
    one_line_error(r, pattern, t0)


def test_cli_writes_nothing_in_the_working_folder(tmp_path, monkeypatch):
    """`breakeven` used to drop breakeven.png in the current folder; it writes only under
    --out (there: OUT/breakeven.png), and nothing at all without it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    scen = str(TEACHING / "sparse_vs_dense.yaml")
    r = CliRunner().invoke(cli, ["breakeven", scen, "--vary", "cluster.workers"])
    assert r.exit_code == 0, r.output
    assert list(cwd.iterdir()) == []
    r = CliRunner().invoke(cli, ["breakeven", scen, "--vary", "cluster.workers", "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert list(cwd.iterdir()) == []
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["breakeven.png"]
