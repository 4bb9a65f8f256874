"""The iteration timeline (rsdgc_sim.sim.timeline) and its use by simulate(): causality on
slow links, hook work pausing backward only while it runs, rebuilt bucket order."""

import numpy as np
import pytest

from rsdgc_sim.profile.schema import DeviceProfile, Profile, TensorCost, TensorInfo
from rsdgc_sim.sim import DDPConfig, SimPoint, StragglerConfig, simulate
from rsdgc_sim.sim.buckets import assign_buckets
from rsdgc_sim.sim.timeline import WorkerCosts, run_timeline

MB = 1e6


def two_bucket_profile(dec0: float, ready1: float = 1.0, backward: float = 1.0) -> Profile:
    """t0 (500,000 fp32 = 2 MB) is ready when backward starts and has decompression
    ``dec0``; t1 (250 fp32 = 1000 B) is ready after ``ready1`` s of backward. Forward and
    optimizer take 0; compression is free. Buckets: [t0] (over the 1 MiB first bucket),
    [t1]."""
    tensors = [TensorInfo(name="t1", shape=[250], numel=250),
               TensorInfo(name="t0", shape=[500_000], numel=500_000)]
    costs = {"t0": TensorCost(compress_s=0, decompress_s=dec0, wire_bytes=2_000_000,
                              sparse=False),
             "t1": TensorCost(compress_s=0, decompress_s=0, wire_bytes=1000, sparse=False)}
    dev = DeviceProfile(device="cpu", forward_s=0.0, backward_s=backward, optimizer_s=0.0,
                        grad_ready_s={"t0": 0.0, "t1": ready1}, compression={"c": costs})
    return Profile(model="m", num_classes=2, input_size=8, batch_size=1, params=500_250,
                   tensors=tensors, devices=[dev])


def point(p=2, bw=MB, blocking=True, **kw) -> SimPoint:
    kw.setdefault("ddp", DDPConfig(compression_blocks_backward=blocking))
    return SimPoint(compressor="c", workers=p, bandwidth_bytes_per_s=bw, latency_s=0.0, **kw)


@pytest.mark.parametrize("blocking", [True, False])
def test_decompression_waits_for_its_collective(blocking):
    """The reviewers' minimal case: 2 workers at 1 MB/s, latency 0, backward 1 s; bucket 0
    is ready at 0, its ring allreduce of 2 MB takes 2(p-1)/p n/B = 2 s and its
    decompression 1 s. The decompression can only start at 2 s, after backward, so the
    iteration ends at 3 s (bucket 1's 1 ms collective ends at 2.001 s and needs nothing).
    The old model moved the decompression into backward and answered 2.001 s."""
    r = simulate(two_bucket_profile(dec0=1.0), point(blocking=blocking))
    assert [b.duration for b in r.buckets] == pytest.approx([2.0, 0.001], rel=1e-12)
    assert r.iteration_s == pytest.approx(3.0, rel=1e-12)
    # with zero-time collectives the decompression pauses backward (1 s + 1 s) or runs
    # beside it (1 s)
    assert r.exposed_communication_s == pytest.approx(1.0 if blocking else 2.0, rel=1e-12)


def test_decompression_during_backward_pauses_it():
    """Bucket 0's collective (2 MB at 4 MB/s, p = 2: 0.5 s) ends while backward runs: its
    0.2 s decompression pauses backward, which ends at 1.2 s instead of 1.0 s; bucket 1
    becomes ready then (after 1.0 s of backward work), and its 1000 B collective takes
    0.25 ms: 1.20025 s. Beside backward (no hook) the decompression costs nothing extra:
    backward ends at 1 s, bucket 1's collective at 1.00025 s."""
    prof = two_bucket_profile(dec0=0.2)
    hook = simulate(prof, point(bw=4 * MB))
    assert hook.iteration_s == pytest.approx(1.2 + 1000 / (4 * MB), rel=1e-12)
    assert hook.buckets[1].start == pytest.approx(1.2, rel=1e-12)
    beside = simulate(prof, point(bw=4 * MB, blocking=False))
    assert beside.iteration_s == pytest.approx(1.0 + 1000 / (4 * MB), rel=1e-12)


def test_decompression_after_backward_does_not_pause_it():
    """When the collective ends after backward, the decompression runs after backward (it
    pauses nothing), and the optimizer waits for it: bucket 0's collective at 1 MB/s ends
    at 2 s, backward at 1 s, the 0.2 s decompression ends at 2.2 s."""
    r = simulate(two_bucket_profile(dec0=0.2), point())
    assert r.iteration_s == pytest.approx(2.2, rel=1e-12)


def _random_workers(rng, nb: int, n: int) -> list[WorkerCosts]:
    base_ready = np.sort(rng.uniform(0, 1, nb))
    comp = rng.uniform(0, 0.1, nb)
    dec = rng.uniform(0, 0.2, nb)
    out = []
    for f in rng.uniform(0.5, 2.0, n):
        out.append(WorkerCosts(0.3 * f, 1.0 * f, 0.05 * f, tuple(f * base_ready),
                               tuple(f * comp), tuple(f * dec)))
    return out


@pytest.mark.parametrize("blocking", [True, False])
@pytest.mark.parametrize("overlap", [True, False])
def test_timeline_is_causal(blocking, overlap):
    """Over random cases: every collective starts after every worker compressed its bucket
    and after the previous collective; every decompression starts after its collective
    ended; a worker's compression starts no earlier than its bucket is ready; with hooks one
    thread does one thing at a time, and backward's work is conserved (backward end =
    forward + backward + the hook work done before it ended)."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        nb = int(rng.integers(1, 6))
        ws = _random_workers(rng, nb, 3)
        durations = list(rng.uniform(0, 0.5, nb))
        tl = run_timeline(ws, durations, blocking=blocking, overlap=overlap)
        for b in range(nb):
            assert tl.starts[b] >= max(w.compress[b][1] for w in tl.workers) - 1e-12
            assert tl.ends[b] == pytest.approx(tl.starts[b] + durations[b])
            if b:
                assert tl.starts[b] >= tl.ends[b - 1] - 1e-12
        for wc, w in zip(ws, tl.workers, strict=True):
            for b in range(nb):
                assert w.decompress[b][0] >= tl.ends[b] - 1e-12
                earliest = wc.forward + (wc.ready[b] if overlap else wc.backward)
                assert w.compress[b][0] >= earliest - 1e-12
            assert w.end == pytest.approx(max(w.backward_end, *(e for _, e in w.decompress))
                                          + wc.optimizer)
            if blocking:
                tasks = sorted(w.compress + w.decompress)
                for (_, e0), (s1, _) in zip(tasks, tasks[1:], strict=False):
                    assert s1 >= e0 - 1e-12
                inside = sum(min(e, w.backward_end) - s for s, e in tasks
                             if s < w.backward_end)
                assert w.backward_end == pytest.approx(wc.forward + wc.backward + inside)


@pytest.mark.parametrize("blocking", [True, False])
def test_slowest_worker_decides(blocking):
    """The timeline is monotone in the compute factor: simulating every worker gives the
    same iteration end as simulating only the slowest (what simulate() does)."""
    rng = np.random.default_rng(2)
    for _ in range(30):
        nb = int(rng.integers(1, 6))
        ws = _random_workers(rng, nb, 6)
        durations = list(rng.uniform(0, 0.5, nb))
        slowest = max(ws, key=lambda w: w.backward)
        every = run_timeline(ws, durations, blocking=blocking, overlap=True)
        one = run_timeline([slowest], durations, blocking=blocking, overlap=True)
        assert every.end == pytest.approx(one.end, rel=1e-12)
        assert every.ends == pytest.approx(one.ends, rel=1e-12)


def test_straggler_holds_the_collective():
    """A 2x slower worker compresses later, so every collective waits for it."""
    prof = two_bucket_profile(dec0=0.2)
    fast = simulate(prof, point(bw=4 * MB))
    slow = simulate(prof, point(bw=4 * MB, stragglers=StragglerConfig(
        speed_factors=[1.0, 2.0])))
    assert slow.critical_worker == 1
    # the slow worker: bucket 0 at 0, collective 0.5 s, decompression 0.4 s pauses its 2 s
    # backward (ends at 2.4 s), bucket 1's collective 0.25 ms
    assert slow.iteration_s == pytest.approx(2.4 + 1000 / (4 * MB), rel=1e-12)
    assert slow.iteration_s > fast.iteration_s


def test_buckets_follow_gradient_ready_order():
    """DDP rebuilds its buckets in gradient-ready order after the first iteration: when a
    later-registered tensor becomes ready after an earlier one (ResNet's downsample branch),
    the buckets follow the measured ready times, not reverse registration order."""
    tensors = [TensorInfo(name=n, shape=[1000], numel=1000) for n in ("a", "b", "c")]
    ddp = DDPConfig(bucket_cap_bytes=4000, first_bucket_bytes=4000)
    assert assign_buckets(tensors, ddp) == [[2], [1], [0]]
    ready = {"a": 0.3, "b": 0.1, "c": 0.2}
    assert assign_buckets(tensors, ddp, ready) == [[1], [2], [0]]
    # equal times keep reverse registration order
    assert assign_buckets(tensors, ddp, {"a": 0.1, "b": 0.1, "c": 0.1}) == [[2], [1], [0]]


def test_simulate_uses_the_profiles_ready_order():
    """simulate() buckets by the profile's ready times: with t1 ready first, bucket 0 is
    [t1] and bucket 1 is [t0]."""
    prof = two_bucket_profile(dec0=0.0)
    dev = prof.devices[0].model_copy(update={"grad_ready_s": {"t0": 0.9, "t1": 0.1}})
    prof = prof.model_copy(update={"devices": [dev]})
    r = simulate(prof, point(ddp=DDPConfig(first_bucket_bytes=500, bucket_cap_bytes=500)))
    assert [b.params for b in r.buckets] == [["t1"], ["t0"]]


def test_hook_mode_is_not_monotone_in_bandwidth_and_that_is_kept():
    """The documented behaviour (docs/simulator.md, "Not monotone in the link"): with one
    compute thread a faster link can give a slower iteration (an earlier decompression
    takes the thread ahead of the next compression); with compression beside backward the
    same two points are ordered. Pinned on the committed ResNet-50 V100 profile."""
    from pathlib import Path

    from rsdgc_sim.profile.store import load_profile
    from rsdgc_sim.scenario import scenario_from_dict
    from rsdgc_sim.scenario.model import GridPoint
    from rsdgc_sim.sim import simulate

    root = Path(__file__).resolve().parents[1]
    prof = load_profile(root / "scenarios" / "teaching" / "profiles" / "resnet50_v100.json")
    times = {}
    for blocking in (True, False):
        sc = scenario_from_dict({
            "schema_version": 1, "name": "m",
            "model": {"name": "resnet50", "num_classes": prof.num_classes,
                      "input_size": prof.input_size},
            "batch_size": prof.batch_size, "device": {"model": "V100"},
            "compressors": [{"name": "topk", "density": 0.01}],
            "cluster": {"workers": [8], "topology": {"name": "switch"}, "bandwidth": "1Gbit/s",
                        "latency": "5us"},
            "ddp": {"compression_blocks_backward": blocking}})
        label = sc.compressors[0].key
        times[blocking] = [simulate(prof, sc.sim_point(label, GridPoint(
            workers=8, bandwidth_bytes_per_s=bw, latency_s=5e-6))).iteration_s
            for bw in (315442396.3043456, 326584403.1954157)]
    slow, fast = times[True]
    assert fast > slow * 1.02  # 3 % slower on a 3.5 % faster link
    assert times[False][1] <= times[False][0]
