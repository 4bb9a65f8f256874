"""``switch``: every host on one non-blocking switch (a star)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..routing import StarRouter
from .graph import LinkTable, Topology, make_table, node_names
from .guards import TopologySize, check_size
from .params import TopologyParams, register_generator


class SwitchParams(TopologyParams):
    lazy: ClassVar[bool] = True

    def size(self, hosts: int) -> TopologySize:
        return TopologySize(hosts + 1, hosts)


@register_generator("switch", "every host on one non-blocking switch (a star)", SwitchParams)
def switch(hosts: int, bandwidth: float, latency: float) -> Topology:
    """Every host has one full-duplex link of ``bandwidth`` to one non-blocking switch;
    ``latency`` is host to host (each link has half). Its links are built on first use
    (closed forms need none of them), with the size check then."""
    def table() -> LinkTable:
        size = SwitchParams().size(hosts)
        check_size("switch", hosts, size, "", "use fewer workers")
        idx = np.arange(hosts)
        return make_table(node_names("h", hosts) + ["sw"], hosts,
                          [(idx, np.full(hosts, hosts), bandwidth, latency / 2)])

    return Topology("switch", table=table, n_hosts=hosts, uniform=True, alpha=latency,
                    bandwidth=bandwidth, router=StarRouter)
