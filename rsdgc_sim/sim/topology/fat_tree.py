"""``fat_tree``: the k-ary fat tree (k pods), with an oversubscription ratio."""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from ...errors import TopologyError
from ..routing import FatTreeRouter
from .graph import Topology, make_table, node_names
from .guards import MAX_TOPOLOGY_ELEMENTS, TopologySize, check_bw
from .params import MAX_COUNT, TopologyParams, register_generator


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


@register_generator("fat_tree", "k-ary fat tree (k pods), with an oversubscription ratio",
                    FatTreeParams)
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
    up_bw = check_bw(bandwidth / oversubscription, "topology.params.oversubscription")
    nodes = node_names("h", hosts) + node_names("c", half * half)
    core0 = hosts
    agg0 = len(nodes)  # a{pod}_{i} at agg0 + pod*k + i, e{pod}_{i} at agg0 + pod*k + half + i
    for pod in range(k):
        nodes += node_names(f"a{pod}_", half) + node_names(f"e{pod}_", half)
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
    return Topology("fat_tree", table=make_table(nodes, hosts, parts),
                    params={"k": k, "oversubscription": oversubscription},
                    router=lambda t: FatTreeRouter(t, k))
