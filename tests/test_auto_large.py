"""auto at scale on tree and fat_tree: link's time computed round by round where flows
share links at most in pairs (the double binary tree), and a clear reason where not."""

from __future__ import annotations

import numpy as np
import pytest

from rsdgc_sim.sim.collective_time import collective_time
from rsdgc_sim.sim.collectives import Message, make_collective
from rsdgc_sim.sim.config import TopologySpec
from rsdgc_sim.sim.fidelity import choose_fidelity
from rsdgc_sim.sim.link_rounds import link_rounds_seconds
from rsdgc_sim.sim.runner import run_collective
from rsdgc_sim.sim.topology.build import build_topology

BW = 1.25e9

CASES = [("double_binary_tree", "tree", 64, {}), ("double_binary_tree", "tree", 256, {}),
         ("double_binary_tree", "fat_tree", 128, {"k": 8}),
         ("double_binary_tree", "two_level", 64, {"gpus_per_node": 8}),
         ("tree", "fat_tree", 100, {"k": 8}), ("halving_doubling", "switch", 50, {}),
         ("allgather_recursive_doubling", "switch", 50, {})]


@pytest.mark.parametrize("name,topo_name,p,params", CASES)
@pytest.mark.parametrize("latency", [0.0, 5e-6])
def test_rounds_equal_the_flow_run(name, topo_name, p, params, latency):
    """Where the rounds can be computed, they give link's own time (flows run as SimPy
    events) to 1e-12 relative: pairs sharing a parent's link, ranks that drift apart."""
    topo = build_topology(topo_name, p, BW, latency, params)
    coll, msg = make_collective(name), Message(p, 1e6)
    rounds = link_rounds_seconds(coll, p, msg, topo, coll.phases(p, msg, topo))
    assert rounds.seconds is not None, rounds.why_not
    link = run_collective(coll, p, msg, topo, "link").seconds
    assert rounds.seconds == pytest.approx(link, rel=1e-12)


def test_pair_rates_where_one_flow_is_held_by_its_own_link():
    """Two flows into one host of an oversubscribed fat tree: one crosses the slow core
    links alone (its own bottleneck, bw/4), the other is left the rest of the shared host
    link; the rounds still equal the flows."""
    from rsdgc_sim.sim.collectives.base import Phase
    from rsdgc_sim.sim.link_rounds import _drains, _pattern

    topo = build_topology("fat_tree", 16, BW, 1e-6, {"k": 4, "oversubscription": 4.0})
    ph = Phase("two into one", ("t", 1), ((1, 0), (8, 0)), 1e6)
    pat = _pattern(topo, ph)
    assert list(pat.partner) == [1, 0]
    assert pat.both[1] == pytest.approx(BW / 4) and pat.both[0] == pytest.approx(BW - BW / 4)
    # 8 starts 1 ms late: 1 runs alone at BW, then both share
    d = _drains(np.array([0.0, 1e-3]), np.array([2e6, 1e6]), pat)
    left = 2e6 - BW * 1e-3  # 1's bytes when 8 starts
    t8 = 1e6 / (BW / 4)  # 8 at bw/4 drains after 3.2 ms; 1 at 3/4 BW drains after 0.8 ms
    t1 = left / (0.75 * BW)
    assert t1 < t8
    assert d[0] == pytest.approx(1e-3 + t1, rel=1e-12)
    assert d[1] == pytest.approx(1e-3 + t8, rel=1e-12)  # 8 is held by its own link


def test_rounds_refuse_three_flows_on_a_link():
    """Halving-doubling on a tree puts many flows of a round on one uplink: not computed,
    and the reason names the count and the phase."""
    topo = build_topology("tree", 64, BW, 0.0, {})
    coll, msg = make_collective("halving_doubling"), Message(64, 1e6)
    r = link_rounds_seconds(coll, 64, msg, topo, coll.phases(64, msg, topo))
    assert r.seconds is None and "16 transfers of one round share a link" in r.why_not


def test_rounds_refuse_flows_of_different_rounds_that_meet():
    """With latency on a binary tree of 1,024 ranks the double binary tree's ranks drift so
    far that a broadcast flow meets a flow of another round on a switch link: the rounds
    are not computed (the flow-level run would differ from them)."""
    topo = build_topology("tree", 1024, BW, 5e-6, {"arity": 2})
    coll, msg = make_collective("double_binary_tree"), Message(1024, 1e6)
    r = link_rounds_seconds(coll, 1024, msg, topo, coll.phases(1024, msg, topo))
    assert r.seconds is None and "would meet one of another round" in r.why_not


def test_auto_exact_at_65536_ranks_on_fat_tree_double_binary_tree():
    """65,536 ranks of a k=64 fat tree: the double binary tree, an estimate before (step,
    4 % slow), is link's time computed round by round, so auto's answer is exact (it picks
    ring at 100 MB without latency, every candidate exact but halving-doubling)."""
    spec = TopologySpec(name="fat_tree", params={"k": 64})
    r = collective_time("auto", 65536, 1e8, BW, 0.0, topology=spec)
    assert r.chosen == "ring" and r.exact
    assert "double_binary_tree: 2.44 s (link)" in r.explain
    assert "halving_doubling: 1.21656 s (step, estimate)" in r.explain


def test_auto_says_why_halving_doubling_stays_an_estimate():
    """Halving-doubling on a 65,536-rank fat tree: hashed ECMP paths put up to 8 flows of a
    phase on a link (56 in one sharing group): link would take minutes of flows and the
    rounds cannot be computed; the reason says both."""
    topo = build_topology("fat_tree", 65536, BW, 5e-6, {"k": 64})
    coll, msg = make_collective("halving_doubling"), Message(65536, 1e6)
    ch = choose_fidelity(coll, 65536, msg, topo, "auto")
    assert (ch.level, ch.exact) == ("step", False)
    assert "2,097,152 transfers would take more than 0.5 s (auto's limit)" in ch.reason
    assert "nor can their time be computed round by round: 8 transfers of one round share a link" \
        in ch.reason
