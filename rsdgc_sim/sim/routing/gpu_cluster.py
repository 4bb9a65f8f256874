"""The router of ``gpu_cluster`` (GPU nodes with NVLink inside and NICs between them):
one path per pair, from the structure, O(1) per pair and a whole pattern at once with
numpy (the wiring and the latency convention: :mod:`rsdgc_sim.sim.topology.gpu_cluster`)."""

from __future__ import annotations

import numpy as np

from .base import LinkArrayRouter, masked


class GpuClusterRouter(LinkArrayRouter):
    """``gpu_cluster``. Inside a node: GPU -> NVSwitch -> GPU (NVLink only). Across nodes:
    GPU -> its NIC -> the NIC's switch -> ... -> the destination's NIC -> GPU, where the
    NIC's switch is the core (shared NICs) or the NIC's rail switch (rail-optimised); a
    transfer between different rails climbs from the source's rail to the spine and down to
    the destination's rail. No hop sends through another GPU (NCCL's PXN, which moves
    cross-rail data over NVLink to the GPU on the right rail first, is not modelled)."""

    def __init__(self, topo, gpus_per_node: int, nics_per_node: int, rail_optimized: bool):
        super().__init__(topo)
        ids = self._ids
        h = ids(topo.hosts)
        n = len(h)
        gpn, k = gpus_per_node, nics_per_node
        nodes = -(-n // gpn)
        g = np.arange(n)
        self.node_of = g // gpn
        # global NIC index node * k + local NIC
        self.nic_of = self.node_of * k + (g % gpn) * k // gpn
        nvs = ids([f"nvs{x}" for x in range(nodes)])
        nics = ids([f"nic{x}_{j}" for x in range(nodes) for j in range(k)])
        self.nv_up, self.nv_down = self._up_down(h, nvs[self.node_of])
        self.gn_up, self.gn_down = self._up_down(h, nics[self.nic_of])
        if rail_optimized:
            rails = ids([f"rail{j}" for j in range(k)])
            self.rail_of = np.arange(nodes * k) % k
            self.ns_up, self.ns_down = self._up_down(nics, rails[self.rail_of])
            self.spine = k > 1
            if self.spine:
                self.rs_up, self.rs_down = self._up_down(rails, np.full(k, ids(["spine"])[0]))
        else:
            self.rail_of = np.zeros(nodes * k, dtype=np.int64)
            self.ns_up, self.ns_down = self._up_down(nics, np.full(nodes * k, ids(["core"])[0]))
            self.spine = False

    def links(self, src, dst):
        a, b = self.node_of[src], self.node_of[dst]
        intra = (a == b) & (src != dst)
        cross = a != b
        ns, nd = self.nic_of[src], self.nic_of[dst]
        rows = [np.where(intra, self.nv_up[src], masked(cross, self.gn_up[src])),
                masked(cross, self.ns_up[ns])]
        if self.spine:
            ra, rb = self.rail_of[ns], self.rail_of[nd]
            climb = cross & (ra != rb)
            rows += [masked(climb, self.rs_up[ra]), masked(climb, self.rs_down[rb])]
        rows += [masked(cross, self.ns_down[nd]),
                 np.where(intra, self.nv_down[dst], masked(cross, self.gn_down[dst]))]
        return np.stack(rows, axis=0)


__all__ = ["GpuClusterRouter"]
