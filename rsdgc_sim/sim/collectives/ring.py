"""Ring allreduce: reduce-scatter then all-gather around the ranks, optionally chunked.

Rank ``i`` sends to ``i+1 mod p``. The message is cut into ``p`` blocks of ``n/p`` bytes;
``p-1`` reduce-scatter steps and ``p-1`` all-gather steps each move one block per rank.
With ``chunks = c > 1`` every block is cut into ``c`` pieces that are pipelined: a rank
sends its pieces back to back and forwards piece ``j`` of step ``s`` as soon as piece ``j``
of step ``s-1`` has arrived. With ``m = n/(p c)`` and ``S = 2(p-1)``:

    T = max(S m c beta + alpha, (S + c - 1) m beta + S alpha)

which for ``c = 1`` is the textbook ``2(p-1) alpha + 2(p-1)/p n beta``; pieces hide the
per-step latency once ``(c-1) m beta > alpha``.
"""

from __future__ import annotations

from ..network import ARRIVE, DRAIN
from ..topology.graph import Topology
from .base import COLLECTIVES, ClosedForm, Collective, Message, Phase, check_count, g, shift_pairs

#: the most pieces a block may be cut into
MAX_CHUNKS = 1_000_000


@COLLECTIVES.register("ring", "ring allreduce (reduce-scatter + all-gather), optionally chunked")
class RingAllreduce(Collective):
    name = "ring"
    kind = "allreduce"

    def __init__(self, chunks: int = 1):
        self.chunks = check_count(chunks, "collective 'ring': chunks", MAX_CHUNKS)

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        return [Phase("reduce-scatter + all-gather", ("shift", p, 1), shift_pairs(p, 1),
                      msg.nbytes / p, 2 * (p - 1), self.chunks)]

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float, topo: Topology | None):
        n, c = msg.nbytes, self.chunks
        if c == 1:
            value = 2 * (p - 1) * alpha + 2 * (p - 1) / p * n * beta
            return ClosedForm(
                value, "T = 2(p-1)·alpha + 2(p-1)/p·n·beta",
                f"T = 2·{p - 1}·{g(alpha)} + 2·{p - 1}/{p}·{g(n)}·{g(beta)} "
                f"= {g(2 * (p - 1) * alpha)} + {g(2 * (p - 1) / p * n * beta)} = {g(value)} s")
        s, m = 2 * (p - 1), n / (p * c)
        a1 = s * m * c * beta + alpha
        a2 = (s + c - 1) * m * beta + s * alpha
        return ClosedForm(
            max(a1, a2),
            "T = max(S·m·c·beta + alpha, (S+c-1)·m·beta + S·alpha), S = 2(p-1), m = n/(p·c)",
            f"S = {s}, m = {g(m)} B, c = {c}: T = max({g(a1)}, {g(a2)}) = {g(max(a1, a2))} s")

    def dag_size(self, p: int, msg: Message, topo: Topology | None) -> int | None:
        return None if self.chunks == 1 else 2 * (p - 1) * self.chunks * p

    def dag(self, p: int, msg: Message, topo: Topology):
        c = self.chunks
        if c == 1:
            return None
        m = msg.nbytes / (p * c)
        steps = 2 * (p - 1)
        ops, deps = [], []
        for s in range(steps):
            for j in range(c):
                for i in range(p):
                    d = []
                    if j > 0:
                        d.append((((s * c + j - 1) * p) + i, DRAIN))
                    elif s > 0:
                        d.append((((s - 1) * c + c - 1) * p + i, DRAIN))
                    if s > 0:
                        d.append((((s - 1) * c + j) * p + (i - 1) % p, ARRIVE))
                    ops.append((i, (i + 1) % p, m))
                    deps.append(d)
        return ops, deps
