"""Hierarchical two-level allreduce: node reduce-scatter, cross-node allreduce, gather.

Reduce-scatter inside each node, allreduce across nodes, all-gather inside each node.

With ``N`` nodes of ``g`` ranks: a ring reduce-scatter among the ``g`` ranks of every node
(``g-1`` steps of ``n/g`` bytes), then ``g`` rings across nodes at once, one per local
index, each an allreduce of its ``n/g`` shard (``2(N-1)`` steps of ``n/(g N)`` bytes), then
a ring all-gather inside every node (``g-1`` steps of ``n/g``). On a uniform switch:

    T = 2(g-1)(alpha + n/g beta) + 2(N-1)(alpha + n/(g N) beta)

On ``two_level`` the intra-node steps use the node's links (``alpha_i``, ``beta_i``) and
the ``g`` cross-node rings share each node's NIC: per transfer
``beta_e = max(beta_i, g / nic_bandwidth)``, ``alpha_e = intra_latency + nic_latency``.
Nodes come from the topology (``two_level``) or the ``gpus_per_node`` parameter.
"""

from __future__ import annotations

import numpy as np

from ..topology.graph import Topology
from .base import (
    COLLECTIVES,
    ClosedForm,
    Collective,
    Message,
    Pairs,
    Phase,
    check_count,
    g,
    group_shape,
    need_groups,
)

#: the largest gpus_per_node
MAX_COUNT = 1_000_000_000


@COLLECTIVES.register("hierarchical", "intra-node reduce-scatter, inter-node allreduce, all-gather")
class Hierarchical(Collective):
    name = "hierarchical"
    kind = "allreduce"

    def __init__(self, gpus_per_node: int | None = None):
        if gpus_per_node is not None:
            check_count(gpus_per_node, "collective 'hierarchical': gpus_per_node", MAX_COUNT)
        self.gpus_per_node = gpus_per_node

    def check(self, p: int, msg: Message, topo: Topology | None) -> None:
        group_shape(topo, self.gpus_per_node, p)

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        groups = need_groups(topo, self.gpus_per_node, p)
        N, gg = len(groups), len(groups[0])
        n = msg.nbytes
        grid = np.asarray(groups, dtype=np.int64)  # node x local index
        # ring inside every node; one ring across nodes per local index
        intra = Pairs(grid.ravel(), np.roll(grid, -1, axis=1).ravel())
        inter = Pairs(grid.ravel(), np.roll(grid, -1, axis=0).ravel())
        out = []
        if gg > 1:
            out.append(Phase("intra-node reduce-scatter", ("hier_intra", p, gg), intra,
                             n / gg, gg - 1))
        if N > 1:
            out.append(Phase("inter-node allreduce", ("hier_inter", p, gg), inter,
                             n / (gg * N), 2 * (N - 1)))
        if gg > 1:
            out.append(Phase("intra-node all-gather", ("hier_intra", p, gg), intra,
                             n / gg, gg - 1))
        return out

    def _form(self, N, gg, n, ai, bi, ae, be) -> ClosedForm:
        t1 = 2 * (gg - 1) * (ai + n / gg * bi)
        t2 = 2 * (N - 1) * (ae + n / (gg * N) * be)
        return ClosedForm(
            t1 + t2,
            "T = 2(g-1)·(alpha_i + n/g·beta_i) + 2(N-1)·(alpha_e + n/(g·N)·beta_e)",
            f"g = {gg}, N = {N}: T = 2·{gg - 1}·({g(ai)} + {g(n / gg)}·{g(bi)}) + "
            f"2·{N - 1}·({g(ae)} + {g(n / (gg * N))}·{g(be)}) = {g(t1)} + {g(t2)} = "
            f"{g(t1 + t2)} s")

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float, topo: Topology | None):
        nodes, per_node = group_shape(topo, self.gpus_per_node, p)
        return self._form(nodes, per_node, msg.nbytes, alpha, beta, alpha, beta)

    def closed_form_on(self, p: int, msg: Message, topo: Topology) -> ClosedForm | None:
        if topo.name != "two_level" or topo.overridden or "nic_bandwidth" not in topo.params:
            return None
        if self.gpus_per_node not in (None, topo.params["gpus_per_node"]):
            return None
        groups = need_groups(topo, None, p)
        gg = len(groups[0])
        pr = topo.params
        bi = 1.0 / pr["intra_bandwidth"]
        ai = pr["intra_latency"]
        ae = pr["intra_latency"] + pr["nic_latency"]
        be = max(bi, gg / pr["nic_bandwidth"])
        return self._form(len(groups), gg, msg.nbytes, ai, bi, ae, be)
