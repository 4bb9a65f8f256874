"""Topologies: generators, routing, files, overrides and bad input."""

from pathlib import Path

import networkx as nx
import pytest

from rsdgc_sim.errors import ConfigError, ScenarioFileError, TopologyError, UnknownNameError
from rsdgc_sim.sim import TOPOLOGIES, build_topology
from rsdgc_sim.sim.topology import TOPOLOGY_DIR

BW, LAT = 1.25e9, 4e-6


@pytest.mark.parametrize("name,hosts,params", [
    ("switch", 7, {}), ("ring", 7, {}), ("tree", 17, {"arity": 4}),
    ("fat_tree", 16, {"k": 4}), ("two_level", 16, {"gpus_per_node": 8}),
    ("torus2d", 12, {}),
])
def test_generators_build_connected_graphs(name, hosts, params):
    """Every generator builds a connected graph with the requested hosts, and every host pair
    has a route whose links exist."""
    t = build_topology(name, hosts, BW, LAT, params)
    assert len(t.hosts) == hosts and nx.is_connected(t.graph)
    for j in range(1, hosts):
        r = t.route(0, j)
        assert r.links and r.latency > 0


def test_switch_latency_is_host_to_host():
    """On the switch, two hosts are `latency` apart over two links of bandwidth B."""
    t = build_topology("switch", 4, BW, LAT)
    r = t.route(1, 2)
    assert r.latency == LAT and len(r.links) == 2
    assert all(t.link_bw[k] == BW for k in r.links)


def test_ring_routes_shortest_way_round():
    """On a physical ring of 8, host 0 reaches host 7 in one hop and host 4 in four."""
    t = build_topology("ring", 8, BW, LAT)
    assert len(t.route(0, 7).links) == 1
    assert len(t.route(0, 4).links) == 4
    assert t.route(0, 4).latency == pytest.approx(4 * LAT)


def test_two_level_latencies():
    """two_level: GPU to GPU inside a node intra_latency; across nodes intra + NIC latency."""
    t = build_topology("two_level", 16, BW, LAT, {"gpus_per_node": 8, "intra_latency": "1us"})
    assert t.route(0, 1).latency == pytest.approx(1e-6)
    assert t.route(0, 8).latency == pytest.approx(1e-6 + LAT)
    assert t.groups == [list(range(8)), list(range(8, 16))]


def test_fat_tree_ecmp_spreads_routes():
    """Between two pods there are several shortest paths; different host pairs use
    different core switches (static ECMP), always the same for the same pair."""
    t = build_topology("fat_tree", 16, BW, LAT, {"k": 4})
    cores = set()
    for i in range(4):
        r = t.route(i, 8 + i)
        cores |= {t.link_name[k][1] for k in r.links if t.link_name[k][1].startswith("c")}
    assert len(cores) > 1
    assert t.route(1, 9) == t.route(1, 9)


def test_two_level_partial_node_is_an_error():
    """10 workers on two_level with 8 per node do not fit unless partial nodes are allowed."""
    with pytest.raises(TopologyError, match="10 workers do not fill whole nodes"):
        build_topology("two_level", 10, BW, LAT, {"gpus_per_node": 8})
    t = build_topology("two_level", 10, BW, LAT, {"gpus_per_node": 8, "allow_partial": True})
    assert [len(g) for g in t.groups] == [8, 2]


def test_fat_tree_too_small():
    with pytest.raises(TopologyError, match="20 hosts do not fit a k=4 fat tree"):
        build_topology("fat_tree", 20, BW, LAT, {"k": 4})


def test_torus_shape_mismatch():
    with pytest.raises(TopologyError, match="do not fit a torus2d"):
        build_topology("torus2d", 12, BW, LAT, {"rows": 5})


def test_unknown_topology_lists_choices():
    with pytest.raises(UnknownNameError, match="unknown topology 'hypercube'.*fat_tree.*switch"):
        build_topology("hypercube", 4, BW, LAT)


def test_unknown_parameter_named():
    """An unknown parameter is named, with the generator's parameters."""
    with pytest.raises(ConfigError, match="topology 'two_level': unknown parameter 'gpus'; "
                                          "parameters: gpus_per_node, "):
        build_topology("two_level", 8, BW, LAT, {"gpus": 8})


@pytest.mark.parametrize("bw", [0, -5.0])
def test_non_positive_bandwidth(bw):
    with pytest.raises(ConfigError, match="bandwidth: bandwidth must be > 0"):
        build_topology("switch", 4, bw, LAT)


def test_intra_bandwidth_bounded():
    """Link values given as parameters are bounded as a scenario's cluster values are."""
    with pytest.raises(ConfigError, match=r"intra_bandwidth: Input should be greater than or "
                                          r"equal to 1 \(got '0GB/s'\)"):
        build_topology("two_level", 8, BW, LAT, {"intra_bandwidth": "0GB/s"})


def test_parameters_with_units():
    """Parameter values ending in bandwidth/latency accept units."""
    t = build_topology("two_level", 8, BW, LAT, {"intra_bandwidth": "100GB/s",
                                                  "intra_latency": "2us"})
    assert t.route(0, 1).latency == pytest.approx(2e-6)
    assert t.params["intra_bandwidth"] == 1e11


def test_link_override():
    """A per-link override changes that link (both directions) and nothing else."""
    t = build_topology("switch", 4, BW, LAT, {"link_overrides": [
        {"between": ["h2", "sw"], "bandwidth": "1Gbit/s", "latency": "10us"}]})
    r = t.route(2, 3)
    assert t.link_bw[r.links[0]] == 1.25e8
    assert r.latency == pytest.approx(10e-6 + LAT / 2)
    assert not t.uniform
    with pytest.raises(ConfigError, match="no link between 'h2' and 'h3'"):
        build_topology("switch", 4, BW, LAT, {"link_overrides": [{"between": ["h2", "h3"]}]})


@pytest.mark.parametrize("path", sorted(TOPOLOGY_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_files_load(path):
    """Every file under topologies/ loads (by name) into a connected topology."""
    hosts = 8 if path.stem != "fat_tree" else 16
    t = build_topology(path.stem, hosts, BW, LAT)
    assert nx.is_connected(t.graph) and len(t.hosts) >= hosts


def test_explicit_file_links(tmp_path):
    """small_lab: cross-rack routes go over the 1 Gbit/s uplinks."""
    t = build_topology("small_lab", 8, BW, LAT)
    r = t.route(0, 4)
    assert min(t.link_bw[k] for k in r.links) == 1.25e8
    assert r.latency == pytest.approx(2e-6 + 5e-6 + 5e-6 + 2e-6)


def test_disconnected_file_rejected(tmp_path: Path):
    """A topology file whose graph is disconnected is a TopologyError."""
    f = tmp_path / "broken.yaml"
    f.write_text("hosts: [a, b, c]\nswitches: [s]\nlinks:\n  - {between: [a, s]}\n"
                 "  - {between: [b, s]}\n")
    with pytest.raises(TopologyError, match="disconnected"):
        build_topology(str(f), 3, BW, LAT)


def test_file_unknown_key_and_node(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text("hosts: [a]\nwires: []\n")
    with pytest.raises(ConfigError, match="wires: unknown key; allowed: name, description"):
        build_topology(str(f), 1, BW, LAT)
    f.write_text("hosts: [a, b]\nlinks:\n  - {between: [a, z]}\n")
    with pytest.raises(ConfigError, match=r"links\[0\]\.between: unknown node 'z'"):
        build_topology(str(f), 2, BW, LAT)


def test_file_too_few_hosts_and_missing(tmp_path: Path):
    with pytest.raises(TopologyError, match="9 hosts needed but topology 'small_lab' has 8"):
        build_topology("small_lab", 9, BW, LAT)
    with pytest.raises(ScenarioFileError, match="nope.yaml: no such file"):
        build_topology(str(tmp_path / "nope.yaml"), 2, BW, LAT)


def test_registry_lists_all():
    assert {"switch", "ring", "tree", "fat_tree", "two_level", "torus2d"} <= set(TOPOLOGIES)


def test_link_override_keeps_the_link_table():
    """Overrides change the generator's link table (both directions of the link) without
    building a networkx graph: 65,536 hosts of a k=64 fat tree with a slow link build in
    about a second."""
    t = build_topology("fat_tree", 65536, BW, LAT, {"k": 64, "link_overrides": [
        {"between": ["e0_0", "h1"], "bandwidth": "1Gbit/s"}]})
    assert t._graph is None and t.overridden and not t.uniform
    r = t.route(1, 0)
    assert t.link_bw[r.links[0]] == 1.25e8 and t.link_bw[r.links[1]] == BW
    assert t.link_bw[t.route(0, 1).links[1]] == 1.25e8


def test_repeated_names_in_a_file_are_named(tmp_path: Path):
    """A host given twice, or also listed as a switch, is an error naming it and the file."""
    f = tmp_path / "dup.yaml"
    f.write_text("hosts: [a, b, a]\nlinks:\n  - {between: [a, b]}\n")
    with pytest.raises(ConfigError, match=r"topology file .*dup\.yaml: hosts\[2\]: 'a' is "
                                          r"given twice"):
        build_topology(str(f), 2, BW, LAT)
    f.write_text("hosts: [a, b]\nswitches: [a]\nlinks:\n  - {between: [a, b]}\n")
    with pytest.raises(ConfigError, match=r"switches\[0\]: 'a' is also in hosts"):
        build_topology(str(f), 2, BW, LAT)


def test_fat_tree_k_for_is_the_smallest_even_k_that_holds_the_hosts():
    """k^3/4 host ports: k=4 holds 16, k=6 holds 54, k=64 holds 65,536."""
    from rsdgc_sim.sim.topology import fat_tree_k_for

    assert [fat_tree_k_for(p) for p in (1, 2, 3, 16, 17, 54, 55, 65536, 65537)] == [
        2, 2, 4, 4, 6, 6, 8, 64, 66]
