"""GPU node presets and network transports of ``gpu_cluster``: the table
``rsdgc_sim/data/gpu_nodes.yaml`` (a node's GPUs, NVLink, NVLink SHARP, NICs, transport and
latencies; a transport's latency as its NCCL network plugin reports it; each number with its
source), read once, checked strictly, and only when a preset or a transport is named
(:func:`gpu_node_presets`, :func:`gpu_node_preset`, :func:`transport`).
"""

from __future__ import annotations

import functools
from importlib import resources

from pydantic import Field, ValidationError, model_validator

from ...errors import ConfigError, UnknownNameError
from ...strict import Strict, validation_message
from ...units import LinkBandwidth, LinkLatency
from ...yaml_file import parse_yaml
from .params import MAX_COUNT

#: the data file, in the package's ``data`` folder
PRESETS_FILE = "gpu_nodes.yaml"
#: a preset's numbers: each needs an entry in its ``sources``
PRESET_NUMBERS = ("gpus_per_node", "nvlink", "nvlink_latency", "nics_per_node", "nic",
                  "nic_latency", "nvls", "transport")
#: the network transports (NCCL's network plugins) a NIC may run
TRANSPORTS = ("ib", "roce", "socket", "efa", "tcpxo", "cxi")


class Transport(Strict):
    """One transport: ``latency`` is what its NCCL network plugin reports (NCCL's
    ``latencyInter``, added to every network hop of NCCL's model, twice for Simple)."""

    description: str = Field(min_length=1)
    latency: LinkLatency
    sources: dict[str, str]
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> Transport:
        if set(self.sources) != {"latency"} or not self.sources["latency"].strip():
            raise ValueError("sources: exactly one entry, latency, with its source")
        return self


class GpuNodePreset(Strict):
    """One preset (see the file's header for each field)."""

    description: str = Field(min_length=1)
    gpus_per_node: int = Field(ge=1, le=MAX_COUNT)
    nvlink: LinkBandwidth
    nvlink_latency: LinkLatency
    nics_per_node: int = Field(ge=1, le=MAX_COUNT)
    nic: LinkBandwidth
    nic_latency: LinkLatency
    #: the NVSwitch reduces (NVLink SHARP: third-generation NVSwitch, H100 on)
    nvls: bool
    #: the NICs' transport (a key of ``transports``)
    transport: str
    sources: dict[str, str]
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> GpuNodePreset:
        missing = [k for k in PRESET_NUMBERS if not self.sources.get(k, "").strip()]
        extra = sorted(set(self.sources) - set(PRESET_NUMBERS))
        if missing:
            raise ValueError(f"sources: no source for {', '.join(missing)}")
        if extra:
            raise ValueError(f"sources: {', '.join(extra)} is not a number of the preset "
                             f"({', '.join(PRESET_NUMBERS)})")
        if self.gpus_per_node % self.nics_per_node:
            raise ValueError(f"nics_per_node={self.nics_per_node} does not divide "
                             f"gpus_per_node={self.gpus_per_node}")
        return self


class GpuNodeTable(Strict):
    """The whole of ``gpu_nodes.yaml``."""

    presets: dict[str, GpuNodePreset] = Field(min_length=1)
    transports: dict[str, Transport] = Field(min_length=1)

    @model_validator(mode="after")
    def _transports(self) -> GpuNodeTable:
        if sorted(self.transports) != sorted(TRANSPORTS):
            raise ValueError(f"transports: expected {', '.join(TRANSPORTS)}, got "
                             f"{', '.join(self.transports)}")
        for name, p in self.presets.items():
            if p.transport not in self.transports:
                raise ValueError(f"presets.{name}.transport: {p.transport!r} is not one of "
                                 f"{', '.join(self.transports)}")
        return self


@functools.lru_cache(maxsize=1)
def gpu_node_presets() -> GpuNodeTable:
    """The preset table shipped in the package (read and checked once, on first use)."""
    source = f"rsdgc_sim/data/{PRESETS_FILE}"
    text = (resources.files("rsdgc_sim") / "data" / PRESETS_FILE).read_text(encoding="utf-8")
    data = parse_yaml(text, source)  # duplicate keys and bad YAML: ScenarioFileError
    try:
        return GpuNodeTable.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {validation_message(e, GpuNodeTable)}") from None


def gpu_node_preset(name: str) -> GpuNodePreset:
    """Preset ``name``; an unknown name is an :class:`~rsdgc_sim.errors.UnknownNameError`
    listing the presets."""
    presets = gpu_node_presets().presets
    if name not in presets:
        raise UnknownNameError("gpu_cluster preset", name, presets)
    return presets[name]


def transport(name: str) -> Transport:
    """Transport ``name``; an unknown name is an :class:`~rsdgc_sim.errors.UnknownNameError`
    listing the transports."""
    table = gpu_node_presets().transports
    if name not in table:
        raise UnknownNameError("gpu_cluster transport", name, table)
    return table[name]


__all__ = ["PRESETS_FILE", "PRESET_NUMBERS", "TRANSPORTS", "GpuNodePreset", "GpuNodeTable",
           "Transport", "gpu_node_preset", "gpu_node_presets", "transport"]
