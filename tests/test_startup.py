"""An unchanged rerun starts fast (issue 18) without reusing anything it should not: the
registry checks kept beside the points (``checks.json``) skip only checks whose outcome
their key fixes (a changed value, another version, a user's file are checked again, with
the same messages), the index's digest vouches for its rows only while its text is as
written, point keys made from one text per scenario equal the one-point scenarios' keys,
and the rerun imports neither numpy nor the simulator nor rich's status line.
``benchmarks/startup.py`` times it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.scenario import load_scenario, scenario_from_dict
from rsdgc_sim.scenario.validate import lasting_checks
from rsdgc_sim.study.orchestrate import run_scenario
from rsdgc_sim.study.points import _MARKS as MARKS
from rsdgc_sim.study.points import (
    CHECKS_NAME,
    INDEX_NAME,
    PointStore,
    one_point,
    point_key,
    point_keys,
)


@pytest.fixture
def estimated(tiny) -> dict:
    """The tiny scenario on a device model (its profile is estimated, in milliseconds)."""
    tiny["device"] = {"model": "H100-SXM"}
    return tiny


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """The worker counts of every topology the scenario checks build from now on (the
    simulator builds through its own reference, not counted)."""
    import rsdgc_sim.sim.topology as topology

    seen: list[int] = []
    real = topology.build_topology

    def counting(name, hosts, *args, **kwargs):
        seen.append(hosts)
        return real(name, hosts, *args, **kwargs)

    monkeypatch.setattr(topology, "build_topology", counting)
    return seen


def _run(path: Path, out: Path, *args: str, code: int = 0):
    r = CliRunner().invoke(cli, ["run", str(path), "--out", str(out), "--no-plot", "-q",
                                 *args])
    assert r.exit_code == code, r.output
    return r


def test_an_unchanged_rerun_builds_no_topology(estimated, write_scenario, tmp_path, builds):
    """The first run checks the topology at every worker count and keeps those checks; the
    rerun skips them; --fresh does them again; a new worker count is checked alone."""
    path, out = write_scenario(estimated), tmp_path / "out"
    _run(path, out)
    assert sorted(builds) == [1, 4]
    kept = json.loads((out / "points" / CHECKS_NAME).read_text())["checks"]
    assert sorted(c[3] for c in kept if c[0] == "build") == [1, 4]
    builds.clear()
    _run(path, out)
    assert builds == []
    _run(path, out, "--fresh")
    assert sorted(builds) == [1, 4]
    builds.clear()
    estimated["cluster"]["workers"] = [1, 4, 8]
    _run(write_scenario(estimated), out)
    assert builds == [8]


def test_kept_checks_of_another_version_or_spoilt_are_not_used(estimated, write_scenario,
                                                                 tmp_path, builds):
    path, out = write_scenario(estimated), tmp_path / "out"
    _run(path, out)
    checks = out / "points" / CHECKS_NAME
    assert PointStore(out / "points").checks()
    data = json.loads(checks.read_text())
    checks.write_text(json.dumps({**data, "version": "0.0.1"}))
    assert PointStore(out / "points").checks() == set()
    builds.clear()
    _run(path, out)
    assert sorted(builds) == [1, 4]
    for spoilt in ("{not json", json.dumps({**data, "checks": [[1, 2]]}), "[]"):
        checks.write_text(spoilt)
        assert PointStore(out / "points").checks() == set()


def test_kept_checks_never_pass_another_value(tiny, write_scenario):
    """Every check that passed for one scenario kept, a scenario that differs in a checked
    value is refused all the same, with the message it gets without them."""
    tiny["cluster"].update(workers=[8], bandwidth=["400Gbit/s"], topology={
        "name": "gpu_cluster", "preset": "dgx_h100", "nic": "400Gbit/s"})
    checked: set[tuple] = set()
    load_scenario(write_scenario(tiny), checked=checked)
    assert any(k[0] == "build" for k in checked)
    fat = {**tiny["cluster"], "workers": [4, 16], "topology": {"name": "fat_tree", "k": 4}}
    load_scenario(write_scenario({**tiny, "cluster": fat}), checked=checked)
    for change in ({"bandwidth": ["100Gbit/s", "400Gbit/s"]}, {"topology": {**tiny["cluster"]["topology"], "nic_latency": "2us"}},
                   {"collective": "no_such_algorithm"},
                   {**fat, "workers": [4, 64]}, {**fat, "topology": {"name": "fat_tree", "k": 2}}):
        bad = {**tiny, "cluster": {**tiny["cluster"], **change}}
        with pytest.raises(ConfigError) as fresh:
            load_scenario(write_scenario(bad))
        with pytest.raises(ConfigError) as kept:
            load_scenario(write_scenario(bad), checked=set(checked))
        assert str(kept.value) == str(fresh.value)


def test_a_topology_file_is_checked_on_every_run(estimated, write_scenario, tmp_path):
    """A topology built from a user's file is never kept: the file may change between
    runs, and the rerun then refuses it as a first run would."""
    lab = tmp_path / "lab.yaml"

    def write_lab(n: int) -> None:
        hosts = [f"h{i}" for i in range(n)]
        lab.write_text(json.dumps({"name": "lab", "hosts": hosts, "switches": ["s"],
                                   "links": [{"between": [h, "s"]} for h in hosts]}))

    write_lab(4)
    estimated["cluster"]["topology"] = {"name": "lab.yaml"}
    path, out = write_scenario(estimated), tmp_path / "out"
    _run(path, out)
    kept = PointStore(out / "points").checks()
    assert kept and not any(k[0] == "build" for k in kept)
    write_lab(3)
    again = _run(path, out, code=2)
    fresh = _run(path, tmp_path / "fresh", code=2)
    assert again.stderr == fresh.stderr and "4 hosts needed" in again.stderr


def test_lasting_checks_leave_out_what_reads_files():
    checked = {("model", "cnn_small"), ("build", "switch", "{}", 4, (1e9,), (5e-6,)),
               ("build", "/x/lab.yaml", "{}", 4, (1e9,), (5e-6,)),
               ("build", "small_lab", "{}", 4, (1e9,), (5e-6,)),
               ("calibration", "/x/cal.json"), ("collective", "ring")}
    assert set(lasting_checks(checked)) == {
        ("model", "cnn_small"), ("build", "switch", "{}", 4, (1e9,), (5e-6,)),
        ("collective", "ring")}


def test_the_index_digest_vouches_only_for_its_text(estimated, tmp_path, monkeypatch):
    """A run writes the index with its points' digest and an unchanged rerun reads it
    verified (and leaves it); an index changed since, even byte for byte in place, is not
    verified: its bad entry is found and, its point file gone, that point simulated again."""
    from rsdgc_sim.study import execute

    sc = scenario_from_dict(estimated)
    points = tmp_path / "points"
    first = run_scenario(sc, points_dir=str(points))
    index = points / INDEX_NAME
    assert index.read_text().startswith('{"format": 2, "version": ')
    assert PointStore(points).index().verified
    stamp = index.stat().st_mtime_ns
    assert run_scenario(sc, points_dir=str(points)).points_reused == 4
    assert index.stat().st_mtime_ns == stamp
    text = index.read_text()
    at = text.index('"iteration_s":') + len('"iteration_s":')
    end = text.index(",", at)
    index.write_text(text[:at] + "-" + text[at:end - 1] + text[end:])  # same layout and size
    assert len(index.read_text()) == len(text) and not PointStore(points).index().verified
    for f in points.glob("*.json"):  # the index alone holds the points
        if f.name != INDEX_NAME:
            f.unlink()
    simulated = []
    real = execute.compute_points
    monkeypatch.setattr(execute, "compute_points", lambda scs, *a, **k: (
        simulated.extend(scs), real(scs, *a, **k))[1])
    res = run_scenario(sc, points_dir=str(points))
    assert (len(simulated), res.points_computed, res.points_reused) == (1, 1, 3)
    assert res.runs == first.runs
    assert PointStore(points).index().verified


def test_an_index_without_digest_is_checked_and_rewritten_once(estimated, tmp_path):
    """An index as earlier versions wrote it (plain JSON) is read entry by entry, then
    written once with its digest; an index of rows this version would not write gets
    none."""
    from rsdgc_sim import __version__
    from rsdgc_sim.files import write_json_atomic
    from rsdgc_sim.study.points import POINT_FORMAT

    sc = scenario_from_dict(estimated)
    points = tmp_path / "points"
    run_scenario(sc, points_dir=str(points))
    store = PointStore(points)
    rows = dict(store.index())
    write_json_atomic(points / INDEX_NAME, {"format": POINT_FORMAT, "version": __version__,
                                            "points": rows})
    plain = store.index()
    assert plain == rows and not plain.verified
    run_scenario(sc, points_dir=str(points))
    assert store.index().verified and store.index() == rows
    key = sorted(rows)[0]
    store.put_index({**rows, key: [{**rows[key][0], "iteration_s": -1.0}, rows[key][1]]})
    assert not store.index().verified


@pytest.mark.parametrize("change", [
    {},
    {"sweep": {"compressors.1.density": [0.1, 0.01], "cluster.topology.name": ["switch", "ring"]}},
    {"cluster": {"workers": [2, 16], "bandwidth": ["1Gbit/s"], "latency": ["0us", "1ms"],
                 "topology": {"name": "fat_tree", "k": 4}, "collective": "ring",
                 "collective_params": {"chunks": 4},
                 "stragglers": {"speed_factors": [1.0, 2.5], "jitter_sigma": 0.1}}},
    {"compressors": [{"name": "none"}, {"name": "topk", "density": 0.1,
                                        "label": MARKS["workers"]}]},  # the stand-ins
    {"cluster": {"workers": [1, 4], "bandwidth": ["1Gbit/s", "10Gbit/s"], "collective": "auto",
                 "collective_params": {"x": MARKS["latency"]}}},  # before the grid's own
])
def test_point_keys_are_the_one_point_scenarios_keys(estimated, change):
    """The keys made from one text per scenario are those of its one-point scenarios (so
    the points stored by earlier runs are found), a scenario that holds a stand-in too."""
    from rsdgc_sim.scenario.sweep import expand_sweep

    sc = scenario_from_dict({**estimated, **change})
    for v in expand_sweep(sc):
        want = [point_key(one_point(v.scenario, p), "profile-a") for p in v.scenario.grid()]
        assert point_keys(v.scenario, "profile-a") == want
        assert len(set(want)) == len(want)


def test_an_unchanged_rerun_imports_no_simulator(estimated, write_scenario, tmp_path):
    """The rerun (stderr a pipe) imports neither numpy, simpy nor the simulator's
    topologies and collectives, nor rich's status line, nor multiprocessing."""
    path, out = write_scenario(estimated), tmp_path / "out"
    _run(path, out)
    code = ("import sys\nfrom rsdgc_sim.cli import main\ntry:\n"
            f"    main(['run', {str(path)!r}, '--out', {str(out)!r}, '--no-plot'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in ('numpy', 'simpy', 'rsdgc_sim.sim.topology', "
            "'rsdgc_sim.sim.collectives', 'rich.status', 'multiprocessing') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
    assert "4 reused" in r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_the_status_line_off_a_terminal_prints_what_it_did():
    """Off a terminal no status line is made (rich draws none there): the messages logged
    are those the status line's callback logged, transient ones left out."""
    from rich.console import Console

    from rsdgc_sim.cli.common import progress_status
    from rsdgc_sim.progress import Transient

    messages = ["profiles: 1 measured", Transient("points 3/4"), "warning: unstable",
                "a long line " * 12]

    def console(buf):
        return Console(file=buf, width=80, force_terminal=False, log_time=False,
                       log_path=False)

    new, old = io.StringIO(), io.StringIO()
    with progress_status(console(new), "starting") as say:
        for m in messages:
            say(m)
    err = console(old)
    with err.status("starting") as status:
        for m in messages:
            status.update(m)
            if not isinstance(m, Transient):
                err.log(m, markup=False, style="yellow" if m.startswith("warning:") else None)
    assert new.getvalue() == old.getvalue() and "points 3/4" not in new.getvalue()


def test_the_device_table_reads_alike_both_ways():
    """The package's device table, read by libyaml at start-up, is what the checked reader
    of users' files reads (no key given twice, the same values)."""
    from importlib import resources

    import yaml

    from rsdgc_sim.profile.device_models import TABLE_FILE, DeviceTable, device_table
    from rsdgc_sim.yaml_file import parse_yaml

    text = (resources.files("rsdgc_sim") / "data" / TABLE_FILE).read_text(encoding="utf-8")
    checked = parse_yaml(text, TABLE_FILE)
    assert yaml.load(text, Loader=yaml.CSafeLoader) == checked
    assert device_table() == DeviceTable.model_validate(checked)


def test_results_with_a_non_finite_number_are_written_again(estimated, write_scenario,
                                                            tmp_path):
    """The earlier results.json is compared without the non-finite walk: one with a NaN
    (or an infinity) differs from the results, so the rerun writes them (and draws the
    plots) again; an unchanged rerun writes nothing."""
    path, out = write_scenario(estimated), tmp_path / "out"
    args = ["run", str(path), "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    results = out / "results.json"
    good = results.read_text()
    for bad in ("NaN", "1e999"):
        at = good.index('"iteration_s": ') + len('"iteration_s": ')
        results.write_text(good[:at] + bad + good[good.index(",", at):])
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0 and "wrote results.json, results.csv, speedup" in r.stderr
        assert json.loads(results.read_text())["runs"] == json.loads(good)["runs"]
    r = CliRunner().invoke(cli, args)
    assert "wrote nothing new" in r.stderr


def test_sim_exports_are_the_functions_whatever_was_imported_first():
    """``simulate`` and ``collective_time`` share their modules' names: after the submodule
    itself was imported (as the study does), ``from rsdgc_sim.sim import simulate`` is
    still the function, not the module (in a fresh interpreter, so nothing else imported
    them before)."""
    code = ("import rsdgc_sim.sim.simulate, rsdgc_sim.sim.collective_time, types\n"
            "from rsdgc_sim.sim import collective_time, simulate\n"
            "assert isinstance(simulate, types.FunctionType), simulate\n"
            "assert isinstance(collective_time, types.FunctionType), collective_time\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
