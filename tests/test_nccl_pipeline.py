"""What a run adds to NCCL's estimate (rsdgc_sim/sim/collectives/nccl_model.py,
``pipeline_fill``): NVLS on one node pipelines chunks through its warp groups (NCCL 2.30.7
src/device/all_reduce.h: scatter, reduce + multicast, gather), with the chunk NCCL's
calcCollChunking (src/enqueue.cc) picks per size. Exact values against hand-computed
numbers; the tuner still chooses by NCCL's estimate alone."""

from __future__ import annotations

import pytest

from rsdgc_sim.sim import TopologySpec, build_topology, collective_time
from rsdgc_sim.sim.collective_time import UNUSED_BANDWIDTH
from rsdgc_sim.sim.collectives import nccl_model as nm
from rsdgc_sim.sim.collectives.nccl import nccl_system

US = 1e-6
KIB, MIB, GIB = 2**10, 2**20, 2**30
#: 8 H100 on one NVSwitch: NVLS busbw 476 GB/s, allreduce algbw x 8/14 (test_nccl_collectives)
ALGBW = 476e9 * 8 / 14
H100 = TopologySpec(name="gpu_cluster", params={"preset": "dgx_h100"})


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def h100(p: int) -> nm.NcclSystem:
    return nccl_system(p, build_topology("gpu_cluster", p, UNUSED_BANDWIDTH, 0.0,
                                         {"preset": "dgx_h100"}))


def run_s(n: float, **params) -> float:
    return collective_time("nccl", 8, n, None, 0.0, topology=H100, params=params).simulated_s


@pytest.mark.parametrize("channel_bytes, chunk", [
    (64 * MIB, 128 * KIB),      # 64 x 8 heads x 128 KiB: the full chunk
    (64 * MIB - 1, 64 * KIB),   # below 64 H c
    (4 * MIB, 64 * KIB),        # 8 x 8 x 64 KiB
    (4 * MIB - 1, 32 * KIB),
    (512 * KIB, 32 * KIB),      # 2 x 8 x 32 KiB
    (512 * KIB - 1, 16 * KIB),
    (1, 16 * KIB),              # never below 16 KiB
])
def test_nvls_chunk_is_calccollchunkings(channel_bytes, chunk):
    assert nm.nvls_chunk(channel_bytes, 8) == chunk


def test_nvls_ctas_per_generation():
    """NVLS_NCHANNELS_SM90 16; SM100 24 on one node (NVL), 32 across nodes."""
    assert nm.nvls_ctas(h100(8)) == nm.nvls_ctas(h100(16)) == 16
    s = nccl_system(8, build_topology("gpu_cluster", 8, UNUSED_BANDWIDTH, 0.0,
                                      {"preset": "dgx_h100"}), gpu="blackwell")
    assert nm.nvls_ctas(s) == 24


def test_nvls_fill_closed_form_allreduce():
    """8 MiB on 8 H100: 512 KiB per CTA, 32 KiB chunks, so a CTA's iteration is 8 x 32 KiB
    and all 16 CTAs move 4 MiB per iteration; three stages fill for two iterations: 8 MiB
    at NCCL's algbw, as long as the bandwidth term itself. 64 KiB: 4 KiB per CTA, one
    (partial) iteration of the whole message, filled twice."""
    for n, first in ((8 * MIB, 4 * MIB), (64 * KIB, 64 * KIB), (GIB, 16 * MIB)):
        est = 25 * US + n / ALGBW
        fill = 2 * first / ALGBW
        e = nm.estimate(h100(8), "allreduce", "nvls", "simple", n)
        assert rel(e.seconds, est) < 1e-12 and rel(e.fill, fill) < 1e-12, n
        assert rel(e.run_seconds, est + fill) < 1e-12
        assert rel(run_s(n, algorithm="nvls"), est + fill) < 1e-12, n


def test_only_nvls_on_one_node_fills():
    """Ring, tree and nvls_tree carry no fill (the ring's ranks start at once, the tree's
    mid-size loss is NCCL's correction factor, NVLS_TREE's network stages are not read off
    NCCL's code)."""
    for alg, p in (("ring", 8), ("tree", 8), ("nvls_tree", 16), ("ring", 16)):
        e = nm.estimate(h100(p), "allreduce", alg, "simple", 8 * MIB)
        assert e.fill == 0.0 and e.run_seconds == e.seconds, alg


def test_tuner_chooses_by_nccls_estimate_not_the_run():
    """2 MiB on 8 H100: NCCL's estimate makes nvls fastest (25 us + 2 MiB / algbw = 32.7
    us), so NCCL runs it, though with its fill (4 MiB / algbw more) it takes longer than
    ring/LL's estimate. The reported time is the run's."""
    t = nm.tune(h100(8), "allreduce", 2 * MIB)
    assert (t.best.algorithm, t.best.protocol) == ("nvls", "simple")
    ll = next(c for c in t.candidates if (c.algorithm, c.protocol) == ("ring", "ll"))
    assert t.best.seconds < ll.seconds < t.best.run_seconds
    assert rel(run_s(2 * MIB), t.best.run_seconds) < 1e-12
    assert rel(t.best.fill, 2 * 2 * MIB / ALGBW) < 1e-12
