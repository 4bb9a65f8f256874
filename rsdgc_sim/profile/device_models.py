"""Device models: the hardware an *estimated* profile describes, for answers about devices
one does not have (torch-free: scenario loading may parse them without torch).

A scenario's ``device`` mapping takes one of three forms; :func:`device_model` turns each
into a :class:`DeviceModel`:

* a table entry, ``{model: H100-SXM}``, optionally ``efficiency: 0.6`` and
  ``op_overhead: 3us`` overriding the table's (names: :data:`DEVICE_MODELS`, from
  ``rsdgc_sim/data/devices.yaml``, with aliases such as ``H100``, ``A100``, ``V100``; case
  does not matter). A plain string is the same as ``{model: <string>}``;
* a CPU, ``{cpu: {cores: 32, gflops_per_core: 100, memory_bandwidth: 200GB/s}}``
  (optionally ``efficiency``, ``op_overhead``, ``page_fault_bandwidth``, ``name``; the
  defaults are the table's ``cpu`` entry): peak FLOP/s = ``cores * gflops_per_core * 1e9``;
* a custom device, ``{peak_flops: 50TFLOP/s, memory_bandwidth: 1TB/s, efficiency: 0.5}``
  (optionally ``conv_peak_flops``, ``op_overhead``, ``page_fault_bandwidth``,
  ``kind: gpu|cpu``, ``name``; defaults from the table's ``gpu`` or ``cpu`` entry).

Quantities are converted once, here: FLOP/s by :func:`parse_flops` (a number, or e.g.
``"989TFLOP/s"``, ``"67 TFLOPS"``, ``"500GFLOP/s"``), bandwidths by
:func:`rsdgc_sim.units.parse_bandwidth` (``"3.35TB/s"`` = 3.35e12 bytes/s), durations by
:func:`rsdgc_sim.units.parse_duration`. Every mistake (unknown name, unknown key, a bool,
a negative, infinite or missing value) is one :class:`~rsdgc_sim.errors.ConfigError`
naming the field (``device.efficiency: ...``); an unknown name lists the known ones.

What the numbers mean, and which FLOP/s an estimate uses, is said in ``devices.yaml`` and
in :mod:`rsdgc_sim.profile.estimate`: convolutions at ``conv_peak_flops`` (the TF32
tensor-core rate, which cuDNN uses for fp32 convolutions by default), everything else at
``peak_flops`` (plain FP32: fp32 matmuls do not use TF32 by default).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from ..errors import ConfigError, UnitError, UnknownNameError
from ..strict import excerpt, validation_message
from ..units import Bandwidth, Duration
from ..yaml_file import parse_yaml

__all__ = [
    "DEVICE_FORMS",
    "DEVICE_MODELS",
    "DeviceModel",
    "DeviceTable",
    "TableEntry",
    "device_model",
    "device_table",
    "parse_flops",
]

FLOPS_FORMS = "a number in FLOP/s or e.g. '989TFLOP/s', '67 TFLOPS', '500GFLOP/s'"

DEVICE_FORMS = (
    "{model: NAME} (optionally efficiency, op_overhead), "
    "{cpu: {cores: N, gflops_per_core: X, memory_bandwidth: '20GB/s'}}, or "
    "{peak_flops: '50TFLOP/s', memory_bandwidth: '1TB/s', efficiency: 0.5}"
)

_FLOPS_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_FLOPS_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*"
    r"(?P<pfx>[kKMGTP])?(?i:flop/s|flops)$"
)


def parse_flops(value: object, field: str = "") -> float:
    """FLOP/s as a float: a number (int or float, not a bool) or a numeric string as is;
    ``"989TFLOP/s"``, ``"67 TFLOPS"``, ``"1.5e3 GFLOP/s"`` with decimal prefixes k, M, G, T,
    P. Anything else, and a non-finite value, raises :class:`UnitError` naming ``field``."""
    x: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            x = float(text)
        except ValueError:
            m = _FLOPS_RE.match(text)
            if m:
                x = float(m["num"]) * _FLOPS_PREFIX[m["pfx"] or ""]
    if x is None or not math.isfinite(x):
        where = f"{field}: " if field else ""
        raise UnitError(f"{where}cannot read {value!r}; expected {FLOPS_FORMS}")
    return x


def _flops_field(value: object) -> float:
    try:
        return parse_flops(value)
    except UnitError as e:  # pydantic adds the field's path
        raise ValueError(str(e)) from None


#: a FLOP/s field: converted from its string form once, at validation
Flops = Annotated[
    float,
    BeforeValidator(_flops_field),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "description": FLOPS_FORMS}),
]
#: the range of a device's FLOP/s: a slow microcontroller (1 MFLOP/s) to 10 EFLOP/s; outside
#: it an estimate is meaningless (and at 1e-300 FLOP/s its times overflow)
MIN_FLOPS, MAX_FLOPS = 1e6, 1e19
#: the range of a memory bandwidth, bytes/s: 1 MB/s to 10 PB/s
MIN_BANDWIDTH, MAX_BANDWIDTH = 1e6, 1e16
#: the most a kernel launch may cost, seconds
MAX_OVERHEAD_S = 1.0

PositiveFlops = Annotated[Flops, Field(ge=MIN_FLOPS, le=MAX_FLOPS)]
PositiveBandwidth = Annotated[Bandwidth, Field(ge=MIN_BANDWIDTH, le=MAX_BANDWIDTH)]
Overhead = Annotated[Duration, Field(ge=0, le=MAX_OVERHEAD_S)]
Efficiency = Annotated[float, Field(gt=0, le=1)]
Kind = Literal["gpu", "cpu"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, defer_build=True)


class DeviceModel(_Strict):
    """One device as the roofline sees it (SI units: FLOP/s, bytes/s, seconds)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True, defer_build=True)

    name: str = Field(min_length=1)
    #: ``gpu`` or ``cpu``: which of PyTorch's default kernels to assume (see
    #: :mod:`rsdgc_sim.profile.estimate`)
    kind: Kind = "gpu"
    #: dense FP32 FLOP/s of the plain cores: matmuls and every op but convolutions
    peak_flops: float = Field(ge=MIN_FLOPS, le=MAX_FLOPS)
    #: FLOP/s of fp32 convolutions (TF32 tensor cores where cuDNN uses them by default);
    #: None: ``peak_flops``
    conv_peak_flops: float | None = Field(default=None, ge=MIN_FLOPS, le=MAX_FLOPS)
    #: peak memory bandwidth, bytes/s
    memory_bandwidth: float = Field(ge=MIN_BANDWIDTH, le=MAX_BANDWIDTH)
    #: fraction of both peaks that kernels reach, in (0, 1]
    efficiency: float = Field(gt=0, le=1)
    #: fraction of ``conv_flops`` that convolutions reach; None: ``efficiency``
    conv_efficiency: float | None = Field(default=None, gt=0, le=1)
    #: fraction of ``memory_bandwidth`` that bandwidth-bound work reaches (every op's bytes
    #: term, a compressor's traffic); None: ``efficiency``
    memory_efficiency: float | None = Field(default=None, gt=0, le=1)
    #: seconds every launched kernel costs on top of its roofline time (eager dispatch)
    op_overhead: float = Field(default=0.0, ge=0, le=MAX_OVERHEAD_S)
    #: bytes/s at which the OS maps fresh pages on first write (CPUs: large tensors are
    #: mmap'ed anew by every allocation, see :data:`rsdgc_sim.profile.meta_count.FRESH_MIN_BYTES`);
    #: None: no such cost (GPUs: PyTorch's caching allocator reuses memory)
    page_fault_bandwidth: float | None = Field(default=None, ge=MIN_BANDWIDTH, le=MAX_BANDWIDTH)
    #: where the numbers come from
    source: str = ""

    @property
    def conv_flops(self) -> float:
        """The FLOP/s convolutions run at."""
        return self.conv_peak_flops if self.conv_peak_flops is not None else self.peak_flops

    @property
    def conv_e(self) -> float:
        """The fraction of :attr:`conv_flops` convolutions reach."""
        return self.efficiency if self.conv_efficiency is None else self.conv_efficiency

    @property
    def memory_e(self) -> float:
        """The fraction of :attr:`memory_bandwidth` bandwidth-bound work reaches."""
        return self.efficiency if self.memory_efficiency is None else self.memory_efficiency

    def describe(self) -> str:
        """``H100-SXM (roofline, efficiency 0.5)``: what a profile's ``source`` says (with
        ``conv x, memory y`` where the table gives per-op-class factors)."""
        extra = "".join(f", {what} {v:g}" for what, v in (("conv", self.conv_efficiency),
                                                            ("memory", self.memory_efficiency))
                        if v is not None)
        return f"{self.name} (roofline, efficiency {self.efficiency:g}{extra})"


class TableEntry(_Strict):
    """One entry of ``devices.yaml`` (see the file's header for each field)."""

    kind: Kind
    fp32: PositiveFlops
    tf32: PositiveFlops | None = None
    fp16_tensor: PositiveFlops | None = None
    memory_bandwidth: PositiveBandwidth
    efficiency: Efficiency
    op_overhead: Overhead
    conv_efficiency: Efficiency | None = None
    memory_efficiency: Efficiency | None = None
    #: where ``conv_efficiency`` and ``memory_efficiency`` come from (required with them)
    calibration: str = ""
    aliases: list[str] = Field(default_factory=list)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _calibration_cited(self) -> TableEntry:
        if (self.conv_efficiency is not None or self.memory_efficiency is not None) \
                and not self.calibration.strip():
            raise ValueError("calibration: say where conv_efficiency / memory_efficiency come from")
        return self

    def model(self, name: str, efficiency: float | None = None, op_overhead: float | None = None) -> DeviceModel:
        """The :class:`DeviceModel` of this entry. An ``efficiency`` given here (a scenario's
        own calibration) replaces the table's and its per-op-class factors alike."""
        calibrated = efficiency is None
        return DeviceModel(
            name=name,
            kind=self.kind,
            peak_flops=self.fp32,
            conv_peak_flops=self.tf32,
            memory_bandwidth=self.memory_bandwidth,
            efficiency=self.efficiency if efficiency is None else efficiency,
            conv_efficiency=self.conv_efficiency if calibrated else None,
            memory_efficiency=self.memory_efficiency if calibrated else None,
            op_overhead=self.op_overhead if op_overhead is None else op_overhead,
            source=self.source,
        )


class KindDefaults(_Strict):
    """Defaults of the ``cpu`` form and of custom devices of a kind."""

    efficiency: Efficiency
    op_overhead: Overhead
    page_fault_bandwidth: PositiveBandwidth | None = None
    source: str = ""


class DeviceTable(_Strict):
    """The whole of ``devices.yaml``."""

    cpu: KindDefaults
    gpu: KindDefaults
    devices: dict[str, TableEntry]

    def lookup(self, name: str) -> tuple[str, TableEntry] | None:
        """``(canonical name, entry)`` of a name or alias (exact first, then ignoring case)."""
        if name in self.devices:
            return name, self.devices[name]
        want = name.strip().lower()
        for canon, entry in self.devices.items():
            if want == canon.lower() or want in (a.lower() for a in entry.aliases):
                return canon, entry
        return None


TABLE_FILE = "devices.yaml"


@functools.lru_cache(maxsize=1)
def device_table() -> DeviceTable:
    """The device table shipped in the package (read once, by libyaml where PyYAML has it:
    the package's own file needs none of the checks :func:`~rsdgc_sim.yaml_file.parse_yaml`
    makes on a user's, which take 25 ms in pure Python on every start; the tests read it
    both ways, alike)."""
    source = f"rsdgc_sim/data/{TABLE_FILE}"
    text = (resources.files("rsdgc_sim") / "data" / TABLE_FILE).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", None)
    data = yaml.load(text, Loader=loader) if loader is not None else parse_yaml(text, source)
    try:
        return DeviceTable.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {validation_message(e, DeviceTable)}") from None


#: the names of the table's device models
DEVICE_MODELS: tuple[str, ...] = tuple(device_table().devices)


class _ModelForm(_Strict):
    model: str
    efficiency: Efficiency | None = None
    op_overhead: Overhead | None = None


class _CPUParams(_Strict):
    cores: int = Field(ge=1)
    #: GFLOP/s of one core (FP32)
    gflops_per_core: float = Field(ge=MIN_FLOPS / 1e9, le=MAX_FLOPS / 1e9)
    memory_bandwidth: PositiveBandwidth
    efficiency: Efficiency | None = None
    op_overhead: Overhead | None = None
    page_fault_bandwidth: PositiveBandwidth | None = None
    name: str | None = Field(default=None, min_length=1)


class _CPUForm(_Strict):
    cpu: _CPUParams


class _CustomForm(_Strict):
    peak_flops: PositiveFlops
    memory_bandwidth: PositiveBandwidth
    efficiency: Efficiency | None = None
    conv_peak_flops: PositiveFlops | None = None
    op_overhead: Overhead | None = None
    page_fault_bandwidth: PositiveBandwidth | None = None
    kind: Kind = "gpu"
    name: str = Field(default="custom", min_length=1)


def _owner(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model that holds the key at ``loc`` (for the allowed keys beside an unknown one)."""
    for part in loc:
        ann = cls.model_fields[part].annotation if part in cls.model_fields else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        cls = ann
    return cls


def _message(e: ValidationError, cls: type[BaseModel], field: str) -> str:
    """One line: ``field.path: reason`` per bad field (first reason per path)."""
    parts: dict[str, str] = {}
    for err in e.errors():
        loc = tuple(err["loc"])
        path = ".".join([field, *(str(x) for x in loc)])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_owner(cls, loc[:-1]).model_fields)
            text = f"unknown key; allowed: {allowed}"
        elif err["type"] == "missing":
            text = "required field is missing"
        else:
            text = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] != "value_error" and "input" in err:
                text += f" (got {excerpt(err['input'])})"
        parts.setdefault(path, f"{path}: {text}")
    return "; ".join(parts.values())


def _validate(cls: type[_Strict], spec: Mapping[str, Any], field: str) -> Any:
    try:
        return cls.model_validate(dict(spec))
    except ValidationError as e:
        raise ConfigError(_message(e, cls, field)) from None


def device_model(spec: Mapping[str, Any] | str, field: str = "device") -> DeviceModel:
    """The :class:`DeviceModel` a scenario's ``device`` mapping describes (the forms are in
    the module docstring). Raises :class:`~rsdgc_sim.errors.ConfigError` naming the field
    (``field`` is its path, ``device`` by default); an unknown name is an
    :class:`~rsdgc_sim.errors.UnknownNameError` listing :data:`DEVICE_MODELS`."""
    if isinstance(spec, str):
        spec = {"model": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{field}: expected a mapping, got {type(spec).__name__}; forms: {DEVICE_FORMS}")
    given = [k for k in ("model", "cpu", "peak_flops") if k in spec]
    if len(given) > 1:
        raise ConfigError(f"{field}: give one of model, cpu or peak_flops, not {' and '.join(given)}; "
                          f"forms: {DEVICE_FORMS}")
    table = device_table()
    if "model" in spec:
        form = _validate(_ModelForm, spec, field)
        found = table.lookup(form.model)
        if found is None:
            raise UnknownNameError("device model", form.model, table.devices).with_context(f"{field}.model")
        name, entry = found
        return entry.model(name, form.efficiency, form.op_overhead)
    if "cpu" in spec:
        cpu = _validate(_CPUForm, spec, field).cpu
        d = table.cpu
        if not MIN_FLOPS <= cpu.cores * cpu.gflops_per_core * 1e9 <= MAX_FLOPS:
            raise ConfigError(f"{field}.cpu: {cpu.cores} cores x {cpu.gflops_per_core:g} GFLOP/s "
                              f"is {cpu.cores * cpu.gflops_per_core * 1e9:.3g} FLOP/s, outside "
                              f"{MIN_FLOPS:g} to {MAX_FLOPS:g}")
        return DeviceModel(
            name=cpu.name or f"CPU ({cpu.cores} cores x {cpu.gflops_per_core:g} GFLOP/s)",
            kind="cpu",
            peak_flops=cpu.cores * cpu.gflops_per_core * 1e9,
            memory_bandwidth=cpu.memory_bandwidth,
            efficiency=d.efficiency if cpu.efficiency is None else cpu.efficiency,
            op_overhead=d.op_overhead if cpu.op_overhead is None else cpu.op_overhead,
            page_fault_bandwidth=cpu.page_fault_bandwidth or d.page_fault_bandwidth,
            source=f"cpu form: {cpu.cores} cores x {cpu.gflops_per_core:g} GFLOP/s, "
                   f"{cpu.memory_bandwidth / 1e9:g} GB/s",
        )
    form = _validate(_CustomForm, spec, field)
    d = table.cpu if form.kind == "cpu" else table.gpu
    return DeviceModel(
        name=form.name,
        kind=form.kind,
        peak_flops=form.peak_flops,
        conv_peak_flops=form.conv_peak_flops,
        memory_bandwidth=form.memory_bandwidth,
        efficiency=d.efficiency if form.efficiency is None else form.efficiency,
        op_overhead=d.op_overhead if form.op_overhead is None else form.op_overhead,
        page_fault_bandwidth=form.page_fault_bandwidth or d.page_fault_bandwidth,
        source=f"custom: {form.peak_flops / 1e12:g} TFLOP/s, {form.memory_bandwidth / 1e9:g} GB/s",
    )
