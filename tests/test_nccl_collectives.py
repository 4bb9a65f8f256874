"""NCCL's collectives (rsdgc_sim/sim/collectives/nccl.py, nccl_model.py): the ring's, the
pipelined tree's and PAT's closed forms per protocol against hand-computed numbers (NCCL
2.30.7 tuning.cc's constants), the tuner's choices and switch points, forcing, nccl-tests'
algbw/busbw, and the simulator's use of them."""

from __future__ import annotations

import math

import pytest

from rsdgc_sim.errors import ConfigError, TopologyError
from rsdgc_sim.sim import SimPoint, TopologySpec, build_topology, collective_time, simulate
from rsdgc_sim.sim.collective_time import UNUSED_BANDWIDTH, bandwidths
from rsdgc_sim.sim.collectives import Message, make_collective
from rsdgc_sim.sim.collectives import nccl_model as nm
from rsdgc_sim.sim.collectives.nccl import nccl_system
from rsdgc_sim.sim.synthetic import synthetic_profile, vgg19_tensors
from rsdgc_sim.sim.traffic import bytes_transmitted

US = 1e-6
B = 1e9  # host link of the switch cases, bytes/s


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def t(alg: str, p: int, n: float, bw: float | None = B, lat: float = 0.0, spec=None, **params):
    return collective_time(alg, p, n, bw, lat, topology=spec, params=params or None)


#: 4 nodes of 8 GPUs: NVLink 300 GB/s per GPU (12 links, which NCCL's topology counts at 20
#: GB/s each: 240 GB/s), 8 NICs of 25 GB/s, NCCL's network hop (2.7 us, so nothing added),
#: Ampere tables
CLUSTER = TopologySpec(name="gpu_cluster", params={
    "gpus_per_node": 8, "nvlink": "300GB/s", "nvlink_latency": "0.6us", "nics_per_node": 8,
    "nic": "25GB/s", "nic_latency": "2.7us"})


# -- the ring -------------------------------------------------------------------------------
def test_ring_closed_form_per_protocol_on_switch():
    """4 ranks, one per node, host links of 1 GB/s, 1 MB: 2 channels (2 ceil(1/25)), bus
    bandwidth 1e9. Simple: lat = 8.4 + 6 x 14.0 us (network hops with one GPU per node take
    the tree's constant), x 1.4 (plateau: 1 MB >= 64 x 2 x 4), bandwidth term 1 MB x 6/4 /
    1e9. LL: 6.6 + 6 x 5.0 us, half the bandwidth. LL128 (forced): 14 + 6 x 8.5 us, 0.92."""
    n = 1e6
    simple = (8.4 + 6 * 14.0) * 1.4 * US + n * 6 / 4 / 1e9
    ll = (6.6 + 6 * 5.0) * US + n * 6 / 4 / 0.5e9
    ll128 = (14.0 + 6 * 8.5) * US + n * 6 / 4 / 0.92e9
    for proto, want in (("simple", simple), ("ll", ll), ("ll128", ll128)):
        r = t("nccl", 4, n, algorithm="ring", protocol=proto)
        assert rel(r.simulated_s, want) < 1e-12, proto
        assert (r.nccl_algorithm, r.nccl_protocol) == ("ring", proto)
    assert rel(t("nccl", 4, n).simulated_s, simple) < 1e-12  # the tuner's pick here


def test_network_latency_beyond_nccls_hop_adds_per_network_hop():
    """A host-to-host latency of 10 us is 7.3 us beyond the 2.7 us network hop NCCL's
    constants hold: it adds to every network hop, twice for Simple (its flush)."""
    n, x = 1e6, 7.3
    ll = (6.6 + 6 * (5.0 + x)) * US + n * 6 / 4 / 0.5e9
    simple = (8.4 + 6 * (14.0 + 2 * x)) * 1.4 * US + n * 6 / 4 / 1e9
    for proto, want in (("ll", ll), ("simple", simple)):
        r = t("nccl", 4, n, lat=10e-6, algorithm="ring", protocol=proto)
        assert rel(r.simulated_s, want) < 1e-12, proto


def test_ring_across_nodes_uses_every_nic_and_the_gpu_link():
    """4 nodes of 8 GPUs (32 ranks): 16 channels (2 per 25 GB/s of min(300, 8 x 25)), each
    at min(240/16, 25/ceil(16/8)) = 12.5 GB/s (240: NCCL's count of the NVLink): bus bandwidth 200 GB/s, the node's 8 NICs
    together. Ring Simple on 1 GiB: lat = (8.4 + 56 x max(3.4, 3 x 1.0) + 6 x 14) us x 1.4,
    62 steps of which 6 cross nodes; bandwidth term 1 GiB x 62/32 / 200 GB/s."""
    n = 2.0**30
    r = t("nccl", 32, n, None, spec=CLUSTER, algorithm="ring", protocol="simple")
    want = (8.4 + 56 * 3.4 + 6 * 14.0) * 1.4 * US + n * 62 / 32 / 200e9
    assert rel(r.simulated_s, want) < 1e-12
    s = nccl_system(32, build_topology("gpu_cluster", 32, UNUSED_BANDWIDTH, 0.0, CLUSTER.params))
    assert (s.nodes, s.gpus_per_node, s.channels, s.intra, s.bus_bw) == (4, 8, 16, "nvlink",
                                                                         200e9)


def test_channels_split_the_nics():
    """channels=4 on 8 NICs: only 4 NICs carry a channel, bus bandwidth 4 x 25 GB/s; with
    channels=12, 2 channels share some NICs: 12 x 25/2 = 150 GB/s."""
    topo = build_topology("gpu_cluster", 32, UNUSED_BANDWIDTH, 0.0, CLUSTER.params)
    assert nccl_system(32, topo, channels=4).bus_bw == 100e9
    assert nccl_system(32, topo, channels=12).bus_bw == 150e9


# -- the pipelined tree ----------------------------------------------------------------------
def test_tree_closed_form_per_protocol():
    """The same 4 x 8 cluster, 1 GiB (no size correction above 256 MiB): tree Simple: lat =
    8.4 + 2 (7 x 4.0 + log2(4) x 14.0) us; bandwidth: 200 GB/s x 0.92 (under 16 x 17.8
    per channel), halved. LL128: 14 + 2 (7 x 1.25 + 2 x 8.5) us, x 120/128 too. LL: 6.8 + 2
    (7 x 0.6 + 2 x 5.0) us, 184/3.8 GB/s capped at llMaxBw (20.4 GB/s beyond 2 nodes)."""
    n = 2.0**30
    want = {"simple": (8.4 + 2 * (7 * 4.0 + 2 * 14.0)) * US + n / (0.5 * 184e9),
            "ll128": (14.0 + 2 * (7 * 1.25 + 2 * 8.5)) * US + n / (0.5 * 184e9 * 120 / 128),
            "ll": (6.8 + 2 * (7 * 0.6 + 2 * 5.0)) * US + n / (0.5 * 20.4e9)}
    for proto, w in want.items():
        r = t("nccl", 32, n, None, spec=CLUSTER, algorithm="tree", protocol=proto)
        assert rel(r.simulated_s, w) < 1e-12, proto


def test_two_node_tree_takes_twice_the_nics_share():
    """Two nodes (16 ranks): each node is the other's only child in both trees, so a byte
    crosses the network once each way and a channel may take twice its NICs' share:
    16 x min(240/16, 2 x 12.5) = 240 GB/s, x 0.92 (under 16 x 23.6); the ring stays at the
    NICs' 200 GB/s."""
    n = 2.0**30
    r = t("nccl", 16, n, None, spec=CLUSTER, algorithm="tree", protocol="simple")
    want = (8.4 + 2 * (7 * 4.0 + 1 * 14.0)) * US + n / (0.5 * 240e9 * 0.92)
    assert rel(r.simulated_s, want) < 1e-12
    ring = t("nccl", 16, n, None, spec=CLUSTER, algorithm="ring", protocol="simple")
    assert rel(ring.simulated_s, (8.4 + 28 * 3.4 + 2 * 14.0) * 1.4 * US + n * 30 / 16 / 200e9
               ) < 1e-12


def test_tree_size_correction():
    """Below 256 MiB NCCL corrects the tree's bandwidth by size: 1 MiB is floor(log2(2^20 /
    64)) = 14, Simple factor 0.5."""
    n = 2.0**20
    r = t("nccl", 32, n, None, spec=CLUSTER, algorithm="tree", protocol="simple")
    want = (8.4 + 2 * (7 * 4.0 + 2 * 14.0)) * US + n / (0.5 * 184e9 * 0.5)
    assert rel(r.simulated_s, want) < 1e-12


def test_pipelined_tree_is_not_log_p_times_slower():
    """64 ranks, 100 MB at 10 Gbit/s: the unpipelined double_binary_tree takes about 5
    times the ring (it moves half the message per tree level); NCCL's tree, pipelined in
    chunks, stays within 1.5 times NCCL's ring, and so it does at 1,024 ranks."""
    bw = 1.25e9
    ring = t("ring", 64, 1e8, bw).simulated_s
    assert t("double_binary_tree", 64, 1e8, bw).simulated_s > 4 * ring
    for p in (64, 1024):
        tree = t("nccl", p, 1e8, bw, algorithm="tree").simulated_s
        nring = t("nccl", p, 1e8, bw, algorithm="ring").simulated_s
        assert tree < 1.5 * nring, p


# -- all-gather, reduce-scatter, PAT ---------------------------------------------------------
def test_allgather_ring_and_pat_closed_forms():
    """nccl_allgather of 1 MB per rank on 8 switch ranks (nBytes = 8 MB). Ring Simple: lat
    = 8.4 + 7 x 14 us (no plateau outside allreduce), 8 MB x 7/8 / 1e9. PAT (one GPU per
    node, Simple only): 8.0 + log2(8) x 14/3.5 + 8 x 2.8 us, 8 MB / (0.75 x 1e9)."""
    m = 1e6
    ring = (8.4 + 7 * 14.0) * US + 8 * m * 7 / 8 / 1e9
    pat = (8.0 + 3 * 14.0 / 3.5 + 8 * 2.8) * US + 8 * m / 0.75e9
    assert rel(t("nccl_allgather", 8, m, algorithm="ring", protocol="simple").simulated_s,
               ring) < 1e-12
    r = t("nccl_allgather", 8, m, algorithm="pat")
    assert rel(r.simulated_s, pat) < 1e-12 and r.nccl_protocol == "simple"
    rs = t("nccl_reduce_scatter", 8, m, algorithm="ring", protocol="simple")
    assert rel(rs.simulated_s, ring) < 1e-12


def test_pat_needs_one_gpu_per_node_and_tree_allreduce():
    """PAT is not a candidate with 8 GPUs per node (forcing it is an error), the tree not
    for all-gather, PAT not for allreduce."""
    with pytest.raises(ConfigError, match="pat needs one GPU per node"):
        t("nccl_allgather", 32, 1e6, None, spec=CLUSTER, algorithm="pat")
    r = t("nccl_allgather", 32, 1e6, None, spec=CLUSTER)
    assert r.nccl_algorithm == "ring"
    with pytest.raises(ConfigError, match="algorithm must be one of ring, nvls, pat"):
        make_collective("nccl_allgather", {"algorithm": "tree"})
    with pytest.raises(ConfigError, match="algorithm must be one of tree, ring, nvls, nvls_tree"):
        make_collective("nccl", {"algorithm": "pat"})


# -- the tuner -------------------------------------------------------------------------------
def test_tuner_picks_ll_for_tiny_and_simple_for_large():
    """Across 4 and 16 DGX-like nodes: 8 bytes go by LL (the tree's, beyond one node), 1 GiB
    by Simple (ring or tree, whichever the model says), and the choice is the least time of
    the candidates."""
    for nodes in (4, 16):
        p = 8 * nodes
        tiny = t("nccl", p, 8, None, spec=CLUSTER)
        big = t("nccl", p, 2.0**30, None, spec=CLUSTER)
        assert tiny.nccl_protocol == "ll" and tiny.nccl_algorithm == "tree"
        assert big.nccl_protocol == "simple"
        for r in (tiny, big):
            others = [t("nccl", p, r.bytes, None, spec=CLUSTER, algorithm=a, protocol=pr)
                      .simulated_s for a in ("tree", "ring") for pr in nm.PROTOCOLS]
            assert r.simulated_s == min(others)


def test_tuner_switches_where_the_times_cross():
    """Ring forced on 4 switch ranks at 1 GB/s: LL costs 36.6 us + 3e-9 s/B, Simple
    129.36 us + 1.5e-9 s/B (with the plateau factor); the lines cross at 61,840 bytes, and
    the tuner goes from LL to Simple there."""
    cross = ((8.4 + 84) * 1.4 - 36.6) * US / (3e-9 - 1.5e-9)
    assert abs(cross - 61840) < 1e-6
    assert t("nccl", 4, 61839, algorithm="ring").nccl_protocol == "ll"
    assert t("nccl", 4, 61841, algorithm="ring").nccl_protocol == "simple"


def test_ll128_is_on_by_default_only_where_nccl_enables_it():
    """LL128 is a candidate on NVLink nodes with a NIC per GPU (dgx_h100), not on PCIe nodes
    (pcie_8gpu) or one GPU per node on a switch; forcing it works everywhere (NCCL_PROTO)."""
    def system(spec, p=16):
        return nccl_system(p, build_topology(spec.name, p, 1.25e9, 0.0, spec.params))

    assert system(TopologySpec(name="gpu_cluster", params={"preset": "dgx_h100"})).ll128
    for p in (8, 16):
        pcie = system(TopologySpec(name="gpu_cluster", params={"preset": "pcie_8gpu"}), p)
        assert pcie.intra == "pci" and not pcie.ll128, p
    assert not system(TopologySpec()).ll128
    r = t("nccl", 16, 1e6, protocol="ll128")
    assert r.nccl_protocol == "ll128"


def test_generation_from_preset_and_parameter():
    """The tables' GPU generation comes from the preset's name (dgx_h100: hopper, dgx_a100:
    ampere, hgx_v100: volta) or the ``gpu`` parameter."""
    for preset, gen in (("dgx_h100", "hopper"), ("dgx_a100", "ampere"), ("hgx_v100", "volta")):
        topo = build_topology("gpu_cluster", 16, UNUSED_BANDWIDTH, 0.0, {"preset": preset})
        assert nccl_system(16, topo).generation == gen
        assert nccl_system(16, topo, gpu="blackwell").generation == "blackwell"


@pytest.mark.parametrize("nodes", [1, 2, 4, 16])
def test_dgx_h100_nodes(nodes):
    """dgx_h100, 1 to 16 nodes: whole nodes of 8, 1 GiB by ring runs at a bus bandwidth
    (nccl-tests' busbw) below the model's (min of the GPU's NVLink as NCCL counts it and the
    node's NICs) and above 80 % of it. (NCCL's own choice there is NVLS, whose busbw may exceed both: the
    NVSwitch reduces; see the NVLS tests.)"""
    p = 8 * nodes
    spec = TopologySpec(name="gpu_cluster", params={"preset": "dgx_h100"})
    topo = build_topology("gpu_cluster", p, UNUSED_BANDWIDTH, 0.0, spec.params)
    s = nccl_system(p, topo)
    assert (s.nodes, s.gpus_per_node, s.generation) == (nodes, 8, "hopper")
    pr = topo.params
    # NCCL counts the H100's 18 NVLinks at 20.6 GB/s each (topo.h SM90_NVLINK_BW)
    model = min(pr["nvlink_bandwidth"] * 20.6 / 25,
                pr["nics_per_node"] * pr["nic_bandwidth"] if nodes > 1 else math.inf)
    r = t("nccl", p, 2.0**30, None, spec=spec, algorithm="ring")
    assert 0.8 * model < r.busbw_bytes_per_s < model


def test_partial_nodes_are_refused():
    """NCCL's model needs whole nodes: a partial last node of two_level is a TopologyError."""
    spec = TopologySpec(name="two_level", params={"gpus_per_node": 4, "allow_partial": True})
    with pytest.raises(TopologyError, match="whole nodes"):
        t("nccl", 6, 1e6, spec=spec)


def test_other_topologies_read_the_ring_of_hosts():
    """On a physical ring of hosts (every link 1 GB/s), the ring of hosts in rank order has
    one flow per link: the same answer as the switch, but for the route latency."""
    a = t("nccl", 8, 1e7, spec=TopologySpec(name="ring"), algorithm="ring", protocol="simple")
    b = t("nccl", 8, 1e7, algorithm="ring", protocol="simple")
    assert rel(a.simulated_s, b.simulated_s) < 1e-12


# -- parameters, fidelity, traffic -----------------------------------------------------------
@pytest.mark.parametrize("params,match", [
    ({"protocol": "ll256"}, "protocol must be one of ll, ll128, simple"),
    ({"channels": 0}, "channels must be an integer from 1 to 64"),
    ({"channels": True}, "channels must be an integer"),
    ({"gpu": "pascal"}, "gpu must be one of volta, ampere, hopper, blackwell"),
    ({"chunks": 4}, "unknown parameter 'chunks'"),
])
def test_bad_parameters(params, match):
    with pytest.raises(ConfigError, match=match):
        make_collective("nccl", params)


def test_step_and_link_are_refused_analytic_and_auto_answer():
    """NCCL's model is a closed form: step and link are refused naming analytic; auto and
    analytic give the same closed form."""
    for fid in ("step", "link"):
        with pytest.raises(ConfigError, match="use fidelity analytic or auto"):
            collective_time("nccl", 8, 1e6, B, 0.0, fidelity=fid)
    a = collective_time("nccl", 8, 1e6, B, 0.0, fidelity="analytic")
    b = collective_time("nccl", 8, 1e6, B, 0.0)
    assert a.simulated_s == b.simulated_s == b.closed_form_s and b.fidelity == "analytic"


def test_traffic_is_a_rings():
    """What a rank sends: 2(p-1)/p n for the allreduce, (p-1)/p of the gathered bytes for
    the all-gather (exact sizes too)."""
    topo = build_topology("switch", 8, B, 0.0)
    assert bytes_transmitted(make_collective("nccl"), 8, Message(8, 8e6), topo) == 2 * 7 / 8 * 8e6
    sizes = tuple(float(x) for x in range(1, 9))
    ag = make_collective("nccl_allgather")
    assert bytes_transmitted(ag, 8, Message(8, 8.0, sizes), topo) == 7 / 8 * sum(sizes)


# -- algbw / busbw ---------------------------------------------------------------------------
def test_algbw_busbw_definitions():
    """nccl-tests: algbw = S/t; busbw = algbw 2(p-1)/p (allreduce), algbw (p-1)/p
    (all-gather, reduce-scatter, S = p blocks); none at t = 0. The textbook ring's busbw is
    the link bandwidth when latency is 0."""
    assert bandwidths("allreduce", 4, 1e6, 1e-3) == (1e9, 1e9 * 6 / 4)
    assert bandwidths("allgather", 4, 1e6, 1e-3) == (4e9, 4e9 * 3 / 4)
    assert bandwidths("reduce_scatter", 4, 1e6, 1e-3) == (4e9, 3e9)
    assert bandwidths("allgather", 4, 1e6, 1e-3, [1e6, 2e6, 0, 1e6]) == (4e9, 3e9)
    assert bandwidths("allreduce", 4, 1e6, 0.0) == (None, None)
    for alg in ("ring", "allgather_ring"):
        r = collective_time(alg, 8, 1e6, B, 0.0)
        assert rel(r.busbw_bytes_per_s, B) < 1e-12, alg
        assert r.nccl_algorithm is None and r.nccl_protocol is None


# -- in a run --------------------------------------------------------------------------------
def test_run_with_nccl_gathers_sparse_payloads_with_nccl():
    """collective: nccl: dense buckets by nccl, top-k's sparse all-gathers by
    nccl_allgather (with nccl's parameters, less a forced tree); an explicit other
    all-gather is kept."""
    prof = synthetic_profile(vgg19_tensors(45))
    kw = dict(workers=16, bandwidth_bytes_per_s=1.25e9, latency_s=5e-6, collective="nccl")
    dense = simulate(prof, SimPoint(compressor="none", **kw))
    assert dense.collective == "nccl"
    sparse = simulate(prof, SimPoint(compressor="topk", collective_params={"algorithm": "tree"},
                                     **kw))
    assert sparse.collective == "nccl+nccl_allgather"
    other = simulate(prof, SimPoint(compressor="topk",
                                    sparse_collective="allgather_recursive_doubling", **kw))
    assert other.collective == "nccl+allgather_recursive_doubling"


# -- NVLink SHARP: nvls and nvls_tree (NCCL 2.30.7 tuning.cc, search.cc) -------------------
H100 = TopologySpec(name="gpu_cluster", params={"preset": "dgx_h100"})
A100 = TopologySpec(name="gpu_cluster", params={"preset": "dgx_a100"})
GIB = 2.0**30


def h100(p: int, **params) -> nm.NcclSystem:
    return nccl_system(p, build_topology("gpu_cluster", p, UNUSED_BANDWIDTH, 0.0,
                                         {"preset": "dgx_h100", **params}))


def test_nvls_graph_is_nccls_search():
    """NCCL's NVLS graph: one channel per GPU; a GPU's NVLink carries (g+1) bw_intra
    (its own channel's head twice); NCCL counts an H100's 18 links at 20.6 GB/s (370.8),
    so bw_intra = 40 (the fastest of 60, 50, 40 with 9 s <= 370.8); bw_inter climbs to 60
    on one node, to 48 across nodes with 400 Gb/s NICs, and stays at 24 with 200 Gb/s
    ones (bw_intra too: the search starts both at the NIC's speed). Blackwell's 18 links
    of 40.1 GB/s: 80 and 90. No NVLS before Hopper or with one GPU per node."""
    assert nm.nvls_graph(450e9, 50e9, 8, 1, "hopper") == (8, 40e9, 60e9)
    assert nm.nvls_graph(450e9, 50e9, 8, 2, "hopper") == (8, 40e9, 48e9)
    assert nm.nvls_graph(450e9, 25e9, 8, 2, "hopper") == (8, 24e9, 24e9)
    assert nm.nvls_graph(900e9, 50e9, 8, 1, "blackwell") == (8, 80e9, 90e9)
    assert nm.nvls_graph(300e9, 25e9, 8, 1, "ampere") == (0, 0.0, 0.0)
    assert nm.nvls_graph(450e9, 50e9, 1, 4, "hopper") == (0, 0.0, 0.0)
    s = h100(16)
    assert (s.nvls_channels, s.nvls_bw_intra, s.nvls_bw_inter) == (8, 40e9, 48e9)
    assert h100(16, nvls=False).nvls_channels == 0


def test_nvls_closed_form_one_node():
    """8 H100 on one NVSwitch, 1 GiB, nvls: per channel min(40 x 0.85 x 7/8 x 2 (allreduce
    pipelines two), 60) = 59.5 GB/s, 8 channels: 476 GB/s; lat = 25 us (NVLS's NVLink
    latency, no base); allreduce algbw = busbw x 8/14: NCCL's estimate. The run adds the
    pipeline's fill: 2 more iterations of 16 CTAs x 8 heads x 128 KiB (test_nccl_pipeline).
    nccl-tests' busbw is then 476 GB/s less the latency's and the fill's share, above the
    450 GB/s an NVLink carries one way (the switch reduces)."""
    want = 25 * US + GIB * 14 / 8 / 476e9
    fill = 2 * 16 * 8 * 2**17 * 14 / 8 / 476e9
    assert rel(nm.tune(h100(8), "allreduce", GIB, "nvls").best.seconds, want) < 1e-12
    r = t("nccl", 8, GIB, None, spec=H100, algorithm="nvls")
    assert rel(r.simulated_s, want + fill) < 1e-12
    assert r.busbw_bytes_per_s > 450e9
    assert (r.nccl_algorithm, r.nccl_protocol, r.chosen) == ("nvls", "simple", "nvls/simple")


def test_nvls_tree_closed_form_across_nodes():
    """2 x 8 H100, 1 GiB, nvls_tree: per channel min(59.5, 2 x 48 (two nodes), 57.7
    (perChMaxNVLSTreeBws, Hopper, 2 nodes)) = 57.7 GB/s, x 8 = 461.6 GB/s; lat = 25 + 2
    log2(2) x 20.9 us. With EFA's reported 75 us, each network hop takes 20.9 + 2 x 75
    (Simple adds the plugin's latency twice). 4 nodes: the cap is 45.5 GB/s per channel."""
    want = (25 + 2 * 20.9) * US + GIB * 30 / 16 / 461.6e9
    r = t("nccl", 16, GIB, None, spec=H100, algorithm="nvls_tree")
    assert rel(r.simulated_s, want) < 1e-12
    efa = TopologySpec(name="gpu_cluster", params={"preset": "dgx_h100", "transport": "efa"})
    r = t("nccl", 16, GIB, None, spec=efa, algorithm="nvls_tree")
    assert rel(r.simulated_s, (25 + 2 * (20.9 + 150)) * US + GIB * 30 / 16 / 461.6e9) < 1e-12
    r = t("nccl", 32, GIB, None, spec=H100, algorithm="nvls_tree")
    assert rel(r.simulated_s, (25 + 2 * 2 * 20.9) * US + GIB * 62 / 32 / (8 * 45.5e9)) < 1e-12


def test_nvls_allgather_one_node():
    """nccl_allgather by nvls on 8 H100, 1 MiB per rank (nBytes 8 MiB): per channel 40 x
    0.85 x 7/8 x 7/8 (the (g-1)/g of all-gather) = 26.03125 GB/s, x 8; no p/S conversion
    (all-gather and reduce-scatter divide nBytes by the bus bandwidth itself). The run adds
    one iteration of fill (two stages): 16 CTAs x 8 heads x 32 KiB (512 KiB per CTA)."""
    m = 2.0**20
    bw = 8 * 40e9 * 0.85 * 7 / 8 * 7 / 8
    want = 25 * US + 8 * m / bw
    for alg in ("nccl_allgather", "nccl_reduce_scatter"):
        r = t(alg, 8, m, None, spec=H100, algorithm="nvls")
        assert rel(r.simulated_s, want + 16 * 8 * 2**15 / bw) < 1e-12, alg


def test_tuner_picks_nvls_where_nccl_would():
    """NCCL's tuner on DGX H100: 1 GiB goes by nvls on one node and nvls_tree on two and
    four (least time of the candidates); small messages by LL (NVLS's 25 us latency); with
    nvls off (a node without NVLink SHARP) and on DGX A100, never NVLS; all-gather stays
    on the ring (NCCL's model rates NVLS all-gather lower)."""
    for p, alg in ((8, "nvls"), (16, "nvls_tree"), (32, "nvls_tree")):
        r = t("nccl", p, GIB, None, spec=H100)
        assert (r.nccl_algorithm, r.nccl_protocol) == (alg, "simple"), p
        others = [t("nccl", p, GIB, None, spec=H100, algorithm=a, protocol="simple")
                  .simulated_s for a in ("tree", "ring")]
        assert r.simulated_s < min(others)
    assert t("nccl", 8, 1024, None, spec=H100).nccl_protocol == "ll"
    off = TopologySpec(name="gpu_cluster", params={"preset": "dgx_h100", "nvls": False})
    for spec, p in ((off, 8), (off, 16), (A100, 8), (A100, 16)):
        assert t("nccl", p, GIB, None, spec=spec).nccl_algorithm in ("ring", "tree")
    # all-gather: NCCL's model gives NVLS 8 x 26.03 = 208 GB/s against the ring's 370.8 x
    # 8/7: the ring wins at every size
    assert t("nccl_allgather", 8, 2.0**27, None, spec=H100).nccl_algorithm == "ring"


@pytest.mark.parametrize("alg,p,spec,match", [
    ("nvls", 8, A100, "needs NVLink SHARP"),
    ("nvls_tree", 16, A100, "needs NVLink SHARP"),
    ("nvls", 16, H100, "needs CollNet"),
    ("nvls_tree", 8, H100, "needs more than one node"),
])
def test_nvls_where_nccl_cannot_run_it(alg, p, spec, match):
    """Forcing NVLS where NCCL has it not is an error naming why."""
    with pytest.raises(ConfigError, match=match):
        t("nccl", p, GIB, None, spec=spec, algorithm=alg)


def test_nvls_runs_simple_only():
    """NVLS and NVLS tree have the Simple protocol only (tuning.cc skips the others)."""
    with pytest.raises(ConfigError, match="nvls_tree runs with protocol simple only"):
        make_collective("nccl", {"algorithm": "nvls_tree", "protocol": "ll"})
    with pytest.raises(ConfigError, match="algorithm must be one of ring, nvls, pat"):
        make_collective("nccl_allgather", {"algorithm": "nvls_tree"})


# -- what NCCL counts of a link, the transports ---------------------------------------------
def test_nccl_counts_nvlink_and_pcie_as_its_topology_does():
    """NCCL's topology counts an NVLink at 20 GB/s (Volta, Ampere), 20.6 (Hopper), 40.1 of
    50 (Blackwell), and PCIe at 3/4 of lanes x GT/s / 8: a DGX A100's 300 GB/s is 240, an
    8-GPU PCIe 4.0 node's 32 GB/s is 24, which bound the ring's bus bandwidth on one
    node."""
    assert nm.intra_factor("nvlink", "ampere") == 0.8
    assert nm.intra_factor("nvlink", "hopper") == 20.6 / 25
    assert nm.intra_factor("nvlink", "blackwell") == 40.1 / 50
    assert nm.intra_factor("pci", "volta") == 0.75
    a100 = nccl_system(8, build_topology("gpu_cluster", 8, UNUSED_BANDWIDTH, 0.0, A100.params))
    assert a100.bus_bw == 240e9
    pcie = nccl_system(8, build_topology("gpu_cluster", 8, UNUSED_BANDWIDTH, 0.0, {"preset": "pcie_8gpu"}))
    assert pcie.bus_bw == 24e9


def test_transport_reports_its_latency_to_ncclss_model():
    """transport=efa: aws-ofi-nccl's 75 us joins every network hop of NCCL's model (twice
    for Simple): on 2 x 8 A100, tree LL is 2 x 75 us slower, tree Simple 4 x 75; ib, roce,
    socket, tcpxo and cxi report none. An unknown transport is refused, listing them."""
    def spec(tr: str) -> TopologySpec:
        return TopologySpec(name="gpu_cluster", params={"preset": "dgx_a100", "transport": tr})

    for proto, hops in (("ll", 2), ("simple", 4)):
        ib = t("nccl", 16, 1e6, None, spec=spec("ib"), algorithm="tree", protocol=proto)
        efa = t("nccl", 16, 1e6, None, spec=spec("efa"), algorithm="tree", protocol=proto)
        assert abs(efa.simulated_s - ib.simulated_s - hops * 75e-6) < 1e-15, proto
    topo = build_topology("gpu_cluster", 16, UNUSED_BANDWIDTH, 0.0, spec("efa").params)
    assert topo.params["transport_latency"] == 75e-6
    assert nccl_system(16, topo).net_latency == 75e-6
    for tr in ("ib", "roce", "socket", "tcpxo", "cxi"):
        topo = build_topology("gpu_cluster", 16, UNUSED_BANDWIDTH, 0.0, spec(tr).params)
        assert nccl_system(16, topo).net_latency == 0.0, tr
    with pytest.raises(ConfigError, match="transport.*myrinet.*cxi, efa, ib"):
        build_topology("gpu_cluster", 16, UNUSED_BANDWIDTH, 0.0, spec("myrinet").params)
