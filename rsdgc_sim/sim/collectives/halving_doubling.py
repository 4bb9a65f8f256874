"""Recursive halving-doubling allreduce (Rabenseifner), for any number of ranks.

With ``p' = 2^floor(log2 p)`` and ``r = p - p'``: first the ``r`` odd ranks among the first
``2r`` send their whole message to their even neighbour (one step of ``n`` bytes); the
``p'`` remaining ranks reduce-scatter by recursive halving (``log2 p'`` pairwise exchanges
of ``n/2, n/4, ..., n/p'`` bytes) and all-gather by recursive doubling (the same sizes
backwards); last, the even neighbours send the result back (``n`` bytes). Hence

    T = 2 log2(p') alpha + 2 (p'-1)/p' n beta   [+ 2 (alpha + n beta) when p is not 2^k]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..topology.graph import Topology
from .base import COLLECTIVES, ClosedForm, Collective, Message, Pairs, Phase, g


@lru_cache(maxsize=16)
def _layout(p: int) -> tuple[int, int, tuple[int, ...]]:
    p2 = 1 << (p.bit_length() - 1)
    r = p - p2
    members = tuple(2 * q if q < r else q + r for q in range(p2))
    return p2, r, members


@lru_cache(maxsize=256)
def _exchange(p: int, d: int) -> Pairs:
    p2, _, members = _layout(p)
    m = np.asarray(members, dtype=np.int64)
    q = np.arange(p2)
    return Pairs(m, m[q ^ d])


@COLLECTIVES.register("halving_doubling", "recursive halving-doubling (any p)")
class HalvingDoubling(Collective):
    name = "halving_doubling"
    kind = "allreduce"

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        p2, r, _ = _layout(p)
        n = msg.nbytes
        L = p2.bit_length() - 1
        out = []
        if r:
            out.append(Phase("fold extra ranks", ("hd_pre", p),
                             tuple((2 * i + 1, 2 * i) for i in range(r)), n))
        for k in range(L):
            d = p2 >> (k + 1)
            out.append(Phase(f"reduce-scatter (distance {d})", ("hd", p, d), _exchange(p, d),
                             n / (1 << (k + 1))))
        for k in reversed(range(L)):
            d = p2 >> (k + 1)
            out.append(Phase(f"all-gather (distance {d})", ("hd", p, d), _exchange(p, d),
                             n / (1 << (k + 1))))
        if r:
            out.append(Phase("unfold extra ranks", ("hd_post", p),
                             tuple((2 * i, 2 * i + 1) for i in range(r)), n))
        return out

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float, topo: Topology | None):
        p2, r, _ = _layout(p)
        L = p2.bit_length() - 1
        n = msg.nbytes
        core = 2 * L * alpha + 2 * (p2 - 1) / p2 * n * beta
        if not r:
            return ClosedForm(
                core, "T = 2·log2(p)·alpha + 2(p-1)/p·n·beta",
                f"T = 2·{L}·{g(alpha)} + 2·{p - 1}/{p}·{g(n)}·{g(beta)} = {g(core)} s")
        extra = 2 * (alpha + n * beta)
        return ClosedForm(
            core + extra,
            "T = 2·log2(p')·alpha + 2(p'-1)/p'·n·beta + 2·(alpha + n·beta), "
            "p' = 2^floor(log2 p)",
            f"p' = {p2}: T = 2·{L}·{g(alpha)} + 2·{p2 - 1}/{p2}·{g(n)}·{g(beta)} + "
            f"2·({g(alpha)} + {g(n)}·{g(beta)}) = {g(core)} + {g(extra)} = "
            f"{g(core + extra)} s")
