"""NCCL's collectives as NCCL's own cost model times them: ring, tree and NVLS;
LL/LL128/Simple.

``nccl`` (allreduce), ``nccl_allgather`` and ``nccl_reduce_scatter`` (``n``: each rank's
contribution, or each rank's block of the result, as for the other all-gathers) take the
time NCCL's tuner predicts (:mod:`.nccl_model`: ring with channels, double binary tree
between nodes with a chain inside each node, pipelined in chunks; NVLink SHARP (nvls on one
node, nvls_tree across nodes) where the NVSwitch reduces; PAT for one GPU per node) and
report the algorithm and protocol it chose. Parameters, as NCCL's environment:
``algorithm`` (ring, tree, nvls, nvls_tree or pat: ``NCCL_ALGO``), ``protocol`` (simple,
ll, ll128: ``NCCL_PROTO``), ``channels`` (``NCCL_MIN/MAX_NCHANNELS``) and ``gpu`` (the generation of
NCCL's per-generation tables: volta, ampere, hopper, blackwell).

What the model reads off a topology (:func:`nccl_system`):

* ``gpu_cluster``: its nodes, GPUs per node, ``nvlink_bandwidth`` (NVLink when above
  :data:`PCI_MAX_BANDWIDTH` or PCI), its NICs, ``nic_latency``, rail-optimisation, the
  GPU generation from the preset's name, ``nvls`` (NVLink SHARP: the NVLS graph of
  :func:`~.nccl_model.nvls_graph`, Hopper on) and the transport's ``transport_latency``
  (NCCL's ``latencyInter``, as its network plugin reports it);
* ``two_level``: ``gpus_per_node``, ``intra_bandwidth``, one NIC of ``nic_bandwidth`` per
  node, ``nic_latency``;
* ``switch`` (and a closed form's alpha and beta): one GPU per node, the host link as its
  NIC, alpha as the network latency;
* any other (ring, tree, fat_tree, torus2d, files, overridden links): one GPU per node; the
  NIC bandwidth is the slowest hop of a ring of the hosts in rank order on the topology's
  links (contention included), the network latency its longest route.

The network latency adds to NCCL's per-hop constants only where it exceeds the network
hop they hold already (:data:`~.nccl_model.NET_HOP_INCLUDED_S`, 2.7 us). The GPU's link
inside the node is taken as NCCL's topology counts it (:func:`~.nccl_model.intra_factor`:
NVLink at 20 or 20.6 GB/s per link, PCIe at 3/4 of the datasheet); the channels follow the
datasheet's number as before.

The tuner chooses by NCCL's estimate; the time reported is that estimate plus what the run
adds to it: the fill of NVLS's chunk pipeline on one node, with NCCL's per-size chunks
(:func:`~.nccl_model.pipeline_fill`).

Not modelled: kernel-launch and host overhead beyond NCCL's base latencies (the published
small-size floors disagree: 18 us for 8 GPUs over Slingshot, below the model's 20 us,
against 25 us for one DGX H100 above its 15 us; no single constant is honest), SHARP in the
network (CollNet), congestion, the ring's and tree's per-size channel reduction (below
about 0.8 MB) and a pipeline fill for NVLS_TREE.

Fidelity: this is a closed form and only that (NCCL's model is one; its chunks and
protocols are not transfers on our links), so ``analytic`` and ``auto`` give it and
``step``/``link`` are refused with a message naming ``analytic``. :meth:`phases` describes
the bytes a rank sends (a ring's, ``2(p-1)/p n`` per rank for the allreduce, which the
tree sends as well), for the traffic count; it is never timed.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ...errors import ConfigError, TopologyError
from ...strict import excerpt
from ..topology.graph import Topology
from . import nccl_model as nm
from .base import COLLECTIVES, ClosedForm, Collective, Message, Phase, g, need_groups, shift_pairs

#: an intra-node link faster than PCIe 5.0 x16 (64 GB/s per direction) is taken as NVLink
PCI_MAX_BANDWIDTH = 64e9
#: the generation when neither ``gpu`` nor a preset's name says it
DEFAULT_GENERATION = "ampere"
#: preset names -> generation (a substring of the preset's name)
_GENERATION_OF = (("v100", "volta"), ("a100", "ampere"), ("a800", "ampere"),
                  ("h100", "hopper"), ("h200", "hopper"), ("h800", "hopper"),
                  ("b100", "blackwell"), ("b200", "blackwell"))


def _choice(value: Any, what: str, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {excerpt(value)}")
    return value.lower()


def _generation(gpu: str | None, preset: str | None) -> str:
    if gpu is not None:
        return gpu
    for key, gen in _GENERATION_OF:
        if preset and key in preset.lower():
            return gen
    return DEFAULT_GENERATION


def _nodes(topo: Topology, p: int, name: str) -> tuple[int, int]:
    try:
        groups = need_groups(topo, None, p)
    except (ConfigError, TopologyError):
        raise TopologyError(
            f"collective {name!r}: the nodes of topology {topo.name!r} hold different "
            f"numbers of the {p} ranks; NCCL's model needs whole nodes") from None
    return len(groups), len(groups[0])


def nccl_system(p: int, topo: Topology | None, *, channels: int | None = None,
                gpu: str | None = None, alpha: float | None = None,
                bandwidth: float | None = None, name: str = "nccl") -> nm.NcclSystem:
    """The cluster of ``p`` ranks of ``topo`` as NCCL's model sees it (module docstring);
    ``alpha`` and ``bandwidth`` given: a uniform one-GPU-per-node network (``switch``)."""
    params = topo.params if topo is not None else {}
    structured = topo is not None and not topo.overridden and alpha is None
    nvls, plugin_latency = False, 0.0
    if structured and topo.name == "gpu_cluster":
        nodes, gpn = _nodes(topo, p, name)
        gpu_bw, nics = params["nvlink_bandwidth"], params["nics_per_node"]
        nic_bw, net_lat = params["nic_bandwidth"], params["nic_latency"]
        preset = params.get("preset")
        intra = ("pci" if (preset and "pcie" in preset) or gpu_bw <= PCI_MAX_BANDWIDTH
                 else "nvlink")
        near = bool(params.get("rail_optimized"))
        nvls = bool(params.get("nvls")) and intra == "nvlink"
        plugin_latency = float(params.get("transport_latency") or 0.0)
        transport = params.get("transport")
        source = (f"gpu_cluster{f' preset {preset}' if preset else ''}: {nodes} node(s) of "
                  f"{gpn} GPU(s), {intra} {g(gpu_bw)} B/s per GPU"
                  f"{' with NVLink SHARP' if nvls else ''}, {nics} NIC(s) of "
                  f"{g(nic_bw)} B/s per node"
                  + (f" ({transport}, reported latency {g(plugin_latency)} s)"
                     if transport else ""))
    elif structured and topo.name == "two_level":
        nodes, gpn = _nodes(topo, p, name)
        gpu_bw, nics = params["intra_bandwidth"], 1
        nic_bw, net_lat, preset = params["nic_bandwidth"], params["nic_latency"], None
        intra = "pci" if gpu_bw <= PCI_MAX_BANDWIDTH else "nvlink"
        near = gpn == 1
        source = (f"two_level: {nodes} node(s) of {gpn} GPU(s), {intra} {g(gpu_bw)} B/s per "
                  f"GPU, one NIC of {g(nic_bw)} B/s per node")
    elif alpha is not None or (topo is not None and topo.uniform):
        if alpha is None:
            alpha, bandwidth = topo.alpha, topo.bandwidth
        nodes, gpn, gpu_bw, nics, nic_bw, net_lat = p, 1, math.inf, 1, bandwidth, alpha
        intra, near, preset = "pci", False, None
        source = f"one GPU per node, host link {g(nic_bw)} B/s, latency {g(net_lat)} s"
    else:
        pc = topo.pattern_cost(("shift", p, 1), shift_pairs(p, 1))
        nodes, gpn, gpu_bw, nics, preset = p, 1, math.inf, 1, None
        nic_bw = 1.0 / float(pc.per_byte.max())
        net_lat = float(pc.latency.max())
        intra, near = "pci", False
        source = (f"{topo.name}: one GPU per node; a ring of the hosts in rank order: slowest "
                  f"hop {g(nic_bw)} B/s, longest route {g(net_lat)} s")
    gen = _generation(gpu, preset)
    if channels is None:
        channels = nm.default_channels(gpu_bw, nic_bw, nics, nodes)
    # LL128 by default (tuning.cc, protoEnable 2): NVLink inside the node and, across
    # nodes, a NIC next to the GPU (rail: PXB) or reached over NVLink (PXN, Hopper on)
    ll128 = (intra == "nvlink" and gpn > 1 and (
        nodes == 1 or near or nm.GENERATIONS.index(gen) >= nm.GENERATIONS.index("hopper")))
    nvls_ch, nvls_intra, nvls_inter = (
        nm.nvls_graph(gpu_bw, nic_bw * nics / gpn, gpn, nodes, gen) if nvls else (0, 0.0, 0.0))
    # NCCL moves data at its topology's count of the GPU's link (NVLink 20 or 20.6 GB/s per
    # link, PCIe 3/4 of the datasheet), not the datasheet's
    gpu_nccl = gpu_bw * nm.intra_factor(intra, gen) if gpn > 1 else gpu_bw
    return nm.NcclSystem(
        ranks=p, nodes=nodes, gpus_per_node=gpn, gpu_bw=float(gpu_nccl), intra=intra,
        nics=nics, nic_bw=float(nic_bw),
        net_latency=max(0.0, float(net_lat) - nm.NET_HOP_INCLUDED_S) + plugin_latency,
        generation=gen, channels=channels, ll128=ll128, source=source,
        nvls_channels=nvls_ch, nvls_bw_intra=nvls_intra, nvls_bw_inter=nvls_inter)


_FUNC_TEXT = {"allreduce": "allreduce", "allgather": "all-gather",
              "reduce_scatter": "reduce-scatter"}


class NcclCollective(Collective):
    """Base of the NCCL collectives: parameters, the system, the tuner's choice, the
    closed form."""

    #: what NCCL runs (:data:`~.nccl_model.FUNCTIONS`)
    func: ClassVar[str] = "allreduce"
    #: NCCL's model is a closed form: ``step`` and ``link`` are refused
    analytic_only: ClassVar[bool] = True
    lockstep = False

    def __init__(self, algorithm: str | None = None, protocol: str | None = None,
                 channels: int | None = None, gpu: str | None = None):
        who = f"collective {self.name!r}"
        self.algorithm = _choice(algorithm, f"{who}: algorithm", self.algorithms())
        self.protocol = _choice(protocol, f"{who}: protocol", nm.PROTOCOLS)
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int)
                                     or not 1 <= channels <= nm.MAX_CHANNELS):
            raise ConfigError(f"{who}: channels must be an integer from 1 to "
                              f"{nm.MAX_CHANNELS}, got {excerpt(channels)}")
        self.channels = channels
        self.gpu = _choice(gpu, f"{who}: gpu", nm.GENERATIONS)
        if (self.algorithm in ("pat", *nm.NVLS_ALGORITHMS)
                and self.protocol not in (None, "simple")):
            raise ConfigError(f"{who}: algorithm {self.algorithm} runs with protocol simple "
                              f"only, got protocol {self.protocol}")

    @classmethod
    def algorithms(cls) -> tuple[str, ...]:
        return tuple(a for a in nm.ALGORITHMS
                     if not (a in ("tree", "nvls_tree") and cls.func != "allreduce")
                     and not (a == "pat" and cls.func == "allreduce"))

    def params(self) -> dict[str, Any]:
        """The parameters given (for forwarding to another NCCL collective)."""
        return {k: v for k, v in (("algorithm", self.algorithm), ("protocol", self.protocol),
                                  ("channels", self.channels), ("gpu", self.gpu))
                if v is not None}

    # -- the model ---------------------------------------------------------------------------
    def system(self, p: int, topo: Topology | None, alpha: float | None = None,
               beta: float | None = None) -> nm.NcclSystem:
        bw = None if beta is None else 1.0 / beta
        return nccl_system(p, topo, channels=self.channels, gpu=self.gpu, alpha=alpha,
                           bandwidth=bw, name=self.name)

    def tuned(self, p: int, msg: Message, system: nm.NcclSystem) -> nm.Tuned:
        """NCCL's choice for ``msg`` (the largest rank's bytes pace every ring step)."""
        return nm.tune(system, self.func, nm.nccl_bytes(self.func, p, msg.nbytes),
                       self.algorithm, self.protocol)

    def choice(self, p: int, msg: Message, topo: Topology) -> nm.Tuned:
        """The tuner's answer on ``topo`` (as the closed form takes it)."""
        if topo.uniform:
            return self.tuned(p, msg, self.system(p, topo, topo.alpha, 1.0 / topo.bandwidth))
        return self.tuned(p, msg, self.system(p, topo))

    def check(self, p: int, msg: Message, topo: Topology | None) -> None:
        if p > 1 and topo is not None:
            self.choice(p, msg, topo)  # whole nodes; a forced choice NCCL cannot run

    def phases(self, p: int, msg: Message, topo: Topology) -> list[Phase]:
        """What a rank sends (never timed, module docstring)."""
        pairs = shift_pairs(p, 1)
        if self.func == "allreduce":
            return [Phase("reduce-scatter + all-gather (bytes only)", ("shift", p, 1), pairs,
                          msg.nbytes / p, 2 * (p - 1))]
        # a ring sends every block p-1 times: the same total as rank i sending its own p-1
        # times (the traffic count divides the total by p)
        sizes = msg.nbytes if msg.uniform else tuple(msg.sizes())
        return [Phase(f"{_FUNC_TEXT[self.func]} (bytes only)", ("shift", p, 1), pairs, sizes,
                      p - 1)]

    def closed_form(self, p: int, msg: Message, alpha: float, beta: float,
                    topo: Topology | None) -> ClosedForm:
        return self._form(p, msg, self.system(p, topo, alpha, beta))

    def closed_form_on(self, p: int, msg: Message, topo: Topology) -> ClosedForm:
        return self._form(p, msg, self.system(p, topo))

    def _form(self, p: int, msg: Message, s: nm.NcclSystem) -> ClosedForm:
        t = self.tuned(p, msg, s)
        return ClosedForm(t.best.run_seconds, symbolic(self.func, t.best.algorithm),
                          numeric(self.func, s, t.best))

    def tuner_lines(self, p: int, msg: Message, topo: Topology) -> list[str]:
        """``--explain``: the system, every candidate's time and the choice."""
        t = self.choice(p, msg, topo)
        s = self.system(p, topo) if not topo.uniform else self.system(
            p, topo, topo.alpha, 1.0 / topo.bandwidth)
        forced = ", ".join(f"{k}={v}" for k, v in (("algorithm", self.algorithm),
                                                    ("protocol", self.protocol)) if v)
        nvls = (f"; NVLS graph {s.nvls_channels} channels at {g(s.nvls_bw_intra)} / "
                f"{g(s.nvls_bw_inter)} B/s (NVSwitch / NIC)" if s.nvls_channels else "")
        lines = [f"NCCL model (NCCL 2.30.7 tuning.cc): {s.source}; {s.channels} channels, "
                 f"{s.generation}, LL128 {'on' if s.ll128 else 'off'} by default" + nvls
                 + (f"; forced {forced}" if forced else ""),
                 f"tuner, nBytes = {g(t.best.nbytes)} B:"]
        lines += [f"  {c.algorithm}/{c.protocol}: {g(c.seconds)} s (latency {g(c.latency)} s, "
                  f"bandwidth {g(c.bandwidth)} B/s)"
                  + (f"; the run adds a pipeline fill of {g(c.fill)} s" if c.fill else "")
                  for c in t.candidates]
        lines.append(f"chosen: {t.best.algorithm}/{t.best.protocol} (by NCCL's estimate)")
        return lines


def symbolic(func: str, algorithm: str) -> str:
    """The closed form of ``algorithm`` for ``func`` (:mod:`.nccl_model`)."""
    bw = ("busbw_ch = min(B_gpu/channels, B_nic/ceil(channels/nics)), busbw = channels·busbw_ch"
          "·eff_P (capped)")
    if algorithm == "ring":
        s = "2(p-1)" if func == "allreduce" else "(p-1)"
        sn = "2(N-1)" if func == "allreduce" else "(N-1)"
        return (f"T = lat + nB·{s}/p / busbw, lat = base + ({s} - {sn})·l_intra + {sn}·l_net; "
                f"{bw}")
    if algorithm == "tree":
        return (f"T = lat + nB / (busbw/2 · corr(nB)), lat = base + 2((g-1)·l_intra + "
                f"floor(log2 N)·l_net); {bw}")
    if algorithm in nm.NVLS_ALGORITHMS:
        per = ("2" if func == "allreduce" else "(g-1)/g")
        ratio = " · p/(2(p-1))" if func == "allreduce" else ""
        lat = ("l_nvls" if algorithm == "nvls" else "l_nvls + 2·floor(log2 N)·l_net")
        inter = "bw_inter" + ("·2 (N <= 2)" if algorithm == "nvls_tree" else "")
        cap = ", perChMaxNVLSTreeBw" if algorithm == "nvls_tree" else ""
        fill = ("" if algorithm == "nvls_tree" else
                f" + fill, fill = (S-1)·min(C·c·chunk(nB/C), nB) / (busbw{ratio}) on one node "
                f"(S = {nm.NVLS_STAGES[func]} stages, C = NVLS CTAs, chunk 128/64/32/16 KiB by "
                f"size)")
        return (f"T = lat + nB / (busbw{ratio}){fill}, lat = {lat}; busbw = c·min(bw_intra·"
                f"eff·(c-1)/c·{per}, {inter}{cap}), c = NVLS channels (one per GPU)")
    return f"T = lat + nB / (0.75·busbw), lat = base + floor(log2 N)·l_net/3.5 + 2.8 us·p; {bw}"


def numeric(func: str, s: nm.NcclSystem, e: nm.Estimate) -> str:
    """The chosen estimate with its numbers."""
    text = (f"{e.algorithm}/{e.protocol}, p = {s.ranks}, N = {s.nodes}, g = "
            f"{s.gpus_per_node}, channels = {s.channels}, nB = {g(e.nbytes)} B: busbw = "
            f"{g(e.bus_bw)} B/s, lat = {g(e.latency)} s, T = {g(e.latency)} + {g(e.nbytes)}/"
            f"{g(e.bandwidth)} = {g(e.seconds)} s")
    if e.fill:
        ctas = nm.nvls_ctas(s)
        text += (f"; fill = {nm.NVLS_STAGES[func] - 1} x min({ctas} x {s.nvls_channels} x "
                 f"{nm.nvls_chunk(e.nbytes / ctas, s.nvls_channels)}, {g(e.nbytes)})/"
                 f"{g(e.bandwidth)} = {g(e.fill)} s, run {g(e.run_seconds)} s")
    return text


@COLLECTIVES.register("nccl", "NCCL's allreduce as its tuner picks it (ring, tree, nvls or "
                      "nvls_tree; LL, LL128 or Simple); params algorithm, protocol, channels, "
                      "gpu")
class NcclAllreduce(NcclCollective):
    name = "nccl"
    kind = "allreduce"
    func = "allreduce"


@COLLECTIVES.register("nccl_allgather", "NCCL's all-gather (ring, nvls on one NVLink SHARP "
                      "node, or PAT with one GPU per node) as its tuner picks it")
class NcclAllgather(NcclCollective):
    name = "nccl_allgather"
    kind = "allgather"
    func = "allgather"


@COLLECTIVES.register("nccl_reduce_scatter", "NCCL's reduce-scatter (ring, nvls, or PAT with "
                      "one GPU per node); bytes: each rank's block of the result")
class NcclReduceScatter(NcclCollective):
    name = "nccl_reduce_scatter"
    kind = "reduce_scatter"
    func = "reduce_scatter"


def allgather_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """``nccl``'s parameters as ``nccl_allgather`` takes them: a forced tree or nvls_tree
    (allreduce only) is left out, the rest is kept (the sparse all-gathers of a run with
    ``nccl``)."""
    out = dict(params or {})
    if out.get("algorithm") in ("tree", "nvls_tree"):
        del out["algorithm"]
    return out


__all__ = ["DEFAULT_GENERATION", "PCI_MAX_BANDWIDTH", "NcclAllgather", "NcclAllreduce",
           "NcclCollective", "NcclReduceScatter", "allgather_params", "nccl_system"]
