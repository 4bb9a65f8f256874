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
from .collectives.base import RotatingSizes
from .topology.graph import Topology

#: transfers whose latencies and per-byte costs agree to this relative tolerance count as
#: equal (sums of link latencies over long arcs differ in the last bits)
SYMMETRY_RTOL = 1e-12


@dataclass(frozen=True)
class PhaseCost:
    """One phase at ``step`` fidelity: its duration; whether every transfer saw the same
    latency, per-byte cost and bytes (``symmetric``); whether no directed link carried two
    of its transfers (``exclusive``); for sizes that rotate (:class:`RotatingSizes`), each
    repetition's duration (``steps``; ``seconds`` is their sum, added in order)."""

    seconds: float
    symmetric: bool
    exclusive: bool
    steps: np.ndarray | None = None

    @property
    def durations(self) -> list[float]:
        """The phase's events at ``step`` fidelity: one per repetition when the sizes rotate,
        else one for the whole phase."""
        return [self.seconds] if self.steps is None else self.steps.tolist()


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
    if isinstance(phase.nbytes, RotatingSizes):
        b = np.asarray(phase.nbytes, dtype=float)
        steps = rotating_maxima(lat, k, b, r)
        total = 0.0
        for d in steps.tolist():
            total += d
        return PhaseCost(total, _all_equal(lat) and _all_equal(k) and _all_equal(b), exclusive,
                         steps)
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


#: a class of transfers this small is evaluated directly (one shifted read per member)
DIRECT_MEMBERS = 256
#: a block of equal sizes this small is tried position by position, a larger one by FFT
DIRECT_BLOCK = 32


def rotating_maxima(lat: np.ndarray, k: np.ndarray, b: np.ndarray, r: int) -> np.ndarray:
    """``M[s] = max_i (lat[i] + b[(i - s) mod n] k[i])`` for ``s < r``: each repetition's
    duration when transfer ``i`` carries entry ``(i - s) mod n`` of ``b`` (the ring
    all-gather's step ``s``), equal bit for bit to the maximum over a row built out.

    Transfers with the same (latency, per-byte cost) form a class; ``x -> lat + x k`` is
    non-decreasing in floating point (``k >= 0``), so a class's maximum is its formula at
    the largest size it carries, ``W[s] = max over members i of b[(i - s) mod n]``. A small
    class reads ``b`` shifted once per member; a large one takes the distinct sizes from the
    largest down, and a step is settled by the first size whose positions meet the class
    shifted by ``s`` (tried position by position for a few positions, else all steps at
    once by an FFT cross-correlation of the two sets' indicators). The topologies'
    patterns have a handful of classes: O(n) memory and O(n log n) time per class and
    distinct size (a few distinct sizes: per device), at worst O(n^2)."""
    n = len(b)
    shifts = np.arange(r)
    keys = np.column_stack([lat, k])
    classes, label = np.unique(keys, axis=0, return_inverse=True)
    label = label.ravel()
    order = np.argsort(label, kind="stable")
    bounds = np.searchsorted(label[order], np.arange(len(classes) + 1))
    values = blocks = None
    out = np.full(r, -np.inf)
    for c, (lat_c, k_c) in enumerate(classes):
        members = order[bounds[c]:bounds[c + 1]]
        if len(members) <= DIRECT_MEMBERS:
            w = np.full(r, -np.inf)
            for i in members.tolist():
                np.maximum(w, b[(i - shifts) % n], out=w)
        else:
            if values is None:
                values, blocks = _size_blocks(b)
            w = _largest_met(members, n, r, values, blocks)
        np.maximum(out, lat_c + w * k_c, out=out)
    return out


def _size_blocks(b: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct sizes, largest first, and the positions holding each."""
    values, inv = np.unique(b, return_inverse=True)
    pos = np.argsort(inv, kind="stable")
    cuts = np.searchsorted(inv[pos], np.arange(len(values) + 1))
    blocks = [pos[cuts[v]:cuts[v + 1]] for v in range(len(values))]
    return values[::-1], blocks[::-1]


def _largest_met(members: np.ndarray, n: int, r: int, values: np.ndarray,
                 blocks: list[np.ndarray]) -> np.ndarray:
    """``W[s] = max over i in members of b[(i - s) mod n]``, ``s < r`` (see
    :func:`rotating_maxima`): per step, the largest size with a position ``j`` such that
    ``(j + s) mod n`` is a member."""
    inset = np.zeros(n, dtype=bool)
    inset[members] = True
    w = np.empty(r)
    todo = np.arange(r)
    fft_members = None
    for v, pos in zip(values.tolist(), blocks, strict=True):
        if len(pos) <= DIRECT_BLOCK:
            hit = np.zeros(len(todo), dtype=bool)
            for j in pos.tolist():
                hit |= inset[(j + todo) % n]
        else:
            if fft_members is None:
                fft_members = np.fft.rfft(inset.astype(float))
            ind = np.zeros(n)
            ind[pos] = 1.0
            # c[s] = sum_j ind[j] inset[(j + s) mod n]: integer counts, rounded
            c = np.fft.irfft(np.conj(np.fft.rfft(ind)) * fft_members, n)
            hit = c[todo] > 0.5
        w[todo[hit]] = v
        todo = todo[~hit]
        if not len(todo):
            break
    return w


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
    if any(isinstance(ph.nbytes, RotatingSizes) and ph.repeat > 1 and not c.symmetric
           for ph, c in zip(phases, costs, strict=True)):
        # a transfer's size changes from one repetition to the next: case 2's argument (each
        # transfer takes the same time every round) does not hold, nor does case 1's
        return False, "phases of transfers with unequal costs"
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
        for d in c.durations:
            total += d
    return costs, total


__all__ = ["PhaseCost", "phase_cost", "phase_time", "rotating_maxima", "step_exactness",
           "step_seconds"]
