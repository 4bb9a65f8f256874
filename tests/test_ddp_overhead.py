"""DDP's synchronisation overhead: what DDP's synchronised path adds to an iteration beyond
compute when the collectives take (almost) no time, measured by ``calibrate`` with a hook
that does no work and added by the simulator to backward. Exact values from hand-made rank
times and a hand-made profile; the file format, its old versions and the real measurement
on loopback (tests/test_interference.py, with the interference)."""

from __future__ import annotations

import json

import pytest
from helpers import three_tensor_profile

from rsdgc_sim.calibration import (
    Calibration,
    DdpOverhead,
    LinkFit,
    apply_calibration,
    calibrated_point,
    calibration_warnings,
    load_calibration,
    measured_here,
    save_calibration,
)
from rsdgc_sim.sim import simulate
from rsdgc_sim.sim.config import DDPConfig, SimPoint


def _overhead(s: float) -> DdpOverhead:
    return DdpOverhead(overhead_s=s, synced_s=0.3 + s, local_s=0.3, model="cnn_small",
                       input_size=32, batch_size=8, threads=1, iterations=18)


def _cal(overhead: float | None = 0.06) -> Calibration:
    return Calibration(
        source="emulated", links=[LinkFit(nominal_bandwidth_bytes_per_s=1e6, alpha_s=1e-4,
                                          beta_s_per_byte=1e-6)],
        ddp_overhead=None if overhead is None else _overhead(overhead), **measured_here())


def test_overhead_from_rank_times():
    """Per iteration the slowest rank's synchronised time (0.31, 0.32, 0.35: median 0.32),
    minus the mean of the ranks' median no_sync times (0.26 and 0.27): 0.055 s; clipped at
    0 when the synchronised iterations were faster."""
    from rsdgc_sim.emulate.calibrate import ddp_overhead_from

    spec = {"model": "resnet18", "input_size": 32, "batch_size": 16, "threads": 1}
    res = [{"synced_s": [0.30, 0.32, 0.31], "local_s": [0.25, 0.27, 0.26]},
           {"synced_s": [0.31, 0.30, 0.35], "local_s": [0.28, 0.27, 0.20]}]  # fmt: skip
    o = ddp_overhead_from(res, spec)
    assert o.synced_s == pytest.approx(0.32, rel=1e-12)
    assert o.local_s == pytest.approx(0.265, rel=1e-12)
    assert o.overhead_s == pytest.approx(0.055, rel=1e-12)
    assert (o.model, o.input_size, o.batch_size, o.threads, o.iterations) == (
        "resnet18", 32, 16, 1, 3)
    faster = [{"synced_s": [0.2], "local_s": [0.25]}]
    assert ddp_overhead_from(faster, spec).overhead_s == 0.0


def _point(workers: int, **kw) -> SimPoint:
    """Three one-tensor buckets (ready after 0.1, 0.2 and 0.3 s of a 0.3 s backward), each
    a 0.004 s ring all-reduce at 1e4 B/s (40 bytes, 2 workers)."""
    ddp = DDPConfig(bucket_cap_bytes=40, first_bucket_bytes=40)
    return SimPoint(compressor="lbl", workers=workers, bandwidth_bytes_per_s=1e4,
                    latency_s=0.0, ddp=ddp, **kw)  # fmt: skip


def test_simulate_adds_the_overhead_to_backward_in_proportion():
    """0.06 s of overhead on a 0.3 s backward stretches it by 1.2: the buckets are ready at
    0.1 + 0.12, 0.1 + 0.24 and 0.1 + 0.36 s, the last all-reduce ends 0.004 s after backward
    and the optimizer's 0.01 s follows: 0.474 s (0.414 s without), compute 0.47 s. Each
    earlier all-reduce ends before the next bucket is ready, so nothing else moves."""
    prof = three_tensor_profile()
    base = simulate(prof, _point(2))
    got = simulate(prof, _point(2, sync_overhead_s=0.06))
    assert base.iteration_s == pytest.approx(0.414, rel=1e-12)
    assert got.iteration_s == pytest.approx(0.474, rel=1e-12)
    assert [b.ready for b in got.buckets] == pytest.approx([0.22, 0.34, 0.46], rel=1e-12)
    assert got.compute_s == pytest.approx(0.47, rel=1e-12)
    assert got.exposed_communication_s == pytest.approx(base.exposed_communication_s, rel=1e-9)


def test_one_worker_has_no_synchronisation_overhead():
    """A single worker does not synchronise: the overhead changes nothing."""
    prof = three_tensor_profile()
    assert (simulate(prof, _point(1, sync_overhead_s=0.06)).iteration_s
            == simulate(prof, _point(1)).iteration_s == pytest.approx(0.41, rel=1e-12))


def test_calibration_carries_the_overhead_to_the_point(tmp_path):
    """A calibration's ddp_overhead reaches the simulation point through apply_calibration
    (at any bandwidth); none measured or no calibration: 0; it survives the file."""
    cal = load_calibration(save_calibration(_cal(0.06), tmp_path / "c.json"))
    assert cal.ddp_overhead == _overhead(0.06)
    assert apply_calibration(cal, 1e6, 0.0).sync_overhead_s == 0.06
    assert apply_calibration(cal, 1e9, 0.0).sync_overhead_s == 0.06
    assert calibrated_point(_point(2), cal).sync_overhead_s == 0.06
    assert apply_calibration(_cal(None), 1e6, 0.0).sync_overhead_s == 0.0
    assert apply_calibration(None, 1e6, 0.0).sync_overhead_s == 0.0
    assert calibration_warnings(cal) == []


def test_version_2_file_loads_without_overhead_and_says_so(tmp_path):
    """A version-2 calibration (before the overhead was measured) loads with none, and the
    warnings say so."""
    path = tmp_path / "v2.json"
    path.write_text(json.dumps({
        "kind": "rsdgc-calibration", "version": 2, "source": "emulated", "host": "h",
        "links": [{"nominal_bandwidth_bytes_per_s": 1e6, "alpha_s": 1e-4,
                   "beta_s_per_byte": 1e-6}]}))  # fmt: skip
    cal = load_calibration(path)
    assert cal.ddp_overhead is None
    assert apply_calibration(cal, 1e6, 0.0).sync_overhead_s == 0.0
    assert calibration_warnings(cal, host="h") == [
        "calibration file version 2 has no DDP overhead measurement: DDP's synchronised "
        "path is taken to cost nothing beyond compute (re-run `rsdgc-sim calibrate`)"]


def test_negative_overhead_is_refused():
    with pytest.raises(ValueError, match="sync_overhead_s"):
        _point(2, sync_overhead_s=-0.01)
    with pytest.raises(ValueError, match="overhead_s"):
        _overhead(-0.01)
