"""Plots of studies with more axes than one figure draws (`plot --where`, the slices `run`
writes and the ones it skips), stale outputs of an earlier run, and what the plots say:
panel titles without Python values, break-evens in whole workers, log axes where a linear
one would flatten all but the largest value."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.report.plots import draw, draw_plots
from rsdgc_sim.report.plots.axes import axis_of, value_words
from rsdgc_sim.report.plots.figure import short_value
from rsdgc_sim.report.plots.slices import file_stem, is_plot_file, select
from rsdgc_sim.report.results import combined_trace
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.orchestrate import run_scenario
from tests.helpers import one_line_error, tta_data

PROFILE = Path(__file__).resolve().parent.parent / "scenarios/teaching/profiles/resnet50_v100.json"
PNG = b"\x89PNG\r\n\x1a\n"
FAT = {"name": "fat_tree", "k": 4}


def _scenario(sweep: dict | None = None, **cluster) -> dict:
    return {
        "name": "slices", "model": {"name": "resnet50", "num_classes": 45, "input_size": 128},
        "batch_size": 32, "device": {"model": "V100"}, "profile": {"file": str(PROFILE)},
        "compressors": [{"name": "none"}, {"name": "topk", "density": 0.01}],
        "cluster": {"topology": {"name": "switch"}, "latency": "5us", **cluster},
        **({"sweep": sweep} if sweep else {}),
    }


FOUR = _scenario({"cluster.topology": [{"name": "switch"}, FAT], "ddp.overlap": [False, True]},
                 workers=[4, 16], bandwidth=["1Gbit/s", "10Gbit/s"])


@pytest.fixture(scope="module")
def four_axes():
    """topology x overlap x workers x bandwidth, with traces: (results, trace)."""
    res = run_scenario(scenario_from_dict(FOUR), trace=True)
    return json.loads(json.dumps(res.to_dict())), combined_trace(res)


def test_where_selects_a_slice(four_axes):
    """--where fixes axes by path (or short name), the value read as YAML, a bandwidth with
    its unit; a field of a mapping axis keeps every value it matches; the slice keeps the
    rows' places in the whole results (trace.json's ids)."""
    data, _ = four_axes
    part = select(data, [("ddp.overlap", "true"), ("bandwidth", "10Gbit/s")])
    assert len(part.data["runs"]) == 2 * 2 * 2  # topologies x workers x compressors
    assert all(r["point"]["ddp.overlap"] is True and r["bandwidth_bytes_per_s"] == 1.25e9
               for r in part.data["runs"])
    assert [data["runs"][i] for i in part.indices] == part.data["runs"]
    assert part.label == "overlap on, 10Gbit/s"
    fat = select(data, {"cluster.topology.name": "fat_tree"})
    assert {json.dumps(r["point"]["cluster.topology"]) for r in fat.data["runs"]} == {
        json.dumps(FAT)}
    assert select(data, {"cluster.topology": "{name: fat_tree, k: 4}"}).indices == fat.indices
    assert file_stem("heatmap", fat.where) == "heatmap--topology=fat_tree-k4"


@pytest.mark.parametrize("where, pattern", [
    ("ddp.overlp=true", r"--where ddp\.overlp: not a swept axis of these results \(swept: "
                        r"cluster\.topology, ddp\.overlap, cluster\.workers, cluster\.bandwidth\);"
                        r" did you mean 'ddp\.overlap'"),
    ("ddp.overlap=maybe", r"--where ddp\.overlap=maybe: not a value of ddp\.overlap \(its "
                          r"values: false, true\)"),
    ("bandwidth=3Gbit/s", r"not a value of bandwidth \(its values: 1Gbit/s, 10Gbit/s\)"),
    ("bandwidth=10", r"has no unit.*\(values of bandwidth: 1Gbit/s, 10Gbit/s\)"),
    ("overlap", r"--where: expected PATH=VALUE"),
])
def test_plot_where_bad_path_or_value_is_one_line(four_axes, tmp_path, where, pattern):
    """A path that is no swept axis lists the axes; a value that is none of the axis's lists
    its values (as typed); one line, exit 2."""
    res = tmp_path / "results.json"
    res.write_text(json.dumps(four_axes[0]))
    r = CliRunner().invoke(cli, ["plot", str(res), "--kind", "heatmap", "--where", where])
    one_line_error(r, pattern, time.perf_counter() - 1)


def test_plot_where_draws_a_four_axis_study(four_axes, tmp_path):
    """A heat map of four axes is refused whole (saying --where), and drawn for one value of
    the two others, into the slice's file name."""
    res = tmp_path / "results.json"
    res.write_text(json.dumps(four_axes[0]))
    r = CliRunner().invoke(cli, ["plot", str(res), "--kind", "heatmap"])
    one_line_error(r, r"also sweep cluster\.topology, ddp\.overlap: choose a value of each "
                      r"with --where", time.perf_counter() - 1)
    r = CliRunner().invoke(cli, ["plot", str(res), "--kind", "heatmap", "--where",
                                 "ddp.overlap=false", "--where", "cluster.topology.name=switch"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "heatmap--topology=switch--overlap=off.png").read_bytes().startswith(PNG)


def test_timeline_where_chooses_the_case_and_says_it(four_axes):
    """`--kind timeline --where` draws dense and the compressor at a point of the slice;
    the title names workers, link, latency, compressors and every swept value."""
    data, trace = four_axes
    svg = draw(data, "timeline", fmt="svg", trace=trace, where={
        "cluster.topology.name": "fat_tree", "ddp.overlap": "false", "workers": "4",
        "bandwidth": "1Gbit/s"}).decode()
    assert ("none vs topk(density=0.01) at 4 workers, 1Gbit/s, latency 5us, topology "
            "fat_tree(k=4), overlap off") in svg
    assert "none | 4 workers | 1Gbit/s | 5us" in svg


def test_run_writes_the_slices_and_says_what_it_skips(tmp_path, monkeypatch):
    """`run` on four axes: the heat map in one file per topology x overlap; where the
    slices are too many it writes none of that kind and says so in one line. (Only the heat
    map is drawn here, a second a figure: the other kinds' slices are drawn by
    test_plot_where_draws_a_four_axis_study and test_draw_plots_skips_with_a_reason.)"""
    monkeypatch.setattr("rsdgc_sim.report.plots.default_kinds", lambda data, trace: ["heatmap"])
    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(FOUR))
    r = CliRunner().invoke(cli, ["run", str(scen), "--out", str(tmp_path / "o"), "--no-trace"])
    assert r.exit_code == 0, r.output
    heat = sorted(p.name for p in (tmp_path / "o").glob("heatmap*.png"))
    assert heat == ["heatmap--topology=fat_tree-k4--overlap=off.png",
                    "heatmap--topology=fat_tree-k4--overlap=on.png",
                    "heatmap--topology=switch--overlap=off.png",
                    "heatmap--topology=switch--overlap=on.png"]
    assert "heatmap--*.png (4 slices)" in r.stderr
    monkeypatch.setattr("rsdgc_sim.report.plots.slices.MAX_SLICES", 3)
    r = CliRunner().invoke(cli, ["run", str(scen), "--out", str(tmp_path / "p"), "--no-trace"])
    assert r.exit_code == 0, r.output
    assert not list((tmp_path / "p").glob("heatmap*"))
    (line,) = [ln for ln in r.stderr.splitlines() if "not drawn" in ln]
    assert line == ("heatmap.png not drawn: 4 slices (cluster.topology x ddp.overlap), at "
                    "most 3; `rsdgc-sim plot --where PATH=VALUE` draws one")


def test_rerun_removes_its_own_stale_outputs(tmp_path):
    """A grid with a heat map, then a one-axis rerun into the same folder: heatmap.png,
    efficiency.png and trace.json (not made this time) are removed and the "wrote" line
    says so; files `run` does not write (an SVG, notes, the point store) stay."""
    out = tmp_path / "o"
    first = tmp_path / "a.yaml"
    first.write_text(yaml.safe_dump(_scenario(workers=[4, 16], bandwidth=["1Gbit/s", "10Gbit/s"])))
    assert CliRunner().invoke(cli, ["run", str(first), "--out", str(out), "-q"]).exit_code == 0
    assert {"heatmap.png", "efficiency.png", "trace.json"} <= {p.name for p in out.iterdir()}
    (out / "speedup.svg").write_text("<svg/>")
    (out / "notes.png").write_bytes(PNG)
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump(_scenario(workers=16, bandwidth=["1Gbit/s", "10Gbit/s"])))
    r = CliRunner().invoke(cli, ["run", str(second), "--out", str(out), "--no-trace"])
    assert r.exit_code == 0, r.output
    names = {p.name for p in out.iterdir()}
    assert not names & {"heatmap.png", "efficiency.png", "trace.json", "timeline.png"}
    assert {"speedup.svg", "notes.png", "points", "speedup.png", "breakdown.png"} <= names
    assert ("removed efficiency.png, heatmap.png, timeline.png, trace.json (left by an "
            "earlier run") in r.stderr


def test_stale_outputs_stay_when_the_new_set_fails(tmp_path):
    """All or nothing: when a new file cannot be written, the stale ones are not removed."""
    from rsdgc_sim.errors import OutputError
    from rsdgc_sim.files import write_files_atomic

    (tmp_path / "heatmap.png").write_bytes(b"old")
    (tmp_path / "results.json").mkdir()  # a folder where a file must go
    with pytest.raises(OutputError, match="is a folder"):
        write_files_atomic({tmp_path / "speedup.png": b"new", tmp_path / "results.json": b"x"},
                           remove=[tmp_path / "heatmap.png"])
    assert (tmp_path / "heatmap.png").read_bytes() == b"old"
    assert not (tmp_path / "speedup.png").exists()
    write_files_atomic({tmp_path / "speedup.png": b"new"}, remove=[tmp_path / "heatmap.png"])
    assert not (tmp_path / "heatmap.png").exists()


def test_plot_files_are_recognised_by_name():
    assert is_plot_file("heatmap.png", ["heatmap"])
    assert is_plot_file("speedup--topology=fat_tree-k4--overlap=on.png", ["speedup"])
    assert not is_plot_file("speedup--mine.png", ["speedup"])
    assert not is_plot_file("notes.png", ["speedup"]) and not is_plot_file("speedup.svg", ["speedup"])


def test_panel_titles_have_no_python_values(four_axes):
    """Swept values as a reader writes them: a mapping as fat_tree(k=4), a flag on/off, a
    list in brackets; the drawn panels carry no repr."""
    assert short_value(axis_of("cluster.topology", [FAT]), FAT) == "topology fat_tree(k=4)"
    assert short_value(axis_of("ddp.overlap", [True, False]), True) == "overlap on"
    sf = "cluster.stragglers.speed_factors"
    assert short_value(axis_of(sf, [(1,)]), (1,)) == "speed_factors [1]"
    assert value_words({"k": 2, "exact": False}) == "(k=2, exact=false)"
    svg = draw(four_axes[0], "speedup", fmt="svg").decode()
    assert "topology fat_tree(k=4), overlap on, 1Gbit/s" in svg
    for repr_ in ("{'name'", "True", "False", "(1,)"):
        assert repr_ not in svg


def test_breakeven_in_workers_is_a_whole_bracket():
    """An interpolated crossing at 34.6 workers reads 34-35 workers; a whole one, 75."""
    ax = axis_of("cluster.workers", [4, 64])
    assert ax.value_text(34.6) == "34-35 workers"
    assert ax.value_text(75) == "75 workers" and ax.value_text(1.0) == "1 worker"
    rows = []
    for w, s in ((16, 1.2), (64, 0.5)):  # crosses 1 at 16 + 48 * 0.2 / 0.7 = 29.7 workers
        for c, sp in (("none", 1.0), ("topk", s)):
            rows.append({"compressor": c, "workers": w, "bandwidth_bytes_per_s": 1e9,
                         "latency_s": 0.0, "iteration_s": 0.1 / sp, "speedup_vs_dense": sp})
    svg = draw({"runs": rows}, "speedup", fmt="svg").decode()
    assert "<!-- 29-30 workers -->" in svg


def test_breakeven_label_clear_of_every_line():
    """place_labels puts the label in a corner no line crosses (the curve rises: not above
    right), inside the axes."""
    from rsdgc_sim.report.plots.figure import pyplot
    from rsdgc_sim.report.plots.lines import place_labels

    fig, ax = pyplot().subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [0.5, 1.0, 1.5])
    ax.plot([1, 3], [1.0, 1.0], ls="--")
    ax.set_xlim(0.5, 3.5)
    place_labels(ax, [{"text": "2 workers", "x": 2.0, "y": 1.0, "falling": False,
                       "colour": "C0"}])
    renderer = fig.canvas.get_renderer()
    (ann,) = ax.texts
    box = ann.get_window_extent(renderer)
    for ln in ax.get_lines():
        assert not ln.get_path().transformed(ln.get_transform()).intersects_bbox(box, filled=False)
    assert ann.xy == (2.0, 1.0) and ann.xyann[0] > 0 and ann.xyann[1] < 0  # below right


def test_breakdown_turns_log_past_100x():
    """One 14 s iteration beside 50 ms ones: a log time axis (saying so), each bar's time
    written; within 100x it stays linear from 0."""
    from rsdgc_sim.report.plots.breakdown import log_axis

    def row(bw, it, comm):
        return {"compressor": "none", "workers": 16, "bandwidth_bytes_per_s": bw,
                "latency_s": 5e-6, "iteration_s": it, "speedup_vs_dense": 1.0,
                "compute_s": 0.05, "compression_s": 0.0, "communication_s": comm,
                "exposed_communication_s": comm}

    wide = [row(1.25e7, 14.4, 14.35), row(1.25e10, 0.052, 0.002)]
    narrow = [row(1.25e9, 4.0, 3.95), row(1.25e10, 0.052, 0.002)]  # 77x
    assert log_axis(wide) == (10.0, pytest.approx(14400 * 2.5))
    assert log_axis(narrow) is None
    svg = draw({"runs": wide}, "breakdown", fmt="svg").decode()
    assert "log scale: the bars span over 100x" in svg and "14,400 ms" in svg
    assert "log scale" not in draw({"runs": narrow}, "breakdown", fmt="svg").decode()


def test_tta_time_axis_turns_log_where_curves_end_far_apart():
    """Dense's curve ends at 38 s, the compressors' near 5 s: that panel's time axis is
    logarithmic (an option: log_time=False keeps it linear); panels alike stay linear."""
    from rsdgc_sim.report.tta_plot import plot_tta, wants_log_time

    assert wants_log_time([37.7, 4.6, 5.1]) and not wants_log_time([3.2, 3.4, 0.0])
    data = tta_data()
    svg = plot_tta(data, fmt="svg").decode()
    assert svg.count("simulated wall-clock time (s, log scale)") == 1
    assert svg.count("simulated wall-clock time (s)") == 1
    assert "log scale" not in plot_tta(data, fmt="svg", log_time=False).decode()


def test_draw_plots_skips_with_a_reason(four_axes, monkeypatch):
    """draw_plots: a default kind that fits neither whole nor in few enough slices is left
    out with its reason; the others are drawn. (Two default kinds, one of each: every kind
    is drawn by tests/test_plots.py, a second a figure.)"""
    monkeypatch.setattr("rsdgc_sim.report.plots.slices.MAX_SLICES", 1)
    monkeypatch.setattr("rsdgc_sim.report.plots.default_kinds",
                        lambda data, trace: ["speedup", "heatmap"])
    skipped: list = []
    drawn = draw_plots(four_axes[0], skipped=skipped)
    assert "heatmap" not in " ".join(drawn) and "speedup" in drawn
    assert [k for k, _ in skipped] == ["heatmap"]
    with pytest.raises(ConfigError, match="4 slices"):
        draw_plots(four_axes[0], kinds=["heatmap"])


def test_an_unchanged_rerun_keeps_its_plots_and_a_changed_one_draws_them(tmp_path,
                                                                          monkeypatch):
    """Plots drawn from the same results by the last run are kept (not drawn again: a
    second each) and the "wrote" line says so; when a result changes, or a kind's plot is
    missing, they are drawn again. (Two kinds: which kinds `run` draws is
    test_run_writes_plots_named_by_kind's.)"""
    for module in ("rsdgc_sim.report.plots", "rsdgc_sim.report.results"):  # draws, keeps
        monkeypatch.setattr(f"{module}.default_kinds", lambda data, trace: ["speedup", "heatmap"])
    out, scen = tmp_path / "o", tmp_path / "s.yaml"
    data = _scenario(workers=[4, 16], bandwidth=["1Gbit/s", "10Gbit/s"])
    scen.write_text(yaml.safe_dump(data))
    run = ["run", str(scen), "--out", str(out), "--no-trace"]
    assert CliRunner().invoke(cli, run).exit_code == 0
    plots = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert set(plots) == {"speedup.png", "heatmap.png"}
    r = CliRunner().invoke(cli, run)
    assert r.exit_code == 0, r.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == plots
    assert f"kept {len(plots)} plot(s) drawn from the same results" in r.stderr
    # the same again, counters included: nothing is written at all
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    r = CliRunner().invoke(cli, run)
    assert "wrote nothing new (the files there hold these results)" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == stamps
    (out / "heatmap.png").unlink()  # a kind's plot missing: all drawn again
    r = CliRunner().invoke(cli, run)
    assert "kept" not in r.stderr and (out / "heatmap.png").exists()
    data["cluster"]["latency"] = "50us"  # other results: drawn again
    scen.write_text(yaml.safe_dump(data))
    before = (out / "speedup.png").stat().st_mtime_ns
    r = CliRunner().invoke(cli, run)
    assert r.exit_code == 0 and "kept" not in r.stderr
    assert (out / "speedup.png").stat().st_mtime_ns != before
