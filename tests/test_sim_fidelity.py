"""Fidelity levels at scale: when ``step`` is exact, what ``auto`` picks, and the budget
that stops a ``link`` run before it starts."""

import itertools
import tracemalloc

import pytest

from rsdgc_sim.errors import ConfigError
from rsdgc_sim.sim import COLLECTIVES, TopologySpec, build_topology, collective_time
from rsdgc_sim.sim.collectives import Message, make_collective
from rsdgc_sim.sim.fidelity import AUTO_LINK_MAX_SECONDS, choose_fidelity, link_seconds_estimate
from rsdgc_sim.sim.network import FlowNetwork, run_phases
from rsdgc_sim.sim.runner import CountingEnvironment, LinkBudget, run_collective
from rsdgc_sim.sim.topology import fat_tree_k_for

BW, A = 1.25e9, 5e-6


def rel(x, y):
    return abs(x - y) / max(abs(y), 1e-300)


def _spec(name: str, p: int) -> TopologySpec:
    return TopologySpec(name=name, params={"k": fat_tree_k_for(p)} if name == "fat_tree" else {})


@pytest.mark.parametrize("p", [64, 8192])
@pytest.mark.parametrize("topology", ["ring", "tree", "fat_tree", "two_level", "torus2d"])
def test_auto_takes_step_for_rings_off_the_switch(topology, p):
    """Ring allreduce and ring all-gather off the switch: their transfers differ (a ring
    crosses tree levels, pods, NICs, row ends) but no link carries two of them, so ``step``
    is exact and ``auto`` takes it, never ``link`` (O(p^2) flows)."""
    for alg in ("ring", "allgather_ring"):
        r = collective_time(alg, p, 1e6, BW, A, topology=_spec(topology, p))
        assert (r.fidelity, r.exact) == ("step", True), (alg, r.fidelity)


@pytest.mark.parametrize("p", [16, 1024])
def test_rings_on_two_level_hand_computed(p):
    """two_level, 8 GPUs per node: the cross-node transfer is the slowest of every ring step
    (L = intra_latency + latency over g->n->core->n->g, one flow on each NIC: m/B), so ring
    all-gather takes (p-1)(intra_lat + lat + m/B) and ring allreduce
    2(p-1)(intra_lat + lat + n/(p B)); auto (step) and link agree (link at 16 ranks)."""
    intra_lat, m, n = 1e-6, 1e5, 1e8
    spec = TopologySpec(name="two_level", params={"gpus_per_node": 8,
                                                  "intra_latency": "1us"})
    ag = (p - 1) * (intra_lat + A + m / BW)
    ar = 2 * (p - 1) * (intra_lat + A + n / p / BW)
    for alg, size, want in (("allgather_ring", m, ag), ("ring", n, ar)):
        r = collective_time(alg, p, size, BW, A, topology=spec)
        assert r.fidelity == "step" and rel(r.simulated_s, want) < 1e-9
        if p <= 16:
            link = collective_time(alg, p, size, BW, A, topology=spec, fidelity="link")
            assert rel(link.simulated_s, want) < 1e-9


def test_idle_ranks_make_symmetric_phases_inexact():
    """Halving-doubling on 5 ranks of a tree (arity 3): every phase is symmetric, but ranks
    2..4 skip the fold of rank 1 into 0, so their first exchange runs early, alone on links
    the phase would share. step (36.04 ms) overstates link (32.04 ms); auto must not call
    step exact here, and gives link's answer."""
    spec = TopologySpec(name="tree", params={"arity": 3})
    link = collective_time("halving_doubling", 5, 1e7, BW, A, topology=spec, fidelity="link")
    step = collective_time("halving_doubling", 5, 1e7, BW, A, topology=spec, fidelity="step")
    auto = collective_time("halving_doubling", 5, 1e7, BW, A, topology=spec)
    assert link.simulated_s == pytest.approx(0.03204, rel=1e-9)
    assert step.simulated_s == pytest.approx(0.03604, rel=1e-9) and not step.exact
    assert auto.fidelity == "link" and auto.simulated_s == link.simulated_s


TOPOLOGIES = [
    ("switch", {}),
    ("switch", {"link_overrides": [{"between": ["h1", "sw"], "bandwidth": "2Gbit/s",
                                    "latency": "20us"}]}),
    ("ring", {}), ("tree", {"arity": 3}), ("fat_tree", {"k": 6, "oversubscription": 3}),
    ("two_level", {"gpus_per_node": 4, "allow_partial": True, "intra_bandwidth": "40GB/s"}),
    ("torus2d", {}),
]


@pytest.mark.parametrize("name,params", TOPOLOGIES, ids=lambda x: str(x))
def test_step_is_exact_wherever_it_says_so(name, params):
    """Wherever ``step`` calls itself exact (symmetric synchronised phases, or one pattern on
    links of its own), ``link`` gives the same time to 1e-9, for every algorithm, 2 to 16
    ranks, small and large messages."""
    checked = 0
    for alg, p, nb in itertools.product([a for a in COLLECTIVES if a != "auto"],
                                        [2, 3, 5, 8, 12, 16], [1e3, 1e7]):
        coll = make_collective(alg, {"gpus_per_node": 4} if alg == "hierarchical" and
                               name != "two_level" else None)
        if getattr(coll, "analytic_only", False):
            continue  # NCCL's model: a closed form only (step and link are refused)
        try:
            topo = build_topology(name, p, BW, A, params, extra_hosts=coll.extra_hosts(p))
            coll.check(p, Message(p, nb), topo)
        except Exception:
            continue  # does not apply (whole nodes, fat tree ports)
        msg = Message(p, nb)
        ch = choose_fidelity(coll, p, msg, topo, "step")
        if ch.exact:
            link = run_collective(coll, p, msg, topo, "link").seconds
            assert rel(ch.step_s, link) < 1e-9, (alg, p, nb, ch.step_s, link, ch.reason)
            checked += 1
    assert checked >= 20


def test_auto_settles_for_a_step_estimate_when_link_is_too_slow():
    """Halving-doubling on a physical ring of 128 hosts: transfers of unequal cost share
    links, so only link is exact, and its flows would take seconds (every link carries up
    to 64 of them). auto takes step, marks it inexact and says why; link was not run."""
    spec = TopologySpec(name="ring")
    r = collective_time("halving_doubling", 128, 1e8, BW, A, topology=spec)
    assert (r.fidelity, r.exact) == ("step", False) and r.events < 2 * 7 + 5
    assert "an estimate, not exact" in r.explain and "auto's limit" in r.explain
    topo = build_topology("ring", 128, BW, A)
    coll = make_collective("halving_doubling")
    msg = Message(128, 1e8)
    assert link_seconds_estimate(coll, 128, msg, topo, coll.phases(128, msg, topo)) > \
        AUTO_LINK_MAX_SECONDS


def test_link_over_memory_budget_raises_before_it_starts():
    """A chunked ring holds all its operations: 512 ranks x 16 pieces x 1022 steps is 8.4
    million of them, several GiB. link raises ConfigError with the estimate and the
    alternatives before any event runs; a budget can be given."""
    coll = make_collective("ring", {"chunks": 16})
    topo = build_topology("switch", 512, BW, A, {"link_overrides": [
        {"between": ["h0", "sw"], "bandwidth": "5Gbit/s"}]})
    env = CountingEnvironment()
    with pytest.raises(ConfigError, match=r"8,372,224 transfers.*GiB of memory \(budget 2 "
                                          r"GiB\).*use fidelity step.*or auto"):
        run_collective(coll, 512, Message(512, 1e8), topo, "link", env=env)
    assert env.events_processed == 0 and env.now == 0
    small = build_topology("switch", 8, BW, A)
    with pytest.raises(ConfigError, match="budget 1e-06 GiB"):
        run_collective(make_collective("ring"), 8, Message(8, 1e6), small, "link",
                       link_budget=LinkBudget(memory_bytes=2**30 * 1e-6))


def test_link_over_transfer_budget_raises():
    """The transfer budget bounds a link run's time: ring on 16 ranks is 2*15*16 = 480
    transfers, over a budget of 100."""
    with pytest.raises(ConfigError, match=r"480 transfers \(budget 100"):
        collective_time("ring", 16, 1e6, BW, A, fidelity="link",
                        link_budget=LinkBudget(transfers=100))


def test_link_rounds_are_not_held_in_memory():
    """run_phases generates rounds as ranks reach them: a pattern repeated 6,000 times
    holds no more memory than repeated 1,000 times (a list of all transfers would hold
    10,000 more, megabytes)."""
    topo = build_topology("switch", 4, BW, A)
    peaks = []
    for repeat in (1000, 6000):
        env = CountingEnvironment()
        net = FlowNetwork(env, topo)
        tracemalloc.start()
        done = run_phases(env, net, [(((0, 1), (2, 3)), 1e3, repeat)])
        env.run(until=done)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert env.now == pytest.approx(repeat * (1e3 / BW + A), rel=1e-9)
    assert peaks[1] < peaks[0] + 50_000


def test_link_memory_grows_linearly_with_ranks():
    """A ring allreduce at link fidelity on 32 and 64 ranks: 4x the transfers, but the
    memory held grows about like p (below 3x), not like p^2 (4x)."""
    peaks = []
    for p in (32, 64):
        topo = build_topology("switch", p, BW, A)
        assert topo.router is not None  # routing tables belong to the topology, not the run
        tracemalloc.start()
        run_collective(make_collective("ring"), p, Message(p, 1e6), topo, "link")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 3 * peaks[0]


def test_modules_of_the_engine():
    """The engine is split by idea: fidelity levels, step costs, the runner, explanations
    and the public collective_time."""
    from rsdgc_sim.sim.collective_time import CollectiveResult, collective_time  # noqa: F401
    from rsdgc_sim.sim.explain import explain, explain_auto  # noqa: F401
    from rsdgc_sim.sim.fidelity import FIDELITIES, most_detailed, resolve_fidelity  # noqa: F401
    from rsdgc_sim.sim.runner import (  # noqa: F401
        AUTO_CANDIDATES,
        CollectiveRun,
        auto_candidates,
        check_link_budget,
    )
    from rsdgc_sim.sim.step import phase_cost, phase_time  # noqa: F401

    assert most_detailed(["analytic", "link", "step"]) == "link"
