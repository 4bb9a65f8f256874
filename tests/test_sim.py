"""simulate(): DDP buckets, overlap, compression, stragglers, fidelities, trace."""

import json
import subprocess
import sys

import pytest

from rsdgc_sim.errors import ConfigError, UnknownNameError
from rsdgc_sim.profile.schema import DeviceProfile, Profile, TensorCost, TensorInfo
from rsdgc_sim.sim import (
    DDPConfig,
    SimPoint,
    StragglerConfig,
    TopologySpec,
    chrome_trace,
    simulate,
)
from rsdgc_sim.sim.buckets import assign_buckets
from rsdgc_sim.sim.synthetic import synthetic_profile, vgg19_tensors

FWD, BWD, OPT = 0.05, 0.04, 0.005
A = 1e-5


def ring(p, n, bw):
    return 2 * (p - 1) * A + 2 * (p - 1) / p * n / bw


def ag(p, m, bw):
    return (p - 1) * A + (p - 1) * m / bw


def tiny_profile(devices=1, slow=1.0) -> Profile:
    """w1 [10, 100] (4000 B), b1 [10] (40 B), w2 [20, 100] (8000 B); backward readies w2 at
    10 ms, b1 at 20 ms, w1 at 30 ms. topk: weights sparse, 800 B (w2) / 400 B (w1) on the
    wire, compress 1 ms each, decompress 0.1 ms, accumulate 0.05 ms; bias dense."""
    tensors = [TensorInfo(name="w1", shape=[10, 100], numel=1000),
               TensorInfo(name="b1", shape=[10], numel=10),
               TensorInfo(name="w2", shape=[20, 100], numel=2000)]
    devs = []
    for k in range(devices):
        s = slow**k
        none = {t.name: TensorCost(compress_s=0, decompress_s=0, wire_bytes=t.nbytes,
                                   sparse=False) for t in tensors}
        topk = {"w1": TensorCost(compress_s=s * 1e-3, decompress_s=s * 1e-4,
                                 accumulate_s=s * 5e-5, wire_bytes=400, sparse=True),
                "b1": TensorCost(compress_s=0, decompress_s=0, wire_bytes=40, sparse=False),
                "w2": TensorCost(compress_s=s * 1e-3, decompress_s=s * 1e-4,
                                 accumulate_s=s * 5e-5, wire_bytes=800, sparse=True)}
        devs.append(DeviceProfile(
            device=f"d{k}", forward_s=s * FWD, backward_s=s * BWD, optimizer_s=s * OPT,
            grad_ready_s={"w2": s * 0.01, "b1": s * 0.02, "w1": s * 0.03},
            compression={"none": none, "topk": topk}))
    return Profile(model="tiny", num_classes=2, input_size=8, batch_size=1, params=3010,
                   tensors=tensors, devices=devs)


def point(**kw) -> SimPoint:
    base = dict(compressor="none", workers=4, bandwidth_bytes_per_s=1e5, latency_s=A,
                ddp=DDPConfig(bucket_cap_bytes=1e9, first_bucket_bytes=8000))
    base.update(kw)
    return SimPoint(**base)


def test_buckets_reverse_order_small_first():
    """DDP buckets: reverse registration order, the first closes at first_bucket_bytes, the
    next at the cap; a tensor bigger than the cap gets its own bucket."""
    t = tiny_profile().tensors
    assert assign_buckets(t, DDPConfig(bucket_cap_bytes=1e9, first_bucket_bytes=8000)) == [
        [2], [1, 0]]
    assert assign_buckets(t, DDPConfig(bucket_cap_bytes=10, first_bucket_bytes=10)) == [
        [2], [1], [0]]
    assert assign_buckets(t, DDPConfig(bucket_cap_bytes=1e9, first_bucket_bytes=1e9)) == [
        [2, 1, 0]]


def test_one_worker_no_communication():
    """p = 1: iteration = forward + backward + optimizer; nothing communicated or
    compressed."""
    r = simulate(tiny_profile(), point(workers=1, compressor="topk"))
    assert r.iteration_s == pytest.approx(FWD + BWD + OPT, rel=1e-12)
    assert r.communication_s == 0 and r.compression_s == 0 and r.exposed_communication_s == 0
    assert r.collective == "none"


def test_no_overlap_dense():
    """overlap false: all communication after backward: fwd + bwd + ring(b0) + ring(b1) +
    opt, and all of it is exposed."""
    p, bw = 4, 1e5
    r = simulate(tiny_profile(), point(ddp=DDPConfig(bucket_cap_bytes=1e9,
                                                     first_bucket_bytes=8000, overlap=False)))
    comm = ring(p, 8000, bw) + ring(p, 4040, bw)
    assert r.iteration_s == pytest.approx(FWD + BWD + comm + OPT, rel=1e-9)
    assert r.communication_s == pytest.approx(comm, rel=1e-9)
    assert r.exposed_communication_s == pytest.approx(comm, rel=1e-9)
    assert r.compute_s == pytest.approx(FWD + BWD + OPT)
    assert r.bytes_sent_per_worker == r.dense_bytes_per_worker == 12040


def test_overlap_dense_by_hand():
    """overlap true: bucket 0 (w2) starts when ready at fwd + 10 ms, bucket 1 (b1, w1) when
    ready at fwd + 30 ms or when bucket 0 ends, whichever is later."""
    p, bw = 4, 1e5
    r = simulate(tiny_profile(), point())
    d0, d1 = ring(p, 8000, bw), ring(p, 4040, bw)
    end0 = FWD + 0.01 + d0
    end1 = max(FWD + 0.03, end0) + d1
    want = max(FWD + BWD, end1) + OPT
    assert r.iteration_s == pytest.approx(want, rel=1e-9)
    assert r.exposed_communication_s == pytest.approx(want - (FWD + BWD + OPT), rel=1e-9)
    assert [b.algorithm for b in r.buckets] == ["ring", "ring"]
    assert r.buckets[1].start == pytest.approx(end0, rel=1e-12)


def test_overlap_hides_communication_with_fast_links():
    """With fast links communication hides behind backward: exposed part is only the last
    bucket's tail."""
    r = simulate(tiny_profile(), point(bandwidth_bytes_per_s=1e10))
    assert r.exposed_communication_s < r.communication_s
    assert r.iteration_s == pytest.approx(FWD + BWD + OPT, rel=1e-9)


def test_mixed_bucket_topk():
    """topk: a bucket with a dense bias and a sparse weight runs a ring allreduce of the
    bias then a ring all-gather of the sparse payload; compression starts when the
    gradient is ready; aggregating the p gathered payloads of a sparse tensor costs one
    decompress plus p - 1 accumulates."""
    p, bw = 4, 1e5
    r = simulate(tiny_profile(), point(compressor="topk"))
    assert [b.algorithm for b in r.buckets] == ["allgather_ring", "ring+allgather_ring"]
    d0 = ag(p, 800, bw)
    d1 = ring(p, 40, bw) + ag(p, 400, bw)
    ready0 = FWD + 0.01 + 1e-3
    ready1 = max(FWD + 0.03, ready0) + 1e-3
    end0 = ready0 + d0
    end1 = max(ready1, end0) + d1
    agg = 1e-4 + (p - 1) * 5e-5
    dec_end0 = end0 + agg
    dec_end1 = max(end1, dec_end0) + agg
    want = max(FWD + BWD, dec_end1) + OPT
    assert r.iteration_s == pytest.approx(want, rel=1e-9)
    assert r.compression_s == pytest.approx(2e-3 + 2 * agg, rel=1e-12)
    assert r.bytes_sent_per_worker == 1240
    assert r.collective == "ring+allgather_ring"
    assert r.communication_s == pytest.approx(d0 + d1, rel=1e-9)


@pytest.mark.parametrize("compressor", ["none", "topk"])
@pytest.mark.parametrize("p", [2, 5, 8])
def test_fidelities_agree(compressor, p):
    """analytic, step and link give the same iteration to 1e-9 on a uniform switch."""
    prof = tiny_profile()
    res = {f: simulate(prof, point(compressor=compressor, workers=p, fidelity=f))
           for f in ("analytic", "step", "link", "auto")}
    base = res["analytic"].iteration_s
    for f, r in res.items():
        assert r.iteration_s == pytest.approx(base, rel=1e-9), f
        assert r.fidelity == ("analytic" if f == "auto" else f)
    assert res["link"].events > res["step"].events > 0 == res["analytic"].events


def test_speed_factor_makes_a_straggler():
    """Speed factors cycle over workers; the slow worker is the critical one and its
    compute (and everything before the collectives) is scaled."""
    p, bw = 2, 1e5
    ddp = DDPConfig(bucket_cap_bytes=1e9, first_bucket_bytes=1e9, overlap=False)
    r = simulate(tiny_profile(), point(workers=p, ddp=ddp,
                                      stragglers=StragglerConfig(speed_factors=[1.0, 2.0])))
    assert r.critical_worker == 1
    assert r.compute_s == pytest.approx(2 * (FWD + BWD + OPT))
    want = 2 * (FWD + BWD) + ring(p, 12040, bw) + 2 * OPT
    assert r.iteration_s == pytest.approx(want, rel=1e-9)


def test_devices_round_robin():
    """Worker i takes device i mod D: with a 1.5x slower second device, 2 workers wait for
    it, 1 worker does not."""
    prof = tiny_profile(devices=2, slow=1.5)
    one = simulate(prof, point(workers=1))
    two = simulate(prof, point(workers=2))
    assert one.iteration_s == pytest.approx(FWD + BWD + OPT)
    assert two.critical_worker == 1
    assert two.compute_s == pytest.approx(1.5 * (FWD + BWD + OPT))


def test_jitter_is_seeded_bit_for_bit():
    """The same seed gives the same result bit for bit; another seed another result."""
    prof = tiny_profile()
    st = StragglerConfig(jitter_sigma=0.3, seed=7)
    a = simulate(prof, point(workers=16, stragglers=st)).to_dict()
    b = simulate(prof, point(workers=16, stragglers=st)).to_dict()
    c = simulate(prof, point(workers=16, stragglers=StragglerConfig(jitter_sigma=0.3, seed=8)))
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b
    assert c.iteration_s != a["iteration_s"]
    assert a["iteration_s"] > simulate(prof, point(workers=16)).iteration_s * 0.5


def test_jitter_slows_the_iteration_with_many_workers():
    """With lognormal jitter the slowest of many workers is slower than the median one."""
    prof = tiny_profile()
    plain = simulate(prof, point(workers=64, bandwidth_bytes_per_s=1e10))
    jit = simulate(prof, point(workers=64, bandwidth_bytes_per_s=1e10,
                               stragglers=StragglerConfig(jitter_sigma=0.2, seed=1)))
    assert jit.iteration_s > plain.iteration_s


def test_bad_speed_factor():
    """Speed factors must be > 0: rejected when the configuration is built, not after
    profiling."""
    from pydantic import ValidationError

    for bad in ([1, 0], [1, -1], [float("inf")]):
        with pytest.raises(ValidationError, match="speed_factors"):
            StragglerConfig(speed_factors=bad)


def test_unknown_compressor_lists_profile_choices():
    with pytest.raises(UnknownNameError, match="unknown compressor.*'nsi'.*none, topk"):
        simulate(tiny_profile(), point(compressor="nsi"))


def test_unknown_topology_and_collective():
    with pytest.raises(UnknownNameError, match="unknown topology 'mesh'"):
        simulate(tiny_profile(), point(topology=TopologySpec(name="mesh")))
    with pytest.raises(UnknownNameError, match="unknown collective 'rings'"):
        simulate(tiny_profile(), point(collective="rings"))
    with pytest.raises(ConfigError, match="not an allreduce algorithm"):
        simulate(tiny_profile(), point(collective="allgather_ring"))
    with pytest.raises(ConfigError, match="not an all-gather algorithm"):
        simulate(tiny_profile(), point(sparse_collective="ring"))


def test_workers_do_not_fit_topology():
    with pytest.raises(Exception, match="do not fill whole nodes"):
        simulate(tiny_profile(), point(workers=10, topology=TopologySpec(
            name="two_level", params={"gpus_per_node": 8})))


def test_auto_sends_dense_when_density_is_high():
    """collective auto: at density 0.5 on 64 workers the sparse all-gather moves 64 x 0.5 x 2
    = 64 gradients' worth, so every bucket goes dense; at density 0.001 every bucket with a
    weight goes sparse."""
    t = vgg19_tensors(45)
    hi = simulate(synthetic_profile(t, density=0.5),
                  SimPoint(compressor="topk", workers=64, bandwidth_bytes_per_s=1.25e9,
                           latency_s=5e-6, collective="auto", sparse_collective="auto"))
    lo = simulate(synthetic_profile(t, density=0.001),
                  SimPoint(compressor="topk", workers=64, bandwidth_bytes_per_s=1.25e9,
                           latency_s=5e-6, collective="auto", sparse_collective="auto"))
    assert all("allgather" not in b.algorithm for b in hi.buckets)
    assert all("allgather" in b.algorithm for b in lo.buckets)
    assert hi.collective.startswith("auto:") and lo.bytes_sent_per_worker < hi.bytes_sent_per_worker


def test_topk_beats_dense_on_slow_links():
    """At 1 Gbit/s and 8 workers, vgg19 with top-k 1% is faster than dense."""
    prof = synthetic_profile(vgg19_tensors())
    kw = dict(workers=8, bandwidth_bytes_per_s=1.25e8, latency_s=5e-6)
    dense = simulate(prof, SimPoint(compressor="none", **kw))
    topk = simulate(prof, SimPoint(compressor="topk", **kw))
    assert topk.iteration_s < dense.iteration_s
    assert dense.dense_bytes_per_worker == 143667240 * 4


def test_result_json_and_trace():
    """to_dict() is JSON-able; chrome_trace has per-worker complete events for forward,
    backward, compression and each bucket's communication."""
    r = simulate(tiny_profile(), point(compressor="topk"), trace=True)
    json.dumps(r.to_dict())
    tr = chrome_trace(r)
    json.dumps(tr)
    xs = [e for e in tr["traceEvents"] if e["ph"] == "X"]
    names = {(e["tid"], e["name"]) for e in xs}
    for w in range(4):
        assert (w, "forward") in names and (w, "backward") in names
        assert (w, "compress bucket 0") in names
        assert (w, "bucket 1: ring+allgather_ring") in names
    assert {e["cat"] for e in xs} == {"compute", "compression", "communication"}
    end = max(e["ts"] + e["dur"] for e in xs)
    assert end == pytest.approx(r.iteration_s * 1e6, rel=1e-9)
    with pytest.raises(ConfigError, match="trace=True"):
        chrome_trace(simulate(tiny_profile(), point()))


def test_simulator_does_not_import_torch():
    """rsdgc_sim.sim never imports torch (a saved profile is enough to simulate)."""
    code = ("import sys, rsdgc_sim.sim, rsdgc_sim.cli.collective, rsdgc_sim.sim.synthetic; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_public_api_and_registries():
    """The package exports the API the run command uses, and the registries list every
    topology and algorithm of the issue."""
    from rsdgc_sim.sim import COLLECTIVES, TOPOLOGIES, SimResult, collective_time  # noqa: F401

    assert {"ring", "tree", "double_binary_tree", "halving_doubling", "hierarchical",
            "parameter_server", "allgather_ring", "allgather_recursive_doubling",
            "nccl", "nccl_allgather", "nccl_reduce_scatter", "auto"} == set(COLLECTIVES)
    assert {"switch", "ring", "tree", "fat_tree", "two_level", "torus2d",
            "gpu_cluster"} == set(TOPOLOGIES)


def test_synthetic_vgg19_parameter_count():
    """vgg19 shapes written from the architecture match torchvision's count (1000 classes:
    143,667,240; 45 classes: 139,754,605, i.e. vgg19_bn's 139,765,613
    less its 11,008 batch-norm parameters)."""
    assert sum(t.numel for t in vgg19_tensors(1000)) == 143_667_240
    assert sum(t.numel for t in vgg19_tensors(45)) == 139_754_605


def test_hook_compression_pauses_backward():
    """With a fast network, blocking hooks (the default, as DDP runs them on the autograd
    thread) lengthen backward by each bucket's compression and by each decompression that
    arrives while backward still runs; compression beside backward leaves it as profiled."""
    p, agg = 4, 1e-4 + 3 * 5e-5
    fast = dict(compressor="topk", workers=p, bandwidth_bytes_per_s=1e15, latency_s=0.0)
    blocking = simulate(tiny_profile(), point(**fast))
    # bucket 0 (w2, ready after 10 ms of backward) and bucket 1 (b1, w1, ready after 30 ms of
    # the 40 ms): each compression (1 ms) and, as the collective takes ~0 s, each
    # decompression pause backward
    assert blocking.iteration_s == pytest.approx(FWD + BWD + 2 * (1e-3 + agg) + OPT, rel=1e-9)
    beside = simulate(tiny_profile(), point(**fast, ddp=DDPConfig(
        bucket_cap_bytes=1e9, first_bucket_bytes=8000, compression_blocks_backward=False)))
    assert beside.iteration_s == pytest.approx(FWD + BWD + OPT, rel=1e-9)
    dense = simulate(tiny_profile(), point(**{**fast, "compressor": "none"}))
    assert dense.iteration_s == pytest.approx(FWD + BWD + OPT, rel=1e-9)


def test_auto_skips_hierarchical_on_partial_nodes():
    """`collective: auto` on a two_level topology whose last node is partly used (12 workers
    on nodes of 8) leaves out hierarchical, which needs whole nodes, instead of failing."""
    r = simulate(tiny_profile(), point(
        workers=12, collective="auto",
        topology=TopologySpec(name="two_level", params={"gpus_per_node": 8,
                                                        "allow_partial": True})))
    assert "hierarchical" not in r.collective and r.collective.startswith("auto:")
    whole = simulate(tiny_profile(), point(
        workers=16, collective="auto", bandwidth_bytes_per_s=1e3,
        topology=TopologySpec(name="two_level", params={"gpus_per_node": 8})))
    assert whole.iteration_s > 0


def test_estimates_are_marked_inexact():
    """Where `auto` settles for a `step` estimate (double binary tree on a tree of 4096
    hosts: an exact `link` run would take too long), the bucket and the result say so; at 8
    hosts `link` runs and the result is exact."""
    small = simulate(tiny_profile(), point(workers=8, collective="double_binary_tree",
                                           topology=TopologySpec(name="tree")))
    assert small.exact and small.fidelity == "link"
    big = simulate(tiny_profile(), point(workers=4096, collective="double_binary_tree",
                                         topology=TopologySpec(name="tree")))
    assert not big.exact and big.fidelity == "step"
    assert [b.exact for b in big.buckets] == [False, False]
