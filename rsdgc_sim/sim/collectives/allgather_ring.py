"""Ring all-gather of per-rank payloads (sparse (index, value) pairs).

In step ``s`` (``0 <= s < p-1``) rank ``i`` forwards the block of rank ``(i - s) mod p`` to
rank ``i+1``. Padded (gloo): every block has the largest rank's size ``m``, so
``T = (p-1) alpha + (p-1) m beta``. Exact sizes (NCCL): each transfer carries its block's
own size; on uniform links the slowest step still carries the largest block, so the time is
the same, but fewer bytes move. The ``p-1`` steps are one phase whose sizes rotate
(:class:`~.base.RotatingSizes`): O(p) memory, where a tuple of ``p`` sizes per step was
O(p^2).
"""

from __future__ import annotations

from ..topology.graph import Topology
from .base import COLLECTIVES, ClosedForm, Collective, Message, Phase, RotatingSizes, g, shift_pairs


@COLLECTIVES.register("allgather_ring", "ring all-gather of each rank's (sparse) payload")
class AllgatherRing(Collective):
    name = "allgather_ring"
    kind = "allgather"

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        pairs = shift_pairs(p, 1)
        if msg.uniform:
            return [Phase("all-gather", ("shift", p, 1), pairs, msg.nbytes, p - 1)]
        # step s: rank i forwards rank (i - s) mod p's block, entry (i - s) mod p of sizes
        return [Phase("all-gather", ("shift", p, 1), pairs, RotatingSizes(msg.sizes()),
                      p - 1)]

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float, topo: Topology | None):
        m = msg.nbytes
        value = (p - 1) * alpha + (p - 1) * m * beta
        return ClosedForm(
            value, "T = (p-1)·alpha + (p-1)·m·beta",
            f"T = {p - 1}·{g(alpha)} + {p - 1}·{g(m)}·{g(beta)} = {g((p - 1) * alpha)} + "
            f"{g((p - 1) * m * beta)} = {g(value)} s")
