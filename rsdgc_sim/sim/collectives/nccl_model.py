"""NCCL's cost model: per algorithm and protocol a latency and a bandwidth, and its tuner.

Our own code for the model NCCL uses to choose how to run a collective, written from NCCL
2.30.7 (github.com/NVIDIA/nccl, commit 5067397): ``src/graph/tuning.cc``
(``ncclTopoTuneModel``, ``ncclTopoGetAlgoTime``), ``src/enqueue.cc`` (``topoGetAlgoInfo``,
the tuner: the least estimated time wins, ties to the first in NCCL's order) and
``src/include/enqueue.h`` (``nBytes``: the message of an allreduce, ``p`` times the count of
an all-gather or reduce-scatter). Each constant below names what it mirrors.

A :class:`NcclSystem` is what the model needs of a cluster: ``N`` nodes of ``g`` GPUs (``p
= N g`` ranks), each GPU's link into its node's fabric (``B_gpu``, NVLink or PCI), the
node's NICs (``nics`` of ``B_nic`` each) and ``channels``. NCCL spreads its channels
(parallel rings or trees, each on its own NIC) over the NICs, and every channel crosses
every GPU, so a channel moves at

    bw_ch = min(B_gpu / channels, B_nic / ceil(channels / nics))

and the model's bus bandwidth is ``busbw = channels * bw_ch``: with enough channels, the
GPU's link or the node's NICs all together, whichever is slower (this is what NCCL's
topology search finds, ``nChannels * bwIntra``). ``B_gpu`` is the GPU's link as NCCL's
topology counts it (:func:`intra_factor`: an NVLink at 20 GB/s on Volta and Ampere, 20.6
on Hopper, of the datasheet's 25; PCIe at 3/4 of its datasheet rate). Then, for each algorithm ``a`` and
protocol ``P`` (LL: 8-byte lines of 4 data bytes and a flag; LL128: 128-byte lines of 120;
Simple: plain copies with a fence per step):

    T(a, P, n) = lat(a, P) + n / algbw(a, P, n)

* **ring** (allreduce ``S = 2(p-1)`` steps, all-gather/reduce-scatter ``p-1``, of which
  ``S_net = 2(N-1)`` or ``N-1`` cross a node boundary): ``lat = base + (S - S_net) l_intra
  + S_net l_net``; ``algbw = busbw_P * p / S``, so an allreduce moves ``2(p-1)/p n`` at
  ``busbw_P``, pipelined in chunks (no per-step bandwidth term);
* **tree** (allreduce only; NCCL's double binary tree between nodes, a chain inside each
  node, reduce and broadcast pipelined in chunks): ``lat = base + 2((g-1) l_intra +
  floor(log2 N) l_net)``; ``algbw = busbw_P / 2`` (a node's NICs carry ``2n`` each way;
  with two nodes only ``n``, so there a channel may take twice its NICs' share);
* **pat** (all-gather and reduce-scatter with one GPU per node, Simple only): ``lat = base
  + floor(log2 N) l_net / 3.5 + 2.8 us p``; ``algbw = 0.75 busbw``;
* **nvls** (NVLink SHARP: the NVSwitch reduces and multicasts; one node, Simple only;
  allreduce, all-gather, reduce-scatter) and **nvls_tree** (allreduce across nodes: NVLS
  inside each node, a tree between nodes), only where the node's NVSwitch supports it
  (third-generation NVSwitch, Hopper on: ``NcclSystem.nvls``). Their own channels (one per
  GPU, :func:`nvls_graph`) run at ``bw_intra`` (NVSwitch) and ``bw_inter`` (the NICs); per
  channel ``min(bw_intra eff (c-1)/c x 2 (allreduce) or x (g-1)/g, bw_inter (x 2 for
  nvls_tree on 2 nodes), perChMaxNVLSTreeBw)``, times the channels; allreduce ``algbw =
  busbw p / 2(p-1)``, all-gather and reduce-scatter ``algbw = busbw``. ``lat(nvls) = l_nvls``
  (25 us, no base); ``lat(nvls_tree) = l_nvls + 2 floor(log2 N) l_net``.

``l_intra`` and ``l_net`` are NCCL's per-hop hardware latencies (NVLink, PCI, network) per
algorithm and protocol; the bandwidth of each protocol is ``busbw`` times its efficiency
(ring: LL 1/2 capped at ``llMaxBw``, LL128 0.92 capped per channel; tree: 0.92 capped per
channel, then LL 1/3.8, LL128 120/128), as in ``ncclTopoTuneModel``.

**What the run adds to NCCL's estimate** (the tuner chooses by ``T`` alone; the time a run
takes is ``T + fill``): NVLS on one node runs each of its ``C`` CTAs (``nvlsChannels``:
16 on Hopper, 24 on one Blackwell node; src/transport/nvls.cc) as a pipeline of warp
groups that pass chunks to each other: scatter, reduce + multicast, gather for allreduce
(3 stages); multicast, gather for all-gather and scatter, reduce for reduce-scatter (2;
src/device/all_reduce.h, all_gather.h, reduce_scatter.h). A CTA moves ``H`` chunks (one
per NVLS head, ``H = nvls_channels``) per iteration, and calcCollChunking (src/enqueue.cc)
shrinks the chunk for small messages: from NCCL_NVLS_CHUNKSIZE's 128 KiB to 64 KiB below
``64 H c`` bytes per CTA, 32 KiB below ``8 H c``, 16 KiB below ``2 H c`` (``c`` the chunk
so far). A pipeline of ``S`` stages over ``K`` iterations takes ``K + S - 1`` iteration
times (each stage taken at the steady iteration time), so

    fill = (S - 1) min(C H chunk(n / C), n) / algbw

which on 8 H100 equals the bandwidth term at 8 MiB (32 KiB chunks: two iterations per
CTA, two more to fill) and is 3 % of it at 1 GiB. NVLS_TREE, ring and tree get no fill: the ring's
ranks all start at once (its steps overlap slice by slice), the tree's mid-size loss is
NCCL's own ``treeCorrectionFactor``, and NVLS_TREE's network stages have no per-chunk time
in NCCL's code to read off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import ConfigError

#: NCCL's algorithms we model, in NCCL's order (NCCL_ALGO_TREE 0, RING 1, NVLS 4, NVLS_TREE
#: 5, PAT 6; CollNet 2 and 3 need SHARP switches in the network: not modelled): ties go to
#: the first
ALGORITHMS = ("tree", "ring", "nvls", "nvls_tree", "pat")
#: the algorithms of NVLink SHARP (need ``NcclSystem.nvls``; Simple only)
NVLS_ALGORITHMS = ("nvls", "nvls_tree")
#: NCCL's protocols, in its order (NCCL_PROTO_LL 0, LL128 1, SIMPLE 2)
PROTOCOLS = ("ll", "ll128", "simple")
#: what is reduced or gathered
FUNCTIONS = ("allreduce", "allgather", "reduce_scatter")
#: GPU generations of NCCL's per-generation tables (compute capability 7.x, 8.x, 9.x, 10.x)
GENERATIONS = ("volta", "ampere", "hopper", "blackwell")
#: per-hop hardware classes of hwLat
HARDWARE = ("nvlink", "pci", "net")

_US = 1e-6
_GB = 1e9  # NCCL's GB/s: nBytes / (1000 * bw) microseconds

# -- constants (NCCL 2.30.7, src/graph/tuning.cc, ncclTunerConstantsDefaults) ------------
#: baseLatencies (us) per algorithm, (LL, LL128, Simple)
BASE_LATENCY_US = {"tree": (6.8, 14.0, 8.4), "ring": (6.6, 14.0, 8.4), "pat": (8.0, 8.0, 8.0),
                   "nvls": (0.0, 0.0, 0.0), "nvls_tree": (0.0, 0.0, 0.0)}
#: hwLatencies (us) per hardware class and algorithm, (LL, LL128, Simple)
HW_LATENCY_US = {
    "nvlink": {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4), "pat": (0.0, 0.0, 4.0),
               "nvls": (0.0, 0.0, 25.0), "nvls_tree": (0.0, 0.0, 25.0)},
    "pci": {"tree": (1.0, 1.9, 4.0), "ring": (1.0, 2.5, 5.7), "pat": (0.0, 0.0, 4.0),
            "nvls": (0.0, 0.0, 0.0), "nvls_tree": (0.0, 0.0, 0.0)},
    "net": {"tree": (5.0, 8.5, 14.0), "ring": (2.7, 4.0, 14.0), "pat": (0.0, 0.0, 14.0),
            "nvls": (0.0, 0.0, 18.0), "nvls_tree": (0.0, 0.0, 20.9)},
}
#: llMaxBws (GB/s): one node by GPU generation; several nodes by CPU (we take the Intel
#: row, NCCL's first; AMD's is 22.5 and 19.0), per (1 node, 2 nodes, more)
LL_MAX_BW_ONE_NODE = {"volta": 39.0, "ampere": 87.7, "hopper": 141.0, "blackwell": 282.0}
LL_MAX_BW_NODES = (39.0, 20.4)  # 2 nodes, more than 2 (Intel)
#: perChMaxRingLL128Bws (GB/s per channel), (1 node, 2 nodes, more)
PER_CH_MAX_RING_LL128 = {"volta": (20.0, 20.0, 20.0), "ampere": (20.0, 20.0, 20.0),
                         "hopper": (36.7, 36.7, 36.7), "blackwell": (40.0, 40.0, 40.0)}
#: perChMaxTreeLL128Bws (GB/s per channel)
PER_CH_MAX_TREE_LL128 = {"volta": (20.0, 20.0, 20.0), "ampere": (20.0, 20.0, 20.0),
                         "hopper": (36.7, 36.7, 29.0), "blackwell": (55.6, 31.67, 20.0)}
#: perChMaxTreeBws (GB/s per channel)
PER_CH_MAX_TREE = {"volta": (26.5, 18.5, 10.0), "ampere": (24.0, 23.6, 17.8),
                   "hopper": (38.7, 41.4, 36.0), "blackwell": (70.0, 42.8, 24.0)}
#: perChMaxNVLSTreeBws (GB/s per channel; NVLS needs Hopper on)
PER_CH_MAX_NVLS_TREE = {"volta": (26.5, 18.5, 10.0), "ampere": (24.0, 23.6, 17.8),
                        "hopper": (0.0, 57.7, 45.5), "blackwell": (0.0, 96.0, 80.0)}
#: nvlsEfficiency: the NVSwitch's reduction efficiency by generation (0: no NVLS)
NVLS_EFFICIENCY = {"volta": 0.0, "ampere": 0.0, "hopper": 0.85, "blackwell": 0.74}
#: the "model refinements" of ncclTopoTuneModel (bandwidth efficiencies)
RING_LL_FACTOR = 0.5            # LL: 4 data bytes per 8-byte line
RING_LL128_FACTOR = 0.92        # LL128: 120 of 128 bytes ("0.92 /*120.0/128.0*/")
TREE_FACTOR = 0.92              # tree allreduce, every protocol
TREE_LL_FACTOR = 1.0 / 3.8
TREE_LL128_FACTOR_ONE_NODE = 7.0 / 9.0
TREE_LL128_FACTOR = 120.0 / 128.0
TREE_ALGBW_RATIO = 0.5          # tree: algbw = busbw / 2
PAT_FACTOR = 0.75
#: getNetOverhead: 1 us per network step on x86 Intel (AMD: 2 us), three times for Simple
NET_OVERHEAD_US = 1.0
SIMPLE_NET_OVERHEAD_FACTOR = 3.0
#: PAT's latency: log2(N) network hops of l_net / 3.5, plus 2.8 us per rank
PAT_LOG_DIVISOR = 3.5
PAT_PER_RANK_US = 2.8
#: ncclTopoGetAlgoTime: a multi-node ring allreduce with Simple takes 1.4 times its latency
#: (1.9 before compute capability 8.0) once nBytes / (channels p) >= 64 ("plateau effect")
RING_PLATEAU = {"volta": 1.9, "ampere": 1.4, "hopper": 1.4, "blackwell": 1.4}
RING_PLATEAU_BYTES = 64
#: treeCorrectionFactor per protocol (LL, LL128, Simple) for allreduce trees, by
#: floor(log2(nBytes / 64)) from 0 to 22 (64 B to 256 MiB; 1.0 outside)
TREE_CORRECTION = (
    (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0,
     1.0, 1.0, 1.0),
    (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9,
     1.0, 1.0, 1.0),
    (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9,
     .9, .9),
)
TREE_CORRECTION_SIZES = 23  # logSize < 23 is corrected

# -- the NVLS pipeline (module docstring, "what the run adds") ----------------------------
#: NVLS CTAs per generation, (one node, several nodes): NVLS_NCHANNELS_SM90 and
#: NVLS_NCHANNELS_SM100(_NVL) of src/transport/nvls.cc
NVLS_CTAS = {"hopper": (16, 16), "blackwell": (24, 32)}
#: NCCL_NVLS_CHUNKSIZE's default (src/transport/nvls.cc); below the Simple step of the
#: default 4 MiB buffer (4 MiB / NCCL_STEPS 8), so it is the starting chunk
NVLS_CHUNK_BYTES = 128 * 1024
#: calcCollChunking (src/enqueue.cc), NVLS: below ``factor x heads x chunk`` bytes per CTA
#: a chunk above ``smaller`` drops to ``smaller``, in this order
NVLS_CHUNK_STEPS = ((64, 65536), (8, 32768), (2, 16384))
#: the warp groups a chunk passes through on one node (src/device/all_reduce.h: scatter,
#: reduce + multicast, gather; all_gather.h: multicast, gather; reduce_scatter.h: scatter,
#: reduce)
NVLS_STAGES = {"allreduce": 3, "allgather": 2, "reduce_scatter": 2}

# -- channels (our rule; NCCL finds them by searching its topology graph) ----------------
#: one NVLink (3rd/4th generation) per direction: NCCL's search gives a channel about one
#: link's bandwidth (SM80/SM90_NVLINK_BW, src/graph/topo.h: 20 and 20.6 GB/s) and then
#: doubles the channels (ncclTopoDupChannels)
CHANNEL_BANDWIDTH = 25e9
MIN_CHANNELS = 2
#: the default channels stop here (NCCL's collective channels on an 8-GPU node)
DEFAULT_MAX_CHANNELS = 32
#: the most channels (MAXCHANNELS, src/include/device.h)
MAX_CHANNELS = 64
#: two nodes: the tree's channel bandwidth may be up to twice the network's (search.cc,
#: "increase bwIntra for trees (2 nodes or collnet)" while bwIntra < 2 bwInter; tuning.cc
#: then takes bwIntra for nNodes <= 2)
TWO_NODE_TREE_NET_FACTOR = 2.0

# -- NVLS channels (NCCL's search for the NVLS pattern, src/graph/search.cc and topo.h) -----
#: the NVLink bandwidth NCCL's topology gives one link, GB/s per direction (topo.h,
#: SM70/SM80/SM90/SM100_NVLINK_BW)
NCCL_NVLINK_BW = {"volta": 20.0, "ampere": 20.0, "hopper": 20.6, "blackwell": 40.1}
#: one link's datasheet bandwidth per direction (GB/s): NVLink 2, 3 and 4 links carry 25
#: GB/s each way, NVLink 5 links 50 (V100, A100, H100 and B200 architecture whitepapers)
DATASHEET_NVLINK_BW = {"volta": 25.0, "ampere": 25.0, "hopper": 25.0, "blackwell": 50.0}
#: the speeds NCCL's search tries, GB/s per channel, from the fastest (search.cc,
#: sm90/sm100SpeedArrayIntra for one node, ...Inter across nodes)
NVLS_SPEEDS_INTRA = {"hopper": (60.0, 50.0, 40.0, 30.0, 24.0, 20.0, 15.0, 12.0, 11.0, 6.0,
                                3.0),
                     "blackwell": (90.0, 80.0, 70.0, 60.0, 50.0, 45.0, 40.0, 30.0, 24.0, 20.0,
                                   19.0, 18.0)}
NVLS_SPEEDS_INTER = {"hopper": (48.0, 45.0, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0, 17.5, 15.0,
                                12.0, 6.0, 3.0, 2.4, 1.2, 0.24, 0.12),
                     "blackwell": (96.0, 86.0, 80.0, 48.0, 45.1, 42.0, 40.0, 30.0, 24.0, 22.0,
                                   20.0, 17.5, 15.0, 12.0, 6.0, 3.0, 2.4, 1.2, 0.24, 0.12)}
#: NVLS channels: at most one per GPU of the node, up to NCCL_MAX_NVLS_ARITY (device.h)
MAX_NVLS_ARITY = 32
#: PCIe as NCCL's topology counts it: ``lanes x GT/s x 0.75 / 8`` GB/s (topo.cc,
#: kvDictPciGen: 16 GT/s per lane counts 120 x 100 Mb/s; ``bw = width * speed / 80``), three
#: quarters of the datasheet's ``lanes x GT/s / 8`` (the 128b/130b coding and packet
#: overheads in one factor)
NCCL_PCI_FACTOR = 0.75


def intra_factor(intra: str, generation: str) -> float:
    """The share of a GPU's datasheet bandwidth inside the node that NCCL's topology counts
    (and so its model moves data at): NVLink ``NCCL_NVLINK_BW / DATASHEET_NVLINK_BW`` per
    link (Volta and Ampere 20/25, Hopper 20.6/25, Blackwell 40.1/50), PCIe
    :data:`NCCL_PCI_FACTOR`."""
    if intra == "nvlink":
        return NCCL_NVLINK_BW[generation] / DATASHEET_NVLINK_BW[generation]
    return NCCL_PCI_FACTOR

#: a topology's inter-node latency adds to NCCL's network constants only beyond this:
#: hwLat already holds a network hop (its lowest, ring LL: 2.7 us)
NET_HOP_INCLUDED_S = HW_LATENCY_US["net"]["ring"][0] * _US


def log2i(n: int) -> int:
    """NCCL's log2i (log2Down): floor(log2 n), -1 for 0."""
    return int(n).bit_length() - 1


def default_channels(gpu_bw: float, nic_bw: float, nics: int, nodes: int) -> int:
    """Two channels per :data:`CHANNEL_BANDWIDTH` of the slower of the GPU's link and the
    node's NICs together, at least one per NIC (so that every NIC carries a channel) and a
    multiple of the NICs across nodes, from :data:`MIN_CHANNELS` to
    :data:`DEFAULT_MAX_CHANNELS` (or the NICs, if more)."""
    full = min(gpu_bw, nic_bw * nics if nodes > 1 else math.inf)
    c = max(MIN_CHANNELS, 2 * math.ceil(full / CHANNEL_BANDWIDTH))
    if nodes == 1:
        return min(c, DEFAULT_MAX_CHANNELS)
    c = -(-max(c, nics) // nics) * nics  # a multiple of the NICs
    cap = max(DEFAULT_MAX_CHANNELS // nics * nics, nics)  # the largest such multiple
    return min(c, cap, MAX_CHANNELS)


def nvls_graph(gpu_bw: float, nic_bw: float, gpus_per_node: int, nodes: int,
               generation: str) -> tuple[int, float, float]:
    """NCCL's NVLS graph on our node: ``(channels, bw_intra, bw_inter)`` (bytes/s per
    channel), ``(0, 0, 0)`` where NVLS cannot run (before Hopper, one GPU per node).

    As search.cc finds it: one channel per GPU (``min(32, g)``), each channel's head GPU
    pulling from the NVSwitch at twice the others' rate, so that a GPU's NVLink carries
    ``(g + 1) bw_intra``; the GPU's NVLink as NCCL's topology counts it is ``links x
    NCCL_NVLINK_BW`` (``links = gpu_bw / DATASHEET_NVLINK_BW``). ``bw_intra`` is the fastest
    speed of NCCL's list (the intra list on one node, the inter list across nodes, where it
    must also fit the head's NIC, ``nic_bw``) that fits; ``bw_inter`` then climbs the list
    while below ``2 bw_intra`` and within the NIC (unbounded on one node)."""
    g = gpus_per_node
    if g < 2 or NVLS_EFFICIENCY[generation] == 0.0:
        return 0, 0.0, 0.0
    links = gpu_bw / _GB / DATASHEET_NVLINK_BW[generation]
    nvlink = links * NCCL_NVLINK_BW[generation]
    speeds = (NVLS_SPEEDS_INTRA if nodes == 1 else NVLS_SPEEDS_INTER)[generation]
    nic = math.inf if nodes == 1 else nic_bw / _GB
    fits = [i for i, s in enumerate(speeds) if (g + 1) * s <= nvlink and s <= nic]
    i = fits[0] if fits else len(speeds) - 1
    intra = inter = speeds[i]
    while i > 0 and inter < 2 * intra and speeds[i - 1] <= nic:
        i -= 1
        inter = speeds[i]
    return min(MAX_NVLS_ARITY, g), intra * _GB, inter * _GB


@dataclass(frozen=True)
class NcclSystem:
    """A cluster as NCCL's model sees it (module docstring). Bandwidths in bytes/s per
    direction, ``gpu_bw`` ``inf`` with one GPU per node; ``net_latency`` (s) is added to
    every network hop (NCCL's ``latencyInter``: what the network plugin reports, plus a
    topology's latency beyond NCCL's own hop); ``ll128`` whether NCCL enables LL128 by
    default here (its hardware restrictions); ``nvls_channels``, ``nvls_bw_intra`` and
    ``nvls_bw_inter`` NCCL's NVLS graph (:func:`nvls_graph`; 0 channels: no NVLink SHARP
    here); ``source`` says where the numbers came from."""

    ranks: int
    nodes: int
    gpus_per_node: int
    gpu_bw: float
    intra: str  # "nvlink" or "pci"
    nics: int
    nic_bw: float
    net_latency: float
    generation: str
    channels: int
    ll128: bool
    source: str = ""
    nvls_channels: int = 0
    nvls_bw_intra: float = 0.0
    nvls_bw_inter: float = 0.0

    @property
    def per_channel_bw(self) -> float:
        """``min(B_gpu / channels, B_nic / ceil(channels / nics))`` (bytes/s)."""
        gpu = self.gpu_bw / self.channels if self.gpus_per_node > 1 else math.inf
        net = (self.nic_bw / math.ceil(self.channels / self.nics) if self.nodes > 1
               else math.inf)
        return min(gpu, net)

    @property
    def bus_bw(self) -> float:
        """``channels * bw_ch``: the model's bus bandwidth before protocol efficiencies."""
        return self.channels * self.per_channel_bw

    @property
    def tree_bus_bw(self) -> float:
        """The tree's: as :attr:`bus_bw`, but with two nodes a channel may take twice its
        NICs' share (each node is the other's only child: a byte crosses once each way,
        half of what a deeper tree sends; :data:`TWO_NODE_TREE_NET_FACTOR`)."""
        if self.nodes != 2:
            return self.bus_bw
        gpu = self.gpu_bw / self.channels if self.gpus_per_node > 1 else math.inf
        net = TWO_NODE_TREE_NET_FACTOR * self.nic_bw / math.ceil(self.channels / self.nics)
        return self.channels * min(gpu, net)

    @property
    def _index2(self) -> int:
        return min(self.nodes, 3) - 1


@dataclass(frozen=True)
class Estimate:
    """One (algorithm, protocol): its latency (s, with the plateau factor), the bandwidth
    that divides ``nbytes`` (bytes/s, with the tree's size correction), the model's bus
    bandwidth of the protocol (bytes/s), NCCL's estimated time (s, what the tuner
    compares) and the pipeline fill the run adds to it (s, :func:`pipeline_fill`)."""

    algorithm: str
    protocol: str
    latency: float
    bandwidth: float
    bus_bw: float
    seconds: float
    nbytes: float
    fill: float = 0.0

    @property
    def run_seconds(self) -> float:
        """The time the run takes: NCCL's estimate plus the pipeline fill."""
        return self.seconds + self.fill


def _check_func(func: str) -> None:
    if func not in FUNCTIONS:
        raise ConfigError(f"NCCL function {func!r}: choose one of {', '.join(FUNCTIONS)}")


def available(system: NcclSystem, func: str, algorithm: str, protocol: str) -> str | None:
    """None when NCCL would run ``algorithm`` with ``protocol`` for ``func`` here (LL128's
    default hardware restriction aside, see :func:`tune`), else why not."""
    _check_func(func)
    if algorithm == "tree" and func != "allreduce":
        return "tree runs allreduce only"
    if algorithm == "pat":
        if func == "allreduce":
            return "pat runs all-gather and reduce-scatter only"
        if protocol != "simple":
            return "pat runs with the Simple protocol only"
        if system.gpus_per_node != 1:
            return "pat needs one GPU per node"
    if algorithm in NVLS_ALGORITHMS:
        if protocol != "simple":
            return f"{algorithm} runs with the Simple protocol only"
        if system.nvls_channels < 2:
            return (f"{algorithm} needs NVLink SHARP (an NVSwitch that reduces: Hopper on, "
                    f"more than one GPU per node), which these nodes have not")
        if algorithm == "nvls" and system.nodes > 1:
            return "nvls across nodes needs CollNet (SHARP in the network, not modelled)"
        if algorithm == "nvls_tree" and func != "allreduce":
            return "nvls_tree runs allreduce only"
        if algorithm == "nvls_tree" and system.nodes == 1:
            return "nvls_tree needs more than one node"
    return None


def latency(system: NcclSystem, func: str, algorithm: str, protocol: str) -> float:
    """``lat(a, P)`` in seconds, before the ring's plateau factor (module docstring)."""
    pi = PROTOCOLS.index(protocol)
    p, nodes, g = system.ranks, system.nodes, system.gpus_per_node
    base = BASE_LATENCY_US[algorithm][pi]
    intra = HW_LATENCY_US[system.intra][algorithm][pi]
    # with one GPU per node every hop is a network hop: NCCL then takes the tree's
    net_algo = "tree" if g == 1 else algorithm
    net = HW_LATENCY_US["net"][net_algo][pi] + system.net_latency / _US
    if protocol == "simple":  # "the flush extra latency"
        net += system.net_latency / _US
    if algorithm == "ring":
        steps = 2 * (p - 1) if func == "allreduce" else p - 1
        net_steps = 0 if nodes == 1 else (2 * (nodes - 1) if func == "allreduce" else nodes - 1)
        if nodes > 1:  # every step still posts to the network proxy
            overhead = NET_OVERHEAD_US * (SIMPLE_NET_OVERHEAD_FACTOR if protocol == "simple"
                                          else 1.0)
            intra = max(intra, overhead)
        us = base + (steps - net_steps) * intra + net_steps * net
    elif algorithm == "tree":
        us = base + 2 * ((g - 1) * intra + log2i(nodes) * net)
    elif algorithm == "nvls":  # NCCL sets (not adds) the NVLink latency; one node only
        us = intra
    elif algorithm == "nvls_tree":
        us = base + intra + 2 * log2i(nodes) * net
    else:  # pat
        us = base + log2i(nodes) * (net / PAT_LOG_DIVISOR) + p * PAT_PER_RANK_US
    return us * _US


def bus_bandwidth(system: NcclSystem, func: str, algorithm: str, protocol: str) -> float:
    """The protocol's bus bandwidth (bytes/s): ``busbw`` times its efficiency, capped
    (module docstring)."""
    i2, gen, ch = system._index2, system.generation, system.channels
    if algorithm in NVLS_ALGORITHMS:
        return _nvls_bus_bandwidth(system, func, algorithm)
    bw = system.tree_bus_bw if algorithm == "tree" else system.bus_bw
    if algorithm == "ring" and protocol == "ll":
        ll_max = LL_MAX_BW_ONE_NODE[gen] if system.nodes == 1 else LL_MAX_BW_NODES[i2 - 1]
        bw = min(ll_max * _GB, bw * RING_LL_FACTOR)
    if algorithm == "ring" and protocol == "ll128":
        bw = min(bw * RING_LL128_FACTOR, ch * PER_CH_MAX_RING_LL128[gen][i2] * _GB)
    if algorithm == "tree" and func == "allreduce":
        bw = min(bw * TREE_FACTOR, ch * PER_CH_MAX_TREE[gen][i2] * _GB)
    if algorithm == "tree" and protocol == "ll":
        ll_max = LL_MAX_BW_ONE_NODE[gen] if system.nodes == 1 else LL_MAX_BW_NODES[i2 - 1]
        bw = min(bw * TREE_LL_FACTOR, ll_max * _GB)
    if algorithm == "tree" and protocol == "ll128":
        f = TREE_LL128_FACTOR_ONE_NODE if system.nodes == 1 else TREE_LL128_FACTOR
        bw = min(bw * f, ch * PER_CH_MAX_TREE_LL128[gen][i2] * _GB)
    if algorithm == "pat":
        bw *= PAT_FACTOR
    return bw


def _nvls_bus_bandwidth(system: NcclSystem, func: str, algorithm: str) -> float:
    """NVLS and NVLS tree (module docstring): the channels times the least of the
    NVSwitch's, the NICs' and (nvls_tree) perChMaxNVLSTreeBw's bandwidth per channel."""
    c, g = system.nvls_channels, system.gpus_per_node
    intra = system.nvls_bw_intra * NVLS_EFFICIENCY[system.generation] * (c - 1) / c
    intra *= 2.0 if func == "allreduce" else (g - 1) / g  # allreduce pipelines two ops
    inter = system.nvls_bw_inter * (2.0 if algorithm == "nvls_tree" and system.nodes <= 2
                                    else 1.0)
    cap = (PER_CH_MAX_NVLS_TREE[system.generation][system._index2] * _GB
           if algorithm == "nvls_tree" else math.inf)
    return c * min(intra, inter, cap)


def algorithm_bandwidth(system: NcclSystem, func: str, algorithm: str, protocol: str) -> float:
    """The bandwidth that divides NCCL's ``nBytes`` (bytes/s): the bus bandwidth times
    ``p / S`` (ring; nvls and nvls_tree for allreduce), ``1/2`` (tree) or 1 (pat; nvls for
    all-gather and reduce-scatter)."""
    bw = bus_bandwidth(system, func, algorithm, protocol)
    if algorithm == "ring" or (algorithm in NVLS_ALGORITHMS and func == "allreduce"):
        steps = 2 * (system.ranks - 1) if func == "allreduce" else system.ranks - 1
        return bw * system.ranks / steps
    if algorithm == "tree":
        return bw * TREE_ALGBW_RATIO
    return bw


def nccl_bytes(func: str, p: int, nbytes: float) -> float:
    """NCCL's ``nBytes``: the message of an allreduce, ``p`` times each rank's count of an
    all-gather or reduce-scatter (src/include/enqueue.h, ncclFuncMaxSendRecvCount)."""
    return nbytes if func == "allreduce" else p * nbytes


def nvls_ctas(system: NcclSystem) -> int:
    """The CTAs (NCCL's ``nvlsChannels``) NVLS runs on: :data:`NVLS_CTAS`."""
    return NVLS_CTAS[system.generation][0 if system.nodes == 1 else 1]


def nvls_chunk(channel_bytes: float, heads: int) -> int:
    """calcCollChunking's NVLS chunk (bytes) for ``channel_bytes`` of NCCL's ``nBytes`` per
    CTA and ``heads`` NVLS heads: :data:`NVLS_CHUNK_BYTES`, then :data:`NVLS_CHUNK_STEPS`."""
    chunk = NVLS_CHUNK_BYTES
    for factor, smaller in NVLS_CHUNK_STEPS:
        if channel_bytes < factor * heads * chunk and chunk > smaller:
            chunk = smaller
    return chunk


def pipeline_fill(system: NcclSystem, func: str, algorithm: str, nbytes: float,
                  bandwidth: float) -> float:
    """The seconds a run adds to NCCL's estimate by filling its chunk pipeline (module
    docstring): ``(S - 1) min(C H chunk, n) / bandwidth`` for nvls on one node (``bandwidth``
    the one dividing ``n``), 0 for every other algorithm."""
    if algorithm != "nvls" or system.nodes != 1 or system.nvls_channels < 2:
        return 0.0
    ctas, heads = nvls_ctas(system), system.nvls_channels
    first = min(ctas * heads * nvls_chunk(nbytes / ctas, heads), nbytes)  # first iteration
    return (NVLS_STAGES[func] - 1) * first / bandwidth


def estimate(system: NcclSystem, func: str, algorithm: str, protocol: str,
             nbytes: float) -> Estimate:
    """``T(a, P, n)`` for NCCL's ``nBytes = n`` (ncclTopoGetAlgoTime; one operation), and
    the pipeline fill the run adds (:func:`pipeline_fill`)."""
    bus = bus_bandwidth(system, func, algorithm, protocol)
    bw = algorithm_bandwidth(system, func, algorithm, protocol)
    lat = latency(system, func, algorithm, protocol)
    log_size = log2i(int(nbytes) >> 6)
    if algorithm == "tree" and func == "allreduce" and 0 <= log_size < TREE_CORRECTION_SIZES:
        bw *= TREE_CORRECTION[PROTOCOLS.index(protocol)][log_size]
    if (algorithm == "nvls_tree" and func == "allreduce" and system.generation == "blackwell"
            and 0 <= log_size < len(TREE_CORRECTION[0])):  # NCCL: x86 hosts only (ours)
        bw *= TREE_CORRECTION[PROTOCOLS.index(protocol)][log_size]
    if (algorithm == "ring" and protocol == "simple" and system.nodes > 1
            and func == "allreduce"
            and nbytes >= RING_PLATEAU_BYTES * system.channels * system.ranks):
        lat *= RING_PLATEAU[system.generation]
    return Estimate(algorithm, protocol, lat, bw, bus, lat + nbytes / bw, nbytes,
                    pipeline_fill(system, func, algorithm, nbytes, bw))


@dataclass(frozen=True)
class Tuned:
    """The tuner's answer: the chosen (algorithm, protocol) and every candidate's estimate,
    in NCCL's order."""

    best: Estimate
    candidates: tuple[Estimate, ...]


def tune(system: NcclSystem, func: str, nbytes: float, algorithm: str | None = None,
         protocol: str | None = None) -> Tuned:
    """NCCL's choice for ``func`` on NCCL's ``nBytes = nbytes``: the least estimated time
    (``Estimate.seconds``, without the pipeline fill NCCL's model leaves out) among the
    enabled (algorithm, protocol) pairs, ties to the first in NCCL's order. ``algorithm``
    and ``protocol`` restrict the choice as ``NCCL_ALGO`` and ``NCCL_PROTO`` do; LL128 is a
    candidate when the system enables it by default (``system.ll128``) or when forced, as
    NCCL enables it. A forced choice NCCL cannot run raises ConfigError."""
    _check_func(func)
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ConfigError(f"NCCL algorithm {algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
    if protocol is not None and protocol not in PROTOCOLS:
        raise ConfigError(f"NCCL protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    cands, why = [], []
    for a in ALGORITHMS:
        if algorithm is not None and a != algorithm:
            continue
        for pr in PROTOCOLS:
            if protocol is not None and pr != protocol:
                continue
            if pr == "ll128" and protocol is None and not system.ll128:
                continue
            reason = available(system, func, a, pr)
            if reason is not None:
                why.append(f"{a}/{pr}: {reason}")
                continue
            cands.append(estimate(system, func, a, pr, nbytes))
    if not cands:
        raise ConfigError(
            f"NCCL has no algorithm and protocol for {func} with "
            f"algorithm={algorithm or 'any'}, protocol={protocol or 'any'} on {system.nodes} "
            f"node(s) of {system.gpus_per_node} GPU(s): " + "; ".join(why))
    best = cands[0]
    for c in cands[1:]:
        if c.seconds < best.seconds:
            best = c
    return Tuned(best, tuple(cands))


__all__ = ["ALGORITHMS", "FUNCTIONS", "GENERATIONS", "NVLS_ALGORITHMS", "PROTOCOLS", "Estimate",
           "NcclSystem", "Tuned", "algorithm_bandwidth", "available", "bus_bandwidth",
           "default_channels", "estimate", "intra_factor", "latency", "log2i", "nccl_bytes",
           "nvls_chunk", "nvls_ctas", "nvls_graph", "pipeline_fill", "tune"]
