"""Routing: the ECMP hash over equal-cost paths in numeric node order, dimension order on
tori, routes from structure equal to graph searches, and whole-pattern costs."""

import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from rsdgc_sim.sim import build_topology
from rsdgc_sim.sim.network import FlowNetwork
from rsdgc_sim.sim.routing import GraphRouter, Router, ecmp_hash, natural_key
from rsdgc_sim.sim.routing.torus import _Rings
from rsdgc_sim.sim.runner import CountingEnvironment

BW, LAT = 1e9, 2e-6

TWO_PATHS = """\
hosts: [h0, h1, h2, h3]
switches: [s1, s2, m2, m10]
links:
  - {between: [h0, s1]}
  - {between: [h1, s1]}
  - {between: [h2, s2]}
  - {between: [h3, s2]}
  - {between: [s1, m10]}
  - {between: [s1, m2]}
  - {between: [m10, s2]}
  - {between: [m2, s2]}
"""


def _together(topo, flows):
    """Arrival times of ``(src, dst, nbytes)`` flows started together (one round)."""
    env = CountingEnvironment()
    net = FlowNetwork(env, topo)
    arrivals = {}
    for k, (s, d, n) in enumerate(flows):
        net.transfer(s, d, n, None, lambda k=k: arrivals.__setitem__(k, env.now))
    env.run()
    return [arrivals[k] for k in range(len(flows))]


def _switches(topo, route):
    return [topo.link_name[k][1] for k in route.links[:-1]]


def test_ecmp_hash_is_splitmix64():
    """The flow hash is the splitmix64 finalizer of (src << 32) + dst: for (0, 0) that is
    splitmix64's well-known first output from seed 0, 0xE220A8397B1DCDAF."""
    assert ecmp_hash(0, 0) == 0xE220A8397B1DCDAF
    assert ecmp_hash(0, 2) % 2 == 0 and ecmp_hash(1, 3) % 2 == 1


def test_natural_key_orders_digit_runs_as_numbers():
    assert sorted(["m10", "m2", "a1_10", "a1_9"], key=natural_key) == [
        "a1_9", "a1_10", "m2", "m10"]


def test_two_equal_paths_numeric_order_hand_computed(tmp_path: Path):
    """Two equal-cost paths between switches s1 and s2, through m2 and m10. In numeric node
    order m2 comes first (path 0). Flow 0->2 hashes to path 0 (via m2), flow 1->3 to path 1
    (via m10): they share no link, so both arrive at n/B + 2L (four links of L/2). (Paths
    sorted as strings with (src + dst) mod 2 sent both via m10: 2n/B + 2L.)"""
    f = tmp_path / "two_paths.yaml"
    f.write_text(TWO_PATHS)
    t = build_topology(str(f), 4, BW, LAT)
    assert _switches(t, t.route(0, 2)) == ["s1", "m2", "s2"]
    assert _switches(t, t.route(1, 3)) == ["s1", "m10", "s2"]
    n = 1e6
    assert _together(t, [(0, 2, n), (1, 3, n)]) == pytest.approx([n / BW + 2 * LAT] * 2,
                                                                    rel=1e-12)


def test_fat_tree_ecmp_collision_hand_computed():
    """k=4 fat tree, 2:1 oversubscribed (uplinks B/2). Flows 0->4 and 1->5 leave edge e0_0
    for pod 1; of the 4 paths (aggregation x, core x*2+y) both hash to number 2 (x=1, y=0:
    a0_1, c2, a1_1), so they share every uplink: B/4 each, T = n/(B/4) + 3L (six links of
    L/2) for both. ECMP collisions are real; the result does not depend on node names."""
    t = build_topology("fat_tree", 16, BW, LAT, {"k": 4, "oversubscription": 2})
    assert ecmp_hash(0, 4) % 4 == 2 and ecmp_hash(1, 5) % 4 == 2
    for i, j in ((0, 4), (1, 5)):
        assert _switches(t, t.route(i, j)) == ["e0_0", "a0_1", "c2", "a1_1", "e1_0"]
    n = 1e6
    assert _together(t, [(0, 4, n), (1, 5, n)]) == pytest.approx(
        [4 * n / BW + 3 * LAT] * 2, rel=1e-12)


def test_fat_tree_core_follows_hash_in_numeric_order():
    """k=8 fat tree (16 cores): a flow between pods takes path number ecmp_hash mod 16 in
    numeric node order, i.e. aggregation (number // 4) and core c<number> (c2 before c10)."""
    t = build_topology("fat_tree", 128, BW, LAT, {"k": 8})
    for i, j in [(0, 16), (3, 100), (17, 2), (5, 127), (64, 31), (10, 90)]:
        h = ecmp_hash(i, j) % 16
        sw = _switches(t, t.route(i, j))
        assert sw[1] == f"a{i // 16}_{h // 4}" and sw[2] == f"c{h}", (i, j, sw)


def test_torus_dimension_order_and_tie():
    """4x4 torus: a route runs along the row, then along the column (0 -> 5: h0, h1, h5).
    Half way round a ring of 4 is a tie: 0 -> 2 has candidates via h1 and via h3, in
    numeric order; ecmp_hash(0, 2) is even, so via h1. 1 -> 3: via h0 or h2 (in that order),
    ecmp_hash(1, 3) is odd: via h2."""
    t = build_topology("torus2d", 16, BW, LAT)

    def nodes(i, j):
        r = t.route(i, j)
        return [t.link_name[r.links[0]][0]] + [t.link_name[k][1] for k in r.links]

    assert nodes(0, 5) == ["h0", "h1", "h5"]
    assert nodes(0, 2) == ["h0", "h1", "h2"]
    assert nodes(1, 3) == ["h1", "h2", "h3"]


CASES = [("switch", 7, {}), ("tree", 37, {"arity": 3}), ("tree", 16, {"arity": 4}),
         ("fat_tree", 16, {"k": 4}), ("fat_tree", 50, {"k": 6, "oversubscription": 2}),
         ("two_level", 12, {"gpus_per_node": 4}),
         ("two_level", 10, {"gpus_per_node": 4, "allow_partial": True}),
         ("ring", 7, {}), ("ring", 8, {}), ("ring", 2, {}), ("torus2d", 12, {}),
         ("torus2d", 16, {}), ("torus2d", 8, {"rows": 2}), ("torus2d", 6, {"rows": 1}),
         ("torus2d", 16, {"link_overrides": [{"between": ["h0", "h1"], "bandwidth": "500MB/s",
                                              "latency": "3us"}]})]


@pytest.mark.parametrize("name,n,params", CASES, ids=lambda x: str(x))
def test_structured_routes_are_shortest_paths(name, n, params):
    """Routes computed from the structure are connected shortest paths; on switched
    topologies they are exactly the graph search's (all shortest paths in numeric order,
    ECMP hash), link for link."""
    t = build_topology(name, n, BW, LAT, params)
    graph = GraphRouter(t)
    dist = dict(nx.all_pairs_shortest_path_length(t.graph))
    for i, j in itertools.product(range(n), repeat=2):
        links = t.router.route_links(i, j)
        assert len(links) == dist[t.hosts[i]][t.hosts[j]]
        at = t.hosts[i]
        for k in links:
            u, v = t.link_name[k]
            assert u == at
            at = v
        assert at == t.hosts[j]
        if name not in ("ring", "torus2d"):
            assert links == graph.route_links(i, j)


@pytest.mark.parametrize("name,n,params", CASES, ids=lambda x: str(x))
def test_pattern_cost_equals_pair_by_pair(name, n, params):
    """A whole pattern's cost (numpy, or ring arcs with difference arrays and range maxima)
    equals routing its pairs one by one: per transfer the route latency (the same bits on
    switched topologies), seconds per byte on the most loaded link, hops, and the most
    transfers on one link."""
    t = build_topology(name, n, BW, LAT, params)
    rng = np.random.default_rng(0)
    for _ in range(10):
        m = int(rng.integers(1, 3 * n))
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        got = t.router.pattern_cost(src, dst)
        want = Router.pattern_cost(t.router, src, dst)
        if name in ("ring", "torus2d"):
            assert got.latency == pytest.approx(want.latency, rel=1e-13, abs=0)
        else:
            assert np.array_equal(got.latency, want.latency)
        assert np.array_equal(got.per_byte, want.per_byte)
        assert np.array_equal(got.hops, want.hops) and got.max_flows == want.max_flows


def test_arc_loads_both_ways():
    """Arcs on rings taken as one pattern: per arc the largest (arcs on a link / its
    bandwidth) and the most arcs on one link, counted position by position and by
    difference arrays with a sparse table, equal brute force."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        rings, n = int(rng.integers(1, 5)), int(rng.integers(1, 40))
        bw = rng.random(rings * n) + 0.5
        blk = _Rings(np.arange(rings * n).reshape(rings, n), bw, np.zeros(rings * n))
        m = int(rng.integers(1, 30))
        r, s = rng.integers(0, rings, m), rng.integers(0, n, m)
        ln = rng.integers(1, n + 1, m)
        count = np.zeros((rings, n), dtype=int)
        for a, b, c in zip(r, s, ln, strict=True):
            for k in range(c):
                count[a, (b + k) % n] += 1
        want = [max(count[a, (b + k) % n] / bw[a * n + (b + k) % n] for k in range(c))
                for a, b, c in zip(r, s, ln, strict=True)]
        for by_position in (True, False):
            load, most = blk.loads(r, s, ln, by_position)
            assert load == pytest.approx(want, rel=1e-15) and most == count.max()


def test_routes_are_the_same_in_every_process():
    """Routing depends on no hash seed or dict order: a fat tree's routes hash identically
    in a fresh interpreter."""
    import subprocess
    import sys

    code = ("from rsdgc_sim.sim import build_topology;"
            "t = build_topology('fat_tree', 128, 1e9, 1e-6, {'k': 8});"
            "print([t.route(i, (i * 37 + 5) % 128).links for i in range(128)])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2)}
    assert len(outs) == 1
