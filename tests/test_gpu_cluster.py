"""gpu_cluster: GPU nodes with NVLink inside and NICs between them, its presets
(rsdgc_sim/data/gpu_nodes.yaml), its structural routes and links_carry_bandwidth."""

from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from rsdgc_sim.errors import ConfigError, TopologyError, UnknownNameError
from rsdgc_sim.sim import TOPOLOGIES, build_topology
from rsdgc_sim.sim.collective_time import collective_time
from rsdgc_sim.sim.config import TopologySpec
from rsdgc_sim.sim.topology import check_topology_params, links_carry_bandwidth, topology_size
from rsdgc_sim.sim.topology.gpu_cluster import PRESET_NAMES
from rsdgc_sim.sim.topology.gpu_nodes import GpuNodeTable, gpu_node_presets
from rsdgc_sim.sim.topology.guards import UNUSED_BANDWIDTH

BW, LAT = 1.25e9, 4e-6
#: no bandwidth given (the CLI without --bandwidth): a preset's NICs take their own
PRESET_BW = UNUSED_BANDWIDTH
H100 = {"preset": "dgx_h100"}


def names(t, route):
    return [t.link_name[k] for k in route.links]


def undirected_bandwidths(t):
    """(kind of the link's two ends, bandwidth) -> count, one per undirected link."""
    kinds = Counter()
    for u, v, d in t.graph.edges(data=True):
        ends = tuple(sorted(x.rstrip("0123456789_").rstrip("0123456789") for x in (u, v)))
        kinds[(ends, d["bandwidth"])] += 1
    return kinds


def test_dgx_h100_two_nodes_links():
    """Two dgx_h100 nodes: 16 NVLinks of 450 GB/s (GPU to NVSwitch), 16 GPU-NIC and 16
    NIC-rail links of 400 Gbit/s = 50 GB/s, 8 rail-spine links of 2 x 50 GB/s; 16 GPUs,
    2 NVSwitches, 16 NICs, 8 rails and a spine; the size estimate is what is built."""
    t = build_topology("gpu_cluster", 16, PRESET_BW, 2.7e-6, H100)
    assert undirected_bandwidths(t) == {
        (("g", "nvs"), 450e9): 16, (("g", "nic"), 50e9): 16, (("nic", "rail"), 50e9): 16,
        (("rail", "spine"), 100e9): 8}
    assert len(t.hosts) == 16 and t.graph.number_of_nodes() == 16 + 2 + 16 + 8 + 1
    size = topology_size("gpu_cluster", 16, H100)
    assert (size.nodes, size.links) == (t.graph.number_of_nodes(), t.graph.number_of_edges())
    assert t.groups == [list(range(8)), list(range(8, 16))]
    assert t.params == {
        "nodes": 2, "gpus_per_node": 8, "nvlink_bandwidth": 450e9, "nvlink_latency": 0.6e-6,
        "nics_per_node": 8, "nic_bandwidth": 50e9, "nic_latency": 2.7e-6,
        "rail_optimized": True, "preset": "dgx_h100", "nvls": True, "transport": "ib",
        "transport_latency": 0.0, "nic_fixed": False, "nic_latency_fixed": False}
    # a bandwidth given (a scenario's, --bandwidth) is the NICs'; a nic parameter beats it
    assert build_topology("gpu_cluster", 16, BW, LAT, H100).params["nic_bandwidth"] == BW
    fixed = build_topology("gpu_cluster", 16, BW, LAT, {**H100, "nic": "100Gbit/s"}).params
    assert (fixed["nic_bandwidth"], fixed["nic_fixed"]) == (12.5e9, True)


def test_link_values_a_nic_parameter_fixes_are_checked(write_scenario, tiny):
    """A scenario whose bandwidth or latency the topology's nic / nic_latency contradicts is
    refused in one line (its table would show values the links never used); with a preset
    alone the grid's values are the NICs'."""
    from rsdgc_sim.errors import ConfigError
    from rsdgc_sim.scenario import load_scenario

    tiny["cluster"].update(workers=[8], bandwidth=["100Gbit/s", "400Gbit/s"],
                           topology={"name": "gpu_cluster", "preset": "dgx_h100"})
    load_scenario(write_scenario(tiny))
    tiny["cluster"]["topology"]["nic"] = "400Gbit/s"
    with pytest.raises(ConfigError, match=r"cluster\.bandwidth 100Gbit/s: gpu_cluster's nic "
                                          r"parameter makes its NICs 400Gbit/s"):
        load_scenario(write_scenario(tiny))
    tiny["cluster"].update(bandwidth=["400Gbit/s"])
    load_scenario(write_scenario(tiny))
    tiny["cluster"]["topology"]["nic_latency"] = "2us"
    with pytest.raises(ConfigError, match=r"cluster\.latency 5us: .*nic_latency"):
        load_scenario(write_scenario(tiny))
    del tiny["cluster"]["latency"]
    with pytest.raises(ConfigError, match=r"cluster\.latency 5us \(the default\)"):
        load_scenario(write_scenario(tiny))


def test_rail_optimised_routes():
    """GPU 3 of node 0 reaches GPU 3 of node 1 over its own NIC, rail 3 and that node's NIC
    3; GPU 3 to GPU 4 of the other node climbs rail 3 -> spine -> rail 4; inside a node
    only the NVSwitch is used."""
    t = build_topology("gpu_cluster", 16, PRESET_BW, LAT, H100)
    assert names(t, t.route(3, 11)) == [("g3", "nic0_3"), ("nic0_3", "rail3"),
                                        ("rail3", "nic1_3"), ("nic1_3", "g11")]
    assert names(t, t.route(3, 12)) == [("g3", "nic0_3"), ("nic0_3", "rail3"),
                                        ("rail3", "spine"), ("spine", "rail4"),
                                        ("rail4", "nic1_4"), ("nic1_4", "g12")]
    assert names(t, t.route(3, 5)) == [("g3", "nvs0"), ("nvs0", "g5")]
    assert t.route(3, 3).links == ()


def test_shared_nic_is_shared():
    """hgx_v100 (4 NICs for 8 GPUs): GPUs 0 and 1 share NIC 0, so sending off the node at
    the same time each gets half of its 12.5 GB/s; GPUs 0 and 2 use NICs 0 and 1 and get
    all of theirs; traffic inside the node stays on NVLink (150 GB/s)."""
    t = build_topology("gpu_cluster", 16, PRESET_BW, LAT, {"preset": "hgx_v100"})
    assert t.params["rail_optimized"] is False
    assert names(t, t.route(1, 9)) == [("g1", "nic0_0"), ("nic0_0", "core"),
                                       ("core", "nic1_0"), ("nic1_0", "g9")]
    shared = t.pattern_cost("shared", np.array([[0, 8], [1, 9]]))
    apart = t.pattern_cost("apart", np.array([[0, 8], [2, 10]]))
    inside = t.pattern_cost("inside", np.array([[0, 1], [2, 3]]))
    assert shared.per_byte.tolist() == [2 / 12.5e9] * 2 and shared.max_flows == 2
    assert apart.per_byte.tolist() == [1 / 12.5e9] * 2 and apart.max_flows == 1
    assert inside.per_byte.tolist() == [1 / 150e9] * 2


def test_shared_nic_collective_time():
    """pcie_8gpu (2 NICs of 100 Gbit/s, 4 GPUs each): a ring allreduce of n bytes over 16
    GPUs whose every step sends n/16 across a NIC (ranks 7 -> 8 and 15 -> 0, each alone on
    its NIC; the PCIe steps are faster) takes 2 (p-1) (nic_latency + n / (p nic))."""
    n, p, nic, lat = 16e6, 16, 12.5e9, 2.7e-6
    res = collective_time("ring", p, n, None, 2.7e-6, TopologySpec(name="gpu_cluster",
                                                               params={"preset": "pcie_8gpu"}),
                          fidelity="link")
    assert res.simulated_s == pytest.approx(2 * (p - 1) * (lat + n / (p * nic)), rel=1e-12)


def test_latency_convention():
    """Route latencies: inside a node nvlink_latency, across nodes on one rail (or through
    the core) nic_latency, across rails 2 x nic_latency, summed link by link."""
    params = {"gpus_per_node": 4, "nics_per_node": 4, "nvlink": "100GB/s",
              "nvlink_latency": "1us", "nic": "100Gbit/s", "nic_latency": "2us"}
    t = build_topology("gpu_cluster", 8, BW, LAT, params)
    assert t.route(0, 3).latency == 1e-6
    assert t.route(1, 5).latency == 2e-6
    assert t.route(1, 6).latency == pytest.approx(4e-6, rel=1e-15)
    shared = build_topology("gpu_cluster", 8, BW, LAT, {**params, "nics_per_node": 2})
    assert shared.route(1, 6).latency == 2e-6
    # a whole pattern at once gives the same bits as route by route
    src, dst = np.meshgrid(np.arange(8), np.arange(8))
    pairs = np.stack([src.ravel(), dst.ravel()], axis=1)
    cost = t.pattern_cost("all", pairs)
    assert cost.latency.tolist() == [t.route(i, j).latency for i, j in pairs.tolist()]


def test_defaults_come_from_the_scenario():
    """Without a preset or nic / nic_latency, the NICs take the scenario's bandwidth and
    latency; the node defaults to 8 GPUs sharing one NIC (two_level's intra defaults)."""
    t = build_topology("gpu_cluster", 16, BW, LAT)
    assert t.params["nic_bandwidth"] == BW and t.params["nic_latency"] == LAT
    assert (t.params["gpus_per_node"], t.params["nics_per_node"]) == (8, 1)
    assert t.params["nvlink_bandwidth"] == 150e9 and t.params["preset"] is None
    assert t.route(0, 8).latency == LAT


def test_explicit_parameter_overrides_preset():
    """A parameter beside the preset replaces the preset's value; the others stay."""
    t = build_topology("gpu_cluster", 16, BW, LAT,
                       {**H100, "nic": "100Gbit/s", "nvlink_latency": "2us"})
    assert t.params["nic_bandwidth"] == 12.5e9 and t.params["nvlink_latency"] == 2e-6
    assert t.params["nvlink_bandwidth"] == 450e9 and t.params["nics_per_node"] == 8
    assert t.route(0, 1).latency == 2e-6


def test_one_gpu_per_node_ring_matches_switch():
    """With one GPU per node the cluster is a switch whose host links are the NICs
    (an extra GPU-NIC hop of the same bandwidth and no latency): a ring allreduce on both
    takes 2 (p-1) (nic_latency + n / (p nic)), as the switch's closed form says."""
    p, n, nic, lat = 8, 8e6, 3.125e9, 2e-6
    expected = 2 * (p - 1) * (lat + n / (p * nic))
    on_switch = collective_time("ring", p, n, nic, lat)
    spec = TopologySpec(name="gpu_cluster", params={"preset": "ethernet_1gpu",
                                                    "nic_latency": "2us"})
    for fidelity in ("step", "link"):
        on_cluster = collective_time("ring", p, n, None, LAT, spec, fidelity=fidelity)
        assert on_cluster.simulated_s == pytest.approx(expected, rel=1e-12)
    assert on_switch.simulated_s == pytest.approx(expected, rel=1e-12)


def test_two_dgx_h100_ring_crosses_rails():
    """The textbook ring over 16 GPUs of two dgx_h100 nodes: every step has the transfers
    7 -> 8 and 15 -> 0, which cross rails (rail 7 -> spine -> rail 0: 2 x nic_latency, 50
    GB/s), so T = 2 (p-1) (2 nic_latency + n / (p nic))."""
    p, n = 16, 100e6
    res = collective_time("ring", p, n, None, 2.7e-6, TopologySpec(name="gpu_cluster", params=H100),
                          fidelity="link")
    assert res.simulated_s == pytest.approx(2 * (p - 1) * (2 * 2.7e-6 + n / (p * 50e9)),
                                            rel=1e-12)


def test_hierarchical_uses_the_nodes():
    """The node groups make hierarchical (and auto's candidates) work on gpu_cluster."""
    res = collective_time("hierarchical", 16, 1e6, BW, LAT,
                          TopologySpec(name="gpu_cluster", params=H100))
    assert res.simulated_s > 0


def test_partial_nodes():
    """12 GPUs of 8-GPU nodes: refused unless allow_partial (then the last node holds 4)."""
    with pytest.raises(TopologyError, match="do not fill whole nodes of gpus_per_node=8"):
        build_topology("gpu_cluster", 12, BW, LAT, H100)
    t = build_topology("gpu_cluster", 12, BW, LAT, {**H100, "allow_partial": True})
    assert t.groups == [list(range(8)), list(range(8, 12))]
    assert names(t, t.route(11, 3)) == [("g11", "nic1_3"), ("nic1_3", "rail3"),
                                        ("rail3", "nic0_3"), ("nic0_3", "g3")]


@pytest.mark.parametrize("params,error,match", [
    ({"preset": "dgx_h200"}, UnknownNameError,
     "unknown gpu_cluster preset 'dgx_h200'; choose one of: dgx_a100, dgx_h100, "
     "ethernet_1gpu, hgx_v100, pcie_8gpu"),
    ({"nics_per_node": 3}, ConfigError,
     r"nics_per_node=3 \(given\) does not divide gpus_per_node=8 \(default\)"),
    ({**H100, "gpus_per_node": 4}, ConfigError,
     r"nics_per_node=8 \(preset dgx_h100\) is more than gpus_per_node=4 \(given\)"),
    ({"nvlink": 5}, ConfigError, "nvlink: 5 has no unit"),
    ({"nic_bandwidth": "1Gbit/s"}, ConfigError, "unknown parameter 'nic_bandwidth'"),
])
def test_bad_params(params, error, match):
    """Bad parameters give one clear error, before anything is built."""
    with pytest.raises(ConfigError, match=match) as info:
        check_topology_params("gpu_cluster", params)
    assert "parameters: preset, gpus_per_node, nodes" in str(info.value)
    if error is UnknownNameError:  # the message lists the presets
        assert all(name in str(info.value) for name in PRESET_NAMES)


def test_nodes_must_match_the_workers():
    """nodes, if given, must be ceil(workers / gpus_per_node)."""
    assert build_topology("gpu_cluster", 16, BW, LAT, {**H100, "nodes": 2}).params["nodes"] == 2
    with pytest.raises(TopologyError, match="nodes=3 on gpu_cluster, but 16 workers of "
                                            "gpus_per_node=8 fill 2 nodes"):
        build_topology("gpu_cluster", 16, BW, LAT, {**H100, "nodes": 3})


def test_link_overrides_apply():
    """link_overrides change a gpu_cluster link as on the other generators."""
    t = build_topology("gpu_cluster", 16, BW, LAT, {
        **H100, "link_overrides": [{"between": ["nic0_3", "rail3"], "bandwidth": "1Gbit/s"}]})
    assert t.overridden and min(t.link_bw[k] for k in t.route(3, 11).links) == 1.25e8


def test_presets_file():
    """Every preset loads (strict schema) with a source per number; the help text names
    exactly the file's presets; dgx_h100's numbers are the datasheets' (per direction)."""
    presets = gpu_node_presets().presets
    assert tuple(sorted(presets)) == PRESET_NAMES
    assert all(name in TOPOLOGIES.help("gpu_cluster") for name in PRESET_NAMES)
    for p in presets.values():
        assert "https://" in " ".join(p.sources.values())
    h = presets["dgx_h100"]
    assert (h.gpus_per_node, h.nvlink, h.nics_per_node, h.nic) == (8, 450e9, 8, 50e9)
    v = presets["hgx_v100"]
    assert (v.nvlink, v.nics_per_node, v.nic) == (150e9, 4, 12.5e9)


def test_presets_schema_is_strict():
    """The preset schema refuses unknown keys, a number without a source and a bare
    number where a unit is needed."""
    entry = gpu_node_presets().presets["dgx_h100"].model_dump()
    entry["nvlink"], entry["nic"] = "450GB/s", "400Gbit/s"
    entry["nvlink_latency"], entry["nic_latency"] = "0.6us", "2.7us"
    transports = {k: {**v.model_dump(), "latency": f"{v.latency * 1e6:g}us"}
                  for k, v in gpu_node_presets().transports.items()}
    GpuNodeTable.model_validate({"presets": {"x": entry}, "transports": transports})
    for bad in ({**entry, "pcie": "32GB/s"}, {**entry, "nic": 50e9},
                {**entry, "sources": {k: v for k, v in entry["sources"].items()
                                      if k != "nic"}},
                {**entry, "sources": {k: v for k, v in entry["sources"].items()
                                      if k != "nvls"}},
                {**entry, "transport": "myrinet"}):
        with pytest.raises(ValidationError):
            GpuNodeTable.model_validate({"presets": {"x": bad}, "transports": transports})
    no_efa = {k: v for k, v in transports.items() if k != "efa"}
    with pytest.raises(ValidationError, match="transports: expected"):
        GpuNodeTable.model_validate({"presets": {"x": entry}, "transports": no_efa})


def test_links_carry_bandwidth(tmp_path):
    """Whether --bandwidth is needed: not for gpu_cluster with a preset or nic, nor for a
    file whose every link has a bandwidth; yes otherwise."""
    assert links_carry_bandwidth("gpu_cluster", H100)
    assert links_carry_bandwidth("gpu_cluster", {"nic": "10Gbit/s"})
    assert not links_carry_bandwidth("gpu_cluster")
    assert not links_carry_bandwidth("two_level", {"gpus_per_node": 4})
    assert not links_carry_bandwidth("switch")
    full = tmp_path / "full.yaml"
    full.write_text("hosts: [a, b]\nswitches: [s]\nlinks:\n"
                    "  - {between: [a, s], bandwidth: 1Gbit/s}\n"
                    "  - {between: [b, s], bandwidth: 1Gbit/s}\n")
    half = tmp_path / "half.yaml"
    half.write_text("hosts: [a, b]\nswitches: [s]\nlinks:\n"
                    "  - {between: [a, s], bandwidth: 1Gbit/s}\n  - {between: [b, s]}\n")
    gen = tmp_path / "gen.yaml"
    gen.write_text("generator: gpu_cluster\nparams: {preset: dgx_a100}\n")
    assert links_carry_bandwidth(str(full)) and not links_carry_bandwidth(str(half))
    assert links_carry_bandwidth("file", {"path": str(full)})
    assert links_carry_bandwidth(str(gen))
    assert links_carry_bandwidth("small_lab") and not links_carry_bandwidth("two_level")
    with pytest.raises(UnknownNameError, match="unknown topology 'nope'"):
        links_carry_bandwidth("nope")
    with pytest.raises(ConfigError, match="unknown gpu_cluster preset"):
        links_carry_bandwidth("gpu_cluster", {"preset": "nope"})


@pytest.mark.parametrize("nics", [4, 2])
def test_step_agrees_with_link_where_it_says_exact(nics):
    """On gpu_cluster (rail-optimised and shared), wherever ``step`` calls itself exact,
    ``link`` (every transfer a flow on the links) gives the same time to 1e-9: the
    router's whole-pattern costs and its per-pair routes agree."""
    from rsdgc_sim.sim.collectives import Message, make_collective
    from rsdgc_sim.sim.fidelity import choose_fidelity
    from rsdgc_sim.sim.runner import run_collective

    params = {"gpus_per_node": 4, "nics_per_node": nics, "nvlink": "40GB/s",
              "nvlink_latency": "1us", "nic": "10Gbit/s", "nic_latency": "3us"}
    checked = 0
    for alg in ("ring", "tree", "halving_doubling", "hierarchical", "allgather_ring"):
        for p in (4, 8, 12):
            coll, msg = make_collective(alg), Message(p, 1e6)
            topo = build_topology("gpu_cluster", p, BW, LAT, params)
            ch = choose_fidelity(coll, p, msg, topo, "step")
            if ch.exact:
                link = run_collective(coll, p, msg, topo, "link").seconds
                assert ch.step_s == pytest.approx(link, rel=1e-9), (alg, p)
                checked += 1
    assert checked >= 5
