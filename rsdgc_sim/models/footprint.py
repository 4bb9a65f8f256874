"""How much memory profiling or training a zoo model needs, estimated before any of it is
allocated: the model is built and run on the ``meta`` device (shapes only, no storage, no
time), and the request is refused when the estimate does not fit this machine.

The estimate, in bytes (fp32):

    parameters x 4 x (weights + gradients + optimizer momentum + a gradient copy
                      + 2 per compressor state: residual and momentum)
    + batch x (sum of every module's output elements) x 4 x 2   (kept for backward, and
                                                                its gradient)

It is an upper-bound style estimate for choosing "go" or "refuse", not a measurement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError

#: the share of available memory a request may plan to use
MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class Footprint:
    params: int
    activations_per_sample: int
    bytes: int


def estimate(model: str, num_classes: int, input_size: int, batch_size: int,
             states: int = 1) -> Footprint:
    """The memory needed to profile (or train) ``model`` with ``states`` compressor states."""
    import torch  # lazy: torch

    from .zoo import create  # lazy: imports torch, numpy

    net = create(model, num_classes=num_classes, input_size=input_size, device="meta")
    params = sum(p.numel() for p in net.parameters())
    acts = 0

    def count(_m, _i, out):
        nonlocal acts
        if isinstance(out, torch.Tensor):
            acts += out.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net.eval()(torch.empty(1, 3, input_size, input_size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    total = 4 * params * (4 + 2 * states) + 8 * acts * batch_size
    return Footprint(params, acts, total)


def available_bytes() -> int:
    """Memory this machine can give now (``MemAvailable``), or its physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(model: str, num_classes: int, input_size: int, batch_size: int,
               states: int = 1, what: str = "profiling") -> Footprint:
    """Raise ConfigError when the estimate exceeds ``MEMORY_SHARE`` of the available memory,
    with the estimate and what to change."""
    fp = estimate(model, num_classes, input_size, batch_size, states)
    avail = available_bytes()
    if fp.bytes > MEMORY_SHARE * avail:
        raise ConfigError(
            f"{what} {model} ({fp.params:,} parameters, {num_classes} classes, "
            f"{input_size} px, batch {batch_size}) needs about {_gib(fp.bytes)} of memory; "
            f"this machine has {_gib(avail)} available: lower batch_size, input_size or "
            f"num_classes, or profile on a larger machine and simulate its profile")
    return fp


__all__ = ["Footprint", "available_bytes", "check_fits", "estimate"]
