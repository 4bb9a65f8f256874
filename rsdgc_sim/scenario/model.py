"""The scenario schema: what a user writes in ``scenario.yaml``.

Strict (unknown keys and wrong types are errors naming the field's path), unit-explicit
(``"10Gbit/s"``, ``"5us"``, ``"25MiB"``, converted once here to bytes/s, s and bytes), and
versioned (``schema_version``). Building a Scenario has no side effects.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ..profile.device_models import device_model
from ..sim.config import DDPConfig, SimPoint, StragglerConfig, TopologySpec
from ..strict import Strict
from ..units import LinkBandwidth, LinkLatency, Size

SCHEMA_VERSION = 1


#: sane bounds of a model and a cluster (the memory a profile needs is estimated apart)
MAX_CLASSES = 100_000
MAX_INPUT_SIZE = 4096
MAX_BATCH = 65_536
MAX_WORKERS = 65_536  # the scale the simulator is built and tested for
#: the most virtual workers one training run takes (each holds a model replica's state)
MAX_TRAIN_WORKERS = 1024

#: the label of the dense reference (speedup_vs_dense) when the scenario lists no `none`
DENSE = "none"


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list) else [v]


class ModelSpec(Strict):
    name: str = Field(description="model from the zoo (`rsdgc-sim list`)")
    num_classes: int = Field(default=45, ge=1, le=MAX_CLASSES)
    input_size: int = Field(default=64, ge=1, le=MAX_INPUT_SIZE,
                            description="square input side, pixels")


class ProfileSpec(Strict):
    """How the profile is measured (``warmup``, ``iterations``: the least timed ones), or
    where it comes from (``file``), and whether an unstable cached one is kept (``pin``)."""

    warmup: int = Field(default=2, ge=0, le=10_000)
    iterations: int = Field(default=5, ge=1, le=10_000)
    file: str | None = Field(
        default=None, min_length=1, description="simulate with this profile file (measured elsewhere: "
        "`rsdgc-sim profile S --out FILE`) instead of measuring; relative to the scenario")
    pin: bool = Field(
        default=False, description="reuse the cached profile even when it is unstable (a "
        "spread still above its target after measuring), with a warning; by default an "
        "unstable cached profile is measured again. Not part of the cache key; the CLI's "
        "--pin-profile does the same")


class CompressorSpec(BaseModel):
    """A compressor by name; every other key is one of its parameters (checked by it)."""

    model_config = ConfigDict(extra="allow")

    name: str
    label: str | None = Field(default=None, description="name in tables; default from name and params")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def key(self) -> str:
        """The label, or ``name(k=v, ...)`` built from the parameters."""
        if self.label:
            return self.label
        if not self.params:
            return self.name
        inner = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({inner})"


class TopologyEntry(BaseModel):
    """A topology by name; other keys are the generator's parameters."""

    model_config = ConfigDict(extra="allow")

    name: str = "switch"

    def spec(self) -> TopologySpec:
        return TopologySpec(name=self.name, params=dict(self.model_extra or {}))


class ClusterSpec(Strict):
    workers: Annotated[list[Annotated[int, Field(ge=1, le=MAX_WORKERS)]], Field(min_length=1)]
    topology: TopologyEntry = Field(default_factory=TopologyEntry)
    bandwidth: Annotated[list[LinkBandwidth], Field(min_length=1)]
    latency: Annotated[list[LinkLatency], Field(min_length=1)] = Field(
        default=[5e-6], json_schema_extra={"default": ["5us"]})  # a unit, as a file writes it
    collective: str = Field(default="ring", description="allreduce algorithm for dense payloads, or auto")
    collective_params: dict[str, Any] = Field(
        default_factory=dict, description="parameters of the collective, e.g. {chunks: 4}")
    sparse_collective: str = Field(default="allgather_ring", description="all-gather algorithm for sparse payloads")
    pad_sparse: bool = Field(default=True, description="pad sparse payloads to the largest (gloo)")
    fidelity: str = "auto"
    stragglers: StragglerConfig = Field(default_factory=StragglerConfig)
    calibration: str | None = Field(default=None, min_length=1,
                                    description="calibration file from `rsdgc-sim calibrate`")

    @field_validator("workers", "bandwidth", "latency", mode="before")
    @classmethod
    def _scalar_or_list(cls, v: Any) -> Any:
        """A scalar is a one-point axis of the grid."""
        return _as_list(v)


class DDPSpec(Strict):
    bucket_cap: Annotated[Size, Field(gt=0)] = 25 * 2**20
    first_bucket: Annotated[Size, Field(gt=0)] = 2**20
    overlap: bool = True
    compression_blocks_backward: bool = Field(
        default=True, description="the comm hook pauses backward while it compresses (as DDP runs hooks)")

    def config(self) -> DDPConfig:
        return DDPConfig(
            bucket_cap_bytes=self.bucket_cap, first_bucket_bytes=self.first_bucket, overlap=self.overlap,
            compression_blocks_backward=self.compression_blocks_backward,
        )


class TrainSpec(Strict):
    """Virtual-worker training (`rsdgc-sim train`): the accuracy cost of compression."""

    dataset: str = Field(
        default="synthetic", min_length=1,
        description="synthetic (class templates + noise), synthetic_rs (remote-sensing-like "
                    "scenes, up to 8 classes), fashion_mnist (10 classes, Debian's "
                    "dataset-fashion-mnist files), or a folder with one sub-folder of images "
                    "per class")
    samples: int = Field(default=4096, ge=1, le=10_000_000,
                         description="size of the synthetic and synthetic_rs data sets")
    difficulty: float | None = Field(
        default=None, ge=0, le=1,
        description="synthetic_rs only: colour jitter, pixel noise and class overlap, 0 (easy) "
                    "to 1 (hard); default 0.35")
    data_dir: str | None = Field(
        default=None, min_length=1,
        description="fashion_mnist only: the folder of its four .gz idx files (default "
                    "/usr/share/datasets/fashion-mnist)")
    workers: Annotated[list[Annotated[int, Field(ge=1, le=MAX_TRAIN_WORKERS)]], Field(min_length=1)] = [4]
    steps: int = Field(default=200, ge=1, le=10_000_000)
    lr: float = Field(default=0.05, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    eval_every: int = Field(default=0, ge=0, description="evaluate every N steps (0: at the end only)")
    target: float | None = Field(
        default=None, gt=0, le=1,
        description="test accuracy to reach, in (0, 1] (`rsdgc-sim tta`: steps and simulated "
                    "seconds to reach it)")

    @field_validator("workers", mode="before")
    @classmethod
    def _scalar_or_list(cls, v: Any) -> Any:
        return _as_list(v)

    @model_validator(mode="after")
    def _dataset_options(self) -> TrainSpec:
        if self.difficulty is not None and self.dataset != "synthetic_rs":
            raise ValueError(f"difficulty applies to dataset synthetic_rs only, not {self.dataset!r}")
        if self.data_dir is not None and self.dataset != "fashion_mnist":
            raise ValueError(f"data_dir applies to dataset fashion_mnist only, not {self.dataset!r}")
        return self


class GridPoint(Strict):
    """One point of the cluster grid (workers x bandwidth x latency)."""

    workers: int
    bandwidth_bytes_per_s: float
    latency_s: float


class Scenario(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = "scenario"
    model: ModelSpec
    batch_size: int = Field(ge=1, le=MAX_BATCH, description="per worker")
    device: str | Annotated[list[str], Field(min_length=1)] | dict[str, Any] = Field(
        default="auto", description="auto | cpu | cuda | cuda:N | a list of these (measured); "
        "or a device model to estimate for: {model: H100-SXM}, {cpu: {cores, "
        "gflops_per_core, memory_bandwidth}}, {peak_flops, memory_bandwidth, efficiency}")
    seed: int = Field(default=0, ge=0, lt=2**63, description="seeds models, data and compressors")
    profile: ProfileSpec = Field(default_factory=ProfileSpec)
    compressors: Annotated[list[CompressorSpec], Field(min_length=1)]
    cluster: ClusterSpec
    ddp: DDPSpec = Field(default_factory=DDPSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    sweep: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict,
        description="dotted scenario paths (list indices as integers) -> values; the grid "
        "is their product with cluster.workers x bandwidth x latency, e.g. "
        "{cluster.topology.name: [switch, fat_tree], compressors.1.density: [0.1, 0.01]}")
    #: the scenario file's folder: relative file paths among the sweep's values start there
    _base_dir: str | None = PrivateAttr(default=None)
    #: the most sweep combinations this scenario may expand to (``run --max-variants``;
    #: None: :data:`rsdgc_sim.scenario.sweep.MAX_VARIANTS`)
    _max_variants: int | None = PrivateAttr(default=None)
    #: the sweep's groups as :func:`rsdgc_sim.scenario.sweep.check_sweep` validated them at
    #: load, kept for the run's variants (with what they were checked against)
    _checked_sweep: tuple | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_labels(self) -> Scenario:
        seen: set[str] = set()
        for i, c in enumerate(self.compressors):
            if c.key in seen:
                raise ValueError(f"compressors[{i}]: label {c.key!r} used twice; give one a `label`")
            if c.key == DENSE and (c.name != "none" or c.params):
                raise ValueError(
                    f"compressors[{i}]: label {DENSE!r} is kept for the dense baseline "
                    f"(compressor none); give {c.name!r} another label")
            seen.add(c.key)
        return self

    def dense_label(self) -> str:
        """The label of the dense reference: the first ``none`` compressor of the scenario,
        else ``"none"`` (profiled and simulated besides the scenario's compressors)."""
        return next((c.key for c in self.compressors if c.name == "none" and not c.params),
                    DENSE)

    def devices(self) -> list[str]:
        """The device list as written (``auto`` resolved later, by the profiler); empty for
        a device model."""
        if isinstance(self.device, dict):
            return []
        return list(self.device) if isinstance(self.device, list) else [self.device]

    def device_model(self):
        """The :class:`~rsdgc_sim.profile.device_models.DeviceModel` to estimate the profile
        for, or None when the profile is measured on the devices at hand."""
        if not isinstance(self.device, dict):
            return None

        return device_model(self.device, field="device")

    def compressor_specs(self) -> dict[str, dict[str, Any]]:
        """label -> ``{"name": ..., **params}``, in scenario order."""
        return {c.key: {"name": c.name, **c.params} for c in self.compressors}

    def grid(self) -> list[GridPoint]:
        """Every combination of workers, bandwidth and latency, in that nesting order."""
        c = self.cluster
        return [
            GridPoint(workers=w, bandwidth_bytes_per_s=b, latency_s=lat)
            for w, b, lat in itertools.product(c.workers, c.bandwidth, c.latency)
        ]

    def sim_point(self, label: str, point: GridPoint) -> SimPoint:
        c = self.cluster
        return SimPoint(
            compressor=label,
            workers=point.workers,
            topology=c.topology.spec(),
            bandwidth_bytes_per_s=point.bandwidth_bytes_per_s,
            latency_s=point.latency_s,
            collective=c.collective,
            collective_params=c.collective_params,
            sparse_collective=c.sparse_collective,
            pad_sparse=c.pad_sparse,
            fidelity=c.fidelity,
            ddp=self.ddp.config(),
            stragglers=c.stragglers,
        )
