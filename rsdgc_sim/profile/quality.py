"""How far a saved profile can be trusted: its spread against its target, the load it was
measured under, and who measured it. Read off the profile alone, so a cached profile or a
profile file says as much as a fresh one; no torch here.

* :func:`spread_ok`: the stopping rule's test of one quantity (the profiler stops on it);
* :func:`unstable_quantities`: the forward, backward and compression times whose spread
  stayed above the target (``settings["spread_target"]``, with ``settings["spread_floor_s"]``)
  after measuring; a profile with any is *unstable*. Estimated workers have no spread and
  are never unstable, nor is a profile that recorded no target;
* :func:`profile_warnings`: one line per doubt (a busy machine, each unstable quantity);
* :func:`quality_text` and :func:`provenance_text`: what a run says when it reuses a
  profile (``stable`` / ``unstable: ...``; host, pid, when, load, torch threads, discarded
  samples, each where recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

from .schema import DeviceProfile, Profile

#: the spread keys of forward and backward, which the stopping rule watches
COMPUTE_KEYS = ("forward_s", "backward_s")


def spread_ok(iqr_s: float, median_s: float, target: float, floor_s: float = 0.0) -> bool:
    """The stopping rule's test of one quantity: its interquartile range is at most
    ``target`` times its median, or at most ``floor_s`` seconds (too small to matter)."""
    return iqr_s <= max(floor_s, target * median_s)


def quantity_median(dev: DeviceProfile, key: str) -> float | None:
    """The stored median behind spread key ``key`` (``compress:<label>``: the sum over
    tensors, which is the measured ``compress_many`` median), or None if unknown."""
    if key.startswith("compress:"):
        costs = dev.compression.get(key.split(":", 1)[1])
        return None if costs is None else sum(c.compress_s for c in costs.values())
    value = getattr(dev, key, None) if key in ("forward_s", "backward_s", "optimizer_s") else None
    return float(value) if value is not None else None


def quantity_name(key: str) -> str:
    """``forward_s`` -> ``forward``, ``compress:topk`` -> ``topk compression``,
    ``decompress:topk`` -> ``topk decompression``."""
    kind, _, label = key.partition(":")
    if label and kind in ("compress", "decompress"):
        return f"{label} {kind.replace('compress', 'compression')}"
    return key.removesuffix("_s")


def spread_warning(who: str, key: str, iqr_s: float, median_s: float, samples: int | None,
                   target: float) -> str:
    """``worker 0 (cpu): forward spread 27% (IQR 120.0 ms of 438.0 ms, 100 iterations),
    above the 10% target: ...``"""
    rel = iqr_s / median_s if median_s > 0 else float("inf")
    n = f", {samples} iterations" if samples else ""
    return (f"{who}: {quantity_name(key)} spread {rel:.0%} (IQR {iqr_s * 1e3:.1f} ms of "
            f"{median_s * 1e3:.1f} ms{n}), above the {target:.0%} target: its time is "
            f"uncertain (a busy machine?); measure again when the machine is idle")


def load_warning(load: float, cpus: int) -> str:
    return (f"load average {load:.1f} on {cpus} CPUs before measuring: the machine looked "
            f"busy, so the times measured may be too long; measure again when it is idle")


def _number(value: object) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else None."""
    return float(value) if isinstance(value, Real) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class UnstableQuantity:
    """One measured time whose spread stayed above its target: worker ``worker``'s
    quantity ``key`` (``forward_s``, ``backward_s``, ``compress:<label>``), its interquartile
    range and median in seconds, the timed iterations behind them (None: not recorded) and
    the target (a fraction of the median)."""

    worker: int
    device: str
    key: str
    iqr_s: float
    median_s: float
    samples: int | None
    target: float

    @property
    def spread(self) -> float:
        """The interquartile range as a fraction of the median (inf for a zero median)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else float("inf")

    def __str__(self) -> str:
        """``worker 0 (cpu) forward spread 27% > 10% target``."""
        return (f"worker {self.worker} ({self.device}) {quantity_name(self.key)} spread "
                f"{self.spread:.0%} > {self.target:.0%} target")

    def warning(self) -> str:
        """The long form (:func:`spread_warning`): IQR and median in ms, iterations."""
        return spread_warning(f"worker {self.worker} ({self.device})", self.key, self.iqr_s,
                              self.median_s, self.samples, self.target)


def unstable_quantities(profile: Profile) -> list[UnstableQuantity]:
    """Every forward, backward and compression time of ``profile`` whose spread is above
    its target (``not spread_ok``), by worker then in the order the spreads were stored.
    Empty for a stable profile, an estimate (no spread) and a profile that recorded no
    ``spread_target`` (nothing to hold it to). The optimizer step is not held to it (the
    stopping rule does not watch it)."""
    s = profile.settings
    target = _number(s.get("spread_target"))
    if target is None:
        return []
    floor = _number(s.get("spread_floor_s")) or 0.0
    out: list[UnstableQuantity] = []
    for i, dev in enumerate(profile.devices):
        if dev.estimated:
            continue
        for key, iqr in dev.spread.items():
            if key not in COMPUTE_KEYS and not key.startswith("compress:"):
                continue
            median = quantity_median(dev, key)
            if median is not None and not spread_ok(iqr, median, target, floor):
                out.append(UnstableQuantity(i, dev.device, key, iqr, median,
                                            dev.samples.get(key), target))
    return out


def busy_warning(profile: Profile) -> str | None:
    """:func:`load_warning` when the load average before measuring (``settings``) was above
    the CPU count, else None."""
    load, cpus = _number(profile.settings.get("load_average")), profile.settings.get("cpus")
    if load is not None and isinstance(cpus, int) and not isinstance(cpus, bool) and load > cpus:
        return load_warning(load, cpus)
    return None


def profile_warnings(profile: Profile) -> list[str]:
    """What makes ``profile``'s times doubtful, one line each (no ``warning:`` prefix):
    a load average above the CPU count before measuring (:func:`busy_warning`), and every
    :func:`unstable_quantities` in its long form. Empty for profiles without these settings."""
    busy = busy_warning(profile)
    return ([busy] if busy else []) + [q.warning() for q in unstable_quantities(profile)]


def quality_text(profile: Profile) -> str:
    """``stable (every spread within its 10% target)``, ``unstable: worker 0 (cpu) forward
    spread 27% > 10% target; ...``, ``estimated (no spread)`` or ``unknown (no spread
    target recorded)``."""
    if profile.devices and all(d.estimated for d in profile.devices):
        return "estimated (no spread)"
    target = _number(profile.settings.get("spread_target"))
    if target is None:
        return "unknown (no spread target recorded)"
    if unstable := unstable_quantities(profile):
        return "unstable: " + "; ".join(map(str, unstable))
    return f"stable (every spread within its {target:.0%} target)"


def discarded_samples(profile: Profile) -> list[dict[str, int]]:
    """Per worker, the timed samples discarded while measuring (preempted ones), by
    quantity (``DeviceProfile.discarded``; empty where none were recorded)."""
    return [dict(dev.discarded) for dev in profile.devices]


def provenance_text(profile: Profile) -> str:
    """Who measured ``profile``, from what it recorded: ``measured on HOST by pid 4242 at
    2025-01-02T03:04:05+00:00, load 0.4 on 2 CPUs before measuring, 1 torch thread, 3
    samples discarded`` (each part only where recorded; ``estimated on ...`` for an
    estimate)."""
    s = profile.settings
    estimated = bool(profile.devices) and all(d.estimated for d in profile.devices)
    parts = ["estimated" if estimated else "measured"]
    if profile.host:
        parts.append(f"on {profile.host}")
    if isinstance(pid := s.get("pid"), int) and not isinstance(pid, bool):
        parts.append(f"by pid {pid}")
    if profile.created:
        parts.append(f"at {profile.created}")
    text = " ".join(parts) if len(parts) > 1 else f"{parts[0]} (no host or time recorded)"
    extra: list[str] = []
    if (load := _number(s.get("load_average"))) is not None:
        cpus = s.get("cpus")
        on = f" on {cpus} CPUs" if isinstance(cpus, int) and not isinstance(cpus, bool) else ""
        extra.append(f"load {load:.1f}{on} before measuring")
    if isinstance(threads := s.get("torch_threads"), int) and not isinstance(threads, bool):
        extra.append(f"{threads} torch thread{'s' if threads != 1 else ''}")
    if any(discarded := discarded_samples(profile)):
        n = sum(sum(d.values()) for d in discarded)
        extra.append(f"{n} sample{'s' if n != 1 else ''} discarded")
    return ", ".join([text, *extra])
