"""Progress of long work (profiling, virtual-worker training): counts, ETA, throttling.

>>> eta = Eta(1000)                                   # doctest: +SKIP
>>> for step in range(1000):                          # doctest: +SKIP
...     train_one_step()
...     if eta.due():
...         say(Transient(f"step {eta.update(step + 1, 'loss 0.43')}"))
step 120/1000, loss 0.43, ~35 s left

The ETA is the rate so far (elapsed time / units done) times the units left, bounded by a
time budget when there is one (work that stops when the budget runs out, after at least
``at_least`` units). :meth:`Eta.due` is the throttle: True at most once every ``every_s``
seconds, so that callers say something a few times per second at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Transient(str):
    """A progress message that the next one replaces (``7/40, ~18 s left``): a status line
    shows it, a log may leave it out. It is a ``str``, so any callback takes it."""

    __slots__ = ()


def format_span(seconds: float) -> str:
    """``18 s``, ``4 min``, ``2.5 h``: a time span for people, to two figures at most."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_left(seconds: float) -> str:
    """``~18 s left``, ``~4 min left``, ``~2.5 h left``; ``<1 s left`` below a second."""
    if seconds < 1:
        return "<1 s left"
    return f"~{format_span(seconds)} left"


class Eta:
    """Progress through ``total`` units of work, started at construction.

    * ``budget_s``: the work stops once this many seconds have passed (after ``at_least``
      units), so the ETA never exceeds what is left of it beyond those units;
    * ``at_most``: ``total`` is a cap, not a promise (shown as ``7/≤40``);
    * ``every_s``: the throttle of :meth:`due`;
    * ``clock``: seconds, monotonic (``time.perf_counter``; a fake one in tests).
    """

    def __init__(
        self,
        total: int,
        *,
        budget_s: float | None = None,
        at_least: int = 0,
        at_most: bool = False,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.total = int(total)
        self.budget_s = budget_s
        self.at_least = int(at_least)
        self.at_most = at_most
        self.every_s = float(every_s)
        self.clock = clock
        self.start = clock()
        self._last = self.start

    def elapsed_s(self) -> float:
        return self.clock() - self.start

    def left_s(self, done: int, elapsed_s: float | None = None) -> float | None:
        """Seconds left at the rate so far; None before the first unit is done."""
        if done <= 0:
            return None
        elapsed = self.elapsed_s() if elapsed_s is None else elapsed_s
        per_unit = elapsed / done
        left = per_unit * max(0, self.total - done)
        if self.budget_s is not None:
            # it stops at the budget, but not before `at_least` units
            left = min(left, max(self.budget_s - elapsed, per_unit * max(0, self.at_least - done)))
        return max(0.0, left)

    def count(self, done: int) -> str:
        return f"{done}/{'≤' if self.at_most else ''}{self.total}"

    def update(self, done: int, *details: str) -> str:
        """``7/≤40, spread 12%, ~18 s left``: the count, ``details`` in order, the ETA (left
        out before the first unit is done)."""
        left = self.left_s(done)
        parts = [self.count(done), *details]
        if left is not None:
            parts.append(format_left(left))
        return ", ".join(parts)

    def due(self) -> bool:
        """True when at least ``every_s`` seconds have passed since the start or since it was
        last True: the time to say something."""
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            return True
        return False
