"""How emulated ranks share this machine's cores: each rank gets an explicit torch thread
count and is pinned (``os.sched_setaffinity``) to as many cores of its own, handed out in
order from the cores this process may use; with more ranks x threads than cores the cores
wrap around and the ranks are *oversubscribed* (they time-share cores, and their times say
more about the scheduler than about the links)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class CorePlan:
    threads: int  # torch threads per rank
    cpus: list[list[int]]  # per rank, the cores it is pinned to
    available: int  # cores this process may use
    oversubscribed: bool  # ranks x threads > available cores


def available_cores() -> list[int]:
    """The cores this process may run on (its affinity), in order."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def core_plan(workers: int, threads: int | None = None,
              cores: list[int] | None = None) -> CorePlan:
    """Threads and cores for ``workers`` ranks: ``threads`` each (default: the cores divided
    evenly, at least 1), rank ``r`` pinned to cores ``r * threads ...`` (mod the count)."""
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    cores = available_cores() if cores is None else cores
    n = len(cores)
    t = max(1, n // workers) if threads is None else threads
    if t < 1:
        raise ConfigError(f"threads must be >= 1, got {t}")
    cpus = [sorted({cores[(r * t + i) % n] for i in range(t)}) for r in range(workers)]
    return CorePlan(threads=t, cpus=cpus, available=n, oversubscribed=workers * t > n)
