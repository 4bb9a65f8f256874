"""Routers of switched networks (``switch``, ``tree``, ``fat_tree``, ``two_level``): hosts
hang off switches and a route is a handful of links, computed in O(1) per pair from the
structure and for a whole pattern at once with numpy."""

from __future__ import annotations

import numpy as np

from .base import LinkArrayRouter, masked
from .ecmp import ecmp_hash_array


class StarRouter(LinkArrayRouter):
    """``switch``: host -> switch -> host."""

    def __init__(self, topo, switch: str = "sw"):
        super().__init__(topo)
        h = self._ids(topo.hosts)
        self.up, self.down = self._up_down(h, np.full(len(h), self._ids([switch])[0]))

    def links(self, src, dst):
        other = src != dst
        return np.stack([masked(other, self.up[src]), masked(other, self.down[dst])], axis=0)


class TreeRouter(LinkArrayRouter):
    """``tree``: up from the leaf switch to the lowest common ancestor, then down (the one
    shortest path of a tree)."""

    def __init__(self, topo, arity: int):
        super().__init__(topo)
        self.arity = arity
        h = self._ids(topo.hosts)
        width = -(-len(h) // arity)
        level = self._ids([f"s0_{x}" for x in range(width)])
        self.up, self.down = self._up_down(h, level[np.arange(len(h)) // arity])
        self.sw_up, self.sw_down = [], []
        depth = 0
        while width > 1:
            depth += 1
            width = -(-width // arity)
            parent = self._ids([f"s{depth}_{x}" for x in range(width)])
            child_parent = parent[np.arange(len(level)) // arity]
            self.sw_up.append(self.topo.link_ids(level, child_parent))
            self.sw_down.append(self.topo.link_ids(child_parent, level))
            level = parent

    def links(self, src, dst):
        other = src != dst
        a, b = src // self.arity, dst // self.arity
        ups, downs = [], []
        for lvl in range(len(self.sw_up)):
            cross = a != b
            if not cross.any():  # no pair climbs this high (nor higher)
                break
            ups.append(masked(cross, self.sw_up[lvl][a]))
            downs.append(masked(cross, self.sw_down[lvl][b]))
            a, b = a // self.arity, b // self.arity
        cols = [masked(other, self.up[src]), *ups, *reversed(downs),
                masked(other, self.down[dst])]
        return np.stack(cols, axis=0)


class FatTreeRouter(LinkArrayRouter):
    """``fat_tree``: within an edge switch directly; within a pod over aggregation switch
    ``x``; across pods over aggregation ``x`` and core ``x·k/2 + y``. The equal-cost paths
    in numeric node order are numbered ``x`` (within a pod) and ``x·k/2 + y`` (across
    pods), and the flow takes number ``ecmp_hash(src, dst) mod count``."""

    def __init__(self, topo, k: int):
        super().__init__(topo)
        half = self.half = k // 2
        h = self._ids(topo.hosts)
        pods = -(-len(h) // (half * half))
        ids = self._ids
        edge = ids([f"e{pod}_{e}" for pod in range(pods) for e in range(half)])
        agg = ids([f"a{pod}_{x}" for pod in range(pods) for x in range(half)])
        core = ids([f"c{j}" for j in range(half * half)]).reshape(half, half)
        self.up, self.down = self._up_down(h, edge[np.arange(len(h)) // half])
        link = self.topo.link_ids
        # edge (pod, e) <-> aggregation (pod, x): index (pod*half + e)*half + x
        e_u = np.repeat(edge, half)
        e_v = agg.reshape(pods, half)[np.arange(pods * half) // half].ravel()
        self.e_up, self.e_down = link(e_u, e_v), link(e_v, e_u)
        # aggregation (pod, x) <-> core x*half + y: index (pod*half + x)*half + y
        a_u = np.repeat(agg, half)
        a_v = core[np.arange(pods * half) % half].ravel()
        self.a_up, self.c_down = link(a_u, a_v), link(a_v, a_u)

    def links(self, src, dst):
        h = self.half
        other = src != dst
        es, ed = src // h, dst // h  # global edge switch index = pod*half + e
        ps, pd = es // h, ed // h
        cross_edge = es != ed
        cross_pod = ps != pd
        n_paths = np.where(cross_pod, h * h, h)
        pick = (ecmp_hash_array(src, dst) % n_paths.astype(np.uint64)).astype(np.int64)
        x = np.where(cross_pod, pick // h, pick)
        y = pick % h
        cols = [masked(other, self.up[src])]
        if cross_edge.any():
            cols.append(masked(cross_edge, self.e_up[es * h + x]))
            if cross_pod.any():
                cols.append(masked(cross_pod, self.a_up[(ps * h + x) * h + y]))
                cols.append(masked(cross_pod, self.c_down[(pd * h + x) * h + y]))
            cols.append(masked(cross_edge, self.e_down[ed * h + x]))
        cols.append(masked(other, self.down[dst]))
        return np.stack(cols, axis=0)


class TwoLevelRouter(LinkArrayRouter):
    """``two_level``: GPU -> node switch -> GPU inside a node; GPU -> node switch -> core ->
    node switch -> GPU across nodes. Hosts on the core switch (parameter servers) skip
    their own node's hop."""

    def __init__(self, topo):
        super().__init__(topo)
        h = self._ids(topo.hosts)
        node_of = np.full(len(h), -1, dtype=np.int64)
        for x, grp in enumerate(topo.groups):
            node_of[grp] = x
        self.node_of = node_of
        core = self._ids(["core"])[0]
        nodes = self._ids([f"n{x}" for x in range(len(topo.groups))])
        attach = np.where(node_of >= 0, nodes[np.maximum(node_of, 0)], core)
        self.up, self.down = self._up_down(h, attach)
        self.nic_up, self.nic_down = self._up_down(nodes, np.full(len(nodes), core))

    def links(self, src, dst):
        other = src != dst
        a, b = self.node_of[src], self.node_of[dst]
        cross = a != b
        return np.stack([
            masked(other, self.up[src]),
            masked(cross & (a >= 0), self.nic_up[np.maximum(a, 0)]),
            masked(cross & (b >= 0), self.nic_down[np.maximum(b, 0)]),
            masked(other, self.down[dst]),
        ], axis=0)
