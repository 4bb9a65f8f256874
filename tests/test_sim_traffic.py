"""Bytes a worker transmits (rsdgc_sim.sim.traffic), beside the payload it contributes."""

import pytest
from test_sim import point, tiny_profile

from rsdgc_sim.sim import SimPoint, build_topology, simulate
from rsdgc_sim.sim.collectives import Message, make_collective
from rsdgc_sim.sim.traffic import _enumerate, bytes_transmitted, closed_bytes_transmitted


@pytest.mark.parametrize("name", ["ring", "halving_doubling", "tree", "allgather_ring",
                                  "allgather_recursive_doubling"])
@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_closed_forms_equal_the_enumeration(name, p):
    """Where a closed form is used (large p), it equals counting every transfer of the
    algorithm's phases at small p: 2(p-1)/p n for allreduces, (p-1) m for all-gathers."""
    topo = build_topology("switch", p, 1e9, 1e-6)
    coll = make_collective(name)
    msg = Message(p, 12_000.0)
    want = (p - 1) * 12_000.0 if coll.kind == "allgather" else 2 * (p - 1) / p * 12_000.0
    assert closed_bytes_transmitted(coll, p, msg) == pytest.approx(want, rel=1e-12)
    assert _enumerate(coll, p, msg, topo) == pytest.approx(want, rel=1e-12)


def test_exact_sizes_allgather_counts_each_payload():
    """Exact-size all-gather: each worker forwards every other rank's payload once: the mean
    over workers is (p-1)/p times the sum of the payloads."""
    p, sizes = 4, (100.0, 200.0, 300.0, 400.0)
    topo = build_topology("switch", p, 1e9, 1e-6)
    msg = Message(p, 400.0, sizes)
    coll = make_collective("allgather_ring")
    assert bytes_transmitted(coll, p, msg, topo) == pytest.approx(3 / 4 * 1000.0, rel=1e-12)
    assert _enumerate(coll, p, msg, topo) == pytest.approx(3 / 4 * 1000.0, rel=1e-12)


def test_parameter_server_counts_only_workers():
    """Parameter server: a worker pushes its n bytes; the server's pull traffic leaves the
    server's NIC, not the worker's."""
    p = 4
    coll = make_collective("parameter_server")
    topo = build_topology("switch", p, 1e9, 1e-6, extra_hosts=coll.extra_hosts(p))
    assert bytes_transmitted(coll, p, Message(p, 8000.0), topo) == pytest.approx(8000.0)


def test_sparse_ring_allgather_transmits_p_minus_1_payloads():
    """topk on 4 workers: the payload is 1240 B (two sparse weights, 800 + 400 B, and a 40 B
    dense bias), but a ring all-gather forwards the other 3 workers' payloads too: a worker
    transmits 3 x 1200 + 2 x 3/4 x 40 = 3660 B, three times its payload; dense training
    transmits 2 x 3/4 of the 12,040 B gradient."""
    r = simulate(tiny_profile(), point(compressor="topk"))
    assert r.bytes_sent_per_worker == 1240
    assert r.bytes_transmitted_per_worker == pytest.approx(3 * 1200 + 1.5 * 40, rel=1e-12)
    d = simulate(tiny_profile(), point(compressor="none"))
    assert d.bytes_transmitted_per_worker == pytest.approx(1.5 * 12040, rel=1e-12)
    one = simulate(tiny_profile(), point(compressor="topk", workers=1))
    assert one.bytes_transmitted_per_worker == 0 and one.bytes_sent_per_worker == 1240
    assert isinstance(point(), SimPoint)
