"""``ring``: hosts in a physical ring, each linked to its two neighbours."""

from __future__ import annotations

import numpy as np

from ..routing import TorusRouter
from .graph import Topology, make_table, node_names
from .guards import TopologySize
from .params import TopologyParams, register_generator


class RingParams(TopologyParams):
    def size(self, hosts: int) -> TopologySize:
        return TopologySize(hosts, hosts if hosts > 2 else hosts - 1)


@register_generator("ring", "hosts in a physical ring (each host linked to two neighbours)",
                    RingParams)
def ring(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Host ``i`` is linked to host ``i+1 mod n``; ``latency`` is per link."""
    idx = np.arange(hosts if hosts > 2 else hosts - 1)
    table = make_table(node_names("h", hosts), hosts,
                       [(idx, (idx + 1) % hosts, bandwidth, latency)])
    return Topology("ring", table=table, router=lambda t: TorusRouter(t, 1, hosts))
