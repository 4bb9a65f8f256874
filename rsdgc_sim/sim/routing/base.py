"""What every router provides: routes of one pair, of many pairs, and the cost of a whole
pattern (:class:`PatternCost`), with the counting they share (:func:`cost_from_links`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    # topo: a sim.topology Topology, left untyped: sim.topology imports this package, so
    # naming the type here (even under TYPE_CHECKING) would close an import cycle
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


class LinkArrayRouter(Router):
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


def masked(cond: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.where(cond, ids, -1)
