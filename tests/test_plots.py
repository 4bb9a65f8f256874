"""Plots (`rsdgc-sim plot`, and the ones `run` writes): every kind drawn as PNG and SVG,
the x axis following what was swept, old results files (no ``axes``) still plotting,
break-even marks where the speedup crosses 1, y ranges that keep 2 % small."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.report.plots import KINDS, default_kinds, draw, write_plots
from rsdgc_sim.report.plots.axes import padded_range, pick_x, study_axes
from rsdgc_sim.report.plots.lines import crossings
from rsdgc_sim.report.results import combined_trace
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.orchestrate import run_scenario
from tests.helpers import one_line_error

PROFILE = Path(__file__).resolve().parent.parent / "scenarios/teaching/profiles/resnet50_v100.json"
PNG, SVG = b"\x89PNG\r\n\x1a\n", b"<?xml"


def _scenario(**cluster) -> dict:
    return {
        "name": "plots", "model": {"name": "resnet50", "num_classes": 45, "input_size": 128},
        "batch_size": 32, "device": {"model": "V100"}, "profile": {"file": str(PROFILE)},
        "compressors": [{"name": "none"}, {"name": "topk", "density": 0.01},
                        {"name": "topk", "density": 0.001}],
        "cluster": {"topology": {"name": "switch"}, "latency": "5us", **cluster},
    }


@pytest.fixture(scope="module")
def grid_study():
    """workers x bandwidth, with traces: (results.json data, trace.json data)."""
    res = run_scenario(scenario_from_dict(_scenario(
        workers=[4, 16, 64], bandwidth=["1Gbit/s", "10Gbit/s", "100Gbit/s"])), trace=True)
    return json.loads(json.dumps(res.to_dict())), combined_trace(res)


@pytest.fixture(scope="module")
def bandwidth_study():
    res = run_scenario(scenario_from_dict(_scenario(
        workers=16, bandwidth=["100Mbit/s", "1Gbit/s", "10Gbit/s", "100Gbit/s", "400Gbit/s"])))
    return json.loads(json.dumps(res.to_dict()))


def _old(data: dict) -> dict:
    """The same results as an older version wrote them: no axes, no point, no format."""
    return {"scenario": data["scenario"], "profile": data["profile"],
            "runs": [{k: v for k, v in r.items() if k != "point"} for r in data["runs"]]}


def test_every_kind_is_drawn(grid_study):
    """Each kind gives a non-empty SVG picture (heat map: workers x bandwidth; timeline:
    from the trace); every kind's PNG, drawn by the same ``draw``, is
    test_plot_command_every_kind's."""
    data, trace = grid_study
    for kind in KINDS:
        out = draw(data, kind, fmt="svg", title="t", trace=trace)
        assert out.startswith(SVG) and len(out) > 5000, kind


def test_run_writes_the_useful_plots(grid_study, tmp_path):
    """`write_plots` (what `run` calls) writes speedup, breakdown, efficiency (workers were
    swept), heatmap (two numeric axes) and timeline (a trace) as PNG files."""
    data, trace = grid_study
    paths = write_plots(data, tmp_path, "t", trace=trace)
    assert [p.name for p in paths] == ["speedup.png", "breakdown.png", "efficiency.png",
                                       "heatmap.png", "timeline.png"]
    for p in paths:
        assert p.read_bytes().startswith(PNG)


def test_default_kinds_follow_the_study(bandwidth_study):
    """A bandwidth sweep: no efficiency (one worker count), no heat map (one axis), no
    timeline without a trace; only dense: iteration time instead of speedup."""
    assert default_kinds(bandwidth_study, has_trace=False) == ["speedup", "breakdown"]
    dense_only = {**bandwidth_study,
                  "runs": [r for r in bandwidth_study["runs"] if r["compressor"] == "none"]}
    assert default_kinds(dense_only, has_trace=True) == ["iteration", "breakdown", "timeline"]


def test_axes_come_from_the_file_or_from_the_rows(grid_study, bandwidth_study):
    """With ``axes`` they are the file's; an older file without it gets them read off the
    rows (collective is no axis: it differs between compressors)."""
    data, _ = grid_study
    assert study_axes(data) == {"cluster.workers": [4, 16, 64],
                                "cluster.bandwidth": [1.25e8, 1.25e9, 1.25e10]}
    assert study_axes(_old(data)) == study_axes(data)
    assert study_axes(_old(bandwidth_study)) == {
        "cluster.bandwidth": [1.25e7, 1.25e8, 1.25e9, 1.25e10, 5e10]}


def test_x_follows_what_was_swept(grid_study, bandwidth_study):
    """A bandwidth sweep draws against bandwidth (not one dot per panel against workers);
    on a tie workers come first; --x picks another swept axis, by path or short name."""
    assert pick_x(study_axes(bandwidth_study), None) == "cluster.bandwidth"
    axes = study_axes(grid_study[0])
    assert pick_x(axes, None) == "cluster.workers"
    assert pick_x(axes, "bandwidth") == "cluster.bandwidth"
    assert pick_x(axes, "cluster.bandwidth") == "cluster.bandwidth"
    with pytest.raises(ConfigError, match=r"--x cluster.bandwith: not a swept axis .*did you "
                                          r"mean 'cluster.bandwidth'"):
        pick_x(axes, "cluster.bandwith")


def test_old_results_still_plot(grid_study):
    """Every kind but the timeline draws from an old results file too."""
    old = _old(grid_study[0])
    for kind in ("speedup", "iteration", "breakdown", "efficiency", "heatmap"):
        assert draw(old, kind).startswith(PNG)


def test_breakeven_crossings_exact():
    """Linear interpolation where the curve crosses 1 (in log x on a log axis); a point
    exactly on 1 (one worker) is no crossing unless the curve changes side there."""
    assert crossings([1, 3], [2.0, 0.0], log=False) == [2.0]
    assert crossings([1, 100], [2.0, 0.0], log=True) == pytest.approx([10.0])
    assert crossings([1, 2, 4], [1.0, 3.0, 2.0], log=False) == []       # starts on 1
    assert crossings([1, 2, 4], [2.0, 1.0, 0.5], log=False) == [2]      # changes side on it
    assert crossings([1, 2, 3, 4], [2.0, 0.5, 2.0, 0.5], log=False) == pytest.approx(
        [1 + 2 / 3, 2 + 1 / 3, 3 + 2 / 3])


def test_breakeven_is_marked_on_the_speedup_plot(bandwidth_study):
    """The speedup plot of a bandwidth sweep marks where top-k stops paying off: the SVG
    carries the break-even value as text with its unit."""
    rows = sorted((r["bandwidth_bytes_per_s"] * 8e-9, r["speedup_vs_dense"])
                  for r in bandwidth_study["runs"] if r["compressor"] == "topk(density=0.01)")
    (xc,) = crossings([x for x, _ in rows], [s for _, s in rows], log=True)
    svg = draw(bandwidth_study, "speedup", fmt="svg").decode()
    assert f"<!-- {xc:.3g} Gbit/s -->" in svg


def test_y_range_keeps_small_differences_small():
    """Values 1.00 and 1.02: the axis spans at least 10 % of the value, so the 2 % is at
    most a fifth of its height; it keeps 1 (speedup) in view and never goes below 0."""
    a, b = padded_range(1.0, 1.02)
    assert (1.02 - 1.0) / (b - a) < 0.2
    a, b = padded_range(2.0, 2.04, include=(1.0,))
    assert a <= 1.0 <= b
    a, b = padded_range(0.0, 5.0, floor=0.0)
    assert a == 0.0 and b > 5.0


def test_heatmap_needs_two_axes_and_timeline_a_trace(bandwidth_study, grid_study):
    with pytest.raises(ConfigError, match=r"heat map needs two swept axes.*cluster.bandwidth"):
        draw(bandwidth_study, "heatmap")
    with pytest.raises(ConfigError, match=r"timeline reads trace.json"):
        draw(grid_study[0], "timeline")
    with pytest.raises(ConfigError, match=r"--compressor nope: not in these results"):
        draw(grid_study[0], "timeline", trace=grid_study[1], compressor="nope")


def test_plot_command_every_kind(grid_study, tmp_path):
    """`rsdgc-sim plot RESULTS --kind K` writes K.png beside RESULTS, a non-empty picture of
    every kind (the timeline from the trace.json there); --out .svg writes SVG; --x picks
    the axis."""
    data, trace = grid_study
    (tmp_path / "results.json").write_text(json.dumps(data))
    (tmp_path / "trace.json").write_text(json.dumps(trace))
    for kind in KINDS:
        r = CliRunner().invoke(cli, ["plot", str(tmp_path / "results.json"), "--kind", kind])
        assert r.exit_code == 0, r.output
        png = (tmp_path / f"{kind}.png").read_bytes()
        assert png.startswith(PNG) and len(png) > 5000, kind
    r = CliRunner().invoke(cli, ["plot", str(tmp_path / "results.json"), "--x", "bandwidth",
                                 "--out", str(tmp_path / "s.svg")])
    assert r.exit_code == 0 and (tmp_path / "s.svg").read_bytes().startswith(SVG)


def test_plot_command_bad_input(grid_study, tmp_path):
    """An axis that was not swept, a heat map of one axis, a timeline without trace.json,
    an unknown kind: one line each, exit 2."""
    data, _ = grid_study
    res = tmp_path / "results.json"
    res.write_text(json.dumps(data))
    one = tmp_path / "one" / "results.json"
    one.parent.mkdir()
    one.write_text(json.dumps({**data, "axes": {"cluster.workers": [4, 16, 64]}}))
    cases = [
        ([str(res), "--x", "latency"], r"results\.json: --x latency: not a swept axis"),
        ([str(one), "--kind", "heatmap"], r"heat map needs two swept axes"),
        ([str(res), "--kind", "timeline"], r"trace\.json: no such file; the timeline reads"),
        ([str(res), "--kind", "pie"], r"Invalid value for '--kind'"),
    ]
    for args, pattern in cases:
        one_line_error(CliRunner().invoke(cli, ["plot", *args]), pattern, time.perf_counter())


def test_run_writes_plots_named_by_kind(tmp_path):
    """`rsdgc-sim run` writes the plots beside results.json; --no-plot writes none."""
    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(_scenario(workers=[4, 16], bandwidth="10Gbit/s")))
    r = CliRunner().invoke(cli, ["run", str(scen), "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "o").glob("*.png"))
    assert names == ["breakdown.png", "efficiency.png", "speedup.png", "timeline.png"]
    r = CliRunner().invoke(cli, ["run", str(scen), "--out", str(tmp_path / "n"), "-q",
                                 "--no-plot"])
    assert r.exit_code == 0 and not list((tmp_path / "n").glob("*.png"))


def test_breakdown_segments_are_the_row_parts(grid_study):
    """The stacked parts: compute, compression, exposed communication and hidden
    communication = communication - exposed (never negative)."""
    from rsdgc_sim.report.plots.breakdown import segments

    for r in grid_study[0]["runs"]:
        c, z, e, h = segments(r)
        assert (c, z, e) == (r["compute_s"], r["compression_s"], r["exposed_communication_s"])
        assert h == pytest.approx(r["communication_s"] - r["exposed_communication_s"], abs=1e-15)
        assert h >= 0


def _with_ranges(data: dict, low: float = 0.9, high: float = 1.15) -> dict:
    runs = [{**r, **{f"{k}_{end}": r[k] * f for k in ("iteration_s", "speedup_vs_dense")
                     for end, f in (("low", low), ("high", high))}} for r in data["runs"]]
    return {**data, "runs": runs}


def test_ranges_are_drawn_for_every_line(bandwidth_study, monkeypatch):
    """Rows with ranges: each compressor's line gets a band (numeric x) with its low and
    high, and the legend says what it is; an estimated profile (no spread) draws none."""
    from rsdgc_sim.report.plots import lines

    drawn: list[tuple] = []
    real = lines._draw_band

    def record(ax, px, py, lo, hi, colour, numeric):
        drawn.append((tuple(py), tuple(lo), tuple(hi)))
        return real(ax, px, py, lo, hi, colour, numeric)

    monkeypatch.setattr(lines, "_draw_band", record)
    what = "<!-- range: profile's interquartile spread -->"
    assert what not in draw(bandwidth_study, "speedup", fmt="svg").decode() and not drawn
    ranged = _with_ranges(bandwidth_study)
    for kind, lines_drawn in (("speedup", 2), ("iteration", 3)):
        drawn.clear()
        assert what in draw(ranged, kind, fmt="svg").decode()
        assert len(drawn) == lines_drawn
        for py, lo, hi in drawn:
            assert lo == pytest.approx([0.9 * y for y in py], rel=1e-12)
            assert hi == pytest.approx([1.15 * y for y in py], rel=1e-12)
    assert draw(ranged, "breakdown").startswith(PNG)


def test_band_is_the_value_where_a_row_has_no_range():
    """band(): the row's low and high (scaled); the value itself for a missing field, an
    open end (None) or an end on the wrong side of the value."""
    from rsdgc_sim.report.plots.lines import band

    r = {"iteration_s": 2.0, "iteration_s_low": 1.5, "iteration_s_high": 3.0}
    assert band(r, "iteration_s", 1e3) == (1500.0, 3000.0)
    assert band({"iteration_s": 2.0}, "iteration_s") == (2.0, 2.0)
    assert band({**r, "iteration_s_high": None}, "iteration_s") == (1.5, 2.0)
    assert band({**r, "iteration_s_low": 2.5}, "iteration_s") == (2.0, 3.0)


@pytest.mark.parametrize("key, value", [("dur", float("nan")), ("ts", float("inf")),
                                        ("dur", -1.0), ("ts", "0"), ("dur", None), ("ts", True)])
def test_a_trace_span_that_cannot_be_drawn_is_one_error(key, value):
    """A hand-edited trace.json (NaN, infinity, a negative or non-numeric time): one
    ConfigError naming the event and the field, not matplotlib's "Axis limits cannot be
    NaN or Inf"."""
    from rsdgc_sim.errors import ConfigError
    from rsdgc_sim.report.plots.timeline import runs_of_trace

    span = {"ph": "X", "pid": 0, "tid": 0, "name": "compress bucket 0", "ts": 0.0, "dur": 5.0}
    runs_of_trace({"traceEvents": [dict(span)]})  # as written: fine
    with pytest.raises(ConfigError, match=rf"event 0 \('compress bucket 0'\) has {key} "):
        runs_of_trace({"traceEvents": [{**span, key: value}]})
