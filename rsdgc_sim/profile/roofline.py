"""The roofline: seconds on a :class:`~rsdgc_sim.profile.device_models.DeviceModel` from
counted work, for the compute of a training step (ops counted on ``meta`` by
:mod:`rsdgc_sim.profile.meta_count`) and for a compressor's memory traffic
(:class:`Traffic`, charged from :mod:`rsdgc_sim.profile.cost_table`).

An op costs

    t_op = max(flops / (P * e_c), bytes / (W * e_m)) + fresh / F + op_overhead   (launched)
    t_op = 0                                                     (views, allocations)

with ``P`` the device's ``conv_peak_flops`` for convolutions (forward and backward),
``peak_flops`` otherwise (see :mod:`rsdgc_sim.profile.device_models`), ``W`` its
``memory_bandwidth``, ``e_c`` its ``conv_efficiency`` for convolutions and its
``efficiency`` for other ops, ``e_m`` its ``memory_efficiency`` (both default to
``efficiency``; ``devices.yaml`` gives them where published measurements calibrate a GPU)
and ``F`` its ``page_fault_bandwidth``
(``fresh / F`` is 0 where ``F`` is None: GPUs, whose caching allocator reuses memory).
Forward, backward and optimizer times are the sums over their ops; a parameter's
gradient-ready time is the backward time summed up to the op after which its gradient was
ready (:func:`estimate_compute`).

A compressor's call costs

    t = max((bytes + random * granule) / (W * e_m), flops / (P * e)) + fresh / F
        + max(1, ops) * op_overhead

(``granule``: :data:`RANDOM_ACCESS_BYTES`, what one random access moves; every call costs
at least one dispatch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .device_models import DeviceModel

if TYPE_CHECKING:  # torch-free: the roofline needs only the counts' fields
    from .meta_count import OpCount, StepCount

__all__ = ["RANDOM_ACCESS_BYTES", "ComputeEstimate", "Traffic", "estimate_compute",
           "fault_seconds", "op_seconds"]

#: bytes one random access moves: an L2 sector on GPUs, a cache line on CPUs
RANDOM_ACCESS_BYTES = {"gpu": 32, "cpu": 64}


def fault_seconds(fresh: float, device: DeviceModel) -> float:
    """Page-fault time of ``fresh`` bytes of new memory: ``fresh / F``, 0 without ``F``."""
    return fresh / device.page_fault_bandwidth if device.page_fault_bandwidth and fresh else 0.0


def op_seconds(op: OpCount, device: DeviceModel) -> float:
    """The roofline time of one op: ``max(flops / (P * e_c), bytes / (W * e_m)) + fresh / F +
    op_overhead`` for a launched op (P and e_c the convolution peak and efficiency for
    convolutions, the plain ones otherwise), 0 otherwise."""
    if not op.launched:
        return 0.0
    if op.conv:
        compute = op.flops / (device.conv_flops * device.conv_e)
    else:
        compute = op.flops / (device.peak_flops * device.efficiency)
    return (max(compute, op.bytes / (device.memory_bandwidth * device.memory_e))
            + fault_seconds(op.fresh, device) + device.op_overhead)


@dataclass
class ComputeEstimate:
    """Estimated times of one training step on a device model (seconds), and per module
    ``(forward_s, backward_s)``."""

    forward_s: float
    backward_s: float
    optimizer_s: float
    grad_ready_s: dict[str, float]
    modules: dict[str, tuple[float, float]] = field(default_factory=dict)


def estimate_compute(step: StepCount, device: DeviceModel) -> ComputeEstimate:
    """Forward, backward, optimizer and gradient-ready times of a counted step."""
    fwd = [op_seconds(o, device) for o in step.forward]
    bwd = [op_seconds(o, device) for o in step.backward]
    cum = [0.0]
    for t in bwd:
        cum.append(cum[-1] + t)
    modules: dict[str, list[float]] = {}
    for o, t in zip(step.forward, fwd, strict=True):
        modules.setdefault(o.module, [0.0, 0.0])[0] += t
    for o, t in zip(step.backward, bwd, strict=True):
        modules.setdefault(o.module, [0.0, 0.0])[1] += t
    return ComputeEstimate(
        forward_s=math.fsum(fwd),
        backward_s=cum[-1],
        optimizer_s=math.fsum(op_seconds(o, device) for o in step.optimizer),
        grad_ready_s={n: cum[i] for n, i in step.ready.items()},
        modules={m: (f, b) for m, (f, b) in modules.items()},
    )


@dataclass
class Traffic:
    """Memory traffic of one call: sequential ``bytes`` read + written, ``random``
    accesses, ``flops``, launched ``ops``, ``fresh`` bytes of large new tensors."""

    bytes: float = 0.0
    random: float = 0.0
    flops: float = 0.0
    ops: int = 0
    fresh: float = 0.0

    def add(self, bytes: float = 0.0, random: float = 0.0, flops: float = 0.0, ops: int = 1,
            fresh: float = 0.0) -> Traffic:
        self.bytes += bytes
        self.random += random
        self.flops += flops
        self.ops += ops
        self.fresh += fresh
        return self

    def seconds(self, device: DeviceModel) -> float:
        """``max((bytes + random * granule) / (W e_m), flops / (P e)) + fresh / F +
        max(1, ops) * op_overhead`` (a call costs at least one dispatch)."""
        mem = ((self.bytes + self.random * RANDOM_ACCESS_BYTES[device.kind])
               / (device.memory_bandwidth * device.memory_e))
        return (max(mem, self.flops / (device.peak_flops * device.efficiency))
                + fault_seconds(self.fresh, device)
                + max(1, self.ops) * device.op_overhead)

