"""Topologies: a networkx graph of hosts and switches joined by full-duplex links.

Every undirected edge is two directed links (one per direction), each with its own
``bandwidth`` (bytes/s) and ``latency`` (s). Rank ``i`` of a collective runs on
``topology.hosts[i]``.

Routing policy (deterministic: the same inputs always give the same routes):

* **Shortest paths in hops.** A transfer follows one shortest path; its latency is the sum
  of its links' latencies, added in path order.
* **ECMP hash per flow.** Where several shortest paths exist (``fat_tree``: ``k/2`` through
  the aggregation switches of a pod, ``(k/2)^2`` through the cores between pods; topology
  files with parallel paths), they are put in *numeric node order* (paths compared node by
  node, node names compared with their digit runs read as numbers, so ``c2`` comes before
  ``c10``) and the transfer from rank ``src`` to rank ``dst`` takes path number
  ``ecmp_hash(src, dst) mod count``, where ``ecmp_hash`` is the splitmix64 finalizer of
  ``(src << 32) + dst`` (:func:`rsdgc_sim.sim.routing.ecmp_hash`). That is what ECMP
  switches do with a hash of the flow's addresses: every flow keeps one path, flows spread
  over the paths like random choices (two flows may collide on a link, as they do in real
  fabrics), and the choice depends neither on how nodes are named nor on patterns in the
  rank numbers (the former ``(src + dst) mod count`` over paths sorted as strings sent
  structured patterns such as halving-doubling onto a few cores).
* **Dimension order on direct networks.** ``torus2d`` routes along the source's row to the
  destination's column, then along that column (the deterministic routing of real tori);
  ``ring`` is a torus of one row. Each leg goes the shortest way round; exactly half way
  round an even ring (a tie) the candidates, in numeric node order, are numbered (row
  choice first) and the transfer takes number ``ecmp_hash(src, dst) mod count``.

Routes come from structure, not from graph searches, on the generated topologies (O(1) per
pair, a whole pattern at once with numpy; see :mod:`rsdgc_sim.sim.routing`), and from
breadth-first searches that count the shortest paths (one per destination, cached, within
a budget) on topology files.

Latency convention: on switched topologies (``switch``, ``tree``, ``fat_tree``,
``two_level``) every link has half of the given ``latency``, so two hosts on the same
switch are ``latency`` apart (on ``switch`` that is the alpha of the closed forms); on
direct networks (``ring``, ``torus2d``) ``latency`` is the latency of one link, host to
neighbouring host; ``gpu_cluster`` (GPU nodes: NVLink inside, NICs between
them, rail-optimised or shared, presets in ``rsdgc_sim/data/gpu_nodes.yaml``) says its own in
:mod:`.gpu_cluster`.

Generators are registered in :data:`TOPOLOGIES` and called as
``generator(hosts, bandwidth, latency, **params)``; each has a strict parameter class in
:data:`TOPOLOGY_PARAMS` (:class:`TreeParams`, :class:`FatTreeParams`, ...: unknown names,
wrong types, a bool for a number, non-finite values are errors naming the parameter and
listing the generator's parameters), usable without building anything
(:func:`check_topology_params`, :func:`topology_size`). :func:`build_topology` checks the
parameters, then estimates the size of what it would build from them (nodes + links, e.g.
``fat_tree`` has ``hosts + 5k^2/4`` nodes and ``hosts + k^3/2`` links) and refuses, with the
estimate and the alternative, more than :data:`MAX_TOPOLOGY_ELEMENTS` (arrays) or
:data:`MAX_GRAPH_ELEMENTS` (a networkx graph: topology files), before building
anything; ``switch`` builds its links on first use and is checked then. Parameter values
with units (``intra_bandwidth``, ``intra_latency``, a link's ``bandwidth`` and ``latency``)
are parsed and bounded as a scenario's cluster values are. Every generator accepts
per-link overrides (``link_overrides: [{between: [a, b], bandwidth: ..., latency: ...}]``),
applied to its link table.
Files under ``topologies/`` describe a topology either by generator and parameters or by
an explicit list of hosts, switches and links (:class:`TopologyFile`, read with
:func:`~rsdgc_sim.yaml_file.read_yaml_file`: duplicate keys, alias bombs, non-UTF-8 text,
FIFOs and devices are refused naming the file; so are repeated node names and links to
unknown nodes).

Layout, a module per concept: :mod:`.graph` (:class:`Topology`, :class:`LinkTable`,
:class:`Route`), :mod:`.guards` (value checks and size estimates' limits), :mod:`.params`
(the parameter base class and the registries), one module per generator (:mod:`.switch`,
:mod:`.ring`, :mod:`.tree`, :mod:`.fat_tree`, :mod:`.two_level`, :mod:`.torus2d`,
:mod:`.gpu_cluster` (its presets: :mod:`.gpu_nodes`), each
registered with its parameter class as :mod:`rsdgc_sim.sim.collectives` registers its
collectives), :mod:`.file` (the topology file format) and :mod:`.build`
(:func:`build_topology`, :func:`resolve_topology_path`);
:func:`links_carry_bandwidth` (:mod:`.link_bandwidth`) says whether a topology's parameters or
file set every link's bandwidth, so that the scenario's is not needed.
"""

from . import (  # noqa: F401  (registration)
    fat_tree,
    gpu_cluster,
    ring,
    switch,
    torus2d,
    tree,
    two_level,
)
from .build import TOPOLOGY_DIR, TOPOLOGY_DIRS, build_topology, resolve_topology_path
from .fat_tree import FatTreeParams, fat_tree_k_for
from .file import TopologyFile
from .gpu_cluster import GpuClusterParams
from .graph import LinkTable, Route, Topology
from .guards import MAX_GRAPH_ELEMENTS, MAX_TOPOLOGY_ELEMENTS, TopologySize
from .link_bandwidth import links_carry_bandwidth
from .params import (
    TOPOLOGIES,
    TOPOLOGY_PARAMS,
    FileParams,
    LinkSpec,
    TopologyParams,
    check_topology_params,
    param_names,
    topology_size,
)
from .ring import RingParams
from .switch import SwitchParams
from .torus2d import Torus2dParams
from .tree import TreeParams
from .two_level import TwoLevelParams

__all__ = [
    "MAX_GRAPH_ELEMENTS", "MAX_TOPOLOGY_ELEMENTS", "TOPOLOGIES", "TOPOLOGY_DIR", "TOPOLOGY_DIRS",
    "TOPOLOGY_PARAMS", "FatTreeParams", "FileParams", "GpuClusterParams", "LinkSpec",
    "LinkTable", "RingParams", "Route", "SwitchParams", "Topology", "TopologyFile",
    "TopologyParams", "TopologySize", "Torus2dParams", "TreeParams", "TwoLevelParams",
    "build_topology", "check_topology_params", "fat_tree_k_for", "links_carry_bandwidth",
    "param_names", "resolve_topology_path", "topology_size",
]
