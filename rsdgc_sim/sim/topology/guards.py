"""What is refused before anything is built: bandwidths, latencies and counts that are
not numbers in range, and topologies whose estimated size (:class:`TopologySize`) is
over :data:`MAX_TOPOLOGY_ELEMENTS` (arrays) or :data:`MAX_GRAPH_ELEMENTS` (a graph)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, TopologyError
from ...strict import excerpt

#: the host link bandwidth :func:`~rsdgc_sim.sim.topology.build_topology` is given when the
#: topology's links carry their own (no ``--bandwidth``): below the 1 byte/s any input may
#: be, so a generator can tell it from a given one (``gpu_cluster`` then takes its preset's
#: NICs); a link that took it would take two seconds a byte
UNUSED_BANDWIDTH = 0.5


def check_bw(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: bandwidth must be a number of bytes/s, got {excerpt(value)}")
    if not (value > 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: bandwidth must be > 0 bytes/s, got {value!r}")
    if not math.isfinite(1.0 / value):
        raise ConfigError(f"{what}: bandwidth {value!r} bytes/s is too small (1/bandwidth "
                          f"overflows); check the units")
    return float(value)


def check_lat(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: latency must be a number of seconds, got {excerpt(value)}")
    if not (value >= 0) or not math.isfinite(value):
        raise ConfigError(f"{what}: latency must be >= 0 s, got {value!r}")
    return float(value)


def check_count(value: Any, what: str, minimum: int) -> int:
    """An integer count (a bool is not one) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{what}: must be an integer, got {excerpt(value)}")
    if value < minimum:
        raise ConfigError(f"{what}: must be >= {minimum}, got {value}")
    return int(value)


#: nodes + links a generated topology may have: built as arrays (about
#: :data:`BYTES_PER_ELEMENT` each, with its link index and routes), in about a second
MAX_TOPOLOGY_ELEMENTS = 2_000_000
#: nodes + links of a topology built as a networkx graph (topology files; their YAML is
#: capped well below this): several microseconds and about 1 KB each
MAX_GRAPH_ELEMENTS = 1_000_000
#: memory of one node or link of a built topology, as measured (arrays, index, routes)
BYTES_PER_ELEMENT = 500


@dataclass(frozen=True)
class TopologySize:
    """Nodes (hosts and switches) and undirected links of a topology, known before it is
    built (:meth:`TopologyParams.size`)."""

    nodes: int
    links: int

    @property
    def elements(self) -> int:
        return self.nodes + self.links

    @property
    def memory_bytes(self) -> int:
        return self.elements * BYTES_PER_ELEMENT


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_size(name: str, hosts: int, size: TopologySize, detail: str, hint: str,
               graph: bool = False) -> None:
    """Refuse, with the estimate and ``hint`` (the alternative), a topology over budget."""
    budget = MAX_GRAPH_ELEMENTS if graph else MAX_TOPOLOGY_ELEMENTS
    if size.elements <= budget:
        return
    how = " as a graph (topology files)" if graph else ""
    raise TopologyError(
        f"topology {name!r}{detail} for {hosts:,} hosts would have {size.nodes:,} nodes and "
        f"{size.links:,} links (about {size.memory_bytes / 2**30:.3g} GiB): more than the "
        f"{budget:,} nodes + links built here{how}; {hint}")
