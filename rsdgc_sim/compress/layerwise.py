"""Layer-wise dynamic density: share a global budget of sent elements among layers by
importance.

From the RS-DGC abstract: a layer-wise dynamic sparsification scheme adjusts each layer's
sparsity as layer importance changes during training. The rule here is **our
reconstruction**: with ``n_l`` elements and importance ``I_l >= 0`` per layer and the budget
``K = density * sum(n_l)``, layer ``l`` gets density ``d_l = clip(c * I_l, lo, hi)`` with the
single scale ``c`` for which ``sum(d_l * n_l) = K`` (without the clip this is
``k_l = K * n_l * I_l / sum(n_j * I_j)``, i.e. ``k_l ~ n_l * I_l / mean(I)``). Counts are then
rounded by largest remainder so that they add up to ``round(K)``. When the bounds make the
budget unreachable (all layers at ``lo`` exceed it, or all at ``hi`` fall short) the bounds
win.

**No layer starves**: every non-empty layer gets at least one element (a layer of 500
elements beside one of 10^7 at ``lo = 0.0001`` would otherwise get ``k = 0`` at every
iteration, its error-feedback residual growing unsent). The elements this adds are taken
back from the layers with the most, so the total stays ``round(K)`` whenever ``K`` is at
least the number of layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def allocate_densities(
    numels: Sequence[int],
    importances: Sequence[float],
    density: float,
    lo: float,
    hi: float,
) -> np.ndarray:
    """Per-layer densities ``clip(c * I, lo, hi)`` with ``sum(d * n) = density * sum(n)``."""
    n = np.asarray(numels, dtype=np.float64)
    imp = np.nan_to_num(np.asarray(importances, dtype=np.float64), nan=0.0, posinf=0.0)
    imp = np.maximum(imp, 0.0)
    if n.size == 0:
        return np.zeros(0)
    budget = density * n.sum()
    if not np.any(imp > 0):
        return np.full(n.shape, float(np.clip(density, lo, hi)))

    def total(c: float) -> float:
        return float((np.clip(c * imp, lo, hi) * n).sum())

    c_lo = 0.0
    c_hi = hi / imp[imp > 0].min()
    if total(c_hi) <= budget:
        return np.clip(c_hi * imp, lo, hi)
    if total(c_lo) >= budget:
        return np.clip(c_lo * imp, lo, hi)
    # the closed form without clipping is the usual answer: try it first
    c = budget / float((imp * n).sum())
    d = np.clip(c * imp, lo, hi)
    if abs(float((d * n).sum()) - budget) <= 1e-9 * max(budget, 1.0):
        return d
    for _ in range(200):  # bisection on the monotone total(c)
        c = 0.5 * (c_lo + c_hi)
        if total(c) < budget:
            c_lo = c
        else:
            c_hi = c
        if c_hi - c_lo <= 1e-15 * c_hi:
            break
    return np.clip(c_hi * imp, lo, hi)


def round_counts(numels: Sequence[int], densities: np.ndarray, budget: float) -> list[int]:
    """Integer counts ``k_l`` near ``d_l * n_l`` adding up to ``round(budget)`` where the
    layers can hold it (largest-remainder rounding; each ``k_l`` stays in ``[1, n_l]`` for a
    non-empty layer and, apart from that floor of one, within one element of ``d_l * n_l``)."""
    n = np.asarray(numels, dtype=np.int64)
    want = np.asarray(densities, dtype=np.float64) * n
    k = np.floor(want).astype(np.int64)
    k = np.minimum(k, n)
    target = int(round(budget))
    # only move towards the exact targets' sum, never past any layer's own ceil
    extra = min(target, int(np.ceil(want - 1e-9).sum())) - int(k.sum())
    if extra > 0:
        frac = want - k
        frac[k >= n] = -1.0
        order = np.argsort(-frac, kind="stable")[:extra]
        k[order[frac[order] > 0]] += 1
    return _at_least_one(k, n, target)


def _at_least_one(k: np.ndarray, n: np.ndarray, target: int) -> list[int]:
    """``k`` with every non-empty layer raised to at least one element, the surplus over
    ``target`` taken back one element at a time from the layer holding the most (never
    below one)."""
    k = k.copy()
    k[(k < 1) & (n > 0)] = 1
    surplus = int(k.sum()) - max(target, int((n > 0).sum()))
    while surplus > 0:
        big = int(np.argmax(k))
        take = min(surplus, int(k[big]) - max(1, int(np.partition(k, -2)[-2]) if k.size > 1 else 1))
        take = max(take, 1)
        k[big] -= take
        surplus -= take
    return [int(x) for x in k]


def allocate(
    numels: Sequence[int],
    importances: Sequence[float],
    density: float,
    d_min: float,
    d_max: float,
) -> list[int]:
    """Elements to send per layer: the densities of :func:`allocate_densities` (bounds
    ``[min(d_min, density), max(d_max, density)]``), rounded by :func:`round_counts`."""
    lo, hi = min(d_min, density), max(d_max, density)
    d = allocate_densities(numels, importances, density, lo, hi)
    return round_counts(numels, d, density * float(sum(numels)))
