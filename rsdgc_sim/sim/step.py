"""The ``step`` fidelity: one event per phase, its duration read off the topology.

A phase is a pattern of concurrent transfers repeated ``r`` times (``chunks`` ``c``
pipelined pieces per repetition on the chunked ring). For transfer ``i`` of the pattern let
``L_i`` be its route latency and ``k_i`` the seconds per byte on its most loaded link
(transfers of the pattern on that link / the link's bandwidth); with ``b_i`` bytes

    T = r · max_i (L_i + b_i k_i)                                  (c = 1)
    T = max_i max(r b k_i + L_i, r L_i + (r + c - 1) (b/c) k_i)    (c > 1, ring pipeline)

and ``step`` runs the phases one after the other. It equals ``link`` (the flow-level model
with rank-local dependencies, :mod:`rsdgc_sim.sim.network`) exactly in two cases, which
``auto`` recognises (:func:`step_exactness`):

1. **Symmetric, synchronised phases.** Every transfer of every phase sees the same ``L``,
   ``k`` and bytes; the algorithm moves in lockstep (``Collective.lockstep``); and every
   transfer of a phase has a rank that took part in the phase before. Then, by induction,
   all transfers of a round start together (each waits for a rank that was busy until the
   round before ended, and no rank is busy later), every flow gets exactly ``1/k`` under
   max-min sharing (each crosses a link at the smallest fair share), all arrive together,
   and the rounds add up. Without the last condition two idle ranks may start a round
   early, alone on links that the phase would share (halving-doubling on 5 ranks of a
   tree: the exchange between ranks 2 and 4 overlaps the fold of rank 1 into 0), and
   ``step`` is slow.
2. **One pattern on links of its own.** The collective is one phase (repeated, any ``r``,
   not chunked) and no directed link carries two transfers of the pattern, however
   different the transfers are (a ring on a tree, a fat tree, two_level, a torus). Then a
   transfer never shares a link: the next repetition of transfer ``i`` starts only after
   both of its ranks have finished the previous round, which includes transfer ``i``
   itself, so each one always takes exactly ``d_i = L_i + b_i k_i``. With ``D = max d_i``,
   every rank has finished round ``j`` by ``j·D`` (induction: a transfer of round ``j``
   starts by ``(j-1)·D`` and lasts at most ``D``), and the sender of a slowest transfer
   finishes round ``j`` no earlier than ``D`` after round ``j-1`` (it waits for its own
   round ``j-1``): the collective takes exactly ``r·D``, the formula above.

Outside these cases ``step`` is an estimate: flows that share a link are counted as if they
ran together for the whole phase (real ones may not overlap, then ``step`` is slow), phases
are added as if every rank finished a phase together (ranks that finish early may run
ahead, then ``step`` is slow; flows of different rounds may then meet on a link, then it is
fast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .collectives import Collective, Phase
from .topology.graph import Topology

#: transfers whose latencies and per-byte costs agree to this relative tolerance count as
#: equal (sums of link latencies over long arcs differ in the last bits)
SYMMETRY_RTOL = 1e-12


@dataclass(frozen=True)
class PhaseCost:
    """One phase at ``step`` fidelity: its duration; whether every transfer saw the same
    latency, per-byte cost and bytes (``symmetric``); whether no directed link carried two
    of its transfers (``exclusive``)."""

    seconds: float
    symmetric: bool
    exclusive: bool


def _all_equal(x: np.ndarray) -> bool:
    if x.size <= 1:
        return True
    x0 = x.flat[0]
    return bool(np.all(np.abs(x - x0) <= SYMMETRY_RTOL * abs(x0)))


def phase_cost(topo: Topology, phase: Phase) -> PhaseCost:
    """The phase's duration at ``step`` fidelity and its symmetry (module docstring)."""
    if not phase.pairs:
        return PhaseCost(0.0, True, True)
    pc = topo.pattern_cost(phase.key, phase.pairs)
    lat, k = pc.latency, pc.per_byte
    r, c = phase.repeat, phase.chunks
    exclusive = pc.max_flows <= 1
    if isinstance(phase.nbytes, tuple):
        b = np.asarray(phase.nbytes, dtype=float)
        t = r * float(np.max(lat + b * k))
        return PhaseCost(t, _all_equal(lat) and _all_equal(k) and _all_equal(b), exclusive)
    nb = phase.nbytes
    if c == 1:
        t = float(np.max(r * lat + r * nb * k))
    else:
        m = nb / c
        t = float(np.max(np.maximum(r * nb * k + lat, r * lat + (r + c - 1) * m * k)))
    return PhaseCost(t, _all_equal(lat) and _all_equal(k), exclusive)


def phase_time(topo: Topology, phase: Phase) -> tuple[float, bool]:
    """(duration, symmetric) of the phase at ``step`` fidelity."""
    pc = phase_cost(topo, phase)
    return pc.seconds, pc.symmetric


def _pair_arrays(pairs) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(pairs, "src"):
        return pairs.src, pairs.dst
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def synchronised(phases: list[Phase]) -> bool:
    """Whether every transfer of every phase after the first has a rank that took part in
    the phase before (then all of a round wait for the end of the round before)."""
    arrays = [_pair_arrays(ph.pairs) for ph in phases if len(ph.pairs)]
    if len(arrays) <= 1:
        return True
    size = 1 + max(int(max(s.max(), d.max())) for s, d in arrays)
    prev = None
    for src, dst in arrays:
        if prev is not None and not np.all(prev[src] | prev[dst]):
            return False
        prev = np.zeros(size, dtype=bool)
        prev[src] = True
        prev[dst] = True
    return True


def step_exactness(coll: Collective, phases: list[Phase],
                   costs: list[PhaseCost]) -> tuple[bool, str]:
    """Whether ``step`` equals ``link`` for these phases (module docstring), and why."""
    if coll.lockstep and all(c.symmetric for c in costs) and synchronised(phases):
        return True, "every phase is symmetric and waits for the one before"
    if len(phases) == 1 and phases[0].chunks == 1 and costs[0].exclusive:
        return True, "one pattern, and no link carries two of its transfers"
    if len(phases) == 1 and phases[0].chunks > 1:
        return False, "pipelined pieces on links of unequal cost"
    if len(phases) == 1:
        return False, "transfers of unequal cost share links"
    if all(c.symmetric for c in costs) and coll.lockstep:
        return False, "idle ranks may start a phase early"
    return False, "phases of transfers with unequal costs"


def step_seconds(topo: Topology, phases: list[Phase]) -> tuple[list[PhaseCost], float]:
    """Every phase's cost and their sum (the phases run one after the other)."""
    costs = [phase_cost(topo, ph) for ph in phases]
    total = 0.0
    for c in costs:
        total += c.seconds
    return costs, total


__all__ = ["PhaseCost", "phase_cost", "phase_time", "step_exactness", "step_seconds"]
