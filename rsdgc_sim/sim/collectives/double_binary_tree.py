"""Double binary tree allreduce (as NCCL builds it, without its chunk pipelining).

Two balanced binary trees over the ranks, the second the mirror image of the first (for
odd ``p``, the first shifted by one), so that a rank is an inner node in at most one of
them. Each tree reduces half the message to its root, level by level from the leaves, then
broadcasts it back down; both trees run at once, so a rank's link may carry a transfer of
each tree. No closed form is given: the phases are read off the topology (a parent that
receives from two children shares its link between them).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..topology.graph import Topology
from .base import COLLECTIVES, Collective, Message, Pairs, Phase


def _inorder_tree(p: int) -> tuple[np.ndarray, np.ndarray]:
    """(parent, depth) per position of a balanced binary tree over positions 0..p-1: the
    root is the middle ``(lo + hi) // 2`` of the range, each half a subtree (root's parent:
    -1). Built level by level over all ranges of a level at once."""
    parent = np.full(p, -1, dtype=np.int64)
    depth = np.zeros(p, dtype=np.int64)
    lo, hi, par = np.array([0]), np.array([p - 1]), np.array([-1])
    level = 0
    while len(lo):
        mid = (lo + hi) // 2
        parent[mid] = par
        depth[mid] = level
        lo, hi, par = (np.concatenate([lo, mid + 1]), np.concatenate([mid - 1, hi]),
                       np.concatenate([mid, mid]))
        keep = lo <= hi
        lo, hi, par = lo[keep], hi[keep], par[keep]
        level += 1
    return parent, depth


@lru_cache(maxsize=16)
def _trees(p: int):
    """(parent, depth) of tree 1 and of tree 2 (tree 1 mirrored, or shifted by one for odd
    p), per rank."""
    t1, d1 = _inorder_tree(p)
    pos = np.arange(p)
    rank_b = p - 1 - pos if p % 2 == 0 else (pos + 1) % p
    t2 = np.full(p, -1, dtype=np.int64)
    d2 = np.zeros(p, dtype=np.int64)
    has = t1 >= 0
    t2[rank_b[has]] = rank_b[t1[has]]
    d2[rank_b] = d1
    return t1, d1, t2, d2


@lru_cache(maxsize=16)
def _level_pairs(p: int) -> tuple[list[Pairs], list[Pairs]]:
    """Per depth 1..D: (child, parent) pairs of both trees (tree 1's in rank order, then
    tree 2's), and the same reversed."""
    t1, d1, t2, d2 = _trees(p)
    D = int(max(d1.max(), d2.max()))
    ups, downs = [], []
    for lvl in range(1, D + 1):
        i1, i2 = np.nonzero(d1 == lvl)[0], np.nonzero(d2 == lvl)[0]
        child = np.concatenate([i1, i2])
        parent = np.concatenate([t1[i1], t2[i2]])
        ups.append(Pairs(child, parent))
        downs.append(Pairs(parent, child))
    return ups, downs


@COLLECTIVES.register("double_binary_tree", "two complementary binary trees, half each")
class DoubleBinaryTree(Collective):
    name = "double_binary_tree"
    kind = "allreduce"
    lockstep = False  # the two trees' levels drift apart; step is an approximation

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        ups, downs = _level_pairs(p)
        half = msg.nbytes / 2
        D = len(ups)
        out = [Phase(f"reduce level {lvl}", ("dbt_up", p, lvl), ups[lvl - 1], half)
               for lvl in range(D, 0, -1)]
        out += [Phase(f"broadcast level {lvl}", ("dbt_down", p, lvl), downs[lvl - 1], half)
                for lvl in range(1, D + 1)]
        return out
