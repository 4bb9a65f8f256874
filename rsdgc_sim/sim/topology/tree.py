"""``tree``: a k-ary tree of switches, hosts at the leaves."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..routing import TreeRouter
from .graph import Topology, make_table, node_names
from .guards import TopologySize, ceil_div
from .params import MAX_COUNT, TopologyParams, register_generator


class TreeParams(TopologyParams):
    #: hosts per leaf switch, and children per switch above
    arity: int = Field(default=4, ge=2, le=MAX_COUNT)

    def size(self, hosts: int) -> TopologySize:
        switches, width = 0, hosts
        while True:
            width = ceil_div(width, self.arity)
            switches += width
            if width <= 1:
                break
        return TopologySize(hosts + switches, hosts + switches - 1)

    def describe(self) -> str:
        return f" with arity={self.arity}"


@register_generator("tree", "k-ary tree of switches, hosts at the leaves", TreeParams)
def tree(hosts: int, bandwidth: float, latency: float, arity: int = 4) -> Topology:
    """Leaf switches hold ``arity`` hosts each; switches are grouped ``arity`` at a time
    under parents until one root remains. All links ``bandwidth``, ``latency``/2."""
    nodes = node_names("h", hosts)
    width = -(-hosts // arity)
    base = len(nodes)
    nodes += node_names("s0_", width)
    parts = [(np.arange(hosts), base + np.arange(hosts) // arity, bandwidth, latency / 2)]
    depth = 0
    while width > 1:
        depth += 1
        up = -(-width // arity)
        pbase = len(nodes)
        nodes += node_names(f"s{depth}_", up)
        child = np.arange(width)
        parts.append((base + child, pbase + child // arity, bandwidth, latency / 2))
        base, width = pbase, up
    return Topology("tree", table=make_table(nodes, hosts, parts), params={"arity": arity},
                    router=lambda t: TreeRouter(t, arity))
