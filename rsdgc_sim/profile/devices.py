"""Which devices a scenario's ``device`` field means: ``auto``, ``cpu``, ``cuda``, ``cuda:N``
or a list of them (one profiled worker per entry; an entry may repeat, e.g. ``[cpu, cpu]``)."""

from __future__ import annotations

import platform
import re
from typing import Any

import torch

from ..errors import ConfigError

DEVICE_FORMS = "auto, cpu, cuda, cuda:N, or a list of these"


def resolve_devices(spec: str | list[str]) -> list[str]:
    """Concrete torch device strings: ``auto`` -> ``cuda:0`` when CUDA is there, else ``cpu``."""
    entries = spec if isinstance(spec, list) else [spec]
    if not entries:
        raise ConfigError(f"device: empty list; expected {DEVICE_FORMS}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out: list[str] = []
    for entry in entries:
        e = str(entry).strip().lower()
        if e == "auto":
            out.append("cuda:0" if count else "cpu")
        elif e == "cpu":
            out.append("cpu")
        elif (m := re.fullmatch(r"cuda(?::(\d+))?", e)) is not None:
            idx = int(m.group(1) or 0)
            if idx >= count:
                have = f"{count} CUDA device(s)" if count else "no CUDA device"
                raise ConfigError(f"device: {entry!r} asked for, but this machine has {have}")
            out.append(f"cuda:{idx}")
        else:
            raise ConfigError(f"device: unknown device {entry!r}; expected {DEVICE_FORMS}")
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what the platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: str) -> str:
    """A human name of the hardware behind a device string (part of the profile's cache key)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def training_device(spec: Any) -> str:
    """The local device virtual-worker training runs on: the scenario's first device, or,
    when the scenario asks for a device model (hardware it may not have), the best one here."""
    return resolve_devices("auto" if isinstance(spec, dict) else spec)[0]
