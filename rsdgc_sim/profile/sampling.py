"""Taking timing samples until they are stable, keeping only the clean ones.

A *sample* is one call of a step function (one timed iteration: seconds per quantity).
:func:`time_until_stable` calls it until :class:`StopRule` says stop, on the *clean*
samples only:

* **Preempted samples are discarded.** A sample is preempted when some thread of this
  process waited on the kernel's run queue (runnable, but another process held the CPU)
  for more than ``max_wait`` (5 %) of the sample's wall time, the whole step included (a
  step with untimed parts, such as the real backward before a compression is timed, is
  judged over all of it). Linux keeps each thread's run-queue wait in
  ``/proc/self/task/<tid>/schedstat`` (:func:`parse_schedstat`, :func:`schedstat_waits`);
  torch's intra-op threads are threads of the process, so work spread over them is
  watched too. The *most* delayed thread counts: beside three busy loops (2 cores, raised
  priority, 60 resnet18 iterations) the calling thread's wait and the largest discarded 5,
  the sum over threads 24, with clean medians within 2 % of each other; on a quiet machine
  none discarded any. Without ``/proc`` (macOS, Windows, a kernel without schedstat)
  nothing is detected and every sample is kept: the plain wall time.
* **Too few clean samples** (a machine busy throughout): once the budget is spent or the
  iteration cap reached with fewer than ``min_iterations`` clean samples, it stops with
  reason ``preempted`` and keeps, besides the clean ones, the least preempted samples up to
  ``min_iterations``; the caller says so (:func:`preempted_warning`) and the medians and
  IQRs of what is kept are the estimates.

Subtracting the wait from the wall time (an "unpreempted clock") does not hold: beside three
busy loops torch's two threads wait at every barrier for a partner that is off the CPU,
spinning (CPU time, not run-queue wait), so a resnet18 iteration (64 px, batch 8) of 230 ms
on a quiet machine read 1.7 s, 0.65-0.7 s after the correction (by the calling thread's
wait or the largest), and its CPU time said the same 0.65-0.7 s. What holds is not to be
preempted: :func:`raised_priority` lowers the process's nice value while measuring (where
it is permitted: root, ``CAP_SYS_NICE``, or an ``RLIMIT_NICE`` that allows it), which
brought the same iteration to within 2 % of the quiet one (nice -10: +33 %); the few
samples still preempted are discarded. Unprivileged, on a machine busy throughout, nearly
every sample is preempted and the profile warns.

No torch here: the step function does the timing (CUDA events or the host clock).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..progress import Eta
from ..stats import iqr
from .quality import spread_ok

Clock = Callable[[], float]
#: a snapshot of the run-queue wait of each thread of the process: thread id -> seconds
#: waited since it started; None where it cannot be read
Waits = Callable[[], "Mapping[int, float] | None"]

#: a sample is preempted when a thread waited on the run queue longer than this fraction of
#: the sample's wall time (quiet 2-core machine: under 1 % for a 200 ms resnet18 iteration)
MAX_WAIT = 0.05
#: the nice value :func:`raised_priority` asks for while measuring (the highest priority)
MEASURE_NICE = -20
#: where Linux keeps one directory per thread of this process
TASK_DIR = "/proc/self/task"


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def relative_spread(xs: Sequence[float]) -> float:
    """IQR / median (0 when the median is 0)."""
    m = median(xs)
    return iqr(xs) / m if m > 0 else 0.0


@dataclass(frozen=True)
class StopRule:
    """When to stop timing a stage (forward/backward, or one compressor).

    After each timed iteration, on the clean samples (see the module doc): go on while fewer
    than ``min_iterations`` are clean; stop when every watched quantity is stable
    (:func:`~rsdgc_sim.profile.quality.spread_ok`: IQR <= ``spread_target`` x median, or IQR
    <= ``spread_floor_s``), when ``max_iterations`` iterations are done (clean or not), or
    when ``budget_s`` seconds have passed since the stage's first timed iteration began (it
    may overrun by one iteration). Fewer than ``min_iterations`` clean ones at the cap, or
    at the budget once ``min_iterations`` are done: stop, too preempted."""

    min_iterations: int = 5
    max_iterations: int = 100
    spread_target: float = 0.10
    spread_floor_s: float = 1e-4
    budget_s: float = 20.0

    @property
    def cap(self) -> int:
        return max(self.min_iterations, self.max_iterations)

    def stable(self, xs: Sequence[float]) -> bool:
        return bool(xs) and spread_ok(iqr(xs), median(xs), self.spread_target, self.spread_floor_s)

    def stop(self, watched: Sequence[Sequence[float]], elapsed_s: float,
             taken: int | None = None) -> str | None:
        """Why to stop now (``stable``, ``cap``, ``budget``, ``preempted``), or None to go
        on. ``watched``: the clean samples of each watched quantity; ``taken``: the
        iterations done, discarded ones included (default: as many as are clean)."""
        n = min(len(xs) for xs in watched)
        taken = n if taken is None else taken
        if n < self.min_iterations:
            if taken >= self.cap or (taken >= self.min_iterations and elapsed_s >= self.budget_s):
                return "preempted"
            return None
        if all(self.stable(xs) for xs in watched):
            return "stable"
        if taken >= self.cap:
            return "cap"
        if elapsed_s >= self.budget_s:
            return "budget"
        return None


def parse_schedstat(text: str) -> tuple[int, int, int]:
    """One ``schedstat`` file: nanoseconds on the CPU, nanoseconds waiting on the run queue,
    timeslices run. A malformed one is a ValueError."""
    fields = text.split()
    if len(fields) != 3:
        raise ValueError(f"schedstat: expected 3 fields, got {text.strip()!r}")
    cpu_ns, wait_ns, slices = (int(f) for f in fields)
    return cpu_ns, wait_ns, slices


def schedstat_waits(task_dir: str | os.PathLike[str] | None = None) -> dict[int, float] | None:
    """Seconds each thread of the process has waited on the run queue (thread id -> s), from
    ``<task_dir>/<tid>/schedstat`` (default :data:`TASK_DIR`); None where that cannot be read
    (no ``/proc``, a kernel without schedstat). A thread that ends while it is read is left
    out."""
    task_dir = TASK_DIR if task_dir is None else task_dir
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return None
    out: dict[int, float] = {}
    for tid in tids:
        try:
            text = (Path(task_dir) / tid / "schedstat").read_text()
        except FileNotFoundError:
            continue  # the thread ended (or the kernel has no schedstat: None below)
        except OSError:
            return None
        try:
            out[int(tid)] = parse_schedstat(text)[1] / 1e9
        except ValueError:
            return None
    return out or None


def default_waits(clock: Clock) -> Waits | None:
    """The preemption source for samples timed by ``clock``: :func:`schedstat_waits` when
    ``clock`` is ``time.perf_counter`` (the kernel's seconds) and ``/proc`` has them, else
    None (a fake clock's seconds are not the kernel's; no ``/proc``)."""
    if clock is time.perf_counter and schedstat_waits() is not None:
        return schedstat_waits
    return None


def preemption_method(clock: Clock) -> str:
    """How samples timed by ``clock`` are checked, as ``Profile.settings["preemption"]``
    records it: ``schedstat`` (preempted samples discarded, :func:`default_waits`) or
    ``none`` (plain wall time, nothing detected)."""
    return "schedstat" if default_waits(clock) is not None else "none"


def waited_s(before: Mapping[int, float] | None, after: Mapping[int, float] | None) -> float:
    """The longest run-queue wait of one thread between two snapshots (a thread that started
    in between counts from 0); 0 when either is missing."""
    if before is None or after is None:
        return 0.0
    return max((w - before.get(t, 0.0) for t, w in after.items()), default=0.0)


def time_until_stable(
    step: Callable[[], Mapping[str, float]],
    watch: Sequence[str],
    rule: StopRule,
    clock: Clock = time.perf_counter,
    on_progress: Callable[[str], None] | None = None,
    every_s: float = 1.0,
    *,
    waits: Waits | None = None,
    max_wait: float = MAX_WAIT,
) -> tuple[dict[str, list[float]], str, int]:
    """Call ``step`` (one timed iteration: seconds per quantity) until ``rule`` says stop,
    on the clean samples; returns the samples kept of every quantity (the clean ones, in
    order; with reason ``preempted`` also the least preempted, see the module doc), why it
    stopped, and how many iterations were discarded (taken but not kept).

    ``waits`` (a snapshot of each thread's run-queue wait, in ``clock``'s seconds; default
    :func:`default_waits`, pass ``lambda: None`` to keep every sample) is read before and
    after each step: a step during which one thread waited longer than ``max_wait`` x its
    wall time (by ``clock``) is preempted. ``on_progress`` gets ``7/≤100, spread 12%,
    ~18 s left`` (the largest relative spread of ``watch``; ``, 3 preempted`` once some are)
    at most once per ``every_s`` seconds of ``clock``, which also measures the budget."""
    if waits is None:
        waits = default_waits(clock)
    eta = Eta(rule.cap, budget_s=rule.budget_s, at_least=rule.min_iterations, at_most=True,
              every_s=every_s, clock=clock)
    taken: list[tuple[dict[str, float], float]] = []  # every sample, with its wait fraction
    clean: list[list[float]] = [[] for _ in watch]
    while True:
        before = waits() if waits is not None else None
        t0 = clock()
        sample = {k: float(v) for k, v in step().items()}
        wall = clock() - t0
        waited = waited_s(before, waits() if waits is not None else None)
        fraction = waited / wall if wall > 0 else (float("inf") if waited > 0 else 0.0)
        taken.append((sample, fraction))
        if fraction <= max_wait:
            for xs, k in zip(clean, watch, strict=True):
                xs.append(sample[k])
        reason = rule.stop(clean, eta.elapsed_s(), len(taken))
        if reason is not None:
            kept = _kept(taken, rule.min_iterations, max_wait)
            return kept, reason, len(taken) - len(kept.get(watch[0], []))
        if on_progress is not None and eta.due():
            worst = max((relative_spread(xs) for xs in clean if xs), default=0.0)
            dropped = len(taken) - len(clean[0])
            on_progress(eta.update(len(clean[0]), f"spread {worst:.0%}",
                                   *([f"{dropped} preempted"] if dropped else [])))


def _kept(taken: Sequence[tuple[dict[str, float], float]], at_least: int, max_wait: float
          ) -> dict[str, list[float]]:
    """The samples kept, in order: the clean ones (wait fraction <= ``max_wait``) and, while
    they are fewer than ``at_least``, the least preempted (the earlier among equals)."""
    keep = [f <= max_wait for _, f in taken]
    short = at_least - sum(keep)
    for _, i in sorted((f, i) for i, (_, f) in enumerate(taken) if not keep[i])[:max(0, short)]:
        keep[i] = True
    out: dict[str, list[float]] = {}
    for (sample, _), k in zip(taken, keep, strict=True):
        if k:
            for name, v in sample.items():
                out.setdefault(name, []).append(v)
    return out


def preempted_warning(who: str, what: str, kept: int, discarded: int) -> str:
    """``worker 0 (cpu): forward/backward: fewer than 5 of 40 iterations ran unpreempted
    ...``: what a stage that stopped with reason ``preempted`` says (``kept`` samples kept,
    ``discarded`` not)."""
    return (f"{who}: {what}: fewer than {kept} of {kept + discarded} iterations ran unpreempted "
            f"(other processes held the CPU) within the budget; its times are the {kept} least "
            f"preempted and may be too long; measure again when the machine is idle")


@contextlib.contextmanager
def raised_priority(nice: int = MEASURE_NICE, task_dir: str | os.PathLike[str] | None = None
                    ) -> Iterator[int | None]:
    """Run the block with every thread of the process at nice value ``nice`` (threads
    started inside inherit it from the thread that starts them), then give each thread its
    former value back (threads started inside: the calling thread's). Yields the calling
    thread's nice value inside the block, or None where nice values cannot be read (not
    Unix). Raising a priority needs privilege (root, ``CAP_SYS_NICE`` or ``RLIMIT_NICE``):
    without it every thread keeps its value and the block runs as it would have."""
    get, set_ = getattr(os, "getpriority", None), getattr(os, "setpriority", None)
    if get is None or set_ is None:
        yield None
        return
    me = os.PRIO_PROCESS
    task_dir = TASK_DIR if task_dir is None else task_dir
    own = get(me, 0)
    try:
        tids = [int(t) for t in os.listdir(task_dir)]
    except OSError:
        tids = [0]  # no /proc: the calling thread alone
    former: dict[int, int] = {}
    for tid in tids:
        with contextlib.suppress(OSError):
            former[tid] = get(me, tid)
    try:
        for tid, value in former.items():
            if nice < value:
                with contextlib.suppress(OSError):  # not permitted, or the thread ended
                    set_(me, tid, nice)
        yield get(me, 0)
    finally:
        try:
            now = [int(t) for t in os.listdir(task_dir)]
        except OSError:
            now = [0]
        for tid in now:
            with contextlib.suppress(OSError):
                if get(me, tid) != former.get(tid, own):
                    set_(me, tid, former.get(tid, own))
