"""The profile at its quartiles (rsdgc_sim.profile.quartiles) and the ranges every results
row carries from it (iteration_s_low/_high, speedup_vs_dense_low/_high)."""

from __future__ import annotations

import pytest

from rsdgc_sim.errors import ProfileError
from rsdgc_sim.profile.quartiles import has_spread, quartile_profile, quartile_profiles
from rsdgc_sim.profile.schema import TensorCost
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.simulate import simulate_scenario
from tests.helpers import three_tensor_profile

#: per tensor (compress_s, decompress_s); accumulate_s is half the decompression
COSTS = {"a": (0.03, 0.004), "b": (0.02, 0.004), "c": (0.01, 0.002)}
#: forward 0.1 s, backward 0.3 s, optimizer 0.01 s; compression 0.06 s, decompression
#: 0.01 s per iteration (the helper's medians)
SPREAD = {"forward_s": 0.02, "backward_s": 0.06, "optimizer_s": 0.004,
          "compress:lbl": 0.03, "decompress:lbl": 0.004}


def _profile(spread: dict | None = None, sparse: bool = False):
    """The helper's three tensors with a free dense reference ``none`` beside ``lbl``."""
    p = three_tensor_profile(COSTS, sparse=sparse)
    d = p.devices[0]
    none = {n: TensorCost(compress_s=0.0, decompress_s=0.0, wire_bytes=40, sparse=False)
            for n in COSTS}
    d = d.model_copy(update={"compression": {"none": none, **d.compression},
                             "spread": dict(SPREAD if spread is None else spread)})
    return p.model_copy(update={"devices": [d]})


def _scenario(workers=(1, 2), bandwidth=(1e15,), latency=0.0, cluster=None, **extra):
    return scenario_from_dict({
        "model": {"name": "cnn_small", "num_classes": 2, "input_size": 8}, "batch_size": 1,
        "compressors": [{"name": "none"}, {"name": "topk", "density": 0.1, "label": "lbl"}],
        "cluster": {"workers": list(workers), "bandwidth": [f"{b!r}B/s" for b in bandwidth],
                    "latency": f"{latency!r}s", **(cluster or {})},
        **extra})


def test_each_quantity_moves_by_half_its_spread():
    """Forward, backward and optimizer move by -/+ IQR/2 (floored at 0: the optimizer's
    lower quartile), gradient-ready times scale with backward, each label's compression
    and decompression (with accumulation) scale by their total's quartile / median."""
    lo, hi = quartile_profiles(_profile({**SPREAD, "optimizer_s": 0.03}))
    d0, d1 = lo.devices[0], hi.devices[0]
    assert (d0.forward_s, d1.forward_s) == pytest.approx((0.09, 0.11), rel=1e-12)
    assert (d0.backward_s, d1.backward_s) == pytest.approx((0.27, 0.33), rel=1e-12)
    assert (d0.optimizer_s, d1.optimizer_s) == (0.0, pytest.approx(0.025, rel=1e-12))
    assert d0.grad_ready_s == pytest.approx({"a": 0.27, "b": 0.18, "c": 0.09}, rel=1e-12)
    assert d1.grad_ready_s == pytest.approx({"a": 0.33, "b": 0.22, "c": 0.11}, rel=1e-12)
    for dev, fc, fd in ((d0, 0.75, 0.8), (d1, 1.25, 1.2)):  # (0.06 -/+ 0.015) / 0.06, ...
        for n, (c, dec) in COSTS.items():
            got = dev.compression["lbl"][n]
            assert (got.compress_s, got.decompress_s, got.accumulate_s) == pytest.approx(
                (fc * c, fd * dec, fd * dec / 2), rel=1e-12)
        assert dev.compression["none"] == _profile().devices[0].compression["none"]


def test_quantities_without_a_spread_stay_at_their_median():
    """A key that is missing (or unknown) leaves its quantity as measured; the input
    profile is not changed."""
    prof = _profile({"forward_s": 0.02, "something_new": 5.0})
    before = prof.model_dump()
    hi = quartile_profile(prof, +1).devices[0]
    med = prof.devices[0]
    assert hi.forward_s == pytest.approx(0.11, rel=1e-12)
    assert (hi.backward_s, hi.optimizer_s, hi.grad_ready_s) == (
        med.backward_s, med.optimizer_s, med.grad_ready_s)
    assert hi.compression == med.compression
    assert prof.model_dump() == before


def test_a_profile_without_spread_is_its_own_quartiles():
    """An estimate (empty spread) or an all-zero spread gives back the same profile."""
    for spread in ({}, {k: 0.0 for k in SPREAD}):
        prof = _profile(spread)
        assert not has_spread(prof)
        assert all(q.model_dump() == prof.model_dump() for q in quartile_profiles(prof))
    assert has_spread(_profile())


def test_a_spread_that_is_no_interquartile_range_is_refused():
    """A negative or non-finite spread is a ProfileError naming the key; side is -1 or 1."""
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ProfileError, match="spread 'backward_s' is"):
            quartile_profile(_profile({"backward_s": bad}), -1)
    with pytest.raises(ValueError, match="side is -1"):
        quartile_profile(_profile(), 0)


@pytest.fixture(scope="module")
def closed_form_rows():
    """Dense and lbl at 1 and 2 workers on a practically infinite link, no latency."""
    rows, _ = simulate_scenario(_scenario(), _profile())
    return {(r["compressor"], r["workers"]): r for r in rows}


def test_one_worker_ranges_are_sums_of_the_compute_quartiles(closed_form_rows):
    """One worker compresses nothing: iteration = forward + backward + optimizer, so its
    range is the sum of their quartiles; dense is its own reference (speedup 1 exactly); so
    is lbl, which compresses nothing at one worker: dense and lbl simulated with the same
    profile take the same time, so the speedup range is exactly 1 .. 1 (not dense's low /
    lbl's high .. dense's high / lbl's low, which would treat their shared compute as
    independent)."""
    for label in ("none", "lbl"):
        r = closed_form_rows[(label, 1)]
        assert r["iteration_s"] == pytest.approx(0.41, rel=1e-12)
        assert r["iteration_s_low"] == pytest.approx(0.09 + 0.27 + 0.008, rel=1e-12)
        assert r["iteration_s_high"] == pytest.approx(0.11 + 0.33 + 0.012, rel=1e-12)
    dense = closed_form_rows[("none", 1)]
    assert (dense["speedup_vs_dense_low"], dense["speedup_vs_dense"],
            dense["speedup_vs_dense_high"]) == (1.0, 1.0, 1.0)
    r = closed_form_rows[("lbl", 1)]
    assert (r["speedup_vs_dense_low"], r["speedup_vs_dense"],
            r["speedup_vs_dense_high"]) == (1.0, 1.0, 1.0)


def test_two_worker_ranges_add_the_compression_quartiles(closed_form_rows):
    """On a free link the one bucket (ready when backward ends) is compressed, sent and
    decompressed before the optimizer: iteration = forward + backward + compression +
    communication + decompression + optimizer, each at its quartile."""
    comm = closed_form_rows[("lbl", 2)]["communication_s"]
    assert 0 < comm < 1e-9
    want = {"none": (0.41, 0.368, 0.452),
            "lbl": (0.48, 0.09 + 0.27 + 0.045 + 0.008 + 0.008,
                    0.11 + 0.33 + 0.075 + 0.012 + 0.012)}
    for label, (value, low, high) in want.items():
        r = closed_form_rows[(label, 2)]
        got = (r["iteration_s"], r["iteration_s_low"], r["iteration_s_high"])
        assert got == pytest.approx((value + comm, low + comm, high + comm), rel=1e-12)
    r = closed_form_rows[("lbl", 2)]
    dense = closed_form_rows[("none", 2)]
    assert r["speedup_vs_dense"] == pytest.approx(0.41 / 0.48, rel=1e-9)
    # the speedup under each profile: dense and lbl at their low, median and high quartiles
    speedups = [dense[f"iteration_s{q}"] / r[f"iteration_s{q}"] for q in ("_low", "", "_high")]
    assert r["speedup_vs_dense_low"] == pytest.approx(min(speedups), rel=1e-12)
    assert r["speedup_vs_dense_high"] == pytest.approx(max(speedups), rel=1e-12)
    assert min(speedups) < max(speedups)


def test_sparse_accumulation_scales_with_the_decompression_spread():
    """All-gathered tensors at 3 workers decompress one payload and accumulate two:
    decompression + 2 x accumulation = 2 x 0.01 s, times 0.8 / 1.2 at the quartiles."""
    rows, _ = simulate_scenario(_scenario(workers=(3,)), _profile(sparse=True))
    r = next(r for r in rows if r["compressor"] == "lbl")
    comm = r["communication_s"]
    assert (r["iteration_s_low"], r["iteration_s_high"]) == pytest.approx(
        (0.09 + 0.27 + 0.045 + 0.016 + 0.008 + comm, 0.11 + 0.33 + 0.075 + 0.024 + 0.012 + comm),
        rel=1e-12)


def test_every_row_of_a_sweep_lies_in_its_range():
    """Over workers, bandwidths, hook and side-stream modes, with stragglers and sparse
    payloads: low <= value <= high for the iteration time and the speedup."""
    for blocking in (True, False):
        for sparse in (False, True):
            sc = _scenario(workers=(1, 2, 3, 8), bandwidth=(1e5, 1e6, 1e9), latency=1e-4,
                           ddp={"bucket_cap": 50, "first_bucket": 40,
                                "compression_blocks_backward": blocking},
                           cluster={"stragglers": {"speed_factors": [1.0, 1.3],
                                                   "jitter_sigma": 0.2}})
            rows, _ = simulate_scenario(sc, _profile(sparse=sparse))
            assert len(rows) == 24
            for r in rows:
                assert r["iteration_s_low"] <= r["iteration_s"] <= r["iteration_s_high"]
                assert (r["speedup_vs_dense_low"] <= r["speedup_vs_dense"]
                        <= r["speedup_vs_dense_high"])
            wide = [r for r in rows if r["iteration_s_low"] < r["iteration_s_high"]]
            assert len(wide) == len(rows)


def test_a_profile_without_spread_gives_points_for_ranges():
    """Without spread (an estimated profile) low == value == high on every row."""
    rows, _ = simulate_scenario(_scenario(workers=(1, 4), bandwidth=(1e6, 1e9)), _profile({}))
    for r in rows:
        assert r["iteration_s_low"] == r["iteration_s"] == r["iteration_s_high"]
        assert r["speedup_vs_dense_low"] == r["speedup_vs_dense"] == r["speedup_vs_dense_high"]


def test_the_range_holds_the_value_when_the_simulator_is_not_monotone(monkeypatch):
    """Hook scheduling can make a faster profile finish later: the range is the least and
    greatest of the three simulations, so it still holds the value (here a simulator whose
    times run backwards)."""
    import rsdgc_sim.study.simulate as sim  # where simulate_scenario looks simulate up

    real = sim.simulate

    def backwards(profile, point, trace=False):
        res = real(profile, point, trace=trace)
        res.iteration_s = 10.0 - res.iteration_s
        return res

    monkeypatch.setattr(sim, "simulate", backwards)
    rows, _ = simulate_scenario(_scenario(), _profile())
    r = next(r for r in rows if r["compressor"] == "lbl" and r["workers"] == 2)
    assert r["iteration_s"] == pytest.approx(10.0 - 0.48, rel=1e-9)
    assert (r["iteration_s_low"], r["iteration_s_high"]) == pytest.approx(
        (10.0 - 0.539, 10.0 - 0.421), rel=1e-9)
    for r in rows:
        assert r["iteration_s_low"] <= r["iteration_s"] <= r["iteration_s_high"]
        assert r["speedup_vs_dense_low"] <= r["speedup_vs_dense"] <= r["speedup_vs_dense_high"]


def test_dense_is_simulated_once_per_point_and_profile(monkeypatch):
    """The dense reference is cached for the quartile profiles too: per point, dense runs
    once at each of the three profiles (its own row and every speedup share them), and a
    profile without spread is simulated at its median only."""
    import rsdgc_sim.study.simulate as sim  # where simulate_scenario looks simulate up

    real = sim.simulate
    calls: list[tuple[str, int]] = []

    def counted(profile, point, trace=False):
        calls.append((point.compressor, point.workers))
        return real(profile, point, trace=trace)

    monkeypatch.setattr(sim, "simulate", counted)
    simulate_scenario(_scenario(workers=(2, 4)), _profile())
    # per point: dense x 3 profiles, lbl x 3, dense at 1 worker (scaling efficiency) once
    assert sorted(calls) == sorted([("none", 1)] + [(c, w) for c in ("none", "lbl")
                                                    for w in (2, 4) for _ in range(3)])
    calls.clear()
    simulate_scenario(_scenario(workers=(2, 4)), _profile({}))
    assert sorted(calls) == sorted([("none", 1)] + [(c, w) for c in ("none", "lbl")
                                                    for w in (2, 4)])
