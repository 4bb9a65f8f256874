"""What one simulated point needs besides the Profile: the cluster, the collectives, the
DDP bucketing, the fidelity and the heterogeneity. Values are already in SI units (the
scenario layer converted them). This is the contract between ``rsdgc_sim.scenario`` (which
expands a grid into points) and ``rsdgc_sim.sim`` (which runs one point)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..strict import Strict


class TopologySpec(Strict):
    """A topology by name plus its generator's parameters (checked by the generator)."""

    name: str = "switch"
    params: dict[str, Any] = Field(default_factory=dict)


class DDPConfig(Strict):
    bucket_cap_bytes: float = Field(default=25 * 2**20, gt=0)
    first_bucket_bytes: float = Field(default=2**20, gt=0)
    overlap: bool = True
    #: a DDP communication hook runs on the autograd thread (and its kernels on backward's
    #: stream): compressing a bucket pauses backward, and so does decompressing every bucket
    #: but the last. False: compression runs beside backward (a separate worker or stream).
    compression_blocks_backward: bool = True


class StragglerConfig(Strict):
    """Heterogeneity: per-worker compute speed factors (1 = as profiled, 2 = twice as slow;
    cycled over workers) and lognormal jitter of compute time with the given sigma, drawn
    from ``numpy.random.default_rng(seed)``."""

    speed_factors: list[Annotated[float, Field(gt=0, le=1e6)]] = Field(default_factory=list)
    jitter_sigma: float = Field(default=0.0, ge=0, le=10)
    seed: int = Field(default=0, ge=0, lt=2**63)


class SimPoint(Strict):
    """One grid point of one scenario, for one compressor."""

    compressor: str  # label of the compressor in the Profile
    workers: int = Field(ge=1)
    topology: TopologySpec = Field(default_factory=TopologySpec)
    bandwidth_bytes_per_s: float = Field(gt=0)
    latency_s: float = Field(ge=0)
    #: allreduce algorithm for dense payloads ("ring", "tree", ..., or "auto")
    collective: str = "ring"
    #: parameters of that algorithm (ring ``chunks``, parameter_server ``shards``,
    #: hierarchical ``gpus_per_node``)
    collective_params: dict[str, Any] = Field(default_factory=dict)
    #: all-gather algorithm for sparse payloads
    sparse_collective: str = "allgather_ring"
    #: pad sparse payloads to the largest rank's (gloo) or send exact sizes (NCCL)
    pad_sparse: bool = True
    fidelity: str = "auto"
    ddp: DDPConfig = Field(default_factory=DDPConfig)
    stragglers: StragglerConfig = Field(default_factory=StragglerConfig)
    #: compute-communication interference ``k``: backward runs ``1 + k`` times slower while
    #: a collective is in flight (``rsdgc_sim.calibration``; 0: no interference)
    interference_factor: float = Field(default=0.0, ge=0, le=100)
    #: DDP's synchronisation overhead (s per iteration, ``rsdgc_sim.calibration``'s
    #: ``ddp_overhead``): backward takes this much longer on every worker, spread over it in
    #: proportion (each bucket ready that much later, relatively); none with one worker
    sync_overhead_s: float = Field(default=0.0, ge=0, le=3600)
