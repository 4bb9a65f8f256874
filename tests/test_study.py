"""Studies: rows per point with their axes, the point store (resume after an interruption,
an unchanged rerun computes nothing), and the same results serially, in local processes and
on a Dask cluster. Profiles are device-model estimates (no measuring)."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.report.results import RUN_FIELDS
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study import execute
from rsdgc_sim.study.orchestrate import StudyInterrupted, run_scenario
from rsdgc_sim.study.points import INDEX_NAME, PointStore, point_key
from rsdgc_sim.study.profiles import profile_scenario
from rsdgc_sim.study.simulate import simulate_scenario
from tests.helpers import one_line_error, within

#: 2 densities x 2 topologies, each over 2 worker counts x 2 bandwidths: 16 points
SWEEP = {"compressors.1.density": [0.1, 0.01], "cluster.topology.name": ["switch", "ring"]}


@pytest.fixture
def estimated(tiny) -> dict:
    """The tiny scenario on a device model (its profile is estimated, in milliseconds)."""
    tiny["device"] = {"model": "H100-SXM"}
    return tiny


@pytest.fixture
def swept(estimated) -> dict:
    estimated["sweep"] = dict(SWEEP)
    return estimated


def _counting(monkeypatch, fail_after: int | None = None) -> list[str]:
    """Record the key-free identity of every point simulated (serially) from now on; with
    ``fail_after``, a Ctrl-C arrives while simulating the point after that many."""
    seen: list[str] = []
    real = getattr(execute.compute_points, "real", execute.compute_points)

    def counted(scenarios, profile, trace=False):
        if fail_after is not None and len(seen) >= fail_after:
            raise KeyboardInterrupt
        seen.extend(point_key(sc, "p") for sc in scenarios)
        return real(scenarios, profile, trace=trace)

    counted.real = real
    monkeypatch.setattr(execute, "compute_points", counted)
    return seen


def _strip(runs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "point"} for r in runs]


def test_without_sweep_rows_are_those_of_the_whole_grid(estimated):
    """Point by point, the study gives exactly the rows of simulating the whole grid at
    once, in the same order, each with its point (every axis, single-valued ones too)."""
    sc = scenario_from_dict(estimated)
    prof, _ = profile_scenario(sc)
    whole, _ = simulate_scenario(sc, prof)
    res = run_scenario(sc)
    assert _strip(res.runs) == whole
    assert res.runs[-1]["point"] == {"cluster.workers": 4, "cluster.bandwidth": 1.25e9,
                                     "cluster.latency": 5e-6}
    assert res.axes == {"cluster.workers": [1, 4], "cluster.bandwidth": [1.25e8, 1.25e9]}
    assert (res.points_computed, res.points_reused) == (4, 0)


def test_an_estimated_profile_gives_points_for_ranges(estimated):
    """An estimated profile has no spread: every row's ranges are its values."""
    res = run_scenario(scenario_from_dict(estimated))
    assert not any(d.spread for d in res.profile.devices)
    for r in res.runs:
        assert r["iteration_s_low"] == r["iteration_s"] == r["iteration_s_high"]
        assert r["speedup_vs_dense_low"] == r["speedup_vs_dense"] == r["speedup_vs_dense_high"]


def test_sweep_rows_axes_and_profiles(swept):
    """16 points x 2 compressors; each row's point carries its swept values and the flat
    keys agree with them; a new density needs a new profile, a topology does not."""
    res = run_scenario(scenario_from_dict(swept))
    assert len(res.runs) == 32
    assert res.axes == {**SWEEP, "cluster.workers": [1, 4],
                        "cluster.bandwidth": [1.25e8, 1.25e9]}
    assert list(res.runs[0]["point"]) == [*SWEEP, "cluster.workers", "cluster.bandwidth",
                                          "cluster.latency"]
    for r in res.runs:
        p = r["point"]
        assert (r["topology"], r["workers"], r["bandwidth_bytes_per_s"]) == (
            p["cluster.topology.name"], p["cluster.workers"], p["cluster.bandwidth"])
        assert r["compressor"] in ("none", f"topk(density={p['compressors.1.density']})")
    assert (res.profiles_measured, res.profiles_reused) == (2, 0)
    # the first density's points come first, the topology inside it
    assert [r["point"]["cluster.topology.name"] for r in res.runs[::8]] == ["switch", "ring"] * 2


def test_unchanged_rerun_computes_nothing(swept, tmp_path, monkeypatch):
    """The second identical run reuses all 16 points and simulates none; its rows equal
    the first run's."""
    sc = scenario_from_dict(swept)
    first = run_scenario(sc, points_dir=str(tmp_path / "points"))
    assert (first.points_computed, first.points_reused) == (16, 0)
    assert len(_point_files(tmp_path / "points")) == 16
    seen = _counting(monkeypatch)
    again = run_scenario(sc, points_dir=str(tmp_path / "points"))
    assert seen == []
    assert (again.points_computed, again.points_reused) == (0, 16)
    assert (again.profiles_measured, again.profiles_reused) == (0, 2)
    assert again.runs == first.runs


def _point_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != INDEX_NAME)


def test_an_unchanged_rerun_reads_the_index_and_writes_nothing(swept, tmp_path, monkeypatch):
    """The index alone gives an unchanged rerun every point (the point files are not
    needed), and the rerun leaves it as it was; an index entry that is not what this
    version writes is not used (that point is looked up in its file, or simulated)."""
    sc = scenario_from_dict(swept)
    points = tmp_path / "points"
    first = run_scenario(sc, points_dir=str(points))
    index = points / INDEX_NAME
    stamp = index.stat().st_mtime_ns
    files = _point_files(points)
    for f in files:
        f.unlink()
    seen = _counting(monkeypatch)
    again = run_scenario(sc, points_dir=str(points))
    assert (seen, again.points_computed, again.points_reused) == ([], 0, 16)
    assert again.runs == first.runs and index.stat().st_mtime_ns == stamp
    data = json.loads(index.read_text())
    key = sorted(data["points"])[3]
    data["points"][key][0]["iteration_s"] = -1.0
    index.write_text(json.dumps(data))
    res = run_scenario(sc, points_dir=str(points))
    assert (len(seen), res.points_computed, res.points_reused) == (1, 1, 15)
    assert res.runs == first.runs
    assert json.loads(index.read_text())["points"][key][0]["iteration_s"] > 0  # rewritten


def test_an_index_of_another_grid_is_harmless(estimated, tmp_path, monkeypatch):
    """Two grids into one store: the index holds the last run's points (a run it already
    covers leaves it alone); the other grid's points are found in their files."""
    first = scenario_from_dict(estimated)
    estimated["cluster"]["bandwidth"].append("25Gbit/s")
    larger = scenario_from_dict(estimated)
    estimated["cluster"]["latency"] = "50us"
    other = scenario_from_dict(estimated)

    def indexed() -> int:
        return len(json.loads((tmp_path / INDEX_NAME).read_text())["points"])

    run_scenario(larger, points_dir=str(tmp_path))
    run_scenario(first, points_dir=str(tmp_path))  # a part of the index: not rewritten
    assert indexed() == 6
    run_scenario(other, points_dir=str(tmp_path))
    assert indexed() == 6 and len(_point_files(tmp_path)) == 12
    seen = _counting(monkeypatch)
    res = run_scenario(first, points_dir=str(tmp_path))
    assert (len(seen), res.points_computed, res.points_reused) == (0, 0, 4)
    assert indexed() == 4


def test_a_changed_grid_computes_only_the_new_points(estimated, tmp_path, monkeypatch):
    """A third bandwidth added to the grid: only its 2 points are simulated."""
    run_scenario(scenario_from_dict(estimated), points_dir=str(tmp_path))
    estimated["cluster"]["bandwidth"].append("25Gbit/s")
    seen = _counting(monkeypatch)
    res = run_scenario(scenario_from_dict(estimated), points_dir=str(tmp_path))
    assert (res.points_computed, res.points_reused, len(seen)) == (2, 4, 2)


def test_fresh_simulates_every_point_again(estimated, tmp_path):
    run_scenario(scenario_from_dict(estimated), points_dir=str(tmp_path))
    res = run_scenario(scenario_from_dict(estimated), points_dir=str(tmp_path), fresh=True)
    assert (res.points_computed, res.points_reused) == (4, 0)


def test_resume_after_an_interruption(swept, tmp_path, monkeypatch):
    """Interrupted after 5 of 16 points: the 5 are stored (no half-written file); the next
    run simulates the other 11 only (none twice) and its results equal an uninterrupted
    run's."""
    sc = scenario_from_dict(swept)
    whole = run_scenario(sc, points_dir=str(tmp_path / "whole"))
    points = tmp_path / "points"
    seen = _counting(monkeypatch, fail_after=5)
    with pytest.raises(StudyInterrupted) as info:
        run_scenario(sc, points_dir=str(points))
    assert (info.value.done, info.value.total) == (5, 16)
    assert "interrupted after 5/16 points; they are kept in" in str(info.value)
    assert len(_point_files(points)) == 5
    assert not (points / INDEX_NAME).exists()  # the index: the end of a whole run only
    assert [p.name for p in points.iterdir() if not p.name.endswith(".json")] == []
    first = list(seen)
    seen = _counting(monkeypatch)  # no more Ctrl-C
    res = run_scenario(sc, points_dir=str(points))
    assert (res.points_computed, res.points_reused) == (11, 5)
    assert len(seen) == 11 and not set(seen) & set(first)
    assert res.runs == whole.runs


def test_an_unreadable_point_file_is_computed_again(estimated, tmp_path):
    """A point file that is not JSON (or from another layout) is not reused."""
    sc = scenario_from_dict(estimated)
    first = run_scenario(sc, points_dir=str(tmp_path))
    (tmp_path / INDEX_NAME).unlink()  # else the index holds their rows
    files = _point_files(tmp_path)
    files[0].write_text("{not json")
    data = json.loads(files[1].read_text())
    files[1].write_text(json.dumps({**data, "version": "0.0.1"}))
    res = run_scenario(sc, points_dir=str(tmp_path))
    assert (res.points_computed, res.points_reused) == (2, 2)
    assert res.runs == first.runs


def test_point_keys_follow_scenario_profile_and_version(estimated, monkeypatch):
    """The key changes with a simulated field, the profile or the package version, and not
    with the scenario's name, its training section or how its profile was obtained (pinned
    or not: the profile itself is in the key)."""
    from rsdgc_sim.study import points

    sc = scenario_from_dict(estimated)
    k = point_key(sc, "profile-a")
    assert point_key(sc.model_copy(update={"name": "other"}), "profile-a") == k
    assert point_key(sc.model_copy(update={"train": sc.train.model_copy(update={"steps": 7})}),
                     "profile-a") == k
    assert point_key(sc.model_copy(update={"profile": sc.profile.model_copy(update={"pin": True})}),
                     "profile-a") == k
    assert point_key(sc, "profile-b") != k
    assert point_key(sc.model_copy(update={"ddp": sc.ddp.model_copy(update={"overlap": False})}),
                     "profile-a") != k
    monkeypatch.setattr(points, "__version__", "9.9.9")
    assert point_key(sc, "profile-a") != k


def test_a_remeasured_profile_has_another_identity(estimated):
    """Same profile inputs (same cache key), other content (measured again): another
    identity, hence other point keys."""
    from rsdgc_sim.study.points import profile_identity

    sc = scenario_from_dict(estimated)
    prof, _ = profile_scenario(sc)
    other = prof.model_copy(update={"host": "elsewhere"})
    assert profile_identity(other) != profile_identity(prof)


def test_serial_jobs_and_dask_give_identical_results(swept):
    """The same 16 points serially, in 2 local processes and on a Dask LocalCluster: equal
    rows (the simulator is deterministic; the profile travels as data)."""
    distributed = pytest.importorskip("distributed")
    sc = scenario_from_dict(swept)
    serial = run_scenario(sc)
    jobs = run_scenario(sc, jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        dask = run_scenario(sc, dask=cluster.scheduler_address)
    assert jobs.runs == serial.runs
    assert dask.runs == serial.runs
    assert dask.points_computed == jobs.points_computed == 16


def test_workers_need_no_torch(estimated, tmp_path):
    """A point simulated in a fresh interpreter from the pickled one-point scenario and
    profile (what --jobs and Dask send) never imports torch."""
    sc = scenario_from_dict(estimated)
    prof, _ = profile_scenario(sc)
    one = sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"workers": [4]})})
    (tmp_path / "task.pkl").write_bytes(pickle.dumps(([one], prof)))
    code = ("import pickle, sys; from rsdgc_sim.study.execute import compute_points; "
            f"s, p = pickle.load(open({str(tmp_path / 'task.pkl')!r}, 'rb')); "
            "rows = compute_points(s, p); print(len(rows[0][0]), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["4", "False"]


def test_cli_results_record_axes_points_and_version(swept, write_scenario, tmp_path):
    """`run` writes results.json with format, version, axes, points computed and reused and
    a point per row, results.csv with a column per swept path; a rerun reuses every point."""
    out = tmp_path / "out"
    args = ["run", str(write_scenario(swept)), "--out", str(out), "--no-plot"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())
    assert data["format"] == 2 and data["version"]
    assert data["axes"]["compressors.1.density"] == [0.1, 0.01]
    assert (data["points_computed"], data["points_reused"]) == (16, 0)
    assert all(set(row) == {*RUN_FIELDS, "buckets", "point"} for row in data["runs"])
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header == [*RUN_FIELDS, *SWEEP]
    assert "compressors.1.density=0.01, cluster.topology.name=ring" in r.stdout
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "points: 0 simulated, 16 reused" in r.stderr
    again = json.loads((out / "results.json").read_text())
    assert (again["points_computed"], again["points_reused"]) == (0, 16)
    assert again["runs"] == data["runs"]


def test_cli_ctrl_c_keeps_finished_points(estimated, write_scenario, tmp_path, monkeypatch):
    """Ctrl-C after 3 of 4 points: exit 130, one line saying so, the 3 points stored, no
    results.json and no temporary file."""
    _counting(monkeypatch, fail_after=3)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", str(write_scenario(estimated)), "--out", str(out), "-q"])
    assert r.exit_code == 130, r.output
    assert r.stderr.strip().splitlines()[-1] == (
        f"interrupted after 3/4 points; they are kept in {out / 'points'}: the same command "
        f"resumes")
    assert len(_point_files(out / "points")) == 3
    assert sorted(p.name for p in out.rglob("*") if p.is_file() and p.suffix != ".json") == []
    assert not (out / "results.json").exists()


def test_cli_dask_address_that_does_not_answer(estimated, write_scenario, tmp_path):
    """--dask at an address where nothing listens: one line within seconds, exit 2, and the
    points stored before are still there."""
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    path = str(write_scenario(estimated))
    assert CliRunner().invoke(cli, ["run", path, "--out", str(out), "--no-plot"]).exit_code == 0
    # nothing to simulate: no scheduler needed
    r = CliRunner().invoke(cli, ["run", path, "--out", str(out), "--no-plot", "--dask",
                                 "tcp://127.0.0.1:9"])
    assert r.exit_code == 0 and "points: 0 simulated, 4 reused" in r.stderr
    estimated["cluster"]["bandwidth"].append("25Gbit/s")  # 2 new points to send
    path = str(write_scenario(estimated))
    before = sorted(p.name for p in (out / "points").iterdir())
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["run", path, "--out", str(out), "--dask", "tcp://127.0.0.1:9",
                                 "-q"])
    one_line_error(r, r"--dask tcp://127.0.0.1:9: no Dask scheduler answered within 5 s", t0,
                   limit_s=20)
    assert sorted(p.name for p in (out / "points").iterdir()) == before


def test_a_failing_dask_worker_is_one_error(swept, monkeypatch):
    """A worker that cannot run the points (here: no package) is one ConfigError naming
    the version the workers need."""
    distributed = pytest.importorskip("distributed")

    def broken(scenarios, profile):
        raise ModuleNotFoundError("No module named 'rsdgc_sim'")

    monkeypatch.setattr(execute, "_rows_only", broken)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with pytest.raises(ConfigError, match=r"a worker failed \(ModuleNotFoundError: No "
                                              r"module named 'rsdgc_sim'\); workers need "
                                              r"rsdgc-sim \S+ installed"):
            run_scenario(scenario_from_dict(swept), dask=cluster.scheduler_address)


def test_cli_jobs_and_dask_exclude_each_other(estimated, write_scenario):
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["run", str(write_scenario(estimated)), "--jobs", "2",
                                 "--dask", "tcp://127.0.0.1:9"])
    one_line_error(r, r"--jobs and --dask exclude each other", t0)


@pytest.mark.parametrize("jobs", ["257", "2147483647", "0"])
def test_cli_jobs_out_of_range_is_one_line(estimated, write_scenario, tmp_path, jobs):
    """--jobs beyond MAX_JOBS (256) local processes, or below 1, is one line and exit 2
    (2147483647 overflowed the process pool's semaphore: a traceback), nothing written."""
    t0 = time.perf_counter()
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", str(write_scenario(estimated)), "--jobs", jobs,
                                 "--out", str(out)])
    one_line_error(r, r"--jobs.*not in the range 1<=x<=256", t0)
    assert not out.exists()


def test_execute_points_refuses_more_jobs_than_its_cap():
    """The Python API holds the same bound as the CLI: 1 to MAX_JOBS local processes."""
    with pytest.raises(ConfigError, match=r"jobs: must be 1 to 256 local processes \(got 257\)"):
        execute.execute_points([], {}, lambda *a: None, jobs=execute.MAX_JOBS + 1)
    with pytest.raises(ConfigError, match=r"got 0"):
        execute.execute_points([], {}, lambda *a: None, jobs=0)


def test_results_from_another_version_are_refused(tmp_path, estimated):
    """load_results: a results.json of this format loads; one from an earlier version (no
    version recorded) or another format names the version that wrote it."""
    from rsdgc_sim.report.results import load_results, write_results

    res = run_scenario(scenario_from_dict(estimated))
    write_results(res, tmp_path, trace=False, plot=False)
    assert load_results(tmp_path / "results.json")["runs"] == json.loads(
        json.dumps(res.runs))
    old = {"scenario": {}, "profile": {}, "runs": []}
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match=r"old.json: written by an earlier rsdgc-sim \(no "
                                          r"version recorded\), results format 1; this is "
                                          r"rsdgc-sim .*, format 2: run the study again"):
        load_results(tmp_path / "old.json")
    (tmp_path / "new.json").write_text(json.dumps({**old, "format": 3, "version": "0.9.0"}))
    with pytest.raises(ConfigError, match=r"written by rsdgc-sim 0.9.0, results format 3"):
        load_results(tmp_path / "new.json")
    with pytest.raises(ConfigError, match=r"no such file"):
        load_results(tmp_path / "missing.json")


def _row(label: str = "none", **update) -> dict:
    """A run row as `run` writes it (every run field)."""
    row = {f: 1.0 for f in RUN_FIELDS}
    row.update(compressor=label, topology="switch", collective="ring", fidelity="analytic",
               exact=True, workers=4, buckets=[])
    return {**row, **update}


def test_point_store_round_trip(tmp_path):
    store = PointStore(tmp_path / "p")
    assert store.get("k") is None
    store.put("k", {"cluster.workers": 4}, [_row(iteration_s=1.5)])
    assert store.get("k") == [_row(iteration_s=1.5)]
    assert store.get("k", ["none"]) == [_row(iteration_s=1.5)]
    assert store.get("other") is None
    assert json.loads(Path(store.path("k")).read_text())["point"] == {"cluster.workers": 4}


@pytest.mark.parametrize("edit", [
    lambda d: d["rows"][0].update(iteration_s=-1),
    lambda d: d["rows"][0].update(iteration_s=0),
    lambda d: d["rows"][0].update(compressor="topk"),       # another compressor's label
    lambda d: d["rows"][0].update(speedup_vs_dense="fast"),
    lambda d: d["rows"][0].update(workers=None),
    lambda d: d["rows"][0].update(exact=1),
    lambda d: d["rows"][0].pop("latency_s"),
    lambda d: d["rows"][0].update(point=[1]),
    lambda d: d["rows"].append(_row("none")),               # one row too many
    lambda d: d.update(rows=[]),
    lambda d: d.update(rows=[None]),
    lambda d: d.update(rows="x"),
])
def test_a_hand_edited_point_file_is_not_reused(tmp_path, edit):
    """A point file whose rows are not what this version writes for the point's
    compressors is not found (the point is simulated again, not copied into results)."""
    store = PointStore(tmp_path / "p")
    store.put("k", {}, [_row("none")])
    data = json.loads(store.path("k").read_text())
    edit(data)
    store.path("k").write_text(json.dumps(data))
    assert store.get("k", ["none"]) is None


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "nan", "deep", "folder"])
def test_a_point_file_that_cannot_be_read_is_simulated_again(tmp_path, kind):
    """A FIFO, a symlink to /dev/zero, NaN, deep nesting or a folder in a point file's place:
    not found, at once (a FIFO used to block the study forever)."""
    store = PointStore(tmp_path / "p")
    store.put("k", {}, [_row()])
    path = store.path("k")
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "nan":
        path.write_text('{"format": 2, "rows": [NaN]}')
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        path.mkdir()
    assert within(10, lambda: store.get("k", ["none"])) is None


def test_progress_line_shows_points_rate_and_time_left():
    """Half of 1,000 points in 2 s: a half-full bar, the count, 250 points/s, ~2 s left."""
    from rsdgc_sim.progress import Eta
    from rsdgc_sim.study.orchestrate import _points_bar

    now = [0.0]
    eta = Eta(1000, clock=lambda: now[0])
    now[0] = 2.0
    assert _points_bar(500, 1000, eta, width=10) == "points ━━━━━╺──── 500/1000, 250/s, ~2 s left"
    assert _points_bar(1000, 1000, eta, width=10) == "points ━━━━━━━━━━ 1000/1000, 500/s, <1 s left"


def _server(reply: bytes | None):
    """A TCP listener on loopback that accepts and then sends ``reply`` (None: nothing,
    ever); returns (address, stop)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)
            if reply is not None:
                c.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()

    def stop():
        srv.close()
        for c in conns:
            c.close()

    return f"tcp://127.0.0.1:{srv.getsockname()[1]}", stop


@pytest.mark.parametrize("reply, pattern", [
    (None, r"no Dask scheduler answered within 5 s \(something accepts connections there but "
           r"says nothing"),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
     r"something answers there, but not in Dask's protocol \(it began b'HTTP/1\.1'\)"),
    (b"\xff" * 64, r"something answers there, but not in Dask's protocol"),
])
def test_dask_at_an_address_that_is_not_a_scheduler(estimated, write_scenario, tmp_path, reply,
                                                    pattern):
    """A listener that never answers, an HTTP server, or a proxy speaking something else:
    one line within seconds naming the address (Dask's client hung for minutes, or tried to
    allocate 3 EiB), found by a probe before any Dask client is made."""
    pytest.importorskip("distributed")
    address, stop = _server(reply)
    try:
        t0 = time.perf_counter()
        r = CliRunner().invoke(cli, ["run", str(write_scenario(estimated)), "--out",
                                     str(tmp_path / "out"), "--dask", address, "-q"])
        one_line_error(r, rf"--dask {address}: {pattern}", t0, limit_s=20)
    finally:
        stop()


def test_a_long_study_says_how_long_after_its_first_point(estimated, monkeypatch):
    """Past ESTIMATE_ABOVE_S at the first point's pace, the study says how long the rest
    will take before simulating it; the rows are the same as without the estimate."""
    from rsdgc_sim.study import orchestrate

    sc = scenario_from_dict(estimated)
    said: list[str] = []
    plain = run_scenario(sc)
    monkeypatch.setattr(orchestrate, "ESTIMATE_ABOVE_S", 0.0)
    res = run_scenario(sc, progress=said.append)
    n = len(sc.grid())
    assert any(m.startswith("points: the first took ") and f"the other {n - 1} will take about"
               in m for m in said), said
    assert res.runs == plain.runs


def test_a_sweep_of_many_profiles_says_their_count_and_time_left(estimated, monkeypatch):
    """Seven batch sizes need seven profiles: the count comes first, then (the rest above
    the estimate threshold, here 0 s) the second profile's time times the five left; each
    profile's own messages go to the status line only."""
    from rsdgc_sim.progress import Transient
    from rsdgc_sim.study import orchestrate

    monkeypatch.setattr(orchestrate, "ESTIMATE_ABOVE_S", 0.0)
    estimated["sweep"] = {"batch_size": [1, 2, 3, 4, 5, 6, 7]}
    estimated["cluster"]["workers"] = [4]
    said: list[str] = []
    result = run_scenario(scenario_from_dict(estimated), progress=said.append)
    lines = [m for m in said if not isinstance(m, Transient)]
    assert lines[0] == "profiles: 7 distinct among the 7 sweep variants"
    assert re.fullmatch(r"profiles: the second took \d+ ms; the other 5 will take about \d+ s "
                        r"\(Ctrl-C keeps the cached ones: the same command reuses them\)", lines[1])
    assert not any("estimat" in m for m in lines)  # each profile's messages: transient
    assert any("estimating cnn_small" in m for m in said if isinstance(m, Transient))
    assert result.profiles_measured == 7
    assert sorted({r["point"]["batch_size"] for r in result.runs}) == [1, 2, 3, 4, 5, 6, 7]
