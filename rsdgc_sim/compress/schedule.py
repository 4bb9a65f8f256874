"""Density warm-up schedules (DGC, Lin et al. 2018: "exponentially increase the sparsity
from 75% to 99.9% in four epochs").

A schedule is a list of stage densities, used in turn over ``warmup_iters`` iterations
(split into equal stages), then the target density for good.

* ``"exponential"``: ``0.25, 0.25**2, 0.25**3, ...`` while above the target, then the
  target. For target 0.001 this is 0.25, 0.0625, 0.015625, 0.00390625, 0.001, i.e. the
  sparsities 75 %, 93.75 %, 98.4375 %, 99.6 %, 99.9 % of the DGC paper.
* ``"dgc"``: the DGC paper's rounded table, literally: 0.25, 0.0625, 0.015625, 0.004, 0.001.
* an explicit list of densities in (0, 1].
* ``"none"``: no warm-up.
"""

from __future__ import annotations

from collections.abc import Sequence

#: the warm-up densities published with DGC (sparsity 75 %, 93.75 %, 98.4375 %, 99.6 %, 99.9 %)
DGC_WARMUP: tuple[float, ...] = (0.25, 0.0625, 0.015625, 0.004, 0.001)

WARMUP_CHOICES = ("none", "exponential", "dgc")


def warmup_stages(warmup: str | Sequence[float], density: float) -> list[float]:
    """The stage densities of a warm-up, for the target ``density``."""
    if isinstance(warmup, str):
        if warmup == "none":
            return []
        if warmup == "dgc":
            return list(DGC_WARMUP)
        if warmup == "exponential":
            out: list[float] = []
            d = 0.25
            while d > density:
                out.append(d)
                d *= 0.25
            return out + [density]
        raise ValueError(f"unknown warm-up {warmup!r}; choose one of: {', '.join(WARMUP_CHOICES)}")
    return [float(x) for x in warmup]


def density_at(
    iteration: int, density: float, warmup: str | Sequence[float], warmup_iters: int
) -> float:
    """The density to use at ``iteration`` (0-based): stage ``iteration * S // warmup_iters``
    of the S warm-up stages while ``iteration < warmup_iters``, ``density`` afterwards."""
    if warmup_iters <= 0 or iteration >= warmup_iters:
        return density
    stages = warmup_stages(warmup, density)
    if not stages:
        return density
    return stages[min(len(stages) - 1, iteration * len(stages) // warmup_iters)]
