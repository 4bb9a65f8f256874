"""`calibrate`: the fit of ping-pong samples (known alpha and beta in, the same out), the
command on unshaped loopback, and a bad calibration file as a one-line error."""

import re

import pytest
from click.testing import CliRunner

from rsdgc_sim.calibration import load_calibration
from rsdgc_sim.cli import cli
from rsdgc_sim.emulate import calibrate as cal_mod
from rsdgc_sim.emulate.netns import Capabilities

ALPHA, BETA = 1e-4, 1e-8  # 100 us per message, 100 MB/s
#: 4 B to 64 MiB by 4x, as run_calibrate grows them
SIZES = [4 * 4**i for i in range(13)]


def _samples(jitter: float = 0.0) -> list[dict]:
    """Per size, five times: two at the Hockney time alpha + beta * n and three ``jitter``
    later (a rank waiting for a CPU): the median is ``t + jitter``, the lower quartile ``t``."""
    out = []
    for n in SIZES:
        t = ALPHA + BETA * n
        out.append({"bytes": n, "seconds": [t + jitter, t, t + jitter, t, t + jitter]})
    return out


def test_fit_of_exact_samples_returns_alpha_and_beta():
    """Noise-free samples t = alpha + beta * n give alpha and beta back (to 1e-9 relative),
    r2 = 1, the nominal rate and the efficiency beta would have at it, and one fitted sample
    per size."""
    fit = cal_mod.fit_samples(_samples(), 1.25e8)
    assert fit.alpha_s == pytest.approx(ALPHA, rel=1e-9)
    assert fit.beta_s_per_byte == pytest.approx(BETA, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.nominal_bandwidth_bytes_per_s == 1.25e8
    assert fit.efficiency == pytest.approx(1 / BETA / 1.25e8, rel=1e-9)
    assert [s.bytes for s in fit.samples] == SIZES


def test_fit_takes_beta_from_medians_and_alpha_from_lower_quartile():
    """Scheduling hiccups of 2 ms in three of five rounds: beta (slope of the per-size
    medians, all shifted alike) stays exact, and alpha comes from each size's lower quartile,
    so it is the link's 100 us, not 2.1 ms."""
    fit = cal_mod.fit_samples(_samples(jitter=2e-3), None)
    assert fit.beta_s_per_byte == pytest.approx(BETA, rel=1e-9)
    assert fit.alpha_s == pytest.approx(ALPHA, rel=1e-9)
    assert fit.nominal_bandwidth_bytes_per_s is None and fit.efficiency is None


@pytest.mark.slow
def test_cli_calibrates_loopback(tmp_path, monkeypatch):
    """Without namespaces, `rsdgc-sim calibrate` measures two gloo ranks on unshaped loopback
    and writes a loadable calibration: source loopback, one link with no nominal rate,
    alpha >= 0, beta > 0, samples of growing size; it says so and names the file."""
    monkeypatch.setattr(cal_mod, "capabilities", lambda: Capabilities(False, False, False, "test"))
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(
        cli, ["calibrate", "--out", str(out), "--repeats", "1", "--max-message-time", "0.001",
              "--no-interference"]  # measured in tests/test_interference.py
    )
    assert result.exit_code == 0, result.output
    cal = load_calibration(out)
    assert cal.source == "loopback" and len(cal.links) == 1
    (link,) = cal.links
    assert link.interference is None
    assert link.nominal_bandwidth_bytes_per_s is None
    assert link.alpha_s >= 0 and link.beta_s_per_byte > 0
    sizes = [s.bytes for s in link.samples]
    assert len(sizes) >= 2 and sizes == sorted(sizes) and sizes[0] == 4
    assert "namespaces unavailable (test): calibrating loopback" in result.output
    assert re.search(r"loopback link -: alpha [\d.]+ us", result.output)
    assert f"wrote {out}" in result.output


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("{", "is not readable JSON"),
        ('{"kind": "rsdgc-calibration", "source": "emulated", "links": []}', "links"),
        ('{"kind": "profile"}', "is not a calibration file"),
    ],
)
def test_bad_calibration_file_is_one_line_naming_it(tiny, write_scenario, tmp_path, content, pattern):
    """A scenario whose cluster.calibration file is broken stops `run` at load with exit 2
    and one line on stderr that names the file; nothing is written."""
    bad = tmp_path / "broken-cal.json"
    bad.write_text(content)
    tiny["cluster"]["calibration"] = str(bad)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(write_scenario(tiny)), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: ") and "broken-cal.json" in lines[0], lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()


def test_missing_calibration_file_is_one_line_naming_it(tiny, write_scenario, tmp_path):
    """A calibration file that does not exist: one line naming it, exit 2."""
    tiny["cluster"]["calibration"] = "nowhere/cal.json"
    result = CliRunner().invoke(cli, ["run", str(write_scenario(tiny))])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(r"nowhere/cal\.json.*not found", lines[0]), lines

