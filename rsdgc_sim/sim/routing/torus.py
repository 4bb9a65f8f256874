"""Routers of direct networks (``torus2d``, and ``ring`` as a torus of one row): a route is
up to two arcs of rings (a row, then a column), possibly thousands of links long; a
pattern's link loads come from difference arrays and its most loaded link per route from a
sparse table (range maximum), so a pattern costs O(p log p) whatever the route lengths."""

from __future__ import annotations

import numpy as np

from .base import PatternCost, Router
from .ecmp import ecmp_hash_array


class _Rings:
    """One direction of the rings of one dimension: ``rings`` rings of ``n`` links each;
    position ``t`` of a ring is the link from its ``t``-th host to the next one in this
    direction. Arcs are (ring, start, length) over consecutive positions (mod n)."""

    def __init__(self, link_ids: np.ndarray, bw: np.ndarray, lat: np.ndarray):
        self.ids = link_ids  # (rings, n)
        self.rings, self.n = link_ids.shape
        self.bw = bw[link_ids] if link_ids.size else np.zeros(link_ids.shape)
        self.lat = lat[link_ids] if link_ids.size else np.zeros(link_ids.shape)

    def doubled(self, ring: int) -> list[int]:
        """The ring's link ids twice over, as a Python list (arcs are slices of it)."""
        cache = self.__dict__.setdefault("_doubled", {})
        row = cache.get(ring)
        if row is None:
            row = cache[ring] = self.ids[ring].tolist() * 2
        return row

    def loads(self, ring, start, length,
              by_position: bool | None = None) -> tuple[np.ndarray, int]:
        """For non-empty arcs (taken together as a pattern): per arc the largest
        ``arcs on the link / bandwidth`` over its links, and the most arcs on one link.
        Arcs short in all are counted position by position (O(total length)), long ones
        with difference arrays and a sparse table (O(rings·n log n)); ``by_position``
        forces one way."""
        total = int(length.sum())
        if by_position if by_position is not None else total <= self.rings * self.n:
            offs = np.cumsum(length) - length
            pos = (np.arange(total) - np.repeat(offs - start, length)) % self.n
            flat = np.repeat(ring, length) * self.n + pos
            _, inv, cnt = np.unique(flat, return_inverse=True, return_counts=True)
            load = cnt[inv.ravel()] / self.bw.ravel()[flat]
            return np.maximum.reduceat(load, offs), int(cnt.max())
        cnt = self.count(ring, start, length)
        return _range_max_table(cnt / self.bw, ring, start, length), int(cnt.max())

    def count(self, ring, start, length) -> np.ndarray:
        n, w = self.n, 2 * self.n + 1
        use = length > 0
        base = ring[use] * w
        size = self.rings * w
        diff = (np.bincount(base + start[use], minlength=size)
                - np.bincount(base + start[use] + length[use], minlength=size))
        c2 = np.cumsum(diff.reshape(self.rings, w), axis=1)
        return c2[:, :n] + c2[:, n:2 * n]

    def latency_sum(self, ring, start, length) -> np.ndarray:
        """Sum of link latencies over arcs (prefix sums; within an ulp or so of the sum in
        path order)."""
        w = 2 * self.n
        p2 = np.zeros((self.rings, w + 1))
        p2[:, 1:] = np.cumsum(np.concatenate([self.lat, self.lat], axis=1), axis=1)
        return np.where(length > 0, p2[ring, np.minimum(start + length, w)] - p2[ring, start],
                        0.0)


def _range_max_table(values, r, s, ln) -> np.ndarray:
    """Range maxima of non-empty circular arcs (length <= n) from a sparse table over the
    doubled rows: level ``j`` holds the maximum of ``2^j`` positions from each start."""
    table = [np.concatenate([values, values], axis=1)]
    span = 1
    longest = int(ln.max())
    while 2 * span <= longest:
        prev = table[-1]
        table.append(np.maximum(prev[:, :-span], prev[:, span:]))
        span *= 2
    k = np.floor(np.log2(ln)).astype(np.int64)
    # guard against log2 rounding at exact powers of two
    k = np.where((1 << (k + 1)) <= ln, k + 1, k)
    k = np.where((1 << k) > ln, k - 1, k)
    res = np.zeros(len(r))
    for lvl in np.unique(k):
        sel = k == lvl
        t = table[lvl]
        res[sel] = np.maximum(t[r[sel], s[sel]], t[r[sel], s[sel] + ln[sel] - (1 << lvl)])
    return res


def _ring_moves(a, b, n: int):
    """Per pair: the shortest way round a ring of ``n`` from position ``a`` to ``b``.
    Returns (cw, cw_first, n_options, length): ``cw`` the direction when there is one
    option, ``n_options`` 2 on a tie (exactly half way round an even ring of more than 2
    hosts), ``cw_first`` whether cw comes first of the two in numeric node order. A ring of
    2 has one link each way (cw), of 1 none."""
    d = (b - a) % n
    back = (n - d) % n
    if n <= 2:
        one = np.ones_like(d)
        return one.astype(bool), one.astype(bool), one, d
    tie = (d == back) & (d > 0)
    cw = d < back
    n_opt = np.where(tie, 2, 1)
    # in numeric node order the cw option (next node a+1) comes first iff (a+1)%n < (a-1)%n
    cw_first = ((a + 1) % n) < ((a - 1) % n)
    return cw, cw_first, n_opt, np.minimum(d, back)


class TorusRouter(Router):
    """``torus2d`` (and ``ring``, one row): dimension-order routing. A route first runs
    along the source's row to the destination's column, then along that column to the
    destination's row, each the shortest way round. On a tie (exactly half way round a
    ring of even length > 2) the candidates in numeric node order are numbered (row option
    first, then column option) and the flow takes ``ecmp_hash(src, dst) mod count``."""

    def __init__(self, topo, rows: int, cols: int):
        super().__init__(topo)
        self.R, self.C = rows, cols
        node = topo.node_ids(topo.hosts[:rows * cols]).reshape(rows, cols)

        def block(u, v):
            if u.size == 0:
                return _Rings(np.zeros(u.shape, dtype=np.int64), topo.bw_array, topo.lat_array)
            ids = topo.link_ids(u.ravel(), v.ravel()).reshape(u.shape)
            return _Rings(ids, topo.bw_array, topo.lat_array)

        hc = cols if cols > 1 else 0
        vr = rows if rows > 1 else 0
        nxt_c = np.roll(node, -1, axis=1)
        nxt_r = np.roll(node, -1, axis=0)
        # row r, position t: (r, t) -> (r, t+1)  /  (r, t+1) -> (r, t)
        self.h_cw = block(node[:, :hc], nxt_c[:, :hc])
        self.h_ccw = block(nxt_c[:, :hc] if cols > 2 else node[:, :0], node[:, :hc]
                           if cols > 2 else node[:, :0])
        # column c, position t: (t, c) -> (t+1, c)  /  (t+1, c) -> (t, c)
        self.v_cw = block(node.T[:, :vr], nxt_r.T[:, :vr])
        self.v_ccw = block(nxt_r.T[:, :vr] if rows > 2 else node.T[:, :0],
                           node.T[:, :vr] if rows > 2 else node.T[:, :0])
        lats = [b.lat for b in (self.h_cw, self.h_ccw, self.v_cw, self.v_ccw) if b.lat.size]
        allv = np.concatenate([x.ravel() for x in lats]) if lats else np.zeros(0)
        self.uniform_lat = float(allv[0]) if allv.size and np.all(allv == allv[0]) else None

    # -- the arcs of a set of pairs --------------------------------------------------------
    def _arcs(self, src, dst):
        R, C = self.R, self.C
        rs, cs, rd, cd = src // C, src % C, dst // C, dst % C
        hcw, hfirst, hopt, hlen = _ring_moves(cs, cd, C)
        vcw, vfirst, vopt, vlen = _ring_moves(rs, rd, R)
        count = hopt * vopt
        if (count > 1).any():
            pick = (ecmp_hash_array(src, dst) % count.astype(np.uint64)).astype(np.int64)
            hpick, vpick = pick // vopt, pick % vopt
            # option 0 is the first in numeric order
            hcw = np.where(hopt > 1, (hpick == 0) == hfirst, hcw)
            vcw = np.where(vopt > 1, (vpick == 0) == vfirst, vcw)
        # cw arc from a: positions a .. a+len-1; ccw arc from a: positions a-len .. a-1
        hstart = np.where(hcw, cs, (cs - hlen) % C)
        vstart = np.where(vcw, rs, (rs - vlen) % R)
        return (rs, hcw, hstart, hlen), (cd, vcw, vstart, vlen)

    def route_links(self, i: int, j: int) -> tuple[int, ...]:
        return self.routes_links(np.array([i]), np.array([j]))[0]

    def routes_links(self, src: np.ndarray, dst: np.ndarray) -> list[tuple[int, ...]]:
        (rs, hcw, hs, hl), (cd, vcw, vs, vl) = self._arcs(src, dst)
        out = []
        for args in zip(rs.tolist(), hcw.tolist(), hs.tolist(), hl.tolist(), cd.tolist(),
                        vcw.tolist(), vs.tolist(), vl.tolist(), strict=True):
            r, hc, h0, hn, c, vc, v0, vn = args
            links = self._leg(self.h_cw if hc else self.h_ccw, r, h0, hn, hc)
            links += self._leg(self.v_cw if vc else self.v_ccw, c, v0, vn, vc)
            out.append(tuple(links))
        return out

    @staticmethod
    def _leg(blk: _Rings, ring: int, start: int, length: int, cw: bool) -> list[int]:
        """Link ids of an arc in travel order (a cw arc runs up from ``start``, a ccw arc
        down from ``start + length - 1``)."""
        if not length:
            return []
        row = blk.doubled(ring)
        part = row[start:start + length]
        return part if cw else part[::-1]

    def pattern_cost(self, src, dst) -> PatternCost:
        (rs, hcw, hs, hl), (cd, vcw, vs, vl) = self._arcs(src, dst)
        n = len(src)
        per_byte = np.zeros(n)
        latency = np.zeros(n)
        max_flows = 0
        for blk, sel, ring, start, length in (
                (self.h_cw, hcw, rs, hs, hl), (self.h_ccw, ~hcw, rs, hs, hl),
                (self.v_cw, vcw, cd, vs, vl), (self.v_ccw, ~vcw, cd, vs, vl)):
            use = sel & (length > 0)
            if not use.any():
                continue
            r, s, ln = ring[use], start[use], length[use]
            load, most = blk.loads(r, s, ln)
            max_flows = max(max_flows, most)
            per_byte[use] = np.maximum(per_byte[use], load)
            if self.uniform_lat is None:
                latency[use] += blk.latency_sum(r, s, ln)
        if self.uniform_lat is not None:
            # the sum of (hops) equal latencies, added one by one as route() adds them
            hops = hl + vl
            table = np.concatenate([[0.0], np.cumsum(np.full(max(int(hops.max(initial=0)), 1),
                                                             self.uniform_lat))])
            latency = table[hops]
        return PatternCost(latency, per_byte, max_flows, hl + vl)
