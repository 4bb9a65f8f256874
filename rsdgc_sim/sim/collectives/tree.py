"""Binomial tree allreduce: reduce to rank 0, then broadcast from it.

Reduce round ``k`` (``0 <= k < K = ceil(log2 p)``): every rank ``r`` with
``r mod 2^(k+1) = 2^k`` sends its whole (partially reduced) message to ``r - 2^k``.
The broadcast runs the rounds backwards. Every round moves ``n`` bytes per transfer and
every receiver gets one transfer, so ``T = 2 ceil(log2 p) (alpha + n beta)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..topology.graph import Topology
from .base import COLLECTIVES, ClosedForm, Collective, Message, Pairs, Phase, ceil_log2, g


@lru_cache(maxsize=64)
def _reduce_pairs(p: int, k: int) -> Pairs:
    r = np.arange(1 << k, p, 1 << (k + 1))
    return Pairs(r, r - (1 << k))


@lru_cache(maxsize=64)
def _bcast_pairs(p: int, k: int) -> Pairs:
    red = _reduce_pairs(p, k)
    return Pairs(red.dst, red.src)


@COLLECTIVES.register("tree", "binomial tree reduce + broadcast")
class BinomialTree(Collective):
    name = "tree"
    kind = "allreduce"

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        K = ceil_log2(p)
        out = [Phase(f"reduce round {k}", ("binom_reduce", p, k), _reduce_pairs(p, k),
                     msg.nbytes) for k in range(K)]
        out += [Phase(f"broadcast round {k}", ("binom_bcast", p, k),
                      _bcast_pairs(p, k), msg.nbytes)
                for k in reversed(range(K))]
        return out

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float, topo: Topology | None):
        K = ceil_log2(p)
        n = msg.nbytes
        value = 2 * K * (alpha + n * beta)
        return ClosedForm(
            value, "T = 2·ceil(log2 p)·(alpha + n·beta)",
            f"T = 2·{K}·({g(alpha)} + {g(n)}·{g(beta)}) = {g(value)} s")
