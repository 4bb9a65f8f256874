"""The network simulator: topologies, collectives, links with contention, DDP buckets.

Never imports torch: a saved :class:`~rsdgc_sim.profile.schema.Profile` is enough.

>>> from rsdgc_sim.sim import collective_time
>>> round(collective_time("ring", 4, 1e6, 1.25e9, 5e-6).simulated_s, 9)
0.00123
"""

from .collective_time import CollectiveResult, collective_time
from .collectives import COLLECTIVES
from .config import DDPConfig, SimPoint, StragglerConfig, TopologySpec
from .fidelity import FIDELITIES
from .result import BucketResult, SimResult, Span
from .simulate import simulate
from .topology import TOPOLOGIES, Topology, build_topology
from .trace import chrome_trace

__all__ = [
    "COLLECTIVES", "FIDELITIES", "TOPOLOGIES", "BucketResult", "CollectiveResult", "DDPConfig",
    "SimPoint", "SimResult", "Span", "StragglerConfig", "Topology", "TopologySpec",
    "build_topology", "chrome_trace", "collective_time", "simulate",
]
