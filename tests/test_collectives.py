"""Collective algorithms against their closed forms, and the fidelity levels agreeing."""

import math

import pytest

from rsdgc_sim.errors import ConfigError, TopologyError, UnknownNameError
from rsdgc_sim.sim import COLLECTIVES, TopologySpec, build_topology, collective_time
from rsdgc_sim.sim.runner import auto_candidates

BW = 1.25e9  # 10 Gbit/s
A = 5e-6
B = 1 / BW
PS = [2, 3, 5, 8, 12, 16]
SIZES = [1e3, 1e6, 3.3e7]


def rel(x, y):
    return abs(x - y) / max(abs(y), 1e-300)


def ring_ar(p, n):
    return 2 * (p - 1) * A + 2 * (p - 1) / p * n * B


def hd(p, n):
    p2 = 1 << (p.bit_length() - 1)
    t = 2 * int(math.log2(p2)) * A + 2 * (p2 - 1) / p2 * n * B
    return t if p2 == p else t + 2 * (A + n * B)


def tree(p, n):
    return 2 * math.ceil(math.log2(p)) * (A + n * B)


def ag_ring(p, m):
    return (p - 1) * A + (p - 1) * m * B


def ps1(p, n):
    return 2 * A + 2 * p * n * B


CLOSED = {
    "ring": ring_ar,
    "halving_doubling": hd,
    "tree": tree,
    "allgather_ring": ag_ring,
    "parameter_server": ps1,
}


@pytest.mark.parametrize("alg", sorted(CLOSED))
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("n", SIZES)
def test_closed_forms_all_fidelities(alg, p, n):
    """Every collective with a closed form: analytic, step and link all equal the textbook
    formula (DESIGN.md) to 1e-9 relative on a uniform switch, at powers and non-powers of
    two."""
    want = CLOSED[alg](p, n)
    for fid in ("analytic", "step", "link", "auto"):
        r = collective_time(alg, p, n, BW, A, fidelity=fid)
        assert rel(r.simulated_s, want) < 1e-9, (fid, r.simulated_s, want)
        assert rel(r.closed_form_s, want) < 1e-9


@pytest.mark.parametrize("p", [2, 4, 8, 16, 32])
def test_allgather_recursive_doubling_power_of_two(p):
    """Recursive-doubling all-gather: log2(p) a + (p-1) m b at every fidelity."""
    m = 12345.0
    want = math.log2(p) * A + (p - 1) * m * B
    for fid in ("analytic", "step", "link"):
        assert rel(collective_time("allgather_recursive_doubling", p, m, BW, A,
                                   fidelity=fid).simulated_s, want) < 1e-9


@pytest.mark.parametrize("p", [3, 5, 6, 7, 12])
def test_allgather_recursive_doubling_any_p(p):
    """For p not a power of two there is no closed form; auto falls back to link, and the
    result is at least the ring all-gather's bandwidth term (every rank receives
    (p-1) m bytes)."""
    m = 1e5
    r = collective_time("allgather_recursive_doubling", p, m, BW, A)
    assert r.closed_form_s is None and r.fidelity == "link"
    assert r.simulated_s >= (p - 1) * m * B


@pytest.mark.parametrize("shards", [1, 2, 4, 8])
def test_parameter_server_shards(shards):
    """k server shards: 2a + 2 max(p, k)/k n b (incast on the servers' links)."""
    p, n = 6, 1e6
    want = 2 * A + 2 * max(p, shards) / shards * n * B
    for fid in ("analytic", "step", "link"):
        r = collective_time("parameter_server", p, n, BW, A, fidelity=fid,
                            params={"shards": shards})
        assert rel(r.simulated_s, want) < 1e-9


@pytest.mark.parametrize("c", [2, 4, 16])
@pytest.mark.parametrize("lat", [0.0, 5e-6, 5e-3])
def test_chunked_ring_pipeline(c, lat):
    """Ring with c pipelined chunks: T = max(S m c b + a, (S+c-1) m b + S a), S = 2(p-1),
    m = n/(p c), at analytic, step and link fidelity (both regimes of the max)."""
    p, n = 6, 6e6
    S, m = 2 * (p - 1), n / (p * c)
    want = max(S * m * c * B + lat, (S + c - 1) * m * B + S * lat)
    for fid in ("analytic", "step", "link"):
        r = collective_time("ring", p, n, BW, lat, fidelity=fid, params={"chunks": c})
        assert rel(r.simulated_s, want) < 1e-9, fid


def test_double_binary_tree_two_ranks():
    """With two ranks each tree sends half the message each way at once (full duplex):
    reduce a + n/2 b, broadcast the same."""
    n = 1e6
    r = collective_time("double_binary_tree", 2, n, BW, A, fidelity="link")
    assert rel(r.simulated_s, 2 * (A + n / 2 * B)) < 1e-9
    assert r.closed_form_s is None


@pytest.mark.parametrize("p", [4, 7, 16])
def test_double_binary_tree_beats_single_tree_on_bandwidth(p):
    """Each tree carries half the data, so for a large message the double binary tree is
    faster than the binomial tree."""
    n = 1e8
    dbt = collective_time("double_binary_tree", p, n, BW, A).simulated_s
    assert dbt < collective_time("tree", p, n, BW, A).simulated_s


@pytest.mark.parametrize("g,nodes", [(4, 4), (8, 2), (2, 8), (1, 4), (4, 1)])
def test_hierarchical_on_switch(g, nodes):
    """Hierarchical on a uniform switch with gpus_per_node g: 2(g-1)(a + n/g b) +
    2(N-1)(a + n/(gN) b)."""
    p, n = g * nodes, 4e6
    want = 2 * (g - 1) * (A + n / g * B) + 2 * (nodes - 1) * (A + n / (g * nodes) * B)
    for fid in ("analytic", "step", "link"):
        r = collective_time("hierarchical", p, n, BW, A, fidelity=fid,
                            params={"gpus_per_node": g})
        assert rel(r.simulated_s, want) < 1e-9, fid


def test_hierarchical_on_two_level():
    """On two_level the g cross-node rings share each NIC: beta_e = g / nic_bandwidth,
    alpha_e = intra_latency + latency; the closed form, step and link agree."""
    g, N, n = 8, 4, 8e6
    intra_bw, intra_lat = 1.5e11, 1e-6
    spec = TopologySpec(name="two_level", params={"gpus_per_node": g, "intra_bandwidth": "150GB/s",
                                                  "intra_latency": "1us"})
    want = (2 * (g - 1) * (intra_lat + n / g / intra_bw)
            + 2 * (N - 1) * (intra_lat + A + n / (g * N) * g / BW))
    for fid in ("auto", "step", "link"):
        r = collective_time("hierarchical", g * N, n, BW, A, topology=spec, fidelity=fid)
        assert rel(r.simulated_s, want) < 1e-9, fid
    assert rel(r.closed_form_s, want) < 1e-9


def test_flat_ring_on_two_level_equal_bandwidths():
    """two_level with intra-node bandwidth equal to the NIC's: a flat ring crosses each NIC
    with one flow per direction, so it runs as a ring on a switch whose alpha is the
    cross-node latency: 2(p-1)(a_cross + n/p b)."""
    g, N, n = 4, 3, 6e6
    p = g * N
    spec = TopologySpec(name="two_level", params={"gpus_per_node": g, "intra_bandwidth": "10Gbit/s",
                                                  "intra_latency": "0s"})
    want = 2 * (p - 1) * (A + n / p * B)
    for fid in ("step", "link"):
        r = collective_time("ring", p, n, BW, A, topology=spec, fidelity=fid)
        assert rel(r.simulated_s, want) < 1e-9, fid
    flat = collective_time("ring", p, n, BW, A).simulated_s
    assert rel(r.simulated_s, flat) < 1e-9


def test_one_worker_no_communication():
    """p = 1 means no communication at all, for every algorithm."""
    for alg in COLLECTIVES:
        r = collective_time(alg, 1, 1e6, BW, A)
        assert r.simulated_s == 0.0 and r.events == 0


def test_auto_picks_fastest_and_reports():
    """auto returns the fastest allreduce and names it: tree-like algorithms win tiny
    messages (latency), ring-like ones win big ones."""
    small = collective_time("auto", 64, 8, BW, A)
    big = collective_time("auto", 64, 1e9, BW, A)
    assert small.chosen in ("halving_doubling", "tree", "double_binary_tree")
    assert big.chosen in ("ring", "halving_doubling")
    for r in (small, big):
        others = [collective_time(a, 64, r.bytes, BW, A).simulated_s
                  for a in ("ring", "halving_doubling", "tree")]
        assert r.simulated_s <= min(others) * (1 + 1e-12)
        assert f"chosen: {r.chosen}" in r.explain


def test_allgather_exact_sizes_move_fewer_bytes():
    """Exact (NCCL) sizes never take longer than padding every block to the largest (gloo);
    on a uniform ring the largest block paces every step, so the times are equal."""
    sizes = [1e5, 2e5, 5e4, 2e5, 1e5]
    exact = collective_time("allgather_ring", 5, max(sizes), BW, A, per_rank=sizes)
    padded = collective_time("allgather_ring", 5, max(sizes), BW, A)
    assert exact.simulated_s <= padded.simulated_s * (1 + 1e-12)
    assert rel(padded.simulated_s, ag_ring(5, 2e5)) < 1e-9


def test_explain_puts_numbers_in():
    """--explain text: the symbolic formula and the same formula with p, alpha, beta, n."""
    r = collective_time("ring", 64, 1e8, BW, A)
    assert "T = 2(p-1)·alpha + 2(p-1)/p·n·beta" in r.explain
    assert "2·63·5e-06 + 2·63/64·1e+08·8e-10" in r.explain


def test_unknown_algorithm_lists_choices():
    """An unknown algorithm is an UnknownNameError naming the choices."""
    with pytest.raises(UnknownNameError, match="unknown collective 'butterfly'.*ring"):
        collective_time("butterfly", 4, 1e6, BW, A)


def test_unknown_fidelity():
    with pytest.raises(UnknownNameError, match="unknown fidelity 'exact'.*analytic"):
        collective_time("ring", 4, 1e6, BW, A, fidelity="exact")


@pytest.mark.parametrize("bw", [0.0, -1.0])
def test_bad_bandwidth(bw):
    """Zero or negative bandwidth is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match="bandwidth must be > 0"):
        collective_time("ring", 4, 1e6, bw, A)


def test_bad_collective_parameter():
    with pytest.raises(ConfigError, match="unknown parameter 'chunk'.*chunks"):
        collective_time("ring", 4, 1e6, BW, A, params={"chunk": 2})
    with pytest.raises(ConfigError, match="chunks must be an integer >= 1"):
        collective_time("ring", 4, 1e6, BW, A, params={"chunks": 0})


def test_analytic_without_closed_form_is_an_error():
    """Asking for analytic where no closed form exists is an error, not a guess."""
    with pytest.raises(ConfigError, match="no closed form"):
        collective_time("double_binary_tree", 8, 1e6, BW, A, fidelity="analytic")


def test_hierarchical_needs_nodes():
    with pytest.raises(ConfigError, match="hierarchical needs node groups"):
        collective_time("hierarchical", 8, 1e6, BW, A)
    with pytest.raises(TopologyError, match="do not split into nodes of 3"):
        collective_time("hierarchical", 8, 1e6, BW, A, params={"gpus_per_node": 3})


def test_parameter_server_on_two_level_sits_on_the_core():
    """On two_level the server hangs off the core switch with a NIC of the cluster
    bandwidth: its link carries all p pushes (incast), so each phase takes
    L + p n / B with L = intra_latency/2 + latency."""
    p, n, intra_lat = 8, 1e6, 1e-6
    spec = TopologySpec(name="two_level", params={"gpus_per_node": 4, "intra_latency": "1us"})
    want = 2 * (intra_lat / 2 + A + p * n * B)
    for fid in ("auto", "step", "link"):
        r = collective_time("parameter_server", p, n, BW, A, topology=spec, fidelity=fid)
        assert rel(r.simulated_s, want) < 1e-9, fid


FLAT = ["ring", "halving_doubling", "tree", "double_binary_tree"]


def test_auto_candidates_need_whole_nodes():
    """auto_candidates: the four flat allreduces everywhere, and hierarchical only where the
    ranks fill whole nodes: not for 12 workers on two_level with 8 per node (a partial last
    node), yes for 16."""
    partial = build_topology("two_level", 12, BW, A, {"gpus_per_node": 8,
                                                      "allow_partial": True})
    assert auto_candidates(partial, 12) == FLAT
    assert auto_candidates(build_topology("two_level", 16, BW, A), 16) == FLAT + [
        "hierarchical"]
    assert auto_candidates(build_topology("switch", 12, BW, A), 12) == FLAT


def test_auto_on_partial_nodes_runs():
    """collective auto on 12 workers of two_level (8 per node, partial last node) skips
    hierarchical (it failed: "nodes hold different numbers of workers") and returns the
    fastest of the four flat algorithms."""
    spec = TopologySpec(name="two_level", params={"gpus_per_node": 8, "allow_partial": True})
    r = collective_time("auto", 12, 1e6, BW, A, topology=spec)
    times = {a: collective_time(a, 12, 1e6, BW, A, topology=spec).simulated_s for a in FLAT}
    assert r.chosen == min(times, key=times.get)
    assert r.simulated_s == min(times.values())
