"""Compute-communication interference: backward runs ``1 + k`` times slower while a
collective is in flight. The timeline's closed forms (known factor in, known stretched
compute out), the calibration's factor per bandwidth and its file, and the factor measured
by ``calibrate`` on loopback."""

from __future__ import annotations

import json

import pytest
from helpers import three_tensor_profile

from rsdgc_sim.calibration import (
    Calibration,
    Interference,
    LinkFit,
    calibrated_point,
    calibration_warnings,
    load_calibration,
    measured_here,
    save_calibration,
)
from rsdgc_sim.sim.timeline import WorkerCosts, run_timeline

MODES = [True, False]  # hook (compression blocks backward) and side streams


def _worker(backward=1.0, ready=(0.5, 1.0), compress=(0.0, 0.0), decompress=(0.0, 0.0)):
    return WorkerCosts(forward=0.1, backward=backward, optimizer=0.05, ready=ready,
                       compress=compress, decompress=decompress)  # fmt: skip


@pytest.mark.parametrize("blocking", MODES)
def test_collective_inside_backward_delays_it_by_d_k_over_1_plus_k(blocking):
    """Bucket 0 is ready after 0.5 s of backward (at 0.6 s); its 0.2 s collective lies wholly
    inside backward, which does 0.2 / (1 + k) of work meanwhile: backward ends
    0.2 k / (1 + k) later than without interference (k = 0.5: 1/15 s), and every later event
    with it."""
    k, d = 0.5, 0.2
    base = run_timeline([_worker()], [d, 0.3], blocking=blocking, overlap=True)
    tl = run_timeline([_worker()], [d, 0.3], blocking=blocking, overlap=True, interference=k)
    assert base.workers[0].backward_end == pytest.approx(1.1)
    assert tl.workers[0].backward_end == pytest.approx(1.1 + d * k / (1 + k), rel=1e-12)
    assert tl.starts == pytest.approx([0.6, 1.1 + d * k / (1 + k)], rel=1e-12)
    assert tl.end == pytest.approx(base.end + d * k / (1 + k), rel=1e-12)


@pytest.mark.parametrize("blocking", MODES)
def test_backward_left_under_a_long_collective_takes_1_plus_k_times_as_long(blocking):
    """A 2 s collective starts at 0.6 s with 0.5 s of backward left: that work takes
    0.5 (1 + k) s (k = 1: backward ends at 1.6 s, not 1.1 s); the collective itself is not
    slowed, so the iteration still ends when the collectives and the optimizer do."""
    k = 1.0
    tl = run_timeline([_worker()], [2.0, 0.3], blocking=blocking, overlap=True, interference=k)
    assert tl.workers[0].backward_end == pytest.approx(0.6 + 0.5 * (1 + k), rel=1e-12)
    assert tl.ends == pytest.approx([2.6, 2.9], rel=1e-12)
    assert tl.end == pytest.approx(2.95, rel=1e-12)


@pytest.mark.parametrize("blocking", MODES)
def test_no_overlap_no_stretch(blocking):
    """Without overlap (every bucket ready at the end of backward) no collective is in flight
    during backward: any k gives the timeline of k = 0."""
    base = run_timeline([_worker()], [0.2, 0.3], blocking=blocking, overlap=False)
    tl = run_timeline([_worker()], [0.2, 0.3], blocking=blocking, overlap=False,
                      interference=3.0)  # fmt: skip
    assert tl.end == base.end and tl.starts == base.starts


def test_zero_interference_is_the_old_timeline_event_for_event():
    """k = 0 (the default) is the timeline without interference: same times and the same
    number of events, in both modes, with compression and decompression in the way."""
    w = _worker(ready=(0.2, 0.45, 0.9), compress=(0.03, 0.02, 0.04),
                decompress=(0.01, 0.02, 0.01))  # fmt: skip
    for blocking in MODES:
        a = run_timeline([w], [0.15, 0.4, 0.05], blocking=blocking, overlap=True)
        b = run_timeline([w], [0.15, 0.4, 0.05], blocking=blocking, overlap=True,
                         interference=0.0)  # fmt: skip
        assert (a.end, a.starts, a.ends, a.events) == (b.end, b.starts, b.ends, b.events)


def test_negative_interference_is_rejected():
    with pytest.raises(ValueError, match="interference"):
        run_timeline([_worker()], [0.1, 0.1], blocking=True, overlap=True, interference=-0.1)


def _interference(k: float) -> Interference:
    return Interference(factor=k, message_bytes=2**20, backward_alone_s=0.1,
                        backward_during_s=0.1 * (1 + k), model="cnn_small", threads=1)


def _cal(**kw) -> Calibration:
    return Calibration(source="emulated", links=[
        LinkFit(nominal_bandwidth_bytes_per_s=1e6, alpha_s=1e-4, beta_s_per_byte=1e-6,
                interference=_interference(0.2)),
        LinkFit(nominal_bandwidth_bytes_per_s=1e8, alpha_s=1e-4, beta_s_per_byte=1e-8,
                interference=_interference(0.6)),
    ], **kw)  # fmt: skip


def test_calibration_interference_per_bandwidth():
    """At a calibrated rate its factor; between rates interpolated in log-rate (1e7 is
    half-way between 1e6 and 1e8: 0.4); outside, the nearest; none measured: 0."""
    cal = _cal()
    assert cal.interference(1e6) == pytest.approx(0.2)
    assert cal.interference(1e7) == pytest.approx(0.4)
    assert cal.interference(1e4) == pytest.approx(0.2)
    assert cal.interference(1e10) == pytest.approx(0.6)
    bare = Calibration(source="cluster", links=[LinkFit(alpha_s=0, beta_s_per_byte=1e-9)])
    assert bare.interference(1e6) == 0.0


def _profile():
    """Three 10-float tensors, ready after 0.1, 0.2 and 0.3 s of a 0.3 s backward; dense
    compressor "lbl" with no compression cost."""
    return three_tensor_profile()


def test_simulate_stretches_backward_by_the_calibrated_factor():
    """The simulator, given a calibrated point, stretches the backward that overlaps a
    collective: three one-tensor buckets ready after 0.1, 0.2 and 0.3 s of backward, each
    collective shorter than 0.1 s: the first two lie inside backward and each delays it by
    d k / (1 + k), the last starts after it: the iteration is 2 d k / (1 + k) longer than
    with k = 0 (k = 0.2 from the calibration); k set by hand on the point gives the same;
    with overlap off, k changes nothing."""
    from rsdgc_sim.sim import simulate
    from rsdgc_sim.sim.config import DDPConfig, SimPoint

    prof = _profile()
    ddp = DDPConfig(bucket_cap_bytes=40, first_bucket_bytes=40)
    p = SimPoint(compressor="lbl", workers=4, bandwidth_bytes_per_s=1e4, latency_s=0.0,
                 ddp=ddp)  # fmt: skip
    q = calibrated_point(p, _cal())
    k = q.interference_factor
    assert k == pytest.approx(0.2)
    plain = simulate(prof, q.model_copy(update={"interference_factor": 0.0}))
    stretched = simulate(prof, q)
    d = [b.duration for b in plain.buckets]
    assert len(d) == 3 and 0 < max(d) < 0.1 and d[0] == d[1]
    assert stretched.iteration_s == pytest.approx(
        plain.iteration_s + 2 * d[0] * k / (1 + k), rel=1e-12)
    assert simulate(prof, p.model_copy(update={
        "interference_factor": 0.2, "bandwidth_bytes_per_s": q.bandwidth_bytes_per_s,
        "latency_s": q.latency_s})).iteration_s == stretched.iteration_s  # fmt: skip
    no = ddp.model_copy(update={"overlap": False})
    assert simulate(prof, q.model_copy(update={"ddp": no})).iteration_s == simulate(
        prof, q.model_copy(update={"ddp": no, "interference_factor": 0.0})).iteration_s


def test_version_1_file_loads_without_interference_and_says_so(tmp_path):
    """A version-1 calibration (no interference, no cores or package version) still loads;
    its factor is 0 and the warnings say the file is old."""
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({
        "kind": "rsdgc-calibration", "version": 1, "source": "emulated",
        "host": "h", "links": [{"nominal_bandwidth_bytes_per_s": 1e6, "alpha_s": 1e-4,
                                "beta_s_per_byte": 1e-6}]}))  # fmt: skip
    cal = load_calibration(path)
    assert cal.version == 1 and cal.interference(1e6) == 0.0
    warn = calibration_warnings(cal, host="h")
    assert warn == ["calibration file version 1 has no interference measurement: compute is "
                    "not stretched (re-run `rsdgc-sim calibrate`)"]


def test_calibration_from_another_machine_or_version_says_so(tmp_path):
    """Measured here: no warning; another host, another core count, another package
    version: one line each."""
    here = _cal(**measured_here())
    assert calibration_warnings(here) == []
    other = _cal(host="elsewhere", cpu_count=(here.cpu_count or 1) + 6, package_version="0.0.1")
    warn = calibration_warnings(save_and_load(other, tmp_path))
    assert len(warn) == 3
    assert "host 'elsewhere'" in warn[0] and "cores" in warn[1] and "0.0.1" in warn[2]


def save_and_load(cal: Calibration, tmp_path) -> Calibration:
    return load_calibration(save_calibration(cal, tmp_path / "cal.json"))


def test_interference_from_rank_times():
    """The factor is the ranks' mean of median(during) / median(alone) minus 1, clipped at
    0 (backward faster while communicating is noise, not negative interference)."""
    from rsdgc_sim.emulate.calibrate import interference_from

    spec = {"message_bytes": 1024, "model": "cnn_small", "threads": 1}
    res = [{"alone_s": [0.1, 0.1, 0.3], "during_s": [0.12, 0.5, 0.12]},
           {"alone_s": [0.2, 0.2], "during_s": [0.3, 0.3]}]  # fmt: skip
    i = interference_from(res, spec)
    assert i.factor == pytest.approx(((0.12 / 0.1) + (0.3 / 0.2)) / 2 - 1)
    assert i.backward_alone_s == pytest.approx(0.15)
    assert i.backward_during_s == pytest.approx(0.21)
    faster = [{"alone_s": [0.2], "during_s": [0.19]}]
    assert interference_from(faster, spec).factor == 0.0


@pytest.mark.slow
def test_calibrate_measures_interference_on_loopback_and_the_simulator_uses_it(
        tmp_path, monkeypatch):  # fmt: skip
    """Real `rsdgc-sim calibrate` on loopback (two gloo ranks, one thread each, pinned):
    the file holds the interference of cnn_small's backward: both phases timed, the factor
    their ratio minus 1 (>= 0), the model, threads and message size as asked; a scenario
    naming the file gets that factor at any bandwidth (a loopback link has no nominal rate),
    and DDP's synchronisation overhead measured with the same model."""
    from click.testing import CliRunner

    from rsdgc_sim.cli import cli
    from rsdgc_sim.emulate import calibrate as cal_mod
    from rsdgc_sim.emulate.netns import Capabilities
    from rsdgc_sim.sim.config import SimPoint

    monkeypatch.setattr(cal_mod, "capabilities", lambda: Capabilities(False, False, False, "t"))
    out = tmp_path / "cal.json"
    res = CliRunner().invoke(cli, [
        "calibrate", "--out", str(out), "--repeats", "1", "--max-message-time", "0.05",
        "--batch-size", "8", "--threads", "1", "--message-bytes", "262144",
        "--interference-repeats", "4", "--overhead-iterations", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    cal = load_calibration(out)
    (link,) = cal.links
    i = link.interference
    assert i is not None and i.model == "cnn_small" and i.threads == 1
    assert i.message_bytes == 262144
    assert i.backward_alone_s > 0 and i.backward_during_s > 0
    assert i.factor >= 0
    assert calibration_warnings(cal) == []
    assert "interference k" in res.output
    p = calibrated_point(SimPoint(compressor="x", workers=2, bandwidth_bytes_per_s=1e6,
                                  latency_s=0.0), cal)  # fmt: skip
    assert p.interference_factor == i.factor
    # DDP's synchronisation overhead, measured on the same loopback with the same model:
    # 3 blocks of 1 iteration each way, the difference as defined, said and applied
    o = cal.ddp_overhead
    assert o is not None and o.model == "cnn_small" and o.iterations == 3 and o.threads == 1
    assert o.overhead_s == max(0.0, o.synced_s - o.local_s)
    assert f"DDP overhead {o.overhead_s * 1e3:.1f} ms per iteration" in res.output
    assert p.sync_overhead_s == o.overhead_s
