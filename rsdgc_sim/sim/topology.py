"""Topologies: a networkx graph of hosts and switches joined by full-duplex links.

Every undirected edge is two directed links (one per direction), each with its own
``bandwidth`` (bytes/s) and ``latency`` (s). Rank ``i`` of a collective runs on
``topology.hosts[i]``. Routing is shortest path in hops; where several shortest paths
exist between two switches, the pair of end hosts picks one deterministically
(``(src + dst) mod count``, a static ECMP hash), so the same inputs always give the same
routes.

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
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, ScenarioFileError, TopologyError, first_validation_error
from ..registry import Registry
from ..units import parse_bandwidth, parse_duration

#: name -> generator(hosts, bandwidth, latency, **params) -> Topology
TOPOLOGIES: Registry = Registry("topology")

#: the bundled topology files, shipped inside the package (the repository's ``topologies/``
#: is a link to this folder)
TOPOLOGY_DIR = Path(__file__).resolve().parents[1] / "data" / "topologies"
#: where topology names are looked up as files
TOPOLOGY_DIRS = (TOPOLOGY_DIR,)


@dataclass(frozen=True)
class Route:
    """A path between two hosts: directed link indices and the summed one-way latency."""

    links: tuple[int, ...]
    latency: float


class Topology:
    """A built topology: graph, rank -> host map, directed link table and route cache.

    The graph may be given or built lazily by ``builder`` (the ``switch`` with 65,536
    hosts is never built when closed forms answer everything)."""

    def __init__(self, name: str, graph: nx.Graph | None = None,
                 hosts: list[str] | None = None, *, builder=None, n_hosts: int | None = None,
                 groups: list[list[int]] | None = None, params: dict[str, Any] | None = None,
                 uniform: bool = False, overridden: bool = False,
                 alpha: float | None = None, bandwidth: float | None = None):
        self.name = name
        self._graph = graph
        self._builder = builder
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
        self._indexed = False
        self._routes: dict[tuple[int, int], Route] = {}
        self._sw_paths: dict[tuple[str, str], list[list[str]]] = {}
        self._attach: dict[str, str | None] = {}
        self._pattern_cache: dict = {}

    @property
    def graph(self) -> nx.Graph:
        if self._graph is None:
            self._graph = self._builder()
        return self._graph

    @property
    def hosts(self) -> list[str]:
        if self._hosts is None:
            self._hosts = [n for n, d in self.graph.nodes(data=True) if d.get("kind") == "host"]
        return self._hosts

    def _index(self) -> None:
        self.link_index: dict[tuple[str, str], int] = {}
        self._bw: list[float] = []
        self._lat: list[float] = []
        self.link_name: list[tuple[str, str]] = []
        for u, v, data in self.graph.edges(data=True):
            for a, b in ((u, v), (v, u)):
                self.link_index[(a, b)] = len(self._bw)
                self._bw.append(float(data["bandwidth"]))
                self._lat.append(float(data["latency"]))
                self.link_name.append((a, b))
        self._indexed = True

    @property
    def link_bw(self) -> list[float]:
        if not self._indexed:
            self._index()
        return self._bw

    @property
    def link_lat(self) -> list[float]:
        if not self._indexed:
            self._index()
        return self._lat

    # -- routing -------------------------------------------------------------------------
    def _attachment(self, host: str) -> str | None:
        """The single neighbour of a leaf host (its switch), else None."""
        if host not in self._attach:
            nb = list(self.graph.neighbors(host))
            leaf = len(nb) == 1 and self.graph.nodes[nb[0]].get("kind") == "switch"
            self._attach[host] = nb[0] if leaf else None
        return self._attach[host]

    def _paths(self, a: str, b: str) -> list[list[str]]:
        key = (a, b)
        if key not in self._sw_paths:
            self._sw_paths[key] = sorted(nx.all_shortest_paths(self.graph, a, b))
        return self._sw_paths[key]

    def route(self, i: int, j: int) -> Route:
        """The route from rank ``i``'s host to rank ``j``'s host."""
        key = (i, j)
        r = self._routes.get(key)
        if r is not None:
            return r
        src, dst = self.hosts[i], self.hosts[j]
        if src == dst:
            r = Route((), 0.0)
        else:
            sa, da = self._attachment(src), self._attachment(dst)
            if sa is not None and da is not None:
                paths = self._paths(sa, da)
                nodes = [src, *paths[(i + j) % len(paths)], dst]
            else:
                paths = self._paths(src, dst)
                nodes = paths[(i + j) % len(paths)]
            if not self._indexed:
                self._index()
            links = tuple(self.link_index[(u, v)] for u, v in itertools.pairwise(nodes))
            # sum in path order (deterministic); latency of a route is the sum of its links'
            r = Route(links, math.fsum(self.link_lat[k] for k in links))
        self._routes[key] = r
        return r

    def host_latency(self, i: int, j: int) -> float:
        return self.route(i, j).latency


# -- checks ------------------------------------------------------------------------------
def _check_bw(value: float, what: str) -> float:
    if not (value > 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: bandwidth must be > 0 bytes/s, got {value!r}")
    return float(value)


def _check_lat(value: float, what: str) -> float:
    if not (value >= 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: latency must be >= 0 s, got {value!r}")
    return float(value)


def _add_link(g: nx.Graph, u: str, v: str, bw: float, lat: float) -> None:
    g.add_edge(u, v, bandwidth=bw, latency=lat)


def _hosts(g: nx.Graph, n: int, prefix: str = "h") -> list[str]:
    names = [f"{prefix}{i}" for i in range(n)]
    for h in names:
        g.add_node(h, kind="host")
    return names


# -- generators --------------------------------------------------------------------------
@TOPOLOGIES.register("switch", "every host on one non-blocking switch (a star)")
def switch(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Every host has one full-duplex link of ``bandwidth`` to one non-blocking switch;
    ``latency`` is host to host (each link has half)."""
    def build() -> nx.Graph:
        g = nx.Graph()
        hs = _hosts(g, hosts)
        g.add_node("sw", kind="switch")
        for h in hs:
            _add_link(g, h, "sw", bandwidth, latency / 2)
        return g

    return Topology("switch", builder=build, n_hosts=hosts, uniform=True, alpha=latency,
                    bandwidth=bandwidth)


@TOPOLOGIES.register("ring", "hosts in a physical ring (each host linked to two neighbours)")
def ring(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Host ``i`` is linked to host ``i+1 mod n``; ``latency`` is per link."""
    g = nx.Graph()
    hs = _hosts(g, hosts)
    for i in range(hosts if hosts > 2 else hosts - 1):
        _add_link(g, hs[i], hs[(i + 1) % hosts], bandwidth, latency)
    return Topology("ring", g, hs)


@TOPOLOGIES.register("tree", "k-ary tree of switches, hosts at the leaves")
def tree(hosts: int, bandwidth: float, latency: float, arity: int = 4) -> Topology:
    """Leaf switches hold ``arity`` hosts each; switches are grouped ``arity`` at a time
    under parents until one root remains. All links ``bandwidth``, ``latency``/2."""
    if arity < 2:
        raise ConfigError(f"topology.params.arity: must be >= 2, got {arity}")
    g = nx.Graph()
    hs = _hosts(g, hosts)
    level = []
    for k in range(0, hosts, arity):
        s = f"s0_{k // arity}"
        g.add_node(s, kind="switch")
        for h in hs[k:k + arity]:
            _add_link(g, h, s, bandwidth, latency / 2)
        level.append(s)
    depth = 0
    while len(level) > 1:
        depth += 1
        up = []
        for k in range(0, len(level), arity):
            s = f"s{depth}_{k // arity}"
            g.add_node(s, kind="switch")
            for c in level[k:k + arity]:
                _add_link(g, c, s, bandwidth, latency / 2)
            up.append(s)
        level = up
    return Topology("tree", g, hs, params={"arity": arity})


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
    g = nx.Graph()
    hs = _hosts(g, hosts)
    cores = [f"c{i}" for i in range(half * half)]
    for c in cores:
        g.add_node(c, kind="switch")
    h = 0
    for pod in range(k):
        aggs = [f"a{pod}_{i}" for i in range(half)]
        edges = [f"e{pod}_{i}" for i in range(half)]
        for s in aggs + edges:
            g.add_node(s, kind="switch")
        for i, a in enumerate(aggs):
            for j in range(half):
                _add_link(g, a, cores[i * half + j], up_bw, latency / 2)
            for e in edges:
                _add_link(g, e, a, up_bw, latency / 2)
        for e in edges:
            for _ in range(half):
                if h < hosts:
                    _add_link(g, hs[h], e, bandwidth, latency / 2)
                    h += 1
    return Topology("fat_tree", g, hs, params={"k": k, "oversubscription": oversubscription})


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
    g = nx.Graph()
    hs = _hosts(g, hosts, "g")
    g.add_node("core", kind="switch")
    groups = []
    for n in range(nodes):
        s = f"n{n}"
        g.add_node(s, kind="switch")
        _add_link(g, s, "core", bandwidth, latency / 2)
        members = list(range(n * gpus_per_node, min(hosts, (n + 1) * gpus_per_node)))
        for i in members:
            _add_link(g, hs[i], s, intra_bandwidth, intra_latency / 2)
        groups.append(members)
    return Topology("two_level", g, hs, groups=groups, params={
        "gpus_per_node": gpus_per_node, "intra_bandwidth": intra_bandwidth,
        "intra_latency": intra_latency, "nic_bandwidth": bandwidth, "nic_latency": latency})


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
    g = nx.Graph()
    hs = _hosts(g, hosts)
    for r in range(rows):
        for c in range(cols):
            h = hs[r * cols + c]
            for rr, cc in (((r + 1) % rows, c), (r, (c + 1) % cols)):
                o = hs[rr * cols + cc]
                if o != h and not g.has_edge(h, o):
                    _add_link(g, h, o, bandwidth, latency)
    return Topology("torus2d", g, hs, params={"rows": rows, "cols": cols})


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
                    uniform=False, overridden=True)


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
    g = topo.graph
    names = [f"ps{k}" for k in range(extra)]
    for h in names:
        g.add_node(h, kind="host")
        _add_link(g, h, "core", bandwidth, latency / 2)
    return Topology(topo.name, g, topo.hosts + names, groups=topo.groups, params=topo.params,
                    uniform=False, overridden=topo.overridden)


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
