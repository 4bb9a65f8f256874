"""Topologies: a networkx graph of hosts and switches joined by full-duplex links.

Every undirected edge is two directed links (one per direction), each with its own
``bandwidth`` (bytes/s) and ``latency`` (s). Rank ``i`` of a collective runs on
``topology.hosts[i]``.

Routing policy (deterministic: the same inputs always give the same routes):

* **Shortest paths in hops.** A transfer follows one shortest path; its latency is the sum
  of its links' latencies, added in path order.
* **ECMP hash per flow.** Where several shortest paths exist (``fat_tree``: ``k/2`` through
  the aggregation switches of a pod, ``(k/2)^2`` through the cores between pods; topology
  files with parallel paths), they are put in *numeric node order* (paths compared node by
  node, node names compared with their digit runs read as numbers, so ``c2`` comes before
  ``c10``) and the transfer from rank ``src`` to rank ``dst`` takes path number
  ``ecmp_hash(src, dst) mod count``, where ``ecmp_hash`` is the splitmix64 finalizer of
  ``(src << 32) + dst`` (:func:`rsdgc_sim.sim.routing.ecmp_hash`). That is what ECMP
  switches do with a hash of the flow's addresses: every flow keeps one path, flows spread
  over the paths like random choices (two flows may collide on a link, as they do in real
  fabrics), and the choice depends neither on how nodes are named nor on patterns in the
  rank numbers (the former ``(src + dst) mod count`` over paths sorted as strings sent
  structured patterns such as halving-doubling onto a few cores).
* **Dimension order on direct networks.** ``torus2d`` routes along the source's row to the
  destination's column, then along that column (the deterministic routing of real tori);
  ``ring`` is a torus of one row. Each leg goes the shortest way round; exactly half way
  round an even ring (a tie) the candidates, in numeric node order, are numbered (row
  choice first) and the transfer takes number ``ecmp_hash(src, dst) mod count``.

Routes come from structure, not from graph searches, on the generated topologies (O(1) per
pair, a whole pattern at once with numpy; see :mod:`rsdgc_sim.sim.routing`), and from
networkx's shortest paths, cached per pair of switches, on topology files.

Latency convention: on switched topologies (``switch``, ``tree``, ``fat_tree``,
``two_level``) every link has half of the given ``latency``, so two hosts on the same
switch are ``latency`` apart (on ``switch`` that is the alpha of the closed forms); on
direct networks (``ring``, ``torus2d``) ``latency`` is the latency of one link, host to
neighbouring host.

Generators are registered in :data:`TOPOLOGIES` and called as
``generator(hosts, bandwidth, latency, **params)``; :func:`build_topology` adds the
parameter check (unknown names are an error), unit parsing of parameter values and
per-link overrides (``link_overrides: [{between: [a, b], bandwidth: ..., latency: ...}]``).
Files under ``topologies/`` describe a topology either by generator and parameters or by
an explicit list of hosts, switches and links (:func:`load_topology_file`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, ScenarioFileError, TopologyError, first_validation_error
from ..registry import Registry
from ..units import parse_bandwidth, parse_duration
from .routing import (
    FatTreeRouter,
    GraphRouter,
    PatternCost,
    Router,
    StarRouter,
    TorusRouter,
    TreeRouter,
    TwoLevelRouter,
)

#: name -> generator(hosts, bandwidth, latency, **params) -> Topology
TOPOLOGIES: Registry = Registry("topology")

#: the bundled topology files, shipped inside the package (the repository's ``topologies/``
#: is a link to this folder)
TOPOLOGY_DIR = Path(__file__).resolve().parents[1] / "data" / "topologies"
#: where topology names are looked up as files
TOPOLOGY_DIRS = (TOPOLOGY_DIR,)


def _pair_arrays(pairs) -> tuple[np.ndarray, np.ndarray]:
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


def _table(nodes: list[str], n_hosts: int, parts) -> LinkTable:
    """A LinkTable from parts ``(u, v, bandwidth, latency)`` (u, v: index arrays)."""
    us = [np.asarray(u, dtype=np.int64) for u, _, _, _ in parts]
    vs = [np.asarray(v, dtype=np.int64) for _, v, _, _ in parts]
    bws = [np.full(len(u), float(bw)) for u, _, bw, _ in parts]
    lats = [np.full(len(u), float(lat)) for u, _, _, lat in parts]

    def cat(xs, dtype):
        return np.concatenate(xs) if xs else np.zeros(0, dtype=dtype)

    return LinkTable(nodes, n_hosts, cat(us, np.int64), cat(vs, np.int64), cat(bws, float),
                     cat(lats, float))


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
        src, dst = _pair_arrays(pairs)
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
        src, dst = _pair_arrays(pairs)
        self._ensure_index()
        cost = self.router.pattern_cost(src, dst)
        self._pattern_cache[key] = cost
        return cost


# -- checks ------------------------------------------------------------------------------
def _check_bw(value: float, what: str) -> float:
    if not (value > 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: bandwidth must be > 0 bytes/s, got {value!r}")
    if not math.isfinite(1.0 / value):
        raise ConfigError(f"{what}: bandwidth {value!r} bytes/s is too small (1/bandwidth "
                          f"overflows); check the units")
    return float(value)


def _check_lat(value: float, what: str) -> float:
    if not (value >= 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: latency must be >= 0 s, got {value!r}")
    return float(value)


def _add_link(g: nx.Graph, u: str, v: str, bw: float, lat: float) -> None:
    g.add_edge(u, v, bandwidth=bw, latency=lat)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# -- generators --------------------------------------------------------------------------
@TOPOLOGIES.register("switch", "every host on one non-blocking switch (a star)")
def switch(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Every host has one full-duplex link of ``bandwidth`` to one non-blocking switch;
    ``latency`` is host to host (each link has half)."""
    def table() -> LinkTable:  # built on first use: closed forms need none of it
        idx = np.arange(hosts)
        return _table(_names("h", hosts) + ["sw"], hosts,
                      [(idx, np.full(hosts, hosts), bandwidth, latency / 2)])

    return Topology("switch", table=table, n_hosts=hosts, uniform=True, alpha=latency,
                    bandwidth=bandwidth, router=StarRouter)


@TOPOLOGIES.register("ring", "hosts in a physical ring (each host linked to two neighbours)")
def ring(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Host ``i`` is linked to host ``i+1 mod n``; ``latency`` is per link."""
    idx = np.arange(hosts if hosts > 2 else hosts - 1)
    table = _table(_names("h", hosts), hosts, [(idx, (idx + 1) % hosts, bandwidth, latency)])
    return Topology("ring", table=table, router=lambda t: TorusRouter(t, 1, hosts))


@TOPOLOGIES.register("tree", "k-ary tree of switches, hosts at the leaves")
def tree(hosts: int, bandwidth: float, latency: float, arity: int = 4) -> Topology:
    """Leaf switches hold ``arity`` hosts each; switches are grouped ``arity`` at a time
    under parents until one root remains. All links ``bandwidth``, ``latency``/2."""
    if arity < 2:
        raise ConfigError(f"topology.params.arity: must be >= 2, got {arity}")
    nodes = _names("h", hosts)
    width = -(-hosts // arity)
    base = len(nodes)
    nodes += _names("s0_", width)
    parts = [(np.arange(hosts), base + np.arange(hosts) // arity, bandwidth, latency / 2)]
    depth = 0
    while width > 1:
        depth += 1
        up = -(-width // arity)
        pbase = len(nodes)
        nodes += _names(f"s{depth}_", up)
        child = np.arange(width)
        parts.append((base + child, pbase + child // arity, bandwidth, latency / 2))
        base, width = pbase, up
    return Topology("tree", table=_table(nodes, hosts, parts), params={"arity": arity},
                    router=lambda t: TreeRouter(t, arity))


@TOPOLOGIES.register("fat_tree", "k-ary fat tree (k pods), with an oversubscription ratio")
def fat_tree(hosts: int, bandwidth: float, latency: float, k: int = 4,
             oversubscription: float = 1.0) -> Topology:
    """The classic k-ary fat tree: k pods of k/2 edge and k/2 aggregation switches,
    (k/2)^2 core switches, k^3/4 host ports. Host links have ``bandwidth``; edge-aggregation
    and aggregation-core links ``bandwidth / oversubscription`` (1 = full bisection)."""
    if k < 2 or k % 2:
        raise ConfigError(f"topology.params.k: must be an even number >= 2, got {k}")
    if not oversubscription >= 1:
        raise ConfigError(
            f"topology.params.oversubscription: must be >= 1, got {oversubscription}")
    cap = k**3 // 4
    if hosts > cap:
        raise TopologyError(
            f"workers: {hosts} hosts do not fit a k={k} fat tree ({cap} host ports); "
            f"raise topology.params.k")
    half = k // 2
    up_bw = bandwidth / oversubscription
    nodes = _names("h", hosts) + _names("c", half * half)
    core0 = hosts
    agg0 = len(nodes)  # a{pod}_{i} at agg0 + pod*k + i, e{pod}_{i} at agg0 + pod*k + half + i
    for pod in range(k):
        nodes += _names(f"a{pod}_", half) + _names(f"e{pod}_", half)
    pod, i, j = np.meshgrid(np.arange(k), np.arange(half), np.arange(half), indexing="ij")
    agg = agg0 + pod * k + i
    parts = [
        # aggregation (pod, i) - core i*half + j
        (agg.ravel(), (core0 + i * half + j).ravel(), up_bw, latency / 2),
        # edge (pod, j) - aggregation (pod, i)
        ((agg0 + pod * k + half + j).ravel(), agg.ravel(), up_bw, latency / 2),
    ]
    h = np.arange(hosts)
    edge = h // half  # global edge switch index pod*half + e
    parts.append((h, agg0 + (edge // half) * k + half + edge % half, bandwidth, latency / 2))
    return Topology("fat_tree", table=_table(nodes, hosts, parts),
                    params={"k": k, "oversubscription": oversubscription},
                    router=lambda t: FatTreeRouter(t, k))


#: defaults of ``two_level``'s node-internal network (an NVLink-class interconnect)
DEFAULT_INTRA_BANDWIDTH = 150e9
DEFAULT_INTRA_LATENCY = 1e-6


@TOPOLOGIES.register("two_level", "nodes x gpus_per_node: fast intra-node links, one NIC per node")
def two_level(hosts: int, bandwidth: float, latency: float, gpus_per_node: int = 8,
              intra_bandwidth: float = DEFAULT_INTRA_BANDWIDTH,
              intra_latency: float = DEFAULT_INTRA_LATENCY,
              allow_partial: bool = False) -> Topology:
    """``ceil(hosts / gpus_per_node)`` nodes. Inside a node every GPU has a link of
    ``intra_bandwidth`` to the node's switch (GPU to GPU latency ``intra_latency``); each
    node has one NIC link of ``bandwidth`` to a core switch (node to node, NIC to NIC,
    ``latency``; GPU to GPU across nodes ``intra_latency + latency``). The hosts must fill
    whole nodes unless ``allow_partial`` is true (then the last node is partial)."""
    if gpus_per_node < 1:
        raise ConfigError(f"topology.params.gpus_per_node: must be >= 1, got {gpus_per_node}")
    _check_bw(intra_bandwidth, "topology.params.intra_bandwidth")
    _check_lat(intra_latency, "topology.params.intra_latency")
    if hosts % gpus_per_node and not allow_partial:
        raise TopologyError(
            f"workers: {hosts} workers do not fill whole nodes of gpus_per_node="
            f"{gpus_per_node} on two_level; use a multiple of {gpus_per_node} or set "
            f"topology.params.allow_partial: true")
    nodes = -(-hosts // gpus_per_node)
    names = _names("g", hosts) + ["core"] + _names("n", nodes)
    core = hosts
    g = np.arange(hosts)
    x = np.arange(nodes)
    table = _table(names, hosts, [
        (core + 1 + x, np.full(nodes, core), bandwidth, latency / 2),
        (g, core + 1 + g // gpus_per_node, intra_bandwidth, intra_latency / 2),
    ])
    groups = [list(range(n * gpus_per_node, min(hosts, (n + 1) * gpus_per_node)))
              for n in range(nodes)]
    return Topology("two_level", table=table, groups=groups, params={
        "gpus_per_node": gpus_per_node, "intra_bandwidth": intra_bandwidth,
        "intra_latency": intra_latency, "nic_bandwidth": bandwidth, "nic_latency": latency},
        router=TwoLevelRouter)


def _near_square(n: int) -> tuple[int, int]:
    r = int(math.isqrt(n))
    while n % r:
        r -= 1
    return r, n // r


@TOPOLOGIES.register("torus2d", "rows x cols 2-D torus of hosts (direct network)")
def torus2d(hosts: int, bandwidth: float, latency: float, rows: int | None = None,
            cols: int | None = None) -> Topology:
    """Host ``(r, c)`` is linked to ``(r±1, c)`` and ``(r, c±1)`` with wrap-around;
    ``rows x cols`` must equal the number of hosts (default: the most square factoring)."""
    if rows is None and cols is None:
        rows, cols = _near_square(hosts)
    elif rows is None:
        rows = hosts // cols if cols and hosts % cols == 0 else 0
    elif cols is None:
        cols = hosts // rows if rows and hosts % rows == 0 else 0
    if not rows or not cols or rows * cols != hosts:
        raise TopologyError(
            f"workers: {hosts} workers do not fit a torus2d of rows={rows} x cols={cols}")
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    parts = []
    # along a row (c -> c+1), along a column (r -> r+1), with wrap-around; a dimension of
    # 2 has one link per pair (not two), one of 1 none
    for n, nxt, cond in ((cols, r * cols + (c + 1) % cols, c < (cols if cols > 2 else 1)),
                         (rows, ((r + 1) % rows) * cols + c, r < (rows if rows > 2 else 1))):
        if n > 1:
            parts.append(((r * cols + c)[cond], nxt[cond], bandwidth, latency))
    return Topology("torus2d", table=_table(_names("h", hosts), hosts, parts),
                    params={"rows": rows, "cols": cols},
                    router=lambda t: TorusRouter(t, rows, cols))


# -- files -------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinkSpec(_Strict):
    between: tuple[str, str]
    bandwidth: Any = None
    latency: Any = None


class TopologyFile(_Strict):
    """A topology file: either ``generator`` (+ ``params``) or explicit ``hosts``,
    ``switches`` and ``links``; ``link_overrides`` apply to either."""

    name: str = ""
    description: str = ""
    generator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    hosts: list[str] = Field(default_factory=list)
    switches: list[str] = Field(default_factory=list)
    links: list[LinkSpec] = Field(default_factory=list)
    link_overrides: list[LinkSpec] = Field(default_factory=list)


def _read_file(path: Path) -> TopologyFile:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ScenarioFileError(f"topology file {str(path)!r}: cannot read: {e}") from None
    except yaml.YAMLError as e:
        raise ScenarioFileError(f"topology file {str(path)!r}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ScenarioFileError(f"topology file {str(path)!r}: expected a mapping at the top")
    try:
        return TopologyFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"topology file {str(path)!r}: {first_validation_error(e)}") from None


def resolve_topology_path(name: str) -> Path | None:
    """A topology name that refers to a file: a path ending in .yaml/.yml, or the stem of a
    file under ``topologies/``. None when it is not a file name."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        return p
    for folder in TOPOLOGY_DIRS:
        cand = folder / f"{name}.yaml"
        if cand.is_file():
            return cand
    return None


def _explicit(tf: TopologyFile, path: Path, bandwidth: float, latency: float) -> Topology:
    g = nx.Graph()
    if not tf.hosts:
        raise ConfigError(f"topology file {str(path)!r}: hosts: at least one host needed")
    for h in tf.hosts:
        g.add_node(h, kind="host")
    for s in tf.switches:
        if s in g:
            raise ConfigError(f"topology file {str(path)!r}: switches: {s!r} is also a host")
        g.add_node(s, kind="switch")
    for k, ln in enumerate(tf.links):
        for n in ln.between:
            if n not in g:
                raise ConfigError(
                    f"topology file {str(path)!r}: links.{k}.between: unknown node {n!r}")
        bw = bandwidth if ln.bandwidth is None else parse_bandwidth(
            ln.bandwidth, f"links.{k}.bandwidth")
        lat = latency / 2 if ln.latency is None else parse_duration(
            ln.latency, f"links.{k}.latency")
        _check_bw(bw, f"topology file {str(path)!r}: links.{k}.bandwidth")
        _check_lat(lat, f"topology file {str(path)!r}: links.{k}.latency")
        _add_link(g, *ln.between, bw, lat)
    return Topology(tf.name or path.stem, g, list(tf.hosts))


def _apply_overrides(topo: Topology, overrides: list[LinkSpec], where: str) -> Topology:
    if not overrides:
        return topo
    g = topo.graph
    for k, ln in enumerate(overrides):
        u, v = ln.between
        if not g.has_edge(u, v):
            raise ConfigError(f"{where}.{k}.between: no link between {u!r} and {v!r}")
        if ln.bandwidth is not None:
            g.edges[u, v]["bandwidth"] = _check_bw(
                parse_bandwidth(ln.bandwidth, f"{where}.{k}.bandwidth"),
                f"{where}.{k}.bandwidth")
        if ln.latency is not None:
            g.edges[u, v]["latency"] = _check_lat(
                parse_duration(ln.latency, f"{where}.{k}.latency"), f"{where}.{k}.latency")
    return Topology(topo.name, g, topo.hosts, groups=topo.groups, params=topo.params,
                    uniform=False, overridden=True, router=topo.router_factory)


_UNIT_PARAMS = {"bandwidth": parse_bandwidth, "latency": parse_duration}


def _call_generator(name: str, hosts: int, bandwidth: float, latency: float,
                    params: dict[str, Any], where: str) -> Topology:
    gen = TOPOLOGIES.get(name)
    sig = inspect.signature(gen)
    allowed = [p for p in sig.parameters if p not in ("hosts", "bandwidth", "latency")]
    kwargs = {}
    for key, value in params.items():
        if key not in allowed:
            raise ConfigError(
                f"{where}.{key}: unknown parameter of topology {name!r}; accepted: "
                f"{', '.join(allowed) or '(none)'}")
        for suffix, parse in _UNIT_PARAMS.items():
            if key.endswith(suffix):
                value = parse(value, f"{where}.{key}")
        kwargs[key] = value
    return gen(hosts, bandwidth, latency, **kwargs)


def _with_servers(topo: Topology, extra: int, bandwidth: float, latency: float) -> Topology:
    """two_level: ``extra`` server hosts (parameter servers) on the core switch, each with a
    NIC of ``bandwidth``; they take the ranks after the workers."""
    names = [f"ps{k}" for k in range(extra)]
    t = topo._table
    table = None
    if t is not None and topo._graph is None:
        # servers become hosts: hosts first, so the switches move back by ``extra``
        n = t.n_hosts
        shift = np.where(np.arange(len(t.nodes)) >= n, extra, 0)
        core = t.nodes.index("core") + extra
        table = LinkTable(t.nodes[:n] + names + t.nodes[n:], n + extra,
                          np.concatenate([t.u + shift[t.u], n + np.arange(extra)]),
                          np.concatenate([t.v + shift[t.v], np.full(extra, core)]),
                          np.concatenate([t.bandwidth, np.full(extra, float(bandwidth))]),
                          np.concatenate([t.latency, np.full(extra, latency / 2)]))
        return Topology(topo.name, hosts=topo.hosts + names, table=table, groups=topo.groups,
                        params=topo.params, overridden=topo.overridden,
                        router=topo.router_factory)
    g = topo.graph
    for h in names:
        g.add_node(h, kind="host")
        _add_link(g, h, "core", bandwidth, latency / 2)
    return Topology(topo.name, g, topo.hosts + names, groups=topo.groups, params=topo.params,
                    uniform=False, overridden=topo.overridden, router=topo.router_factory)


def build_topology(name: str, hosts: int, bandwidth: float, latency: float,
                   params: dict[str, Any] | None = None, extra_hosts: int = 0) -> Topology:
    """Build topology ``name`` (a generator, a file under ``topologies/`` or a YAML path) for
    ``hosts`` workers plus ``extra_hosts`` servers, with the given host-link ``bandwidth``
    (bytes/s) and ``latency`` (s). Raises ConfigError / TopologyError / UnknownNameError.
    On ``two_level`` the servers hang off the core switch (the nodes hold the workers);
    elsewhere they are the hosts after the workers."""
    params = dict(params or {})
    if name == "two_level" and extra_hosts:
        topo = build_topology(name, hosts, bandwidth, latency, params)
        return _with_servers(topo, extra_hosts, bandwidth, latency)
    hosts += extra_hosts
    _check_bw(bandwidth, "bandwidth")
    _check_lat(latency, "latency")
    if hosts < 1:
        raise ConfigError(f"workers: must be >= 1, got {hosts}")
    overrides = [LinkSpec.model_validate(o) if not isinstance(o, LinkSpec) else o
                 for o in params.pop("link_overrides", [])]
    if name == "file":
        if "path" not in params:
            raise ConfigError("topology.params.path: the file topology needs a path")
        path = Path(params.pop("path"))
    elif name in TOPOLOGIES:
        topo = _call_generator(name, hosts, bandwidth, latency, params, "topology.params")
        path = None
    else:
        path = resolve_topology_path(name)
        if path is None:
            TOPOLOGIES.get(name)  # raises UnknownNameError with the choices
    if path is not None:
        tf = _read_file(path)
        where = f"topology file {str(path)!r}"
        if tf.generator is not None:
            if tf.hosts or tf.links or tf.switches:
                raise ConfigError(f"{where}: give either generator or hosts/links, not both")
            merged = {**tf.params, **params}
            topo = _call_generator(tf.generator, hosts, bandwidth, latency, merged,
                                   f"{where}: params")
        else:
            if params:
                raise ConfigError(f"{where}: an explicit topology takes no params, got "
                                  f"{', '.join(params)}")
            topo = _explicit(tf, path, bandwidth, latency)
        if tf.name:
            topo.name = tf.name
        topo = _apply_overrides(topo, tf.link_overrides, f"{where}: link_overrides")
    topo = _apply_overrides(topo, overrides, "topology.params.link_overrides")
    g = topo._graph  # a lazily built generator graph is connected by construction
    if g is not None and g.number_of_nodes() > 1 and not nx.is_connected(g):
        parts = sorted(sorted(c)[0] for c in nx.connected_components(g))
        raise TopologyError(
            f"topology {topo.name!r}: graph is disconnected ({len(parts)} parts, e.g. "
            f"around {', '.join(parts[:4])}); every host must reach every other")
    if topo.n_hosts < hosts:
        raise TopologyError(
            f"workers: {hosts} hosts needed but topology {topo.name!r} has "
            f"{topo.n_hosts}")
    return topo
