"""What `rsdgc-sim profile` prints about a profile (rich tables), and its warnings.

Two tables that fit 100 terminal columns (compressor labels whole:
:func:`rsdgc_sim.report.table.fit_labels`):

* per worker: forward, backward and optimizer-step times as ``median ±IQR/2`` in ms and
  the timed iterations behind them, the NSI score's torch.compile mode where recorded;
* per compressor and worker: one iteration's compression (``±IQR/2``, iterations),
  decompression, the bytes sent and the compression ratio.

Estimated workers (``DeviceProfile.estimated``) are marked ``*`` and their source is the
caption. Under the tables, :func:`profile_quality_lines`: who measured the profile, its
quality (stable, or unstable: which times) and the samples discarded while measuring. What
makes a profile's times doubtful (a spread above its target, a machine that looked busy) is
:mod:`rsdgc_sim.profile.quality` (``profile_warnings``, ``spread_ok``... are imported here
for the callers that read them from this module). No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from ..profile.quality import (
    discarded_samples,
    provenance_text,
    quality_text,
    quantity_name,
)
from ..profile.schema import DeviceProfile, Profile
from ..units import format_size
from .table import LegendTable, add_label_column, fit_labels, new_table


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


def _table(title: str | None) -> LegendTable:
    return new_table(title, padding=(0, 1, 0, 0), pad_edge=False, show_edge=True)


def _estimated_caption(profile: Profile) -> str | None:
    est = [f"worker {i}: {d.source}" for i, d in enumerate(profile.devices) if d.estimated]
    return "* estimated, not measured: " + "; ".join(est) if est else None


def profile_tables(profile: Profile) -> list[LegendTable]:
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

    def build(shown: Mapping[str, str]) -> LegendTable:
        c = _table("compression per iteration (all tensors)")
        c.caption = caption
        add_label_column(c, min_width=12)
        for col in ("worker", "compress ms", "iters", "decompress ms", "sent", "ratio"):
            c.add_column(col, justify="right", no_wrap=True)
        for label in p.compressors():
            for i, d in enumerate(p.devices):
                costs = d.compression[label].values()
                sent = sum(x.wire_bytes for x in costs)
                key = f"compress:{label}"
                c.add_row(*(Text(x) for x in (
                    shown[label], _worker(i, d), _ms(d, key, sum(x.compress_s for x in costs), 2),
                    _samples(d, key), f"{sum(x.decompress_s for x in costs) * 1e3:.2f}",
                    format_size(sent), f"{p.dense_bytes / sent:.1f}x" if sent else "-")))
        return c

    c = fit_labels(build, p.compressors())
    return [t, c]


def profile_quality_lines(profile: Profile) -> list[str]:
    """What `rsdgc-sim profile` prints under the tables: who measured the profile
    (``measured on HOST by pid ...``), ``quality: stable (...)`` or ``quality: unstable:
    worker 0 (cpu) forward spread 27% > 10% target; ...``, and per worker that recorded
    them, the samples discarded while measuring (``discarded samples, worker 0 (cpu):
    forward 3, topk decompression 1``, the quantities with none left out, or ``none``)."""
    lines = [provenance_text(profile), f"quality: {quality_text(profile)}"]
    for i, (dev, counts) in enumerate(zip(profile.devices, discarded_samples(profile),
                                          strict=True)):
        if counts:
            some = [f"{quantity_name(k)} {n}" for k, n in counts.items() if n]
            lines.append(f"discarded samples, worker {i} ({dev.device}): "
                         + (", ".join(some) or "none"))
    return lines
