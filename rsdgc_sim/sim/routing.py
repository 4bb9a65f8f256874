"""Routes: which directed links a transfer crosses, one pair at a time or a whole pattern.

The routing *policy* (ECMP hash over equal-cost paths in numeric node order, dimension
order on direct networks) is described in :mod:`rsdgc_sim.sim.topology`; this module
implements it, once per shape of network:

* :class:`StarRouter` (``switch``), :class:`TreeRouter` (``tree``), :class:`FatTreeRouter`
  (``fat_tree``), :class:`TwoLevelRouter` (``two_level``): hosts hang off switches and
  routes are a handful of links, computed in O(1) per pair from the structure and for a
  whole pattern at once with numpy;
* :class:`TorusRouter` (``torus2d``, and ``ring`` as a torus of one row): a route is up to
  two arcs of rings (a row, then a column), possibly thousands of links long; a pattern's
  link loads come from difference arrays and its most loaded link per route from a sparse
  table (range maximum), so a pattern costs O(p log p) whatever the route lengths;
* :class:`GraphRouter`: any other graph (topology files): the shortest paths counted by
  one breadth-first search per destination (cached, within a budget of visits), the
  flow's path found by walking the counts, never by listing the paths.

Every router answers :meth:`~Router.route_links` (one pair, in path order),
:meth:`~Router.routes_links` (many pairs) and :meth:`~Router.pattern_cost` (a pattern: per
transfer its route latency, seconds per byte on its most loaded link and hops, and the
largest number of the pattern's transfers on one link).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import TopologyError

_MASK = (1 << 64) - 1
_C0, _C1, _C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def ecmp_hash(src: int, dst: int) -> int:
    """The flow hash of ranks ``src`` -> ``dst``: the splitmix64 finalizer of
    ``(src << 32) + dst``, a 64-bit integer. Path ``ecmp_hash(src, dst) % n`` of the ``n``
    equal-cost paths (in numeric node order) carries the flow."""
    z = ((src << 32) + dst + _C0) & _MASK
    z = ((z ^ (z >> 30)) * _C1) & _MASK
    z = ((z ^ (z >> 27)) * _C2) & _MASK
    return z ^ (z >> 31)


def ecmp_hash_array(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """:func:`ecmp_hash` of arrays of ranks (uint64, element by element)."""
    u = np.uint64
    with np.errstate(over="ignore"):
        z = (src.astype(u) << u(32)) + dst.astype(u) + u(_C0)
        z = (z ^ (z >> u(30))) * u(_C1)
        z = (z ^ (z >> u(27))) * u(_C2)
        return z ^ (z >> u(31))


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key of a node name with its digit runs read as numbers (``h2`` before ``h10``)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in _DIGITS.split(str(name)) if t)


@dataclass(frozen=True)
class PatternCost:
    """What ``step`` needs of a pattern of concurrent transfers, one entry per transfer:
    the route latency (s), seconds per byte on the route's most loaded link (transfers of
    the pattern on it / its bandwidth) and the route's length in links; ``max_flows`` is the
    largest number of the pattern's transfers that share one directed link."""

    latency: np.ndarray
    per_byte: np.ndarray
    max_flows: int
    hops: np.ndarray


def cost_from_links(cols: np.ndarray, bw: np.ndarray, lat: np.ndarray) -> PatternCost:
    """Pattern cost from routes given as a 2-D array of link ids, one column per transfer
    and one row per position along the routes (-1 where a route is shorter). Latencies are
    summed row by row, in path order, as :meth:`Topology.route` sums them, so both give the
    same bits."""
    n = cols.shape[1]
    if n == 0:
        return PatternCost(np.zeros(0), np.zeros(0), 0, np.zeros(0, dtype=np.int64))
    none = len(bw)  # padding -> an extra link that carries nothing and takes no time
    ids = np.where(cols < 0, none, cols)
    flat = ids.ravel()
    if 4 * flat.size < none:  # a small pattern: count only the links it touches
        uniq, inv, cnt = np.unique(flat, return_inverse=True, return_counts=True)
        cnt[uniq == none] = 0
        count_at = cnt[inv.ravel()]
        max_flows = int(cnt.max()) if cnt.size else 0
    else:
        count = np.bincount(flat, minlength=none + 1)
        count[none] = 0
        count_at = count[flat]
        max_flows = int(count.max())
    bw_ext = np.append(bw, np.inf)
    per_byte = (count_at / bw_ext[flat]).reshape(ids.shape).max(axis=0, initial=0.0)
    lat_ext = np.append(lat, 0.0)
    latency = np.zeros(n)
    for row in ids:  # left to right, as route() adds; x + 0.0 == x for padding
        latency += lat_ext[row]
    return PatternCost(latency, per_byte, max_flows, (ids != none).sum(axis=0))


class Router:
    """Base class: routes of one built topology (``topo`` gives hosts, graph and the
    directed link table)."""

    def __init__(self, topo):
        self.topo = topo

    def route_links(self, i: int, j: int) -> tuple[int, ...]:
        raise NotImplementedError

    def routes_links(self, src: np.ndarray, dst: np.ndarray) -> list[tuple[int, ...]]:
        """:meth:`route_links` of many pairs (the structured routers do them at once)."""
        return [self.route_links(a, b) for a, b in zip(src.tolist(), dst.tolist(),
                                                        strict=True)]

    def pattern_cost(self, src: np.ndarray, dst: np.ndarray) -> PatternCost:
        """Default: route every pair (Python), then count."""
        rows = [self.route_links(int(a), int(b)) for a, b in zip(src, dst, strict=True)]
        width = max((len(r) for r in rows), default=0)
        links = np.full((width, len(rows)), -1, dtype=np.int64)
        for k, r in enumerate(rows):
            links[:len(r), k] = r
        return cost_from_links(links, self.topo.bw_array, self.topo.lat_array)


class _LinkArrayRouter(Router):
    """Routers whose routes are a few links computed for many pairs at once."""

    def links(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Link ids of the routes, one column per pair, -1 where a route is shorter."""
        raise NotImplementedError

    def route_links(self, i: int, j: int) -> tuple[int, ...]:
        return self.routes_links(np.array([i], dtype=np.int64), np.array([j], dtype=np.int64))[0]

    def routes_links(self, src: np.ndarray, dst: np.ndarray) -> list[tuple[int, ...]]:
        cols = self.links(src, dst).T.tolist()
        return [tuple(k for k in col if k >= 0) for col in cols]

    def pattern_cost(self, src: np.ndarray, dst: np.ndarray) -> PatternCost:
        return cost_from_links(self.links(src, dst), self.topo.bw_array, self.topo.lat_array)

    def _ids(self, names) -> np.ndarray:
        return self.topo.node_ids(names)

    def _up_down(self, hosts: np.ndarray, attach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Link ids host -> its switch and back, per rank (node indices given)."""
        return self.topo.link_ids(hosts, attach), self.topo.link_ids(attach, hosts)


def _mask(cond: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.where(cond, ids, -1)


class StarRouter(_LinkArrayRouter):
    """``switch``: host -> switch -> host."""

    def __init__(self, topo, switch: str = "sw"):
        super().__init__(topo)
        h = self._ids(topo.hosts)
        self.up, self.down = self._up_down(h, np.full(len(h), self._ids([switch])[0]))

    def links(self, src, dst):
        other = src != dst
        return np.stack([_mask(other, self.up[src]), _mask(other, self.down[dst])], axis=0)


class TreeRouter(_LinkArrayRouter):
    """``tree``: up from the leaf switch to the lowest common ancestor, then down (the one
    shortest path of a tree)."""

    def __init__(self, topo, arity: int):
        super().__init__(topo)
        self.arity = arity
        h = self._ids(topo.hosts)
        width = -(-len(h) // arity)
        level = self._ids([f"s0_{x}" for x in range(width)])
        self.up, self.down = self._up_down(h, level[np.arange(len(h)) // arity])
        self.sw_up, self.sw_down = [], []
        depth = 0
        while width > 1:
            depth += 1
            width = -(-width // arity)
            parent = self._ids([f"s{depth}_{x}" for x in range(width)])
            child_parent = parent[np.arange(len(level)) // arity]
            self.sw_up.append(self.topo.link_ids(level, child_parent))
            self.sw_down.append(self.topo.link_ids(child_parent, level))
            level = parent

    def links(self, src, dst):
        other = src != dst
        a, b = src // self.arity, dst // self.arity
        ups, downs = [], []
        for lvl in range(len(self.sw_up)):
            cross = a != b
            if not cross.any():  # no pair climbs this high (nor higher)
                break
            ups.append(_mask(cross, self.sw_up[lvl][a]))
            downs.append(_mask(cross, self.sw_down[lvl][b]))
            a, b = a // self.arity, b // self.arity
        cols = [_mask(other, self.up[src]), *ups, *reversed(downs), _mask(other, self.down[dst])]
        return np.stack(cols, axis=0)


class FatTreeRouter(_LinkArrayRouter):
    """``fat_tree``: within an edge switch directly; within a pod over aggregation switch
    ``x``; across pods over aggregation ``x`` and core ``x·k/2 + y``. The equal-cost paths
    in numeric node order are numbered ``x`` (within a pod) and ``x·k/2 + y`` (across
    pods), and the flow takes number ``ecmp_hash(src, dst) mod count``."""

    def __init__(self, topo, k: int):
        super().__init__(topo)
        half = self.half = k // 2
        h = self._ids(topo.hosts)
        pods = -(-len(h) // (half * half))
        ids = self._ids
        edge = ids([f"e{pod}_{e}" for pod in range(pods) for e in range(half)])
        agg = ids([f"a{pod}_{x}" for pod in range(pods) for x in range(half)])
        core = ids([f"c{j}" for j in range(half * half)]).reshape(half, half)
        self.up, self.down = self._up_down(h, edge[np.arange(len(h)) // half])
        link = self.topo.link_ids
        # edge (pod, e) <-> aggregation (pod, x): index (pod*half + e)*half + x
        e_u = np.repeat(edge, half)
        e_v = agg.reshape(pods, half)[np.arange(pods * half) // half].ravel()
        self.e_up, self.e_down = link(e_u, e_v), link(e_v, e_u)
        # aggregation (pod, x) <-> core x*half + y: index (pod*half + x)*half + y
        a_u = np.repeat(agg, half)
        a_v = core[np.arange(pods * half) % half].ravel()
        self.a_up, self.c_down = link(a_u, a_v), link(a_v, a_u)

    def links(self, src, dst):
        h = self.half
        other = src != dst
        es, ed = src // h, dst // h  # global edge switch index = pod*half + e
        ps, pd = es // h, ed // h
        cross_edge = es != ed
        cross_pod = ps != pd
        n_paths = np.where(cross_pod, h * h, h)
        pick = (ecmp_hash_array(src, dst) % n_paths.astype(np.uint64)).astype(np.int64)
        x = np.where(cross_pod, pick // h, pick)
        y = pick % h
        cols = [_mask(other, self.up[src])]
        if cross_edge.any():
            cols.append(_mask(cross_edge, self.e_up[es * h + x]))
            if cross_pod.any():
                cols.append(_mask(cross_pod, self.a_up[(ps * h + x) * h + y]))
                cols.append(_mask(cross_pod, self.c_down[(pd * h + x) * h + y]))
            cols.append(_mask(cross_edge, self.e_down[ed * h + x]))
        cols.append(_mask(other, self.down[dst]))
        return np.stack(cols, axis=0)


class TwoLevelRouter(_LinkArrayRouter):
    """``two_level``: GPU -> node switch -> GPU inside a node; GPU -> node switch -> core ->
    node switch -> GPU across nodes. Hosts on the core switch (parameter servers) skip
    their own node's hop."""

    def __init__(self, topo):
        super().__init__(topo)
        h = self._ids(topo.hosts)
        node_of = np.full(len(h), -1, dtype=np.int64)
        for x, grp in enumerate(topo.groups):
            node_of[grp] = x
        self.node_of = node_of
        core = self._ids(["core"])[0]
        nodes = self._ids([f"n{x}" for x in range(len(topo.groups))])
        attach = np.where(node_of >= 0, nodes[np.maximum(node_of, 0)], core)
        self.up, self.down = self._up_down(h, attach)
        self.nic_up, self.nic_down = self._up_down(nodes, np.full(len(nodes), core))

    def links(self, src, dst):
        other = src != dst
        a, b = self.node_of[src], self.node_of[dst]
        cross = a != b
        return np.stack([
            _mask(other, self.up[src]),
            _mask(cross & (a >= 0), self.nic_up[np.maximum(a, 0)]),
            _mask(cross & (b >= 0), self.nic_down[np.maximum(b, 0)]),
            _mask(other, self.down[dst]),
        ], axis=0)


# -- direct networks: rings and tori --------------------------------------------------------
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


# -- any graph ------------------------------------------------------------------------------
#: node + link visits the shortest-path searches of one :class:`GraphRouter` may make in all
#: (a search from every destination a pattern routes to; a few seconds of Python)
GRAPH_SEARCH_BUDGET = 10_000_000


class GraphRouter(Router):
    """Any graph (topology files): shortest paths in hops, numbered in numeric node order
    (names equal as numbers, such as ``h1`` and ``h01``, then as text),
    the flow taking number ``ecmp_hash(src, dst) mod count``; between hosts that hang off a
    single switch, the paths between their switches.

    The paths are never listed (a grid has exponentially many): one breadth-first search
    from each destination counts, for every node, its shortest paths to it; a route then
    walks from the source, at each node taking the neighbours one step closer in numeric
    node order and skipping the paths of those before. That is the path number ``h`` of
    the list of all shortest paths sorted node by node, in O(path length x degree) per
    route. The searches, O(nodes + links) each, are cached per destination and limited to
    :data:`GRAPH_SEARCH_BUDGET` visits in all: a pattern that needs more is refused, before
    any search, with a :class:`~rsdgc_sim.errors.TopologyError`."""

    def __init__(self, topo, budget: int = GRAPH_SEARCH_BUDGET):
        super().__init__(topo)
        topo._ensure_index()
        names = list(topo._nodes)
        n = len(names)
        u, v = topo._u.tolist(), topo._v.tolist()
        rank = [0] * n
        for r, x in enumerate(sorted(range(n), key=lambda x: (natural_key(names[x]),
                                                              str(names[x])))):
            rank[x] = r
        adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for link, (a, b) in enumerate(zip(u, v, strict=True)):
            adj[a].append((b, link))  # directed link ``link`` runs a -> b
        for row in adj:
            row.sort(key=lambda e: rank[e[0]])
        self._adj = adj
        self._n_links = len(u)
        kind = topo.graph.nodes
        self._node = topo.node_id
        self._is_switch = [kind[x].get("kind") == "switch" for x in names]
        self._budget = budget
        self._work = 0
        self._searches: dict[int, tuple[list[int], list[int]]] = {}

    @property
    def search_cost(self) -> int:
        """Node and link visits of one search."""
        return len(self._adj) + self._n_links

    def _ends(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(source host, destination host, where the search starts, where it ends): the
        hosts' switches when both hang off a single switch, else the hosts."""
        hosts = self.topo.hosts
        s, d = self._node[hosts[i]], self._node[hosts[j]]
        a, b = self._attachment(s), self._attachment(d)
        if a is not None and b is not None:
            return s, d, a, b
        return s, d, s, d

    def _attachment(self, x: int) -> int | None:
        row = self._adj[x]
        return row[0][0] if len(row) == 1 and self._is_switch[row[0][0]] else None

    def _reserve(self, targets, pairs: int) -> None:
        """Refuse searches over the budget before making any."""
        new = len({b for b in targets if b not in self._searches})
        cost = new * self.search_cost
        if self._work + cost > self._budget:
            raise TopologyError(
                f"topology {self.topo.name!r}: routing {pairs:,} transfers needs shortest-path "
                f"searches from {new:,} destinations over {len(self._adj):,} nodes and "
                f"{self._n_links // 2:,} links (about {self._work + cost:,} steps, more than "
                f"the {self._budget:,} allowed); use fewer workers, or a generated topology "
                f"(switch, tree, fat_tree, two_level, ring, torus2d), whose routes need no "
                f"search")
        self._work += cost

    def _search(self, b: int) -> tuple[list[int], list[int]]:
        """Hops to ``b`` and the number of shortest paths to ``b``, per node."""
        hit = self._searches.get(b)
        if hit is not None:
            return hit
        n = len(self._adj)
        dist, count = [-1] * n, [0] * n
        dist[b], count[b] = 0, 1
        queue = [b]
        adj = self._adj
        for x in queue:  # breadth first: every node's count is final before it is read
            dx, cx = dist[x] + 1, count[x]
            for w, _ in adj[x]:
                if dist[w] < 0:
                    dist[w], count[w] = dx, cx
                    queue.append(w)
                elif dist[w] == dx:
                    count[w] += cx
        self._searches[b] = (dist, count)
        return dist, count

    def _walk(self, a: int, b: int, h: int) -> list[int]:
        """Links of shortest path number ``h mod count`` from ``a`` to ``b``."""
        dist, count = self._search(b)
        if dist[a] < 0:
            raise TopologyError(f"topology {self.topo.name!r}: no path between "
                                f"{self.topo._nodes[a]!r} and {self.topo._nodes[b]!r}")
        k = h % count[a]
        links = []
        x = a
        while x != b:
            step = dist[x] - 1
            for w, link in self._adj[x]:
                if dist[w] != step:
                    continue
                if k < count[w]:
                    links.append(link)
                    x = w
                    break
                k -= count[w]
        return links

    def _route(self, i: int, j: int) -> tuple[int, ...]:
        s, d, a, b = self._ends(i, j)
        if s == d:
            return ()
        links = self._walk(a, b, ecmp_hash(i, j))
        if a != s:  # host -> its switch ... switch -> host (link 2e+1 runs back 2e)
            links = [self._adj[s][0][1], *links, self._adj[d][0][1] ^ 1]
        return tuple(links)

    def route_links(self, i: int, j: int) -> tuple[int, ...]:
        self._reserve([self._ends(i, j)[3]], 1)
        return self._route(i, j)

    def routes_links(self, src: np.ndarray, dst: np.ndarray) -> list[tuple[int, ...]]:
        pairs = list(zip(src.tolist(), dst.tolist(), strict=True))
        self._reserve({self._ends(i, j)[3] for i, j in pairs}, len(pairs))
        return [self._route(i, j) for i, j in pairs]

    def pattern_cost(self, src: np.ndarray, dst: np.ndarray) -> PatternCost:
        rows = self.routes_links(np.asarray(src), np.asarray(dst))
        width = max((len(r) for r in rows), default=0)
        links = np.full((width, len(rows)), -1, dtype=np.int64)
        for k, r in enumerate(rows):
            links[:len(r), k] = r
        return cost_from_links(links, self.topo.bw_array, self.topo.lat_array)


__all__ = ["GRAPH_SEARCH_BUDGET", "GraphRouter", "PatternCost", "Router", "ecmp_hash", "ecmp_hash_array",
           "natural_key"]
