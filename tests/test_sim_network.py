"""Links with contention (flow-level, max-min fair) and slow links."""

import pytest

from rsdgc_sim.sim import TopologySpec, build_topology, collective_time
from rsdgc_sim.sim.network import FlowNetwork, run_rounds
from rsdgc_sim.sim.runner import CountingEnvironment

BW = 1e9
LAT = 2e-6  # host to host on the switch


def _net(hosts=4):
    env = CountingEnvironment()
    topo = build_topology("switch", hosts, BW, LAT)
    return env, FlowNetwork(env, topo)


def _arrivals(env, net, flows):
    """Start ``(t0, src, dst, nbytes)`` flows; return their arrival times."""
    out = {}
    for k, (t0, s, d, n) in enumerate(flows):
        def start(_e, k=k, s=s, d=d, n=n):
            net.transfer(s, d, n, None, lambda k=k: out.__setitem__(k, env.now))
        env.timeout(t0).callbacks.append(start)
    env.run()
    return [out[k] for k in range(len(flows))]


def test_one_flow_alone():
    """A lone flow takes bytes/bandwidth plus the route latency."""
    env, net = _net()
    (t,) = _arrivals(env, net, [(0.0, 0, 1, 1e6)])
    assert t == pytest.approx(1e6 / BW + LAT, rel=1e-12)


def test_two_flows_on_one_link_take_twice_as_long():
    """Two concurrent flows into one host share its downlink: each takes twice as long
    (bandwidth part) as one alone."""
    env, net = _net()
    t = _arrivals(env, net, [(0.0, 0, 2, 1e6), (0.0, 1, 2, 1e6)])
    assert t[0] == pytest.approx(2e6 / BW + LAT, rel=1e-12)
    assert t[1] == pytest.approx(2e6 / BW + LAT, rel=1e-12)


def test_full_duplex_opposite_directions_do_not_share():
    """A link is full duplex: flows in opposite directions do not slow each other."""
    env, net = _net()
    t = _arrivals(env, net, [(0.0, 0, 1, 1e6), (0.0, 1, 0, 1e6)])
    assert t == pytest.approx([1e6 / BW + LAT] * 2, rel=1e-12)


def test_flow_joining_midway_rebalances():
    """A flows alone at full rate until B joins at t1 (half of A sent); both then get half the
    link; A finishes after n/2 more bytes at rate B/2, B's rest then goes at full rate."""
    env, net = _net()
    n = 1e6
    t1 = n / (2 * BW)
    t = _arrivals(env, net, [(0.0, 0, 2, n), (t1, 1, 2, n)])
    a_done = t1 + (n / 2) / (BW / 2)
    b_done = a_done + (n / 2) / BW
    assert t[0] == pytest.approx(a_done + LAT, rel=1e-12)
    assert t[1] == pytest.approx(b_done + LAT, rel=1e-12)


def test_max_min_fairness_with_two_bottlenecks():
    """Max-min: flows 0->3 and 1->3 share h3's downlink (B/2 each) and 1->3 and 1->2 share
    h1's uplink: every flow gets B/2 and all three finish together at 2n/B."""
    env, net = _net()
    n = 1e6
    t = _arrivals(env, net, [(0.0, 0, 3, n), (0.0, 1, 3, n), (0.0, 1, 2, n)])
    # all three get B/2 until all finish together at 2n/B
    assert t == pytest.approx([2 * n / BW + LAT] * 3, rel=1e-12)


def test_max_min_unequal_shares():
    """Progressive filling: three flows into h3 get B/3 each; flow 0->1 shares h0's uplink
    with 0->3 (held to B/3 by h3's downlink) and so gets the remaining 2B/3."""
    env, net = _net()
    n = 1e6
    t = _arrivals(env, net, [(0.0, 0, 3, n), (0.0, 1, 3, n), (0.0, 2, 3, n), (0.0, 0, 1, n)])
    assert t[:3] == pytest.approx([3 * n / BW + LAT] * 3, rel=1e-12)
    assert t[3] == pytest.approx(1.5 * n / BW + LAT, rel=1e-12)


def test_rank_local_rounds_spread_a_slow_link():
    """run_rounds: the next round of a pair waits only for those two ranks; with rounds
    independent (disjoint ranks) they overlap."""
    env, net = _net(4)
    done = run_rounds(env, net, [[(0, 1, 1e6)], [(2, 3, 1e6)]])
    env.run(until=done)
    assert env.now == pytest.approx(1e6 / BW + LAT, rel=1e-12)


@pytest.mark.parametrize("slow", [2.0, 4.0])
def test_one_slow_link_slows_the_whole_ring(slow):
    """One host link at bandwidth/slow paces every step of the ring (each rank waits for its
    neighbour): T = 2(p-1)(a + n/p * slow/B) exactly, as if every link were slow. No link
    carries two of the ring's transfers, so auto takes step, which is exact here: link
    gives the same."""
    p, n, a = 8, 8e6, 5e-6
    spec = TopologySpec(name="switch", params={"link_overrides": [
        {"between": ["h3", "sw"], "bandwidth": f"{BW / slow!r}B/s"}]})
    r = collective_time("ring", p, n, BW, a, topology=spec)
    assert r.fidelity == "step" and r.exact
    want = 2 * (p - 1) * (a + n / p * slow / BW)
    assert r.simulated_s == pytest.approx(want, rel=1e-9)
    link = collective_time("ring", p, n, BW, a, topology=spec, fidelity="link")
    assert link.simulated_s == pytest.approx(want, rel=1e-9)
    fast = collective_time("ring", p, n, BW, a).simulated_s
    assert r.simulated_s > fast


def test_contended_fat_tree_slower_than_full_bisection():
    """Oversubscription 4:1 on a k=4 fat tree slows a ring whose neighbours sit in other
    pods, compared with full bisection."""
    n = 16e6
    full = collective_time("ring", 16, n, BW, 2e-6,
                           topology=TopologySpec(name="fat_tree", params={"k": 4}))
    over = collective_time("ring", 16, n, BW, 2e-6, topology=TopologySpec(
        name="fat_tree", params={"k": 4, "oversubscription": 4}))
    assert over.simulated_s > full.simulated_s


def test_events_are_counted():
    """link fidelity processes SimPy events, and counts them."""
    r = collective_time("ring", 4, 1e6, BW, LAT, fidelity="link")
    assert r.events > 2 * 3 * 4


def test_contended_link_simulation_is_bit_for_bit_repeatable():
    """A contended link-level run (double binary tree on an oversubscribed fat tree) gives
    the same float bits in two separate processes."""
    import subprocess
    import sys

    code = (
        "from rsdgc_sim.sim import collective_time, TopologySpec;"
        "r = collective_time('double_binary_tree', 16, 3.3e6, 1e9, 2e-6, fidelity='link',"
        " topology=TopologySpec(name='fat_tree', params={'k': 4, 'oversubscription': 3}));"
        "print(r.simulated_s.hex(), r.events)"
    )
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(outs) == 1
