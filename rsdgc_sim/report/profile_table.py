"""What `rsdgc-sim profile` prints about a profile (rich tables), and its warnings.

Two tables that fit 100 terminal columns:

* per worker: forward, backward and optimizer-step times as ``median ±IQR/2`` in ms and
  the timed iterations behind them, the NSI score's torch.compile mode where recorded;
* per compressor and worker: one iteration's compression (``±IQR/2``, iterations),
  decompression, the bytes sent and the compression ratio.

Estimated workers (``DeviceProfile.estimated``) are marked ``*`` and their source is the
caption. :func:`profile_warnings` says what makes a profile's times doubtful (a spread
above its target, a machine that looked busy); it reads only the profile, so a cached
profile warns as loudly as a fresh one. No torch here.
"""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from ..profile.schema import DeviceProfile, Profile
from ..units import format_size

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


def _what(key: str) -> str:
    return key.split(":", 1)[1] + " compression" if key.startswith("compress:") else key.removesuffix("_s")


def spread_warning(who: str, key: str, iqr_s: float, median_s: float, samples: int | None,
                   target: float) -> str:
    """``worker 0 (cpu): forward spread 27% (IQR 120.0 ms of 438.0 ms, 100 iterations),
    above the 10% target: ...``"""
    rel = iqr_s / median_s if median_s > 0 else float("inf")
    n = f", {samples} iterations" if samples else ""
    return (f"{who}: {_what(key)} spread {rel:.0%} (IQR {iqr_s * 1e3:.1f} ms of "
            f"{median_s * 1e3:.1f} ms{n}), above the {target:.0%} target: its time is "
            f"uncertain (a busy machine?); measure again when the machine is idle")


def load_warning(load: float, cpus: int) -> str:
    return (f"load average {load:.1f} on {cpus} CPUs before measuring: the machine looked "
            f"busy, so the times measured may be too long; measure again when it is idle")


def profile_warnings(profile: Profile) -> list[str]:
    """What makes ``profile``'s times doubtful, one line each (no ``warning:`` prefix):
    a load average above the CPU count before measuring, and every forward, backward and
    compression time whose spread stayed above the target (``settings["spread_target"]``,
    with ``settings["spread_floor_s"]``). Empty for profiles without these settings."""
    s = profile.settings
    out: list[str] = []
    load, cpus = s.get("load_average"), s.get("cpus")
    if isinstance(load, int | float) and isinstance(cpus, int) and load > cpus:
        out.append(load_warning(float(load), cpus))
    target = s.get("spread_target")
    if not isinstance(target, int | float):
        return out
    floor = s.get("spread_floor_s", 0.0)
    floor = float(floor) if isinstance(floor, int | float) else 0.0
    for i, dev in enumerate(profile.devices):
        if dev.estimated:
            continue
        for key, iqr in dev.spread.items():
            if key not in COMPUTE_KEYS and not key.startswith("compress:"):
                continue
            median = quantity_median(dev, key)
            if median is not None and not spread_ok(iqr, median, float(target), floor):
                out.append(spread_warning(f"worker {i} ({dev.device})", key, iqr, median,
                                          dev.samples.get(key), float(target)))
    return out


def _ms(dev: DeviceProfile, key: str, value: float, digits: int = 1) -> str:
    """``14.4 ±0.8``: the median and half the interquartile range, in ms."""
    iqr = dev.spread.get(key)
    text = f"{value * 1e3:.{digits}f}"
    return text if iqr is None else f"{text} ±{iqr / 2 * 1e3:.{digits}f}"


def _samples(dev: DeviceProfile, key: str) -> str:
    n = dev.samples.get(key)
    return "-" if n is None else str(n)


def _worker(i: int, dev: DeviceProfile) -> str:
    return f"{i}*" if dev.estimated else str(i)


def _table(title: str | None) -> Table:
    return Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0),
                 pad_edge=False, title_justify="left", caption_justify="left")


def _estimated_caption(profile: Profile) -> str | None:
    est = [f"worker {i}: {d.source}" for i, d in enumerate(profile.devices) if d.estimated]
    return "* estimated, not measured: " + "; ".join(est) if est else None


def profile_tables(profile: Profile) -> list[Table]:
    """The device table and the compression table of ``profile`` (see the module doc)."""
    p = profile
    caption = _estimated_caption(p)
    nsi = any(d.nsi_compile for d in p.devices)
    t = _table(f"profile {p.key or '(no key)'}: {p.model}, {p.params:,} params, batch {p.batch_size}")
    t.caption = caption
    t.add_column("worker", justify="right", no_wrap=True)
    t.add_column("device", justify="left", overflow="fold", min_width=12, max_width=32)
    for col in ("forward ms", "backward ms", "optimizer ms", "iters"):
        t.add_column(col, justify="right", no_wrap=True)
    if nsi:
        t.add_column("NSI score", justify="left", overflow="fold", max_width=24)
    for i, d in enumerate(p.devices):
        cells = [_worker(i, d), d.device_name or d.device, _ms(d, "forward_s", d.forward_s),
                 _ms(d, "backward_s", d.backward_s), _ms(d, "optimizer_s", d.optimizer_s),
                 _samples(d, "forward_s")]
        if nsi:
            cells.append(d.nsi_compile or "-")
        t.add_row(*(Text(c) for c in cells))  # Text: no rich markup in device names

    c = _table("compression per iteration (all tensors)")
    c.caption = caption
    c.add_column("compressor", justify="left", overflow="fold", min_width=12, max_width=32)
    for col in ("worker", "compress ms", "iters", "decompress ms", "sent", "ratio"):
        c.add_column(col, justify="right", no_wrap=True)
    for label in p.compressors():
        for i, d in enumerate(p.devices):
            costs = d.compression[label].values()
            sent = sum(x.wire_bytes for x in costs)
            key = f"compress:{label}"
            c.add_row(*(Text(x) for x in (
                label, _worker(i, d), _ms(d, key, sum(x.compress_s for x in costs), 2),
                _samples(d, key), f"{sum(x.decompress_s for x in costs) * 1e3:.2f}",
                format_size(sent), f"{p.dense_bytes / sent:.1f}x" if sent else "-")))
    return [t, c]
