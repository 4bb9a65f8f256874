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
breadth-first searches that count the shortest paths (one per destination, cached, within
a budget) on topology files.

Latency convention: on switched topologies (``switch``, ``tree``, ``fat_tree``,
``two_level``) every link has half of the given ``latency``, so two hosts on the same
switch are ``latency`` apart (on ``switch`` that is the alpha of the closed forms); on
direct networks (``ring``, ``torus2d``) ``latency`` is the latency of one link, host to
neighbouring host.

Generators are registered in :data:`TOPOLOGIES` and called as
``generator(hosts, bandwidth, latency, **params)``; each has a strict parameter class in
:data:`TOPOLOGY_PARAMS` (:class:`TreeParams`, :class:`FatTreeParams`, ...: unknown names,
wrong types, a bool for a number, non-finite values are errors naming the parameter and
listing the generator's parameters), usable without building anything
(:func:`check_topology_params`, :func:`topology_size`). :func:`build_topology` checks the
parameters, then estimates the size of what it would build from them (nodes + links, e.g.
``fat_tree`` has ``hosts + 5k^2/4`` nodes and ``hosts + k^3/2`` links) and refuses, with the
estimate and the alternative, more than :data:`MAX_TOPOLOGY_ELEMENTS` (arrays) or
:data:`MAX_GRAPH_ELEMENTS` (a networkx graph: topology files), before building
anything; ``switch`` builds its links on first use and is checked then. Parameter values
with units (``intra_bandwidth``, ``intra_latency``, a link's ``bandwidth`` and ``latency``)
are parsed and bounded as a scenario's cluster values are. Every generator accepts
per-link overrides (``link_overrides: [{between: [a, b], bandwidth: ..., latency: ...}]``),
applied to its link table.
Files under ``topologies/`` describe a topology either by generator and parameters or by
an explicit list of hosts, switches and links (:class:`TopologyFile`, read with
:func:`~rsdgc_sim.yaml_file.read_yaml_file`: duplicate keys, alias bombs, non-UTF-8 text,
FIFOs and devices are refused naming the file; so are repeated node names and links to
unknown nodes).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, ScenarioFileError, TopologyError, UnknownNameError
from ..registry import Registry
from ..strict import Strict, excerpt, validation_message
from ..units import LinkBandwidth, LinkLatency
from ..yaml_file import read_yaml_file
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
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: bandwidth must be a number of bytes/s, got {excerpt(value)}")
    if not (value > 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: bandwidth must be > 0 bytes/s, got {value!r}")
    if not math.isfinite(1.0 / value):
        raise ConfigError(f"{what}: bandwidth {value!r} bytes/s is too small (1/bandwidth "
                          f"overflows); check the units")
    return float(value)


def _check_lat(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: latency must be a number of seconds, got {excerpt(value)}")
    if not (value >= 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: latency must be >= 0 s, got {value!r}")
    return float(value)


def _check_count(value: Any, what: str, minimum: int) -> int:
    """An integer count (a bool is not one) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{what}: must be an integer, got {excerpt(value)}")
    if value < minimum:
        raise ConfigError(f"{what}: must be >= {minimum}, got {value}")
    return int(value)


def _add_link(g: nx.Graph, u: str, v: str, bw: float, lat: float) -> None:
    g.add_edge(u, v, bandwidth=bw, latency=lat)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# -- sizes -------------------------------------------------------------------------------
#: nodes + links a generated topology may have: built as arrays (about
#: :data:`BYTES_PER_ELEMENT` each, with its link index and routes), in about a second
MAX_TOPOLOGY_ELEMENTS = 2_000_000
#: nodes + links of a topology built as a networkx graph (topology files; their YAML is
#: capped well below this): several microseconds and about 1 KB each
MAX_GRAPH_ELEMENTS = 1_000_000
#: memory of one node or link of a built topology, as measured (arrays, index, routes)
BYTES_PER_ELEMENT = 500


@dataclass(frozen=True)
class TopologySize:
    """Nodes (hosts and switches) and undirected links of a topology, known before it is
    built (:meth:`TopologyParams.size`)."""

    nodes: int
    links: int

    @property
    def elements(self) -> int:
        return self.nodes + self.links

    @property
    def memory_bytes(self) -> int:
        return self.elements * BYTES_PER_ELEMENT


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_size(name: str, hosts: int, size: TopologySize, detail: str, hint: str,
                graph: bool = False) -> None:
    """Refuse, with the estimate and ``hint`` (the alternative), a topology over budget."""
    budget = MAX_GRAPH_ELEMENTS if graph else MAX_TOPOLOGY_ELEMENTS
    if size.elements <= budget:
        return
    how = " as a graph (topology files)" if graph else ""
    raise TopologyError(
        f"topology {name!r}{detail} for {hosts:,} hosts would have {size.nodes:,} nodes and "
        f"{size.links:,} links (about {size.memory_bytes / 2**30:.3g} GiB): more than the "
        f"{budget:,} nodes + links built here{how}; {hint}")


# -- parameters --------------------------------------------------------------------------
#: bound of integer parameters (arity, k, gpus_per_node, rows, cols)
MAX_COUNT = 1_000_000_000


#: the default of ``two_level``'s node-internal network (an NVLink-class interconnect)
DEFAULT_INTRA_BANDWIDTH = 150e9
DEFAULT_INTRA_LATENCY = 1e-6


class LinkSpec(Strict):
    """One link of a topology file, or an override of a built topology's link: the two
    nodes it joins, and its bandwidth and latency (None: the default)."""

    between: tuple[str, str]
    bandwidth: LinkBandwidth | None = None
    latency: LinkLatency | None = None

    @field_validator("between", mode="before")
    @classmethod
    def _two_nodes(cls, value: Any) -> Any:
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(x, str) for x in value)):
            raise ValueError(f"expected two node names [a, b], got {excerpt(value)}")
        if value[0] == value[1]:
            raise ValueError(f"a link joins two different nodes, got {excerpt(list(value))}")
        return tuple(value)


class TopologyParams(Strict):
    """Base of every generator's parameters (strict: unknown names, wrong types, bools as
    numbers, non-finite values are errors). ``link_overrides`` is accepted by all: it
    changes links of the built topology (in its link table: no graph is built)."""

    link_overrides: list[LinkSpec] = Field(default_factory=list)

    #: whether the generator builds its links only when first used (``switch``)
    lazy: ClassVar[bool] = False

    def size(self, hosts: int) -> TopologySize:
        """Nodes and links of the topology for ``hosts`` hosts (before building it)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The parameters that set the size, for messages (`` with k=1000``)."""
        return ""

    def smaller(self, hosts: int) -> str:
        """What to change when the topology is too big for ``hosts`` hosts."""
        return "use fewer workers"

    def generator_kwargs(self) -> dict[str, Any]:
        """The generator's keyword arguments (the overrides are applied after it)."""
        return {k: getattr(self, k) for k in type(self).model_fields if k != "link_overrides"}


class SwitchParams(TopologyParams):
    lazy: ClassVar[bool] = True

    def size(self, hosts: int) -> TopologySize:
        return TopologySize(hosts + 1, hosts)


class RingParams(TopologyParams):
    def size(self, hosts: int) -> TopologySize:
        return TopologySize(hosts, hosts if hosts > 2 else hosts - 1)


class TreeParams(TopologyParams):
    #: hosts per leaf switch, and children per switch above
    arity: int = Field(default=4, ge=2, le=MAX_COUNT)

    def size(self, hosts: int) -> TopologySize:
        switches, width = 0, hosts
        while True:
            width = _ceil_div(width, self.arity)
            switches += width
            if width <= 1:
                break
        return TopologySize(hosts + switches, hosts + switches - 1)

    def describe(self) -> str:
        return f" with arity={self.arity}"


class FatTreeParams(TopologyParams):
    #: pods (even): k/2 edge and k/2 aggregation switches each, (k/2)^2 cores, k^3/4 hosts
    k: int = Field(default=4, ge=2, le=MAX_COUNT)
    #: host link bandwidth / bandwidth of the links above the edge switches (1: full
    #: bisection)
    oversubscription: float = Field(default=1.0, ge=1, le=1e6)

    @field_validator("k")
    @classmethod
    def _even(cls, k: int) -> int:
        if k % 2:
            raise ValueError(f"must be an even number >= 2, got {k}")
        return k

    def size(self, hosts: int) -> TopologySize:
        k = self.k
        return TopologySize(hosts + k * k // 4 + k * k, hosts + k**3 // 2)

    def describe(self) -> str:
        return f" with k={self.k}"

    def smaller(self, hosts: int) -> str:
        k = fat_tree_k_for(hosts)
        fit = FatTreeParams.model_construct(k=k).size(hosts).elements <= MAX_TOPOLOGY_ELEMENTS
        if k >= self.k or not fit:
            return "use fewer workers"
        return f"use a smaller k (k={k} holds {k**3 // 4:,} hosts)"


def fat_tree_k_for(hosts: int) -> int:
    """The smallest (even) k whose fat tree holds ``hosts`` host ports (k^3/4 >= hosts)."""
    m = 1  # k = 2m, k^3/4 = 2m^3: double, then bisect
    while 2 * m**3 < hosts:
        m *= 2
    lo = m // 2
    while m - lo > 1:
        mid = (lo + m) // 2
        lo, m = (mid, m) if 2 * mid**3 < hosts else (lo, mid)
    return 2 * m


class TwoLevelParams(TopologyParams):
    #: GPUs (hosts) per node
    gpus_per_node: int = Field(default=8, ge=1, le=MAX_COUNT)
    #: bandwidth of each GPU's link inside a node
    intra_bandwidth: LinkBandwidth = DEFAULT_INTRA_BANDWIDTH
    #: GPU to GPU latency inside a node
    intra_latency: LinkLatency = DEFAULT_INTRA_LATENCY
    #: let the last node be partial
    allow_partial: bool = False

    def size(self, hosts: int) -> TopologySize:
        nodes = _ceil_div(hosts, self.gpus_per_node)
        return TopologySize(hosts + 1 + nodes, hosts + nodes)


class Torus2dParams(TopologyParams):
    #: rows x cols = hosts; unset: the most square factoring
    rows: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    cols: int | None = Field(default=None, ge=1, le=MAX_COUNT)

    def size(self, hosts: int) -> TopologySize:
        return TopologySize(hosts, 2 * hosts)


class FileParams(TopologyParams):
    """``file``: the topology file at ``path``."""

    path: str


#: each generator's parameters, by topology name (the names of :data:`TOPOLOGIES`)
TOPOLOGY_PARAMS: Registry[type[TopologyParams]] = Registry("topology")


def _generator(name: str, help: str, params: type[TopologyParams]):
    """Register a generator and its parameter class under ``name``."""
    TOPOLOGY_PARAMS.add(name, params)
    return TOPOLOGIES.register(name, help)


def param_names(cls: type[TopologyParams]) -> list[str]:
    """A parameter class's fields, the generator's own first."""
    own = [f for f in cls.model_fields if f != "link_overrides"]
    return [*own, "link_overrides"]


def check_topology_params(name: str, params: Mapping[str, Any] | None,
                          where: str = "") -> TopologyParams:
    """The parameters of generator ``name`` checked by its class (nothing is built).

    Raises :class:`~rsdgc_sim.errors.UnknownNameError` listing the generators for an
    unknown name, :class:`~rsdgc_sim.errors.ConfigError` naming the bad parameter and
    listing the generator's parameters for a bad one. ``where`` goes before the message."""
    cls = TOPOLOGY_PARAMS.get(name) if name != "file" else FileParams
    return _validate(cls, name, params, where)


def _validate(cls: type[TopologyParams], name: str, params: Any, where: str) -> TopologyParams:
    prefix = f"{where}: " if where else ""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{prefix}topology {name!r}: parameters must be a mapping, got "
                          f"{excerpt(params)}")
    try:
        return cls.model_validate(dict(params))
    except ValidationError as e:
        unknown = [excerpt(err["loc"][0]) for err in e.errors()
                   if err["type"] == "extra_forbidden" and len(err["loc"]) == 1]
        text = (f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                if unknown else validation_message(e, cls))
        raise ConfigError(f"{prefix}topology {name!r}: {text}; parameters: "
                          f"{', '.join(param_names(cls))}") from None


def topology_size(name: str, hosts: int, params: Mapping[str, Any] | None = None,
                  extra_hosts: int = 0) -> TopologySize:
    """Nodes and links generator ``name`` would build for ``hosts + extra_hosts`` hosts
    (parameters checked, nothing built)."""
    p = check_topology_params(name, params)
    if isinstance(p, FileParams):
        raise ConfigError("topology 'file': the size of a file is known once it is read")
    return p.size(hosts + extra_hosts)


# -- generators --------------------------------------------------------------------------
@_generator("switch", "every host on one non-blocking switch (a star)", SwitchParams)
def switch(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Every host has one full-duplex link of ``bandwidth`` to one non-blocking switch;
    ``latency`` is host to host (each link has half). Its links are built on first use
    (closed forms need none of them), with the size check then."""
    def table() -> LinkTable:
        size = SwitchParams().size(hosts)
        _check_size("switch", hosts, size, "", "use fewer workers")
        idx = np.arange(hosts)
        return _table(_names("h", hosts) + ["sw"], hosts,
                      [(idx, np.full(hosts, hosts), bandwidth, latency / 2)])

    return Topology("switch", table=table, n_hosts=hosts, uniform=True, alpha=latency,
                    bandwidth=bandwidth, router=StarRouter)


@_generator("ring", "hosts in a physical ring (each host linked to two neighbours)", RingParams)
def ring(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Host ``i`` is linked to host ``i+1 mod n``; ``latency`` is per link."""
    idx = np.arange(hosts if hosts > 2 else hosts - 1)
    table = _table(_names("h", hosts), hosts, [(idx, (idx + 1) % hosts, bandwidth, latency)])
    return Topology("ring", table=table, router=lambda t: TorusRouter(t, 1, hosts))


@_generator("tree", "k-ary tree of switches, hosts at the leaves", TreeParams)
def tree(hosts: int, bandwidth: float, latency: float, arity: int = 4) -> Topology:
    """Leaf switches hold ``arity`` hosts each; switches are grouped ``arity`` at a time
    under parents until one root remains. All links ``bandwidth``, ``latency``/2."""
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


@_generator("fat_tree", "k-ary fat tree (k pods), with an oversubscription ratio", FatTreeParams)
def fat_tree(hosts: int, bandwidth: float, latency: float, k: int = 4,
             oversubscription: float = 1.0) -> Topology:
    """The classic k-ary fat tree: k pods of k/2 edge and k/2 aggregation switches,
    (k/2)^2 core switches, k^3/4 host ports. Host links have ``bandwidth``; edge-aggregation
    and aggregation-core links ``bandwidth / oversubscription`` (1 = full bisection)."""
    cap = k**3 // 4
    if hosts > cap:
        raise TopologyError(
            f"workers: {hosts} hosts do not fit a k={k} fat tree ({cap} host ports); "
            f"raise topology.params.k")
    half = k // 2
    up_bw = _check_bw(bandwidth / oversubscription, "topology.params.oversubscription")
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


@_generator("two_level", "nodes x gpus_per_node: fast intra-node links, one NIC per node",
            TwoLevelParams)
def two_level(hosts: int, bandwidth: float, latency: float, gpus_per_node: int = 8,
              intra_bandwidth: float = DEFAULT_INTRA_BANDWIDTH,
              intra_latency: float = DEFAULT_INTRA_LATENCY,
              allow_partial: bool = False) -> Topology:
    """``ceil(hosts / gpus_per_node)`` nodes. Inside a node every GPU has a link of
    ``intra_bandwidth`` to the node's switch (GPU to GPU latency ``intra_latency``); each
    node has one NIC link of ``bandwidth`` to a core switch (node to node, NIC to NIC,
    ``latency``; GPU to GPU across nodes ``intra_latency + latency``). The hosts must fill
    whole nodes unless ``allow_partial`` is true (then the last node is partial)."""
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


@_generator("torus2d", "rows x cols 2-D torus of hosts (direct network)", Torus2dParams)
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
class TopologyFile(Strict):
    """A topology file: either ``generator`` (+ ``params``) or explicit ``hosts``,
    ``switches`` and ``links``; ``link_overrides`` apply to either. Node names are unique
    (a host is not also a switch), links join known nodes, at most one link per pair."""

    name: str = ""
    description: str = ""
    generator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    hosts: list[str] = Field(default_factory=list)
    switches: list[str] = Field(default_factory=list)
    links: list[LinkSpec] = Field(default_factory=list)
    link_overrides: list[LinkSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TopologyFile:
        if self.generator is not None:
            if self.hosts or self.switches or self.links:
                raise ValueError("give either generator (with params) or hosts, switches "
                                 "and links, not both")
            return self
        if self.params:
            raise ValueError("params: only a generator takes params (the file has no "
                             "generator)")
        if not self.hosts:
            raise ValueError("hosts: at least one host needed (or a generator)")
        kind: dict[str, str] = {}
        for field, names in (("hosts", self.hosts), ("switches", self.switches)):
            for k, x in enumerate(names):
                if x in kind:
                    again = "given twice" if kind[x] == field else f"also in {kind[x]}"
                    raise ValueError(f"{field}[{k}]: {excerpt(x)} is {again}")
                kind[x] = field
        seen: dict[frozenset, int] = {}
        for k, ln in enumerate(self.links):
            for x in ln.between:
                if x not in kind:
                    raise ValueError(f"links[{k}].between: unknown node {excerpt(x)} (not in "
                                     f"hosts or switches)")
            pair = frozenset(ln.between)
            if pair in seen:
                a, b = ln.between
                raise ValueError(f"links[{k}]: the link between {excerpt(a)} and {excerpt(b)} "
                                 f"is given twice (links[{seen[pair]}])")
            seen[pair] = k
        return self


def _file_label(path: Path) -> str:
    text = str(path)
    return f"topology file {text if len(text) <= 200 else text[:197] + '...'}"


#: checked topology files by (path, device, inode, size, modification time): a file is
#: read once however many topologies are built from it (a large file takes seconds)
_FILES: dict[tuple, TopologyFile] = {}
_FILES_KEPT = 16


def _read_file(path: Path) -> TopologyFile:
    """A topology file read with :func:`~rsdgc_sim.yaml_file.read_yaml_file` and checked;
    every problem is one error naming the file."""
    try:
        st = path.stat()
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except (OSError, ValueError):  # read_yaml_file says why
        key = None
    if key is not None and key in _FILES:
        return _FILES[key]
    tf = _parse_file(path)
    if key is not None:
        if len(_FILES) >= _FILES_KEPT:
            del _FILES[next(iter(_FILES))]
        _FILES[key] = tf
    return tf


def _parse_file(path: Path) -> TopologyFile:
    where = _file_label(path)
    try:
        data = read_yaml_file(path)
    except ScenarioFileError as e:
        raise ScenarioFileError(f"topology file {e}") from None
    if not isinstance(data, dict):
        raise ScenarioFileError(f"{where}: expected a mapping at the top, got "
                                f"{type(data).__name__}")
    try:
        return TopologyFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{where}: {validation_message(e, TopologyFile)}") from None


def resolve_topology_path(name: str) -> Path | None:
    """A topology name that refers to a file: a path (ending in .yaml/.yml, or with a
    slash), or the stem of a file under ``topologies/``. None when it is not a file
    name."""
    if not isinstance(name, str):
        return None
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in name:
        return p
    if "\0" in name or len(name) > 255:
        return None
    for folder in TOPOLOGY_DIRS:
        cand = folder / f"{name}.yaml"
        try:
            if cand.is_file():
                return cand
        except (OSError, ValueError):
            continue
    return None


def _explicit(tf: TopologyFile, path: Path, bandwidth: float, latency: float) -> Topology:
    g = nx.Graph()
    g.add_nodes_from(tf.hosts, kind="host")
    g.add_nodes_from(tf.switches, kind="switch")
    for ln in tf.links:
        bw = bandwidth if ln.bandwidth is None else ln.bandwidth
        lat = latency / 2 if ln.latency is None else ln.latency
        _add_link(g, *ln.between, bw, lat)
    return Topology(tf.name or path.stem, g, list(tf.hosts))


def _apply_overrides(topo: Topology, overrides: list[LinkSpec], where: str) -> Topology:
    """``topo`` with the overridden links changed (both directions). A generated topology
    stays a link table (no graph is built: one sort of its links, then a search per
    override); a graph (files) is changed in place."""
    if not overrides:
        return topo
    t = topo._table if topo._graph is None else None
    if t is None:
        g = topo.graph
        for k, ln in enumerate(overrides):
            u, v = ln.between
            if not g.has_edge(u, v):
                raise ConfigError(f"{where}[{k}].between: no link between {excerpt(u)} and "
                                  f"{excerpt(v)}")
            if ln.bandwidth is not None:
                g.edges[u, v]["bandwidth"] = ln.bandwidth
            if ln.latency is not None:
                g.edges[u, v]["latency"] = ln.latency
        return Topology(topo.name, g, topo.hosts, groups=topo.groups, params=topo.params,
                        uniform=False, overridden=True, router=topo.router_factory)
    index = {x: k for k, x in enumerate(t.nodes)}
    n = len(t.nodes)
    keys = np.minimum(t.u, t.v) * n + np.maximum(t.u, t.v)
    order = np.argsort(keys, kind="stable")
    bw, lat = t.bandwidth.copy(), t.latency.copy()
    for k, ln in enumerate(overrides):
        u, v = ln.between
        a, b = index.get(u), index.get(v)
        e = -1
        if a is not None and b is not None:
            key = min(a, b) * n + max(a, b)
            pos = int(np.searchsorted(keys, key, sorter=order))
            if pos < len(order) and keys[order[pos]] == key:
                e = int(order[pos])
        if e < 0:
            raise ConfigError(f"{where}[{k}].between: no link between {excerpt(u)} and "
                              f"{excerpt(v)}")
        if ln.bandwidth is not None:
            bw[e] = ln.bandwidth
        if ln.latency is not None:
            lat[e] = ln.latency
    table = LinkTable(t.nodes, t.n_hosts, t.u, t.v, bw, lat)
    return Topology(topo.name, table=table, groups=topo.groups, params=topo.params,
                    uniform=False, overridden=True, router=topo.router_factory)


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


def _generate(name: str, p: TopologyParams, hosts: int, extra_hosts: int, bandwidth: float,
              latency: float, overrides: list[LinkSpec], where: str) -> Topology:
    """Generator ``name`` with checked parameters ``p``, after the size check."""
    total = hosts + extra_hosts
    size = p.size(total)
    if overrides or not p.lazy:
        _check_size(name, total, size, p.describe(), p.smaller(total))
    gen = TOPOLOGIES.get(name)
    kwargs = p.generator_kwargs()
    if name == "two_level" and extra_hosts:
        topo = _with_servers(gen(hosts, bandwidth, latency, **kwargs), extra_hosts,
                             bandwidth, latency)
    else:
        topo = gen(total, bandwidth, latency, **kwargs)
    return _apply_overrides(topo, overrides, where)


def build_topology(name: str, hosts: int, bandwidth: float, latency: float,
                   params: Mapping[str, Any] | None = None, extra_hosts: int = 0) -> Topology:
    """Build topology ``name`` (a generator, a file under ``topologies/`` or a YAML path) for
    ``hosts`` workers plus ``extra_hosts`` servers, with the given host-link ``bandwidth``
    (bytes/s) and ``latency`` (s). On ``two_level`` the servers hang off the core switch
    (the nodes hold the workers); elsewhere they are the hosts after the workers.

    Parameters are checked by the generator's class in :data:`TOPOLOGY_PARAMS`, and the
    size (nodes + links) is estimated from them before anything is built: over
    :data:`MAX_TOPOLOGY_ELEMENTS` (:data:`MAX_GRAPH_ELEMENTS` for a graph) is refused, with
    the estimate and the alternative. Raises ConfigError / TopologyError /
    UnknownNameError / ScenarioFileError, each a one-line message."""
    hosts = _check_count(hosts, "workers", 1)
    extra_hosts = _check_count(extra_hosts, "extra_hosts", 0)
    _check_bw(bandwidth, "bandwidth")
    _check_lat(latency, "latency")
    if not isinstance(name, str):
        raise ConfigError(f"topology: expected a name, got {excerpt(name)}")
    total = hosts + extra_hosts
    if name == "file":
        fp = check_topology_params("file", params)
        path: Path | None = Path(fp.path)
        user = {"link_overrides": params["link_overrides"]} if "link_overrides" in params else {}
    elif name in TOPOLOGIES:
        p = check_topology_params(name, params)
        return _check_built(_generate(name, p, hosts, extra_hosts, bandwidth, latency,
                                      p.link_overrides, "topology.params.link_overrides"),
                            total)
    else:
        path = resolve_topology_path(name)
        if path is None:
            shown = name if len(name) <= 60 else name[:57] + "..."
            raise UnknownNameError("topology", shown, TOPOLOGIES.names())
        user = params
    tf = _read_file(path)
    where = _file_label(path)
    if tf.generator is not None:
        if tf.generator not in TOPOLOGIES:
            raise UnknownNameError("topology", tf.generator, TOPOLOGIES.names()).with_context(
                f"{where}: generator")
        p = check_topology_params(tf.generator, {**tf.params, **(user or {})},
                                  f"{where}: params")
        overrides = [*tf.link_overrides, *p.link_overrides]
        try:
            topo = _generate(tf.generator, p, hosts, extra_hosts, bandwidth, latency,
                             overrides, f"{where}: link_overrides")
        except TopologyError as e:  # sizes, hosts that do not fit: say which file
            raise e.with_context(where) from None
    else:
        p = _validate(TopologyParams, tf.name or path.stem, user, where)  # link_overrides
        if len(tf.hosts) < total:
            raise TopologyError(f"workers: {total} hosts needed but topology "
                                f"{tf.name or path.stem!r} has {len(tf.hosts)}")
        size = TopologySize(len(tf.hosts) + len(tf.switches), len(tf.links))
        _check_size(tf.name or path.stem, total, size, "", "use a smaller file", graph=True)
        topo = _apply_overrides(_explicit(tf, path, bandwidth, latency),
                                [*tf.link_overrides, *p.link_overrides],
                                f"{where}: link_overrides")
    if tf.name:
        topo.name = tf.name
    return _check_built(topo, total)


def _check_built(topo: Topology, hosts: int) -> Topology:
    g = topo._graph  # a generated topology is connected by construction
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
