"""Building a topology by name: a generator, a file under ``topologies/`` or a YAML path
(:func:`build_topology`, :func:`resolve_topology_path`), with the parameter and size
checks first and the per-link overrides after."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, TopologyError, UnknownNameError
from ...strict import excerpt
from .file import explicit_topology, file_label, read_file
from .graph import LinkTable, Topology
from .guards import TopologySize, check_bw, check_count, check_lat, check_size
from .params import (
    TOPOLOGIES,
    LinkSpec,
    TopologyParams,
    check_topology_params,
    validate_params,
)
from .two_level import with_servers

#: the bundled topology files, shipped inside the package (the repository's ``topologies/``
#: is a link to this folder)
TOPOLOGY_DIR = Path(__file__).resolve().parents[2] / "data" / "topologies"
#: where topology names are looked up as files
TOPOLOGY_DIRS = (TOPOLOGY_DIR,)


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


def _generate(name: str, p: TopologyParams, hosts: int, extra_hosts: int, bandwidth: float,
              latency: float, overrides: list[LinkSpec], where: str) -> Topology:
    """Generator ``name`` with checked parameters ``p``, after the size check."""
    total = hosts + extra_hosts
    size = p.size(total)
    if overrides or not p.lazy:
        check_size(name, total, size, p.describe(), p.smaller(total))
    gen = TOPOLOGIES.get(name)
    kwargs = p.generator_kwargs()
    if name == "two_level" and extra_hosts:
        topo = with_servers(gen(hosts, bandwidth, latency, **kwargs), extra_hosts,
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
    hosts = check_count(hosts, "workers", 1)
    extra_hosts = check_count(extra_hosts, "extra_hosts", 0)
    check_bw(bandwidth, "bandwidth")
    check_lat(latency, "latency")
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
    tf = read_file(path)
    where = file_label(path)
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
        p = validate_params(TopologyParams, tf.name or path.stem, user, where)  # link_overrides
        if len(tf.hosts) < total:
            raise TopologyError(f"workers: {total} hosts needed but topology "
                                f"{tf.name or path.stem!r} has {len(tf.hosts)}")
        size = TopologySize(len(tf.hosts) + len(tf.switches), len(tf.links))
        check_size(tf.name or path.stem, total, size, "", "use a smaller file", graph=True)
        topo = _apply_overrides(explicit_topology(tf, path, bandwidth, latency),
                                [*tf.link_overrides, *p.link_overrides],
                                f"{where}: link_overrides")
    if tf.name:
        topo.name = tf.name
    return _check_built(topo, total)


def _check_built(topo: Topology, hosts: int) -> Topology:
    g = topo._graph  # a generated topology is connected by construction (and has no graph)
    if g is not None and g.number_of_nodes() > 1 and not _connected(g):
        import networkx as nx  # lazy: networkx (0.3 s), only for a topology file's graph

        parts = sorted(sorted(c)[0] for c in nx.connected_components(g))
        raise TopologyError(
            f"topology {topo.name!r}: graph is disconnected ({len(parts)} parts, e.g. "
            f"around {', '.join(parts[:4])}); every host must reach every other")
    if topo.n_hosts < hosts:
        raise TopologyError(
            f"workers: {hosts} hosts needed but topology {topo.name!r} has "
            f"{topo.n_hosts}")
    return topo


def _connected(g) -> bool:
    import networkx as nx  # lazy: networkx (0.3 s), only for a topology file's graph

    return nx.is_connected(g)
