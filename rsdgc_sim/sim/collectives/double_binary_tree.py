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

from .base import COLLECTIVES, Collective, Message, Pairs, Phase


def _inorder_tree(p: int) -> list[int]:
    """parent[pos] of a balanced binary tree over positions 0..p-1 (root: -1)."""
    parent = [-1] * p
    stack = [(0, p - 1, -1)]
    while stack:
        lo, hi, par = stack.pop()
        if lo > hi:
            continue
        mid = (lo + hi) // 2
        parent[mid] = par
        stack.append((lo, mid - 1, mid))
        stack.append((mid + 1, hi, mid))
    return parent


def _depths(parent: list[int]) -> list[int]:
    depth = [-1] * len(parent)

    def d(i):
        if depth[i] < 0:
            depth[i] = 0 if parent[i] < 0 else d(parent[i]) + 1
        return depth[i]

    for i in range(len(parent)):
        d(i)
    return depth


@lru_cache(maxsize=16)
def _trees(p: int):
    base = _inorder_tree(p)
    rank_b = (lambda pos: p - 1 - pos) if p % 2 == 0 else (lambda pos: (pos + 1) % p)
    t1 = base
    t2 = [-1] * p
    for pos, par in enumerate(base):
        t2[rank_b(pos)] = -1 if par < 0 else rank_b(par)
    return t1, _depths(t1), t2, _depths(t2)


@lru_cache(maxsize=16)
def _level_pairs(p: int) -> tuple[list[Pairs], list[Pairs]]:
    """Per depth 1..D: (child, parent) pairs of both trees (tree 1's in rank order, then
    tree 2's), and the same reversed."""
    t1, d1, t2, d2 = (np.asarray(x, dtype=np.int64) for x in _trees(p))
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

    def phases(self, p: int, msg: Message, topo) -> list[Phase]:
        ups, downs = _level_pairs(p)
        half = msg.nbytes / 2
        D = len(ups)
        out = [Phase(f"reduce level {lvl}", ("dbt_up", p, lvl), ups[lvl - 1], half)
               for lvl in range(D, 0, -1)]
        out += [Phase(f"broadcast level {lvl}", ("dbt_down", p, lvl), downs[lvl - 1], half)
                for lvl in range(1, D + 1)]
        return out
