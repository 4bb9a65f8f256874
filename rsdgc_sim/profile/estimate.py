"""Estimating a Profile for a device one does not have: a roofline per aten op, from FLOPs
and bytes counted on the ``meta`` device (no memory, no GPU), and a cost table per
compressor. Three parts, one module each:

* :mod:`rsdgc_sim.profile.meta_count`: one training step (forward with the loss, backward,
  the steady-state SGD step) run on ``meta`` tensors, every aten op's FLOPs, bytes moved,
  fresh memory and module counted, and when each gradient was ready;
* :mod:`rsdgc_sim.profile.roofline`: seconds from counts on a device model,
  ``max(flops / (P * e), bytes / (W * e)) + fresh / F + op_overhead`` per launched op,
  summed into forward, backward, optimizer and gradient-ready times;
* :mod:`rsdgc_sim.profile.cost_table`: each compressor's payload by its own rules and its
  memory traffic per tensor from the cost table, timed by the same roofline.

Here they are put together into a :class:`~rsdgc_sim.profile.schema.Profile` marked
``estimated=True`` (:func:`estimate_profile`), its settings naming the cost model's version
(:data:`~rsdgc_sim.profile.cost_model.COST_MODEL_VERSION`, torch-free for the cache key).
The names of the three parts stay importable from here.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import torch

from ..compress.neighborhood import compile_mode
from ..errors import ConfigError, ProfileError
from .cost_model import COST_MODEL_VERSION  # torch-free: the cache key reads it from there
from .cost_table import (
    COST_TABLE,
    compressor_payloads,
    estimate_compression,
    tensor_cost,
    tensor_payload,
)
from .device_models import DeviceModel
from .meta_count import FRESH_MIN_BYTES, OpCount, StepCount, count_training_step, op_count
from .roofline import RANDOM_ACCESS_BYTES, Traffic, estimate_compute, op_seconds
from .schema import MAX_TIME_S, DeviceProfile, Profile

__all__ = [
    "COST_MODEL_VERSION",
    "COST_TABLE",
    "FRESH_MIN_BYTES",
    "RANDOM_ACCESS_BYTES",
    "OpCount",
    "StepCount",
    "Traffic",
    "compressor_payloads",
    "count_training_step",
    "estimate_compression",
    "estimate_compute",
    "estimate_profile",
    "op_count",
    "op_seconds",
    "tensor_cost",
    "tensor_payload",
]


def estimate_profile(
    model: str,
    num_classes: int,
    input_size: int,
    batch_size: int,
    compressors: Mapping[str, Mapping[str, Any]],
    device: DeviceModel,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """A :class:`Profile` of zoo ``model`` on ``device``, estimated (see the module
    docstring), marked ``estimated=True``. ``compressors`` maps a label to
    ``{"name": ..., **params}``, as for :func:`rsdgc_sim.profile.measure.measure_profile`.
    ``seed`` is recorded only (nothing random is drawn)."""
    if not isinstance(device, DeviceModel):
        raise ConfigError(f"device must be a DeviceModel, got {type(device).__name__}")
    say = progress or (lambda _msg: None)
    step = count_training_step(model, num_classes, input_size, batch_size, foreach=device.kind == "gpu")
    comp = estimate_compute(step, device)
    if (total := comp.forward_s + comp.backward_s + comp.optimizer_s) > MAX_TIME_S:
        raise ProfileError(f"{model} (batch {batch_size}) on {device.name}: the estimate is "
                           f"{total:.3g} s per iteration, more than the profile's limit of "
                           f"{MAX_TIME_S:g} s (a day): a faster device model or a smaller batch")
    say(f"{device.name} (estimated): forward {comp.forward_s * 1e3:.2f} ms, "
        f"backward {comp.backward_s * 1e3:.2f} ms")
    compression = {label: estimate_compression(spec, step.tensors, device)
                   for label, spec in compressors.items()}
    for label, costs in compression.items():
        say(f"{device.name} (estimated): {label}: compress "
            f"{sum(c.compress_s for c in costs.values()) * 1e3:.2f} ms per iteration")
    dev = DeviceProfile(
        device=f"model:{device.name}",
        device_name=device.name,
        forward_s=comp.forward_s,
        backward_s=comp.backward_s,
        optimizer_s=comp.optimizer_s,
        grad_ready_s=comp.grad_ready_s,
        compression=compression,
        nsi_compile=compile_mode(),
        estimated=True,
        source=f"estimated: {device.describe()}",
    )
    return Profile(
        model=model,
        num_classes=num_classes,
        input_size=input_size,
        batch_size=batch_size,
        params=sum(t.numel for t in step.tensors),
        tensors=step.tensors,
        devices=[dev],
        torch_version=torch.__version__,
        host=platform.node(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        compressor_specs={label: dict(spec) for label, spec in compressors.items()},
        settings={
            "method": "roofline",
            "cost_model": COST_MODEL_VERSION,
            "device_model": device.model_dump(mode="json"),
            "optimizer": {"name": "SGD", "momentum": 0.9, "foreach": device.kind == "gpu"},
            "seed": seed,
        },
        machine=f"device model {device.name} ({device.kind}): {device.source}",
    )
