"""The router of any graph (topology files): shortest paths counted by one breadth-first
search per destination (cached, within a budget of visits), the flow's path found by
walking the counts, never by listing the paths."""

from __future__ import annotations

import numpy as np

from ...errors import TopologyError
from .base import PatternCost, Router, cost_from_links
from .ecmp import ecmp_hash, natural_key

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
