"""``two_level``: nodes of ``gpus_per_node`` GPUs with fast intra-node links, one NIC
per node to a core switch; parameter servers (:func:`with_servers`) hang off the core."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ...errors import TopologyError
from ...units import LinkBandwidth, LinkLatency
from ..routing import TwoLevelRouter
from .graph import LinkTable, Topology, add_link, make_table, node_names
from .guards import TopologySize, ceil_div
from .params import MAX_COUNT, TopologyParams, register_generator

#: the default of ``two_level``'s node-internal network (an NVLink-class interconnect)
DEFAULT_INTRA_BANDWIDTH = 150e9
DEFAULT_INTRA_LATENCY = 1e-6


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
        nodes = ceil_div(hosts, self.gpus_per_node)
        return TopologySize(hosts + 1 + nodes, hosts + nodes)


@register_generator("two_level",
                    "nodes x gpus_per_node: fast intra-node links, one NIC per node",
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
    names = node_names("g", hosts) + ["core"] + node_names("n", nodes)
    core = hosts
    g = np.arange(hosts)
    x = np.arange(nodes)
    table = make_table(names, hosts, [
        (core + 1 + x, np.full(nodes, core), bandwidth, latency / 2),
        (g, core + 1 + g // gpus_per_node, intra_bandwidth, intra_latency / 2),
    ])
    groups = [list(range(n * gpus_per_node, min(hosts, (n + 1) * gpus_per_node)))
              for n in range(nodes)]
    return Topology("two_level", table=table, groups=groups, params={
        "gpus_per_node": gpus_per_node, "intra_bandwidth": intra_bandwidth,
        "intra_latency": intra_latency, "nic_bandwidth": bandwidth, "nic_latency": latency},
        router=TwoLevelRouter)


def with_servers(topo: Topology, extra: int, bandwidth: float, latency: float) -> Topology:
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
        add_link(g, h, "core", bandwidth, latency / 2)
    return Topology(topo.name, g, topo.hosts + names, groups=topo.groups, params=topo.params,
                    uniform=False, overridden=topo.overridden, router=topo.router_factory)
