"""The timeline of one training iteration: when each worker computes, compresses and
decompresses, and when each bucket's collective runs. A small SimPy model, causal by
construction: a bucket is decompressed only after its collective has ended.

Per worker (all durations already scaled by the worker's compute factor):

* forward, then backward; bucket ``b``'s gradients are all ready when backward has done
  ``ready[b]`` seconds of work (DDP launches buckets in order, so a bucket is never ready
  before the one ahead of it);
* **hook mode** (``blocking``: a DDP communication hook, which runs on the autograd thread):
  one compute thread runs backward, the hook's compressions and the decompression
  callbacks. A compression starts when its bucket is ready and pauses backward while it
  runs; a decompression becomes runnable when its collective ends and then pauses backward
  if backward is still running, or runs after it. Runnable tasks run one at a time, first
  come first served (simultaneous arrivals in SimPy's deterministic event order); backward
  advances only while no task is runnable.
* **side-stream mode** (not ``blocking``): compressions run one after another on their own
  stream beside backward, decompressions one after another on another, each as soon as its
  input is there;
* ``overlap`` false: no bucket is ready before backward has ended;
* the optimizer step starts when backward and every decompression have ended.

The network: bucket ``b``'s collective starts when every worker has compressed ``b`` and
the collective of ``b - 1`` has ended (one communication stream) and lasts
``durations[b]``.

Two rounds (``powersgd``: ``second[b]`` given): the first ``durations[b] - second[b]``
seconds (the allreduces of the tensors sent whole and of P) end the first round; then every
worker runs its middle task (``middle[b]``: orthogonalize P, ``Q = M^T P``; in hook mode a
task like a decompression, pausing backward while it runs; in side-stream mode on the
decompression stream); when every worker has, the second round (the allreduce of Q) runs
for ``second[b]`` seconds, and only then is the bucket decompressed. The next bucket's
collective waits for the whole bucket (one stream, in bucket order).

Interference (``interference`` ``k >= 0``, from a calibration): while a collective is in
flight, backward work advances at ``1 / (1 + k)`` of its rate (the collective's threads,
packet processing or kernels take part of the device), so ``w`` seconds of backward that
overlap a collective take ``w (1 + k)``; a collective of duration ``d`` that lies wholly
inside backward delays backward's end by ``d k / (1 + k)``. Forward, the optimizer step and
the hook's compression and decompression are not stretched (a hook's compression and
decompression are measured in the profile as they are). ``k = 0`` is the timeline without
interference, event for event.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import simpy


@dataclass(frozen=True)
class WorkerCosts:
    """One worker's durations in seconds (already multiplied by its compute factor)."""

    forward: float
    backward: float
    optimizer: float
    #: backward work (s from the start of backward) after which each bucket is ready
    ready: tuple[float, ...]
    compress: tuple[float, ...]
    decompress: tuple[float, ...]
    #: per bucket, the work between two rounds (low-rank buckets); empty: none
    middle: tuple[float, ...] = ()


@dataclass
class WorkerTimeline:
    """When one worker did what (seconds from the start of the iteration)."""

    backward_end: float = 0.0
    end: float = 0.0
    compress: list[tuple[float, float]] = field(default_factory=list)
    decompress: list[tuple[float, float]] = field(default_factory=list)
    middle: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Timeline:
    """The iteration: per bucket, when it was ready everywhere and when its collective ran;
    per worker, its own timeline; ``end`` the slowest worker's end."""

    ready: list[float]
    starts: list[float]
    ends: list[float]
    workers: list[WorkerTimeline]
    events: int
    #: when each bucket's first round ended (== ``ends`` for one-round buckets)
    first_ends: list[float] = field(default_factory=list)

    @property
    def end(self) -> float:
        return max(w.end for w in self.workers)


def _ready_work(w: WorkerCosts, overlap: bool) -> list[float]:
    """Backward work at which each bucket is launched: in order, never past the end."""
    out, prev = [], 0.0
    for r in w.ready:
        r = min(max(r, prev), w.backward) if overlap else w.backward
        out.append(r)
        prev = r
    return out


class _Network:
    """Whether a collective is in flight, and an event that fires when that changes."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.busy = False
        self.changed = env.event()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        ev, self.changed = self.changed, self.env.event()
        ev.succeed()


class _Worker:
    """The processes of one worker on the shared environment."""

    def __init__(self, env: simpy.Environment, costs: WorkerCosts, coll_done: list,
                 blocking: bool, overlap: bool, net: _Network | None = None,
                 interference: float = 0.0, first_done: list | None = None):
        self.env, self.c = env, costs
        #: the network's state, watched only when there is interference (k > 0)
        self.net = net if interference > 0 else None
        self.k = interference
        self.nb = len(costs.ready)
        self.coll_done = coll_done
        #: per bucket with two rounds, the event of its first round's end (else None)
        self.first_done = first_done or [None] * self.nb
        self.middled = [env.event() for _ in range(self.nb)]
        self.compressed = [env.event() for _ in range(self.nb)]
        self.out = WorkerTimeline(compress=[(0.0, 0.0)] * self.nb,
                                  decompress=[(0.0, 0.0)] * self.nb,
                                  middle=[(0.0, 0.0)] * self.nb)
        self.ready = _ready_work(costs, overlap)
        self.done = env.process(self._hook_thread() if blocking else self._side_streams())

    # -- a DDP hook: one thread for backward and the hook's work -------------------------
    def _hook_thread(self):
        env, c, nb = self.env, self.c, self.nb
        yield env.timeout(c.forward)
        queue: deque[tuple[str, int]] = deque()
        wake = [env.event()]

        def arrived(b: int):
            def cb(_ev):
                queue.append(("d", b))
                if not wake[0].triggered:
                    wake[0].succeed()
            return cb

        def middle(b: int):
            def cb(_ev):
                queue.append(("m", b))
                if not wake[0].triggered:
                    wake[0].succeed()
            return cb

        for b, ev in enumerate(self.coll_done):
            ev.callbacks.append(arrived(b))
        for b, ev in enumerate(self.first_done):
            if ev is not None:
                ev.callbacks.append(middle(b))
        work = 0.0        # backward work done
        nxt = 0           # next bucket to become ready
        finished = 0      # decompressions done
        while finished < nb or work < c.backward:
            while nxt < nb and self.ready[nxt] <= work:
                queue.append(("c", nxt))
                nxt += 1
            if queue:
                kind, b = queue.popleft()
                t0 = env.now
                if kind == "c":
                    yield env.timeout(c.compress[b])
                    self.out.compress[b] = (t0, env.now)
                    self.compressed[b].succeed()
                elif kind == "m":
                    yield env.timeout(c.middle[b])
                    self.out.middle[b] = (t0, env.now)
                    self.middled[b].succeed()
                else:
                    yield env.timeout(c.decompress[b])
                    self.out.decompress[b] = (t0, env.now)
                    finished += 1
                continue
            if wake[0].triggered:
                wake[0] = env.event()
            if work < c.backward:
                target = self.ready[nxt] if nxt < nb else c.backward
                slow = self._slowdown()
                t0 = env.now
                step = env.timeout((target - work) * slow)
                if self.net is None:
                    yield step | wake[0]
                else:
                    yield step | wake[0] | self.net.changed
                if step.processed:
                    work = target
                else:
                    work = min(target, work + (env.now - t0) / slow)
                if work >= c.backward:
                    self.out.backward_end = env.now
            else:
                yield wake[0]
        if c.backward == 0.0:
            self.out.backward_end = c.forward
        yield env.timeout(c.optimizer)
        self.out.end = env.now

    def _slowdown(self) -> float:
        """How many seconds one second of backward work takes now."""
        return 1.0 + self.k if self.net is not None and self.net.busy else 1.0

    # -- compression and decompression on streams of their own --------------------------
    def _side_streams(self):
        env, c = self.env, self.c
        self.ready_at = [env.event() for _ in range(self.nb)]
        if self.net is None:
            bwd = env.timeout(c.forward + c.backward)
            self.out.backward_end = c.forward + c.backward
        else:
            bwd = env.process(self._backward())
        comp = env.process(self._compress_stream())
        dec = env.process(self._decompress_stream())
        yield comp & dec & bwd
        yield env.timeout(c.optimizer)
        self.out.end = env.now

    def _backward(self):
        """Forward, then backward work advancing at ``1 / slowdown``; each bucket's
        ``ready_at`` event fires when its work is done (side-stream mode, k > 0)."""
        env, c = self.env, self.c
        yield env.timeout(c.forward)
        work = 0.0
        for b, target in enumerate([*self.ready, c.backward]):
            while work < target:
                slow = self._slowdown()
                t0 = env.now
                step = env.timeout((target - work) * slow)
                yield step | self.net.changed
                work = target if step.processed else min(target, work + (env.now - t0) / slow)
            if b < self.nb:
                self.ready_at[b].succeed()
        self.out.backward_end = env.now

    def _compress_stream(self):
        env, c = self.env, self.c
        for b in range(self.nb):
            if self.net is not None:
                yield self.ready_at[b]
            start = c.forward + self.ready[b]
            if self.net is None and env.now < start:
                yield env.timeout(start - env.now)
            t0 = env.now
            yield env.timeout(c.compress[b])
            self.out.compress[b] = (t0, env.now)
            self.compressed[b].succeed()

    def _decompress_stream(self):
        env, c = self.env, self.c
        for b in range(self.nb):
            if self.first_done[b] is not None:
                yield self.first_done[b]
                t0 = env.now
                yield env.timeout(c.middle[b])
                self.out.middle[b] = (t0, env.now)
                self.middled[b].succeed()
            yield self.coll_done[b]
            t0 = env.now
            yield env.timeout(c.decompress[b])
            self.out.decompress[b] = (t0, env.now)


def run_timeline(workers: Sequence[WorkerCosts], durations: Sequence[float], *,
                 blocking: bool, overlap: bool,
                 env: simpy.Environment | None = None,
                 collective_ends: Sequence[float] | None = None,
                 interference: float = 0.0, second: Sequence[float | None] | None = None,
                 first_ends: Sequence[float] | None = None) -> Timeline:
    """Simulate one iteration of ``workers`` (see the module docstring); ``durations[b]`` is
    bucket ``b``'s collective time. Workers that are not given are assumed to finish
    nothing later than the ones given (pass the slowest worker of each kind).
    ``interference``: the factor ``k`` by which backward slows while a collective is in
    flight (module docstring).

    ``collective_ends``: replay workers against collectives that end at these times (as
    simulated with the slowest workers); each still ends no earlier than its start here
    plus its duration.

    ``second[b]`` not None: bucket ``b`` runs in two rounds, the last ``second[b]`` seconds of
    ``durations[b]`` after every worker's middle task (module docstring; ``first_ends``
    replays the first rounds' ends as ``collective_ends`` does the ends)."""
    env = env if env is not None else simpy.Environment()
    if env.now != 0:
        raise ValueError("run_timeline needs an environment at time 0")
    if not (interference >= 0 and math.isfinite(interference)):
        raise ValueError(f"interference must be a finite number >= 0, got {interference}")
    nb = len(durations)
    coll_done = [env.event() for _ in range(nb)]
    two = [second is not None and second[b] is not None for b in range(nb)]
    first_done = [env.event() if two[b] else None for b in range(nb)]
    net = _Network(env)
    ws = [_Worker(env, w, coll_done, blocking, overlap, net, interference, first_done)
          for w in workers]
    ready = [0.0] * nb
    starts = [0.0] * nb
    ends = [0.0] * nb
    firsts = [0.0] * nb

    def round_(b: int, seconds: float, at_least: float | None):
        end = env.now + seconds
        if at_least is not None:
            end = max(end, at_least)
        if interference > 0 and end > env.now:
            net.set_busy(True)
        yield env.timeout(end - env.now)
        if net.busy:
            net.set_busy(False)

    def network():
        for b in range(nb):
            yield env.all_of([w.compressed[b] for w in ws])
            ready[b] = max(w.out.compress[b][1] for w in ws)
            starts[b] = env.now
            if two[b]:
                yield from round_(b, durations[b] - second[b],
                                  None if first_ends is None else first_ends[b])
                firsts[b] = env.now
                first_done[b].succeed()
                yield env.all_of([w.middled[b] for w in ws])
                yield from round_(b, second[b],
                                  None if collective_ends is None else collective_ends[b])
                ends[b] = env.now
                coll_done[b].succeed()
                continue
            end = env.now + durations[b]
            if collective_ends is not None:
                end = max(end, collective_ends[b])
            if interference > 0 and end > env.now:
                net.set_busy(True)
            yield env.timeout(end - env.now)
            if net.busy:
                net.set_busy(False)
            ends[b] = firsts[b] = env.now
            coll_done[b].succeed()

    env.process(network())
    env.run(until=env.all_of([w.done for w in ws]))
    events = getattr(env, "events_processed", 0)
    return Timeline(ready, starts, ends, [w.out for w in ws], events, firsts)


__all__ = ["Timeline", "WorkerCosts", "WorkerTimeline", "run_timeline"]
