"""The ``link`` model's time computed round by round, without events, where flows share
links at most in pairs (:func:`link_rounds_seconds`).

``link`` (:func:`rsdgc_sim.sim.network.run_phases`) starts a transfer of a round when both
of its ranks have finished their transfers of earlier rounds (arrived), shares every link
max-min fairly among the flows on it, and drains a flow when its last byte has left. When

1. within a round, every flow shares links with at most one other flow of the round (the
   two children of a double binary tree's parent, both on the parent's host link), and
2. on every directed link, the flows of different rounds (and pairs) are never on it at once
   in the schedule so computed (checked after: a flow that starts before an earlier round's
   flow on its link drained marks the link, and the marked links' intervals, sorted by
   start, must each begin when the one before drained),

then no flow ever meets on a link a flow other than its round's partner, and the run is
known in closed form per round: with ``T[q]`` the time rank ``q`` finished its last round,
a transfer starts at ``max(T[src], T[dst])``; a flow alone drains after ``b / R`` (``R``
the smallest bandwidth of its route); a pair runs alone until the second one starts, then
both at their max-min rates (progressive filling over the links of each one alone and the
links they share), then the one left alone again; a transfer arrives its route's latency
after it drains, and ``T`` of its ranks moves to the latest arrival. The collective ends at
the last arrival. That is the flow-level run's own arithmetic, event for event, so the
two agree to rounding (1e-9 relative); this costs O(transfers x route length) in numpy
instead of a SimPy event per start, drain and arrival: a double binary tree of 65,536 ranks
(262,140 transfers, a minute of ``link``) in about a second.

Where a round has three or more flows sharing links (hashed ECMP paths on a fat tree put up
to dozens of halving-doubling's flows in one group), or a flow of a later round would meet
one of an earlier round, the rounds are not computed: :func:`link_rounds_seconds` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .collectives import Collective, Message, Phase
from .collectives.base import RotatingSizes
from .routing.base import LinkArrayRouter
from .topology.graph import Topology

#: the most transfers (flows x rounds) computed this way (about a second per 300,000)
MAX_TRANSFERS = 2_000_000
#: the most rounds (each costs a few numpy calls)
MAX_ROUNDS = 20_000
#: start >= drain of an earlier flow on the link, to this relative tolerance
OVERLAP_RTOL = 1e-12


@dataclass(frozen=True)
class RoundsAnswer:
    """``seconds`` (None where the rounds cannot be computed) and why not."""

    seconds: float | None
    why_not: str = ""


@dataclass(frozen=True)
class _Pattern:
    """A pattern's flows: route columns, latency, bandwidth alone, the partner (-1: alone)
    and the rates of each when both of a pair run."""

    cols: np.ndarray
    latency: np.ndarray
    alone: np.ndarray
    partner: np.ndarray
    both: np.ndarray


def _pattern(topo: Topology, phase: Phase) -> _Pattern | str:
    key = ("link_rounds", phase.key)
    hit = topo._pattern_cache.get(key)
    if hit is not None:
        return hit
    src, dst = _arrays(phase.pairs)
    cols = topo.router.links(src, dst)
    n = cols.shape[1]
    none = topo.n_links
    ids = np.where(cols < 0, none, cols)
    count = np.bincount(ids.ravel(), minlength=none + 1)
    count[none] = 0
    if count.max(initial=0) > 2:
        out: _Pattern | str = (f"{int(count.max())} transfers of one round share a link "
                               f"({phase.label})")
        topo._pattern_cache[key] = out
        return out
    bw = np.append(topo.bw_array, np.inf)
    bwc, cnt = bw[ids], count[ids]
    alone = bwc.min(axis=0, initial=np.inf)
    own = np.where(cnt == 1, bwc, np.inf).min(axis=0, initial=np.inf)
    shared = np.where(cnt == 2, bwc, np.inf).min(axis=0, initial=np.inf)
    partner = np.full(n, -1, dtype=np.int64)
    flow = np.broadcast_to(np.arange(n), ids.shape)
    two = cnt == 2
    if two.any():
        ln, fl = ids[two], flow[two]
        order = np.lexsort((fl, ln))
        f1, f2 = fl[order][0::2], fl[order][1::2]
        partner[f1], partner[f2] = f2, f1
        if not (np.array_equal(partner[f1], f2) and np.array_equal(partner[f2], f1)):
            out = f"three or more transfers of one round share links ({phase.label})"
            topo._pattern_cache[key] = out
            return out
    # max-min rates of a pair running together (progressive filling): both at half the
    # shared links' bandwidth unless one is held below it by a link of its own; then the
    # other gets what that one leaves on the shared links
    p_own = np.where(partner >= 0, own[np.maximum(partner, 0)], np.inf)
    half = shared / 2
    with np.errstate(invalid="ignore"):  # inf - inf where a flow has no partner (unused)
        rest = shared - p_own
    both = np.where(np.minimum(own, p_own) >= half, half,
                    np.where(own <= p_own, own, np.minimum(own, rest)))
    lat = topo.pattern_cost(phase.key, phase.pairs).latency
    out = _Pattern(cols, lat, alone, partner, both)
    topo._pattern_cache[key] = out
    return out


def _arrays(pairs) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(pairs, "src"):
        return pairs.src, pairs.dst
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _drains(start: np.ndarray, b: np.ndarray, pat: _Pattern) -> np.ndarray:
    """When each flow of a round drains (module docstring)."""
    drain = start + b / pat.alone
    a = np.nonzero(pat.partner > np.arange(len(b)))[0]
    if not len(a):
        return drain
    z = pat.partner[a]
    sa, sz = start[a], start[z]
    first_a = sa <= sz
    # f: the pair's first to start, g: the second
    f, g = np.where(first_a, a, z), np.where(first_a, z, a)
    sf, sg = start[f], start[g]
    bf, bg = b[f], b[g]
    rf, rg = pat.alone[f], pat.alone[g]
    left_f = bf - rf * (sg - sf)  # f's bytes left when g starts
    alone_f = left_f <= 0  # f drains before g starts: each alone
    xf, xg = pat.both[f], pat.both[g]
    tf, tg = np.maximum(left_f, 0) / xf, bg / xg
    f_first = tf <= tg
    d_ff = sg + tf  # f drains first, then g alone
    d_gf = d_ff + (bg - xg * tf) / rg
    d_gg = sg + tg  # g drains first, then f alone
    d_fg = d_gg + (left_f - xf * tg) / rf
    drain_f = np.where(alone_f, sf + bf / rf, np.where(f_first, d_ff, d_fg))
    drain_g = np.where(alone_f, sg + bg / rg, np.where(f_first, d_gf, d_gg))
    drain[f], drain[g] = drain_f, drain_g
    return drain


def link_rounds_seconds(coll: Collective, p: int, msg: Message, topo: Topology,
                        phases: list[Phase]) -> RoundsAnswer:
    """The ``link`` run's time computed round by round (module docstring), or None with
    the reason where that is not possible here."""
    if coll.dag_size(p, msg, topo) is not None or any(ph.chunks > 1 for ph in phases):
        return RoundsAnswer(None, "its transfers are pipelined pieces")
    if not isinstance(topo.router, LinkArrayRouter):
        return RoundsAnswer(None, f"routes on {topo.name!r} are not computed as arrays")
    kept = [ph for ph in phases if ph.repeat > 0 and len(ph.pairs)]
    transfers = sum(ph.repeat * len(ph.pairs) for ph in kept)
    rounds = sum(ph.repeat for ph in kept)
    pats = []
    for ph in kept:
        pat = _pattern(topo, ph)
        if isinstance(pat, str):
            return RoundsAnswer(None, pat)
        pats.append(pat)
    if transfers > MAX_TRANSFERS or rounds > MAX_ROUNDS:
        return RoundsAnswer(None, f"{transfers:,} transfers in {rounds:,} rounds are too many "
                                  f"to compute round by round")
    ends = [_arrays(ph.pairs) for ph in kept]
    ranks = 1 + max(int(max(s.max(), d.max())) for s, d in ends)
    ready = np.zeros(ranks)
    last_drain = np.zeros(topo.n_links)
    suspect = np.zeros(topo.n_links, dtype=bool)
    schedule = []  # per round: (phase index, start, drain, moving)
    end = 0.0
    for k, (ph, pat) in enumerate(zip(kept, pats, strict=True)):
        src, dst = _arrays(ph.pairs)
        links, flow_of = _incidences(pat)
        base = (np.asarray(ph.nbytes, dtype=float) if isinstance(ph.nbytes, tuple)
                else np.full(len(src), float(ph.nbytes)))
        for r in range(ph.repeat):
            b = np.roll(base, r) if isinstance(ph.nbytes, RotatingSizes) else base
            start = np.maximum(ready[src], ready[dst])
            moving = b > 0
            drain = np.where(moving, _drains(start, np.where(moving, b, 0.0), pat), start)
            on = moving[flow_of]
            ln, fl = links[on], flow_of[on]
            # a flow that starts before an earlier round's flow on its link drained may
            # still miss it (it may end before that one starts): checked below, exactly
            before = last_drain[ln]
            suspect[ln[start[fl] < before - OVERLAP_RTOL * before]] = True
            np.maximum.at(last_drain, ln, drain[fl])
            arrive = drain + pat.latency
            np.maximum.at(ready, src, arrive)
            np.maximum.at(ready, dst, arrive)
            end = max(end, float(arrive.max()))
            schedule.append((k, start, drain, moving))
    if suspect.any():
        where = _overlap(suspect, schedule, pats)
        if where is not None:
            return RoundsAnswer(None, f"a transfer of {kept[where].label} would meet one of "
                                      f"another round on a link")
    return RoundsAnswer(end)


def _incidences(pat: _Pattern) -> tuple[np.ndarray, np.ndarray]:
    """(link, flow) of every link of every route of the pattern."""
    valid = pat.cols >= 0
    return pat.cols[valid], np.broadcast_to(np.arange(pat.cols.shape[1]), pat.cols.shape)[valid]


def _overlap(suspect: np.ndarray, schedule, pats: list[_Pattern]) -> int | None:
    """Whether flows of different rounds (or pairs) overlap in time on a ``suspect`` link:
    the phase of one such flow, or None. Per link, a pair's two flows are one interval;
    intervals sorted by start are disjoint iff each starts when the one before drained."""
    ln_all, lo_all, hi_all, grp_all, ph_all = [], [], [], [], []
    offset = 0
    for k, start, drain, moving in schedule:
        pat = pats[k]
        links, flow_of = _incidences(pat)
        on = moving[flow_of] & suspect[links]
        ln, fl = links[on], flow_of[on]
        partner = pat.partner[fl]
        ln_all.append(ln)
        lo_all.append(start[fl])
        hi_all.append(drain[fl])
        grp_all.append(offset + np.where(partner >= 0, np.minimum(fl, partner), fl))
        ph_all.append(np.full(len(ln), k))
        offset += len(start)
    ln, lo, hi = np.concatenate(ln_all), np.concatenate(lo_all), np.concatenate(hi_all)
    grp, ph = np.concatenate(grp_all), np.concatenate(ph_all)
    # one interval per (link, group): a pair's flows share their links by design
    order = np.lexsort((grp, ln))
    ln, lo, hi, grp, ph = ln[order], lo[order], hi[order], grp[order], ph[order]
    first = np.ones(len(ln), dtype=bool)
    first[1:] = (ln[1:] != ln[:-1]) | (grp[1:] != grp[:-1])
    cut = np.nonzero(first)[0]
    ln, ph = ln[cut], ph[cut]
    lo, hi = np.minimum.reduceat(lo, cut), np.maximum.reduceat(hi, cut)
    order = np.lexsort((lo, ln))
    ln, lo, hi, ph = ln[order], lo[order], hi[order], ph[order]
    same = ln[1:] == ln[:-1]
    bad = same & (lo[1:] < hi[:-1] - OVERLAP_RTOL * hi[:-1])
    if bad.any():
        return int(ph[1:][bad][0])
    return None


__all__ = ["MAX_ROUNDS", "MAX_TRANSFERS", "RoundsAnswer", "link_rounds_seconds"]
