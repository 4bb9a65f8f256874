"""``gpu_cluster``: GPU nodes as they are built, NVLink (or PCIe) inside a node and one or
more NICs between nodes, from explicit parameters or a preset of
``rsdgc_sim/data/gpu_nodes.yaml`` (``dgx_h100``, ``dgx_a100``, ``hgx_v100``, ``pcie_8gpu``,
``ethernet_1gpu``).

Wiring (hosts are GPUs, ``g0`` ..; ``ceil(hosts / gpus_per_node)`` nodes):

* **inside node x**: every GPU has a link of ``nvlink`` (bytes/s per direction) to the
  node's switch ``nvs{x}`` (its NVSwitch; a PCIe fabric or NVLink mesh is approximated by
  one, see the presets' notes). Traffic between two GPUs of a node goes over NVLink only.
* **GPU to NIC**: node x has ``nics_per_node`` NICs ``nic{x}_{j}``; GPU with local index
  ``i`` uses NIC ``j = i * nics_per_node // gpus_per_node`` (the GPUs split evenly over the
  NICs) and has a link of its own to it, of the NIC's bandwidth ``nic`` (the PCIe path is
  taken to be no narrower than the NIC). GPUs that share a NIC share its one link to the
  network, so two of them sending off the node at once get half of ``nic`` each.
* **rail-optimised** (``nics_per_node == gpus_per_node``): NIC ``j`` of every node links to
  rail switch ``rail{j}``, so GPU ``i`` of every node meets GPU ``i`` of every other node
  one switch away, as NVIDIA's DGX SuperPOD reference architecture wires its compute
  fabric. Traffic between different rails (GPU ``i`` of one node to GPU ``j != i`` of
  another) climbs from rail ``i`` to a spine switch ``spine`` and down to rail ``j``; the
  spine is non-blocking: each rail's link to it carries ``nodes * nic``, the sum of the
  rail's NIC links (the SuperPOD's leaf-spine fabric has full bisection). With one rail
  (one GPU and one NIC per node) there is no spine.
* **shared NICs** (``nics_per_node < gpus_per_node``, dividing it): every NIC links to one
  non-blocking core switch ``core``.

Latency convention (route latency = sum of its links' latencies, in path order):

* GPU to GPU inside a node: ``nvlink_latency`` (each GPU-NVSwitch link has half);
* GPU to GPU across nodes through one switch (the same rail, or the core):
  ``nic_latency`` (each NIC-switch link has half; the GPU-NIC link has none: the NIC
  latency is GPU memory to GPU memory, as NCCL's network latency is);
* across nodes and rails: ``2 * nic_latency`` (the rail-spine links have half each).

A ring on a one-GPU-per-node cluster is therefore the ``switch`` topology with host links of
``nic`` and host-to-host latency ``nic_latency``: their ring allreduces take
``2 (p-1) (nic_latency + n / (p nic))``.

Parameters (:class:`GpuClusterParams`): ``preset`` supplies defaults, explicit parameters
replace them; without a preset, ``gpus_per_node=8``, ``nvlink`` and ``nvlink_latency`` as
``two_level``'s ``intra_*``, ``nics_per_node=1``. The NICs' bandwidth and latency are the
``nic`` and ``nic_latency`` parameters where given, else the scenario's (``--bandwidth``,
``--latency``): a scenario's grid studies NICs of its speeds on the preset's nodes; a
preset's ``nic`` applies only where no bandwidth is given (:data:`UNUSED_BANDWIDTH`:
``collective`` without ``--bandwidth``). :func:`check_link_values` refuses a scenario whose
values contradict a ``nic``/``nic_latency`` parameter. ``nodes``, if given, must equal
``ceil(hosts / gpus_per_node)``. The built topology's ``params`` carry, in SI units,
``nodes``, ``gpus_per_node``, ``nvlink_bandwidth``, ``nvlink_latency``, ``nics_per_node``,
``nic_bandwidth``, ``nic_latency``, ``rail_optimized``, ``preset``, ``nvls``, ``transport``
and ``transport_latency``; ``groups`` are the ranks of each node (for ``hierarchical``).

Two parameters are read by NCCL's model only (:mod:`~rsdgc_sim.sim.collectives.nccl`), never
by the links: ``nvls`` (the NVSwitch reduces: NVLink SHARP; NCCL's nvls and nvls_tree
algorithms) and ``transport`` (the NICs' transport, a key of the data file's
``transports``: ib, roce, socket, efa, tcpxo, cxi; the latency its NCCL plugin reports,
``transport_latency``, adds to every network hop of NCCL's model). Without a preset:
``nvls`` false and no transport (NCCL's own, reporting no latency).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, PrivateAttr, model_validator

from ...errors import ConfigError, TopologyError
from ...units import LinkBandwidth, LinkLatency, format_bandwidth, format_duration
from ..routing.gpu_cluster import GpuClusterRouter
from .graph import Topology, make_table, node_names
from .guards import UNUSED_BANDWIDTH, TopologySize, ceil_div
from .params import MAX_COUNT, TopologyParams, register_generator
from .two_level import DEFAULT_INTRA_BANDWIDTH, DEFAULT_INTRA_LATENCY

#: a node's numbers where neither a preset nor a parameter gives them (``nic`` and
#: ``nic_latency``: None, the scenario's bandwidth and latency)
DEFAULTS: dict[str, Any] = {"gpus_per_node": 8, "nvlink": DEFAULT_INTRA_BANDWIDTH,
                            "nvlink_latency": DEFAULT_INTRA_LATENCY, "nics_per_node": 1,
                            "nic": None, "nic_latency": None, "nvls": False,
                            "transport": None}
#: the presets of ``rsdgc_sim/data/gpu_nodes.yaml`` (for the help text; a test checks it)
PRESET_NAMES = ("dgx_a100", "dgx_h100", "ethernet_1gpu", "hgx_v100", "pcie_8gpu")


@dataclass(frozen=True)
class GpuNode:
    """A node's numbers once preset, parameters and defaults are combined (SI units);
    ``nic`` / ``nic_latency`` None: the scenario's bandwidth / latency."""

    gpus_per_node: int
    nvlink: float
    nvlink_latency: float
    nics_per_node: int
    nic: float | None
    nic_latency: float | None
    nvls: bool
    transport: str | None
    preset: str | None

    @property
    def rail_optimized(self) -> bool:
        """One NIC per GPU: GPU i of every node on rail i."""
        return self.nics_per_node == self.gpus_per_node

    def switches(self) -> tuple[int, int]:
        """(switches above the NICs, links between them): the rails and a spine, or a
        core."""
        k = self.nics_per_node
        if self.rail_optimized and k > 1:
            return k + 1, k
        return (k if self.rail_optimized else 1), 0


def resolve_node(preset: str | None, given: dict[str, Any]) -> GpuNode:
    """Combine the defaults, preset ``preset`` (None: none) and the parameters ``given``
    (None: not given) and check the result. Raises ConfigError (UnknownNameError listing the
    presets for an unknown one) naming where each conflicting number came from."""
    values = dict(DEFAULTS)
    origin = dict.fromkeys(values, "default")
    if preset is not None:
        from .gpu_nodes import gpu_node_preset  # lazy: reads gpu_nodes.yaml on first use

        p = gpu_node_preset(preset)
        for k in values:
            values[k] = getattr(p, k)
            origin[k] = f"preset {preset}"
    for k, v in given.items():
        if v is not None:
            values[k] = v
            origin[k] = "given"
    gpn, nics = values["gpus_per_node"], values["nics_per_node"]

    def said(k: str) -> str:
        return f"{k}={values[k]} ({origin[k]})"

    if nics > gpn:
        raise ConfigError(f"{said('nics_per_node')} is more than {said('gpus_per_node')}: "
                          f"a node has at most one NIC per GPU")
    if gpn % nics:
        raise ConfigError(f"{said('nics_per_node')} does not divide {said('gpus_per_node')}: "
                          f"the GPUs are split evenly over the NICs")
    if values["transport"] is not None:
        from .gpu_nodes import transport  # lazy: reads gpu_nodes.yaml on first use

        transport(values["transport"])  # an unknown one: UnknownNameError listing them
    return GpuNode(preset=preset, **values)


class GpuClusterParams(TopologyParams):
    #: a preset of rsdgc_sim/data/gpu_nodes.yaml that supplies the node's numbers
    preset: str | None = None
    #: GPUs (hosts) per node (default 8)
    gpus_per_node: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    #: nodes; if given, it must equal ceil(workers / gpus_per_node)
    nodes: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    #: bandwidth of each GPU's link inside a node, per direction (NVLink/NVSwitch or PCIe)
    nvlink: LinkBandwidth | None = None
    #: GPU to GPU latency inside a node
    nvlink_latency: LinkLatency | None = None
    #: compute NICs per node: gpus_per_node (rail-optimised) or a divisor of it (shared)
    nics_per_node: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    #: bandwidth of one NIC (default: the scenario's bandwidth)
    nic: LinkBandwidth | None = None
    #: NIC to NIC latency through one switch (default: the scenario's latency)
    nic_latency: LinkLatency | None = None
    #: the NVSwitch reduces (NVLink SHARP): NCCL's nvls algorithms run (default false)
    nvls: bool | None = None
    #: the NICs' transport: ib, roce, socket, efa, tcpxo, cxi (NCCL's model only)
    transport: str | None = None
    #: let the last node be partial
    allow_partial: bool = False

    _node: GpuNode | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve(self) -> GpuClusterParams:
        self._node = resolve_node(self.preset, self._numbers())
        return self

    def _numbers(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in DEFAULTS}

    @property
    def node(self) -> GpuNode:
        """The node's numbers, preset and defaults applied."""
        if self._node is None:  # built without validation (model_construct)
            self._node = resolve_node(self.preset, self._numbers())
        return self._node

    def size(self, hosts: int) -> TopologySize:
        node = self.node
        nodes = ceil_div(hosts, node.gpus_per_node)
        nics = nodes * node.nics_per_node
        switches, uplinks = node.switches()
        return TopologySize(hosts + nodes + nics + switches, 2 * hosts + nics + uplinks)

    def describe(self) -> str:
        node = self.node
        return (f" with gpus_per_node={node.gpus_per_node}, "
                f"nics_per_node={node.nics_per_node}")

    def links_carry_bandwidth(self) -> bool:
        """Every link's bandwidth is set (the NICs' by the preset or ``nic``)."""
        return self.node.nic is not None


@register_generator(
    "gpu_cluster",
    "GPU nodes: NVLink/NVSwitch (or PCIe) inside a node, NICs between nodes, rail-optimised "
    "when there is one NIC per GPU (a rail switch per GPU index, joined by a spine), shared "
    f"otherwise (one core switch); presets {', '.join(PRESET_NAMES)} "
    "(rsdgc_sim/data/gpu_nodes.yaml); a parameter left null takes the preset's value, or "
    "without a preset 8 GPUs per node, NVLink 150GB/s and 1us, one NIC of the scenario's "
    "bandwidth and latency",
    GpuClusterParams)
def gpu_cluster(hosts: int, bandwidth: float, latency: float, preset: str | None = None,
                gpus_per_node: int | None = None, nodes: int | None = None,
                nvlink: float | None = None, nvlink_latency: float | None = None,
                nics_per_node: int | None = None, nic: float | None = None,
                nic_latency: float | None = None, nvls: bool | None = None,
                transport: str | None = None, allow_partial: bool = False) -> Topology:
    """``ceil(hosts / gpus_per_node)`` nodes wired as the module docstring says; ``nic``
    and ``nic_latency`` default to ``bandwidth`` and ``latency``."""
    node = resolve_node(preset, {
        "gpus_per_node": gpus_per_node, "nvlink": nvlink, "nvlink_latency": nvlink_latency,
        "nics_per_node": nics_per_node, "nic": nic, "nic_latency": nic_latency,
        "nvls": nvls, "transport": transport})
    gpn, k = node.gpus_per_node, node.nics_per_node
    n_nodes = ceil_div(hosts, gpn)
    if nodes is not None and nodes != n_nodes:
        raise TopologyError(
            f"workers: nodes={nodes} on gpu_cluster, but {hosts} workers of gpus_per_node="
            f"{gpn} fill {n_nodes} node{'s' if n_nodes > 1 else ''}; give "
            f"{nodes * gpn} workers or leave nodes out")
    if hosts % gpn and not allow_partial:
        raise TopologyError(
            f"workers: {hosts} workers do not fill whole nodes of gpus_per_node={gpn} on "
            f"gpu_cluster; use a multiple of {gpn} or set topology.params.allow_partial: true")
    # the NICs: the nic parameter, else the scenario's bandwidth (--bandwidth), else (none
    # given: UNUSED_BANDWIDTH) the preset's; the latency likewise, without a preset's
    nic_bw = float(nic if nic is not None else bandwidth if bandwidth != UNUSED_BANDWIDTH
                   else node.nic if node.nic is not None else bandwidth)
    nic_lat = float(latency if nic_latency is None else nic_latency)
    rail = node.rail_optimized
    n_nics = n_nodes * k
    switch_names = ([f"rail{j}" for j in range(k)] + (["spine"] if k > 1 else [])
                    if rail else ["core"])
    names = (node_names("g", hosts) + node_names("nvs", n_nodes)
             + [f"nic{x}_{j}" for x in range(n_nodes) for j in range(k)] + switch_names)
    nvs0, nic0 = hosts, hosts + n_nodes
    sw0 = nic0 + n_nics
    g = np.arange(hosts)
    nic_of = (g // gpn) * k + (g % gpn) * k // gpn
    nic_ids = np.arange(n_nics)
    parts = [
        (g, nvs0 + g // gpn, node.nvlink, node.nvlink_latency / 2),
        (g, nic0 + nic_of, nic_bw, 0.0),
        (nic0 + nic_ids, sw0 + (nic_ids % k if rail else 0 * nic_ids), nic_bw, nic_lat / 2),
    ]
    if rail and k > 1:
        parts.append((sw0 + np.arange(k), np.full(k, sw0 + k), n_nodes * nic_bw, nic_lat / 2))
    groups = [list(range(x * gpn, min(hosts, (x + 1) * gpn))) for x in range(n_nodes)]
    return Topology("gpu_cluster", table=make_table(names, hosts, parts), groups=groups,
                    params={"nodes": n_nodes, "gpus_per_node": gpn,
                            "nvlink_bandwidth": float(node.nvlink),
                            "nvlink_latency": float(node.nvlink_latency),
                            "nics_per_node": k, "nic_bandwidth": nic_bw,
                            "nic_latency": nic_lat, "rail_optimized": rail,
                            # whether the NIC's numbers are parameters (else: the
                            # scenario's bandwidth and latency, or the preset's)
                            "nic_fixed": nic is not None,
                            "nic_latency_fixed": nic_latency is not None,
                            "preset": node.preset, "nvls": bool(node.nvls),
                            "transport": node.transport,
                            "transport_latency": _transport_latency(node.transport)},
                    router=lambda t: GpuClusterRouter(t, gpn, k, rail))


def _transport_latency(name: str | None) -> float:
    """The latency transport ``name`` reports to NCCL (s; 0 without one)."""
    if name is None:
        return 0.0
    from .gpu_nodes import transport

    return float(transport(name).latency)


__all__ = ["DEFAULTS", "PRESET_NAMES", "GpuClusterParams", "GpuNode", "gpu_cluster",
           "resolve_node"]


def check_link_values(topo: Topology, bandwidths: list[float] | None,
                      latencies: list[float] | None, what: str = "cluster",
                      latency_default: bool = False) -> None:
    """Refuse link values that a ``gpu_cluster`` would not use: where its ``nic`` or
    ``nic_latency`` parameter gives the NICs, a scenario's ``bandwidth`` or ``latency``
    (``what``: ``cluster`` or ``--`` for the command line) of another value would be shown
    beside results that never used it (a preset's NICs give way to the scenario's values).
    None: not given (nothing to check); ``latency_default``: the latencies are the
    scenario's default, not written in it."""
    if topo.name != "gpu_cluster":
        return
    prm = topo.params
    bw, lat = prm["nic_bandwidth"], prm["nic_latency"]
    sep = "." if what == "cluster" else ""
    for field, given, used, fmt, param in (("bandwidth", bandwidths, bw, format_bandwidth, "nic"),
                                           ("latency", latencies, lat, format_duration,
                                            "nic_latency")):
        if not prm[f"{param}_fixed"]:
            continue  # the NICs take the scenario's values
        for v in given or []:
            if abs(v - used) > 1e-9 * max(abs(used), 1e-12):
                default = " (the default)" if field == "latency" and latency_default else ""
                raise ConfigError(
                    f"{what}{sep}{field} {fmt(v)}{default}: gpu_cluster's {param} parameter "
                    f"makes its NICs {fmt(used)}; give {fmt(used)} here, or leave {param} out "
                    f"(the NICs then take the {field} given here)")
