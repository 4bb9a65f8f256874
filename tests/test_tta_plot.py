"""The time-to-accuracy picture (`rsdgc_sim/report/tta_plot.py`): its time axis linear, log
or chosen per panel (`tta --time-axis`, `plot --kind tta --time-axis`), and `plot --kind tta`
on a tta.json."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from helpers import one_line_error, tta_data

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.report.tta_plot import TIME_AXES, check_tta_data, tta_figure


@pytest.fixture
def tta_json():
    """Two grid points: at 10 Mbit/s dense's curve ends at 37.8 s and top-k's at 4.6 s
    (8.2x apart), at 1 Gbit/s at 3.2 s and 3.2 s."""
    return tta_data()


def _scales(data, log_time):
    import matplotlib.pyplot as plt

    fig = tta_figure(data, log_time)
    try:
        return [ax.get_xscale() for ax in fig.axes if ax.get_visible()]
    finally:
        plt.close(fig)


def test_time_axis_choices_set_each_panels_scale(tta_json):
    """auto: log only in the panel whose curves end 8.2x apart; log: every panel; linear:
    none. The panels are in grid order (10 Mbit/s, then 1 Gbit/s)."""
    assert TIME_AXES == {"auto": None, "linear": False, "log": True}
    assert _scales(tta_json, TIME_AXES["auto"]) == ["log", "linear"]
    assert _scales(tta_json, TIME_AXES["log"]) == ["log", "log"]
    assert _scales(tta_json, TIME_AXES["linear"]) == ["linear", "linear"]


def test_log_axis_leaves_out_step_zero(tta_json):
    """Step 0 sits at time 0, which has no place on a log axis: its point is dropped there
    and kept on a linear axis."""
    import matplotlib.pyplot as plt

    for log, first in ((True, 100 * 0.126), (False, 0.0)):
        fig = tta_figure(tta_json, log)
        assert fig.axes[0].get_lines()[0].get_xdata()[0] == pytest.approx(first)
        plt.close(fig)


@pytest.mark.parametrize("choice, panels_in_log", [("auto", 1), ("log", 2), ("linear", 0)])
def test_plot_kind_tta_draws_a_tta_json(tta_json, tmp_path, choice, panels_in_log):
    """`plot tta.json --kind tta --time-axis CHOICE --out F.svg` draws the tta picture with
    that time axis (the x label says `log scale` on each log panel)."""
    src = tmp_path / "tta.json"
    src.write_text(json.dumps(tta_json))
    out = tmp_path / "t.svg"
    r = CliRunner().invoke(cli, ["plot", str(src), "--kind", "tta", "--time-axis", choice,
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stdout == f"wrote {out}\n"
    assert out.read_text().count("simulated wall-clock time (s, log scale)") == panels_in_log


def test_plot_kind_tta_default_file_is_tta_png_beside(tta_json, tmp_path):
    """Without --out, `plot --kind tta` writes tta.png beside the tta.json (auto axis)."""
    src = tmp_path / "tta.json"
    src.write_text(json.dumps(tta_json))
    r = CliRunner().invoke(cli, ["plot", str(src), "--kind", "tta"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tta.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, pattern", [
    (["--kind", "tta", "--where", "ddp.overlap=true"], r"--where: not for --kind tta"),
    (["--kind", "tta", "--x", "workers", "--compressor", "none"],
     r"--x, --compressor: not for --kind tta"),
    (["--kind", "speedup", "--time-axis", "log"], r"--time-axis: only for --kind tta"),
    (["--time-axis", "linear"], r"--time-axis: only for --kind tta \(not --kind speedup\)"),
])
def test_options_of_another_kind_are_one_line(tta_json, tmp_path, args, pattern):
    """An option that means nothing for the kind is refused in one line, exit 2, nothing
    written."""
    src = tmp_path / "tta.json"
    src.write_text(json.dumps(tta_json))
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["plot", str(src), *args])
    one_line_error(r, pattern, t0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tta.json"]


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d.pop("runs"), r"no runs"),
    (lambda d: d["rows"][1].pop("iteration_s"), r"row 1 has no iteration_s"),
    (lambda d: d["runs"][0]["history"].append({"step": 5}), r"run 0: history is not"),
    (lambda d: d["rows"][0].update(iteration_s="fast"), r"row 0: iteration_s and"),
    (lambda d: d["runs"].pop(), r"row 2 \(topk, 4 workers\) has no training curve"),
    (lambda d: d.update(rows=[]), r"no rows"),
])
def test_a_file_that_is_no_tta_json_is_one_error(tta_json, mutate, pattern):
    """check_tta_data names the file and what is wrong, before anything is drawn."""
    mutate(tta_json)
    with pytest.raises(ConfigError, match=r"^x\.json: " + pattern + r".*`plot --kind tta`"):
        check_tta_data(tta_json, "x.json")


def test_plot_kind_tta_on_a_results_json_is_one_line(tmp_path):
    """A results.json of `run` given to --kind tta: one line, exit 2, saying what it reads."""
    src = tmp_path / "results.json"
    src.write_text(json.dumps({"runs": [{"compressor": "none"}]}))
    t0 = time.perf_counter()
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["plot", str(src), "--kind", "tta"])
    one_line_error(r, t0=t0, pattern=r"results\.json: no rows; `plot --kind tta` reads the tta\.json")


@pytest.fixture
def tiny_tta(tiny):
    """The tiny scenario on a device model, trained 4 steps (well under a second)."""
    tiny["device"] = {"model": "H100-SXM"}
    tiny["model"].update(num_classes=4, input_size=12)
    tiny["cluster"]["workers"] = [2]
    tiny["train"] = {"dataset": "synthetic", "samples": 200, "steps": 4, "target": 0.5,
                     "eval_every": 2}
    return tiny


@pytest.mark.parametrize("args, log_time", [([], None), (["--time-axis", "log"], True)])
def test_tta_time_axis_reaches_the_plot(tiny_tta, write_scenario, tmp_path, monkeypatch,
                                        args, log_time):
    """`rsdgc-sim tta --time-axis` draws tta.png with that axis (default auto)."""
    seen = []

    def spy(data, fmt="png", log_time="unset"):
        seen.append(log_time)
        return b"\x89PNG\r\n\x1a\n"

    monkeypatch.setattr("rsdgc_sim.study.tta.plot_tta", spy)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["tta", str(write_scenario(tiny_tta)), "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    assert seen == [log_time]
    assert (out / "tta.png").read_bytes() == b"\x89PNG\r\n\x1a\n"
