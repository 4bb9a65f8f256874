"""The ring all-gather with unequal per-rank sizes: one phase whose sizes rotate
(O(p) memory) gives the times the p-1 phases of a tuple each gave, bit for bit."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from rsdgc_sim.sim.collectives import Message, Phase, make_collective
from rsdgc_sim.sim.collectives.allgather_ring import AllgatherRing
from rsdgc_sim.sim.collectives.base import RotatingSizes, shift_pairs
from rsdgc_sim.sim.runner import run_collective
from rsdgc_sim.sim.topology.build import build_topology

BW = 1.25e9


class TuplePerStep(AllgatherRing):
    """The former description: step s as its own phase with a tuple of p sizes."""

    def phases(self, p, msg, topo):
        if msg.uniform:
            return super().phases(p, msg, topo)
        sizes = msg.sizes()
        return [Phase(f"all-gather step {s}", ("shift", p, 1), shift_pairs(p, 1),
                      tuple(sizes[(i - s) % p] for i in range(p))) for s in range(p - 1)]


TOPOLOGIES = [("tree", {"arity": 2}), ("fat_tree", {"k": 4}), ("torus2d", {}), ("ring", {}),
              ("two_level", {"gpus_per_node": 3, "allow_partial": True})]


@pytest.mark.parametrize("name,params", TOPOLOGIES)
@pytest.mark.parametrize("fidelity", ["step", "link"])
def test_rotating_sizes_equal_a_tuple_per_step(name, params, fidelity):
    """Random unequal sizes on 2 to 12 ranks: the same seconds, fidelity, exactness and
    event count as the tuple-per-step phases, at step and at link."""
    rng = np.random.default_rng(7)
    for p in (2, 3, 6, 12):
        sizes = tuple(float(x) for x in rng.integers(1, 5, p) * 1e5 + rng.integers(0, 9, p))
        msg = Message(p, max(sizes), sizes)
        topo = build_topology(name, p, BW, 2e-6, params)
        new = run_collective(make_collective("allgather_ring"), p, msg, topo, fidelity)
        old = run_collective(TuplePerStep(), p, msg, topo, fidelity)
        assert (new.seconds, new.fidelity, new.exact, new.events) == (
            old.seconds, old.fidelity, old.exact, old.events), (name, p)


def test_auto_verdict_unchanged():
    """auto: the same level and reason as before (step is not exact: the sizes change from
    step to step; link where it is cheap)."""
    sizes = (3e5, 1e5, 2e5, 1e5, 4e5)
    msg = Message(5, 4e5, sizes)
    topo = build_topology("tree", 5, BW, 1e-6, {"arity": 2})
    new = run_collective(make_collective("allgather_ring"), 5, msg, topo, "auto")
    old = run_collective(TuplePerStep(), 5, msg, topo, "auto")
    assert (new.seconds, new.fidelity, new.exact, new.note) == (
        old.seconds, old.fidelity, old.exact, old.note)
    step = run_collective(make_collective("allgather_ring"), 5, msg, topo, "step")
    assert not step.exact and step.note == "phases of transfers with unequal costs"


@pytest.mark.parametrize("direct_members,direct_block", [(256, 32), (0, 0), (0, 10**9)])
def test_rotating_maxima_equal_the_rows_built_out(monkeypatch, direct_members, direct_block):
    """rotating_maxima equals max_i(lat_i + b[(i-s) mod n] k_i) over rows built out, bit for
    bit, on every path (classes read directly; sizes met position by position; by FFT),
    with few distinct sizes (per device) and with all distinct."""
    import rsdgc_sim.sim.step as step

    monkeypatch.setattr(step, "DIRECT_MEMBERS", direct_members)
    monkeypatch.setattr(step, "DIRECT_BLOCK", direct_block)
    rng = np.random.default_rng(3)
    n = 97
    lat = rng.choice([1e-6, 3e-6, 2.5e-6], n)
    k = rng.choice([8e-10, 1.6e-9], n)
    i = np.arange(n)
    for b in (rng.choice([1e5, 3e5, 2e5], n), rng.random(n) * 1e6, np.full(n, 5.0)):
        want = np.array([np.max(lat + b[(i - s) % n] * k) for s in range(n - 1)])
        got = step.rotating_maxima(lat, k, b, n - 1)
        assert np.array_equal(got, want)


def test_65536_ranks_in_linear_memory():
    """65,536 ranks of a tree with four sizes (per device): the step time in O(p) memory
    (a tuple per step held 4.3e9 sizes), equal to the closed form's structure: every step
    is paced by the largest block on the slowest route."""
    p = 65536
    sizes = tuple(float(x) for x in np.resize([1e3, 4e3, 2e3, 3e3], p))
    msg = Message(p, 4e3, sizes)
    topo = build_topology("tree", p, BW, 1e-6, {})
    tracemalloc.start()
    try:
        run = run_collective(make_collective("allgather_ring"), p, msg, topo, "step")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20
    assert run.fidelity == "step" and not run.exact
    assert math.isfinite(run.seconds) and run.seconds > 0
    assert run.events >= p - 1  # one event per step, as before


def test_rotated_row_reads_without_copying():
    """A repetition's sizes are a view: entry o of repetition s is entry (o - s) mod n."""
    r = RotatingSizes((1.0, 2.0, 3.0, 4.0))
    assert list(r.row(0)) == [1.0, 2.0, 3.0, 4.0]
    assert list(r.row(1)) == [4.0, 1.0, 2.0, 3.0]
    assert r.row(3)[0] == 2.0 and r.row(3)[-1] == 1.0 and len(r.row(2)) == 4
