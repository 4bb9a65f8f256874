"""Recursive-doubling all-gather of per-rank payloads.

For ``p`` a power of two: in round ``k`` rank ``q`` swaps everything it holds (``2^k``
blocks) with rank ``q xor 2^k``; padded to the largest block ``m``,
``T = log2(p) alpha + (p-1) m beta``. Otherwise the ``r = p - p'`` odd ranks among the
first ``2r`` first hand their block to their even neighbour, the ``p'`` others run
recursive doubling (holding unequal amounts), and the neighbours finally get everything
back (no closed form; the phases are read off the topology). ``pad`` in the message
decides whether blocks are padded (gloo) or sent at their exact sizes (NCCL).
"""

from __future__ import annotations

from ..topology.graph import Topology
from .base import COLLECTIVES, ClosedForm, Collective, Message, Phase, g, log2_exact
from .halving_doubling import _exchange, _layout


@COLLECTIVES.register("allgather_recursive_doubling", "recursive-doubling all-gather")
class AllgatherRecursiveDoubling(Collective):
    name = "allgather_recursive_doubling"
    kind = "allgather"

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        sizes = msg.sizes()
        p2, r, members = _layout(p)
        # per member: bytes of the blocks it holds (sums, not block lists: O(p log p))
        held = [sizes[2 * q] + sizes[2 * q + 1] if q < r else sizes[members[q]]
                for q in range(p2)]
        out = []
        if r:
            out.append(Phase("fold extra ranks", ("hd_pre", p),
                             tuple((2 * i + 1, 2 * i) for i in range(r)),
                             tuple(sizes[2 * i + 1] for i in range(r))))
        d = 1
        while d < p2:
            nb = tuple(held)
            out.append(Phase(f"exchange (distance {d})", ("hd", p, d), _exchange(p, d),
                             nb[0] if len(set(nb)) == 1 else nb))
            held = [held[q] + held[q ^ d] for q in range(p2)]
            d *= 2
        if r:
            total = sum(sizes)
            out.append(Phase("unfold extra ranks", ("hd_post", p),
                             tuple((2 * i, 2 * i + 1) for i in range(r)),
                             tuple(total - sizes[2 * i + 1] for i in range(r))))
        return out

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float, topo: Topology | None):
        L = log2_exact(p)
        if L is None or not msg.uniform:
            return None
        m = msg.nbytes
        value = L * alpha + (p - 1) * m * beta
        return ClosedForm(
            value, "T = log2(p)·alpha + (p-1)·m·beta",
            f"T = {L}·{g(alpha)} + {p - 1}·{g(m)}·{g(beta)} = {g(value)} s")
