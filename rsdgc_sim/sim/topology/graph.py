"""A built topology: :class:`Topology` (graph, rank -> host map, directed link table, route
cache), its generated form as arrays (:class:`LinkTable`) and :class:`Route`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import TopologyError
from ..routing import GraphRouter, PatternCost, Router

if TYPE_CHECKING:  # types only
    import networkx as nx


def pair_arrays(pairs) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) arrays of a pattern: the collectives' ``Pairs`` hold them already."""
    if hasattr(pairs, "src"):
        return pairs.src, pairs.dst
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


@dataclass(frozen=True)
class Route:
    """A path between two hosts: directed link indices and the summed one-way latency."""

    links: tuple[int, ...]
    latency: float


@dataclass
class LinkTable:
    """A generated topology as arrays: node names (hosts first) with their kinds, and one
    entry per undirected link: node indices ``u``, ``v``, bandwidth and latency. Built in
    milliseconds where a networkx graph of 65,536 hosts takes a second; the graph is made
    from it only when asked for."""

    nodes: list[str]
    n_hosts: int
    u: np.ndarray
    v: np.ndarray
    bandwidth: np.ndarray
    latency: np.ndarray

    def graph(self) -> nx.Graph:
        import networkx as nx  # lazy: networkx (0.3 s), only where a graph is built
        g = nx.Graph()
        n = self.n_hosts
        g.add_nodes_from((x, {"kind": "host" if k < n else "switch"})
                         for k, x in enumerate(self.nodes))
        names = self.nodes
        g.add_edges_from((names[a], names[b], {"bandwidth": bw, "latency": lat})
                         for a, b, bw, lat in zip(self.u.tolist(), self.v.tolist(),
                                                  self.bandwidth.tolist(),
                                                  self.latency.tolist(), strict=True))
        return g


def make_table(nodes: list[str], n_hosts: int, parts) -> LinkTable:
    """A LinkTable from parts ``(u, v, bandwidth, latency)`` (u, v: index arrays)."""
    us = [np.asarray(u, dtype=np.int64) for u, _, _, _ in parts]
    vs = [np.asarray(v, dtype=np.int64) for _, v, _, _ in parts]
    bws = [np.full(len(u), float(bw)) for u, _, bw, _ in parts]
    lats = [np.full(len(u), float(lat)) for u, _, _, lat in parts]

    def cat(xs, dtype):
        return np.concatenate(xs) if xs else np.zeros(0, dtype=dtype)

    return LinkTable(nodes, n_hosts, cat(us, np.int64), cat(vs, np.int64), cat(bws, float),
                     cat(lats, float))


def add_link(g: nx.Graph, u: str, v: str, bw: float, lat: float) -> None:
    g.add_edge(u, v, bandwidth=bw, latency=lat)


def node_names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


class Topology:
    """A built topology: graph, rank -> host map, directed link table and route cache.

    Generators give a :class:`LinkTable`; the networkx graph is built from it on first use
    of :attr:`graph` (routing does not need it). A topology may also be given as a graph
    (files, overrides) or built lazily by ``builder``. ``router`` makes the topology's
    :class:`~rsdgc_sim.sim.routing.Router` (the generators give one that routes from the
    structure; without one, routes come from graph searches). Directed link ``2e`` runs
    ``u -> v`` of undirected link ``e``, ``2e + 1`` back."""

    def __init__(self, name: str, graph: nx.Graph | None = None,
                 hosts: list[str] | None = None, *, builder=None, n_hosts: int | None = None,
                 groups: list[list[int]] | None = None, params: dict[str, Any] | None = None,
                 uniform: bool = False, overridden: bool = False,
                 alpha: float | None = None, bandwidth: float | None = None,
                 router: Callable[[Topology], Router] | None = None,
                 table: LinkTable | Callable[[], LinkTable] | None = None):
        self.name = name
        self._graph = graph
        self._builder = builder
        self._table_value = table
        if hosts is None and isinstance(table, LinkTable):
            hosts = table.nodes[:table.n_hosts]
        self._hosts = hosts
        self.n_hosts = len(hosts) if hosts is not None else int(n_hosts or 0)
        #: host index groups that share a node (``two_level``), used by ``hierarchical``
        self.groups = groups
        #: parameters as given (for reports)
        self.params = dict(params or {})
        #: True when every host pair is joined by identical, uncontended paths of one
        #: bandwidth and one latency (``switch`` without overrides): closed forms are exact
        self.uniform = uniform
        #: True once per-link overrides changed the generator's links
        self.overridden = overridden
        #: host-to-host latency and host link bandwidth of a uniform topology
        self.alpha = alpha
        self.bandwidth = bandwidth
        self.router_factory = router
        self._router: Router | None = None
        self._indexed = False
        self._link_index: dict[tuple[str, str], int] | None = None
        self._link_name: list[tuple[str, str]] | None = None
        self._routes: dict[tuple[int, int], Route] = {}
        self._pattern_cache: dict = {}

    @property
    def _table(self) -> LinkTable | None:
        """The generator's LinkTable (made on first use when given as a function)."""
        if callable(self._table_value):
            self._table_value = self._table_value()
        return self._table_value

    @property
    def graph(self) -> nx.Graph:
        if self._graph is None:
            t = self._table
            self._graph = t.graph() if t is not None else self._builder()
        return self._graph

    @property
    def hosts(self) -> list[str]:
        if self._hosts is None:
            t = self._table
            if t is not None:
                self._hosts = t.nodes[:t.n_hosts]
            else:
                self._hosts = [n for n, d in self.graph.nodes(data=True)
                               if d.get("kind") == "host"]
        return self._hosts

    @property
    def n_links(self) -> int:
        """Directed links (two per undirected link)."""
        if self._graph is None and self._table is not None:
            return 2 * len(self._table.u)
        return 2 * self.graph.number_of_edges()

    def _index(self) -> None:
        t = self._table
        if t is not None:
            self._nodes = t.nodes
            u, v, bw, lat = t.u, t.v, t.bandwidth, t.latency
        else:
            g = self.graph
            self._nodes = list(g.nodes)
            nid = {x: k for k, x in enumerate(self._nodes)}
            edges = list(g.edges(data=True))
            m = len(edges)
            u = np.fromiter((nid[a] for a, _, _ in edges), dtype=np.int64, count=m)
            v = np.fromiter((nid[b] for _, b, _ in edges), dtype=np.int64, count=m)
            bw = np.fromiter((float(d["bandwidth"]) for _, _, d in edges), dtype=float, count=m)
            lat = np.fromiter((float(d["latency"]) for _, _, d in edges), dtype=float, count=m)
        m = len(u)
        self._u = np.empty(2 * m, dtype=np.int64)
        self._v = np.empty(2 * m, dtype=np.int64)
        self._u[0::2], self._u[1::2] = u, v
        self._v[0::2], self._v[1::2] = v, u
        self.bw_array = np.repeat(np.asarray(bw, dtype=float), 2)
        self.lat_array = np.repeat(np.asarray(lat, dtype=float), 2)
        self._bw: list[float] = self.bw_array.tolist()
        self._lat: list[float] = self.lat_array.tolist()
        keys = self._u * len(self._nodes) + self._v
        self._key_order = np.argsort(keys, kind="stable")
        self._keys_sorted = keys[self._key_order]
        self._node_id: dict[str, int] | None = None
        self._indexed = True

    def _ensure_index(self) -> None:
        if not self._indexed:
            self._index()

    @property
    def node_id(self) -> dict[str, int]:
        """Node name -> node index (the order of the graph's nodes)."""
        self._ensure_index()
        if self._node_id is None:
            self._node_id = {x: k for k, x in enumerate(self._nodes)}
        return self._node_id

    @property
    def link_bw(self) -> list[float]:
        self._ensure_index()
        return self._bw

    @property
    def link_lat(self) -> list[float]:
        self._ensure_index()
        return self._lat

    @property
    def link_name(self) -> list[tuple[str, str]]:
        """Directed link id -> (from node, to node)."""
        if self._link_name is None:
            self._ensure_index()
            names = self._nodes
            self._link_name = [(names[a], names[b])
                               for a, b in zip(self._u.tolist(), self._v.tolist(), strict=True)]
        return self._link_name

    @property
    def link_index(self) -> dict[tuple[str, str], int]:
        """(from node, to node) -> directed link id."""
        if self._link_index is None:
            self._link_index = {x: k for k, x in enumerate(self.link_name)}
        return self._link_index

    def link_ids(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Directed link ids of node index pairs ``u[k] -> v[k]`` (vectorized)."""
        self._ensure_index()
        q = np.asarray(u, dtype=np.int64) * len(self._nodes) + np.asarray(v, dtype=np.int64)
        if not len(q):
            return np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._keys_sorted, q), len(self._keys_sorted) - 1)
        if not np.array_equal(self._keys_sorted[pos], q):
            raise TopologyError(f"topology {self.name!r}: a route uses a missing link")
        return self._key_order[pos]

    def node_ids(self, names) -> np.ndarray:
        """Node indices of node names."""
        nid = self.node_id
        return np.fromiter(map(nid.__getitem__, names), dtype=np.int64)

    # -- routing -------------------------------------------------------------------------
    @property
    def router(self) -> Router:
        if self._router is None:
            self._ensure_index()
            factory = self.router_factory or GraphRouter
            self._router = factory(self)
        return self._router

    def route(self, i: int, j: int) -> Route:
        """The route from rank ``i``'s host to rank ``j``'s host (policy: module doc)."""
        key = (i, j)
        r = self._routes.get(key)
        if r is not None:
            return r
        links = self.router.route_links(i, j)
        lat = 0.0
        link_lat = self._lat
        for k in links:  # in path order, one by one (pattern costs add the same way)
            lat += link_lat[k]
        r = Route(links, lat)
        self._routes[key] = r
        return r

    def prefetch_routes(self, pairs) -> None:
        """Route every pair of a pattern at once (the structured routers compute a whole
        pattern in one go; pair by pair each call pays numpy's overhead)."""
        src, dst = pair_arrays(pairs)
        todo = list(dict.fromkeys(
            (i, j) for i, j in zip(src.tolist(), dst.tolist(), strict=True)
            if (i, j) not in self._routes))
        if not todo:
            return
        arr = np.asarray(todo, dtype=np.int64)
        routes = self.router.routes_links(arr[:, 0], arr[:, 1])
        link_lat = self._lat
        for key, links in zip(todo, routes, strict=True):
            lat = 0.0
            for k in links:
                lat += link_lat[k]
            self._routes[key] = Route(links, lat)

    def host_latency(self, i: int, j: int) -> float:
        return self.route(i, j).latency

    def pattern_cost(self, key: tuple, pairs) -> PatternCost:
        """Route latency and seconds per byte on the most loaded link, per transfer of a
        pattern of concurrent transfers ``pairs`` (cached under ``key``)."""
        hit = self._pattern_cache.get(key)
        if hit is not None:
            return hit
        src, dst = pair_arrays(pairs)
        self._ensure_index()
        cost = self.router.pattern_cost(src, dst)
        self._pattern_cache[key] = cost
        return cost
