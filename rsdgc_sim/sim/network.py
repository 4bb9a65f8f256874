"""Links with contention: a flow-level network on SimPy.

A transfer is a *flow* of ``nbytes`` over a route (directed links). Flows that share a link
share its bandwidth max-min fairly (progressive filling), so two equal flows on one link
each take twice as long as one alone. When a flow's last byte has left (it has *drained*)
it frees its links, and it *arrives* ``route.latency`` later (a pipe: latency is paid once
per route, not per byte). Rates are recomputed only for the flows that share links,
transitively, with the flow that started or ended, so uncontended flows cost O(1).

Two runners drive flows from a collective's schedule (``link`` fidelity):

* :func:`run_phases` (and :func:`run_rounds`, its form for explicit rounds): rounds of
  transfers. A transfer of round ``r`` from ``src`` to ``dst`` starts as soon as both
  ``src`` and ``dst`` have finished all their transfers of earlier rounds (a transfer is
  finished when it has arrived). Ranks are not globally synchronised: a slow link delays
  only the ranks that depend on it, and the delay spreads along the dependencies, as in a
  real ring. Rounds come as phases (a pattern repeated ``repeat`` times) and are never
  written out: the runner keeps, per rank, where it is (phase, repetition, transfers still
  in flight), so memory is O(ranks + pattern sizes + flows in flight), not O(transfers).
* :func:`run_dag`: explicit dependencies (used by the pipelined, chunked ring); the
  operations are held in memory, O(transfers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import simpy

from .topology import Topology

DRAIN, ARRIVE = 0, 1


class _Flow:
    __slots__ = ("links", "remaining", "rate", "t", "version", "latency", "on_drain",
                 "on_arrive", "active")

    def __init__(self, links, nbytes, latency, on_drain, on_arrive):
        self.links = links
        self.remaining = float(nbytes)
        self.rate = 0.0
        self.t = 0.0
        self.version = 0
        self.latency = latency
        self.on_drain = on_drain
        self.on_arrive = on_arrive
        self.active = True


class FlowNetwork:
    """Active flows on a topology's directed links, with max-min fair bandwidth sharing."""

    def __init__(self, env: simpy.Environment, topo: Topology):
        self.env = env
        self.topo = topo
        self.bw = topo.link_bw
        # dicts, not sets: insertion order makes every run identical, bit for bit
        self.on_link: list[dict[_Flow, None]] = [{} for _ in topo.link_bw]
        self.flows_started = 0

    # -- public --------------------------------------------------------------------------
    def transfer(self, src: int, dst: int, nbytes: float,
                 on_drain: Callable[[], None] | None = None,
                 on_arrive: Callable[[], None] | None = None) -> None:
        """Start a flow of ``nbytes`` from rank ``src`` to rank ``dst`` now."""
        route = self.topo.route(src, dst)
        f = _Flow(route.links, nbytes, route.latency, on_drain, on_arrive)
        f.t = self.env.now
        self.flows_started += 1
        if not route.links or nbytes <= 0:  # nothing on the wire: drained now (as an event)
            ev = self.env.timeout(0.0)
            ev.callbacks.append(lambda _e: self._drained(f, register=False))
            return
        for ln in f.links:
            self.on_link[ln][f] = None
        self._rebalance(f.links, new=f)

    # -- internals -----------------------------------------------------------------------
    def _component(self, links: Sequence[int]) -> tuple[dict[_Flow, None], dict[int, None]]:
        flows: dict[_Flow, None] = {}
        seen_links: dict[int, None] = {}
        stack = list(links)
        while stack:
            ln = stack.pop()
            if ln in seen_links:
                continue
            seen_links[ln] = None
            for f in self.on_link[ln]:
                if f not in flows:
                    flows[f] = None
                    stack.extend(x for x in f.links if x not in seen_links)
        return flows, seen_links

    def _rebalance(self, links: Sequence[int], new: _Flow | None = None) -> None:
        now = self.env.now
        # fast path: a new flow alone on every link of its route
        if new is not None and all(len(self.on_link[ln]) == 1 for ln in links):
            new.rate = min(self.bw[ln] for ln in links)
            self._schedule(new)
            return
        flows, comp_links = self._component(links)
        if not flows:
            return
        for f in flows:  # bring every flow's remaining bytes up to now
            if f.rate > 0:
                f.remaining -= f.rate * (now - f.t)
            f.t = now
        # progressive filling (max-min fairness)
        cap = {ln: self.bw[ln] for ln in comp_links}
        count = {ln: len(self.on_link[ln]) for ln in comp_links}
        unfrozen = dict(flows)
        rates: dict[_Flow, float] = {}
        while unfrozen:
            share, bott = min(((cap[ln] / count[ln], ln) for ln in comp_links if count[ln] > 0),
                              key=lambda x: x[0])
            frozen = [f for f in unfrozen if bott in f.links]
            for f in frozen:
                rates[f] = share
                del unfrozen[f]
                for ln in f.links:
                    cap[ln] -= share
                    count[ln] -= 1
            cap[bott] = 0.0
        for f, r in rates.items():
            if f is new or r != f.rate:
                f.rate = r
                self._schedule(f)

    def _schedule(self, f: _Flow) -> None:
        f.version += 1
        v = f.version
        ev = self.env.timeout(max(f.remaining, 0.0) / f.rate)
        ev.callbacks.append(lambda _e, f=f, v=v: self._fire(f, v))

    def _fire(self, f: _Flow, version: int) -> None:
        if version != f.version or not f.active:
            return  # stale: the flow's rate changed after this timeout was scheduled
        self._drained(f, register=True)

    def _drained(self, f: _Flow, register: bool) -> None:
        f.active = False
        f.remaining = 0.0
        if register:
            for ln in f.links:
                self.on_link[ln].pop(f, None)
            self._rebalance(f.links)
        if f.on_drain is not None:
            f.on_drain()
        if f.on_arrive is not None:
            ev = self.env.timeout(f.latency)
            cb = f.on_arrive
            ev.callbacks.append(lambda _e: cb())


#: a phase for :func:`run_phases`: (pairs, bytes per transfer or one for all, repeat)
PhaseRounds = tuple[Sequence[tuple[int, int]], "float | Sequence[float]", int]


class _PhaseIndex:
    """The phases of :func:`run_phases` indexed once, before any transfer starts: per kept
    phase (``repeat > 0``, some pairs) its ``pairs``, ``sizes`` and ``repeats``, its op
    indices per rank (``ops_by_rank``, shared by phases that reuse one pairs object), the
    phases each rank takes part in, in order (``rank_phases``), and the ``total`` number of
    transfers."""

    __slots__ = ("pairs_of", "sizes", "repeats", "ops_by_rank", "rank_phases", "total")

    def __init__(self, phases: Sequence[PhaseRounds]):
        self.pairs_of: list[Sequence[tuple[int, int]]] = []
        self.sizes: list = []
        self.repeats: list[int] = []
        self.ops_by_rank: list[dict[int, list[int]]] = []
        self.rank_phases: dict[int, list[int]] = {}
        self.total = 0
        shared: dict[int, dict[int, list[int]]] = {}  # id(pairs) -> rank -> op indices
        for pairs, nbytes, repeat in phases:
            if repeat <= 0 or not len(pairs):
                continue
            by_rank = shared.get(id(pairs))
            if by_rank is None:
                by_rank = shared[id(pairs)] = _ops_by_rank(pairs)
            idx = len(self.pairs_of)
            self.pairs_of.append(pairs)
            self.sizes.append(nbytes)
            self.repeats.append(repeat)
            self.ops_by_rank.append(by_rank)
            for q in by_rank:
                self.rank_phases.setdefault(q, []).append(idx)
            self.total += repeat * len(pairs)


def _ops_by_rank(pairs: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    """Per rank, the indices of the pairs it sends or receives in (once when it does both)."""
    by_rank: dict[int, list[int]] = {}
    for o, (src, dst) in enumerate(pairs):
        by_rank.setdefault(src, []).append(o)
        if dst != src:
            by_rank.setdefault(dst, []).append(o)
    return by_rank


def run_phases(env: simpy.Environment, net: FlowNetwork,
               phases: Sequence[PhaseRounds]) -> simpy.Event:
    """Run phases of rounds: phase ``k`` is the pattern ``pairs`` of concurrent
    ``(src, dst)`` transfers carrying ``nbytes`` (one size, or one per pair), repeated
    ``repeat`` times, with rank-local dependencies (module docstring). Returns an event that
    fires when every transfer has arrived. Rounds are generated as ranks reach them.

    The runner's state and its two steps (``try_start``, ``finish``) stay closures over
    local variables: they run once per transfer, the simulator's inner loop."""
    done = env.event()
    index = _PhaseIndex(phases)
    if index.total == 0:
        done.succeed()
        return done
    pairs_of, sizes, repeats = index.pairs_of, index.sizes, index.repeats
    ops_by_rank, rank_phases = index.ops_by_rank, index.rank_phases
    # per rank: index into its phases, repetition, transfers of the round still in flight
    pos = dict.fromkeys(rank_phases, 0)
    rep = dict.fromkeys(rank_phases, 0)
    pending = {q: len(ops_by_rank[ph[0]][q]) for q, ph in rank_phases.items()}
    started: set[tuple[int, int, int]] = set()
    left = [index.total]

    def at(q: int, k: int, r: int) -> bool:
        ph = rank_phases[q]
        return pos[q] < len(ph) and ph[pos[q]] == k and rep[q] == r

    def try_start(k: int, r: int, o: int) -> None:
        key = (k, r, o)
        if key in started:
            return
        src, dst = pairs_of[k][o]
        if not (at(src, k, r) and at(dst, k, r)):
            return
        started.add(key)
        nb = sizes[k]
        nb = nb[o] if isinstance(nb, (tuple, list)) else nb

        def on_arrive():
            started.discard(key)
            finish(src)
            if dst != src:
                finish(dst)
            left[0] -= 1
            if left[0] == 0:
                done.succeed()

        net.transfer(src, dst, nb, None, on_arrive)

    def finish(q: int) -> None:
        pending[q] -= 1
        if pending[q]:
            return
        ph = rank_phases[q]
        k = ph[pos[q]]
        rep[q] += 1
        if rep[q] == repeats[k]:
            rep[q] = 0
            pos[q] += 1
            if pos[q] == len(ph):
                return
            k = ph[pos[q]]
        ops = ops_by_rank[k][q]
        pending[q] = len(ops)
        r = rep[q]
        for o in ops:
            try_start(k, r, o)

    for q, ph in rank_phases.items():
        for o in ops_by_rank[ph[0]][q]:
            try_start(ph[0], 0, o)
    return done


def run_rounds(env: simpy.Environment, net: FlowNetwork,
               rounds: Sequence[Sequence[tuple[int, int, float]]]) -> simpy.Event:
    """Run explicit rounds of ``(src, dst, nbytes)`` transfers with rank-local dependencies
    (see :func:`run_phases`); returns an event that fires when every transfer has arrived."""
    return run_phases(env, net, [(tuple((s, d) for s, d, _ in rnd),
                                  tuple(b for _, _, b in rnd), 1) for rnd in rounds])


def run_dag(env: simpy.Environment, net: FlowNetwork,
            ops: Sequence[tuple[int, int, float]],
            deps: Sequence[Sequence[tuple[int, int]]]) -> simpy.Event:
    """Run transfers ``ops[i] = (src, dst, nbytes)``, each starting when all its
    dependencies ``deps[i] = [(op, DRAIN | ARRIVE), ...]`` are met (ops must be listed after
    their dependencies). Returns an event that fires when every transfer has arrived."""
    done = env.event()
    n = len(ops)
    if n == 0:
        done.succeed()
        return done
    waiting = [len(d) for d in deps]
    dependents: list[list[list[int]]] = [[[], []] for _ in range(n)]
    for i, d in enumerate(deps):
        for j, kind in d:
            if j >= i:
                raise ValueError("run_dag: a dependency must come before its dependent")
            dependents[j][kind].append(i)
    left = [n]

    def release(i: int, kind: int) -> None:
        for k in dependents[i][kind]:
            waiting[k] -= 1
            if waiting[k] == 0:
                start(k)

    def start(i: int) -> None:
        src, dst, nb = ops[i]

        def on_arrive():
            release(i, ARRIVE)
            left[0] -= 1
            if left[0] == 0:
                done.succeed()

        net.transfer(src, dst, nb, lambda: release(i, DRAIN), on_arrive)

    for i in range(n):
        if waiting[i] == 0:
            start(i)
    return done
