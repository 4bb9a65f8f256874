"""Plots of a study (matplotlib, Agg backend: no screen needed).

One column per (bandwidth, latency) point; the top row shows iteration time against the
number of workers, the bottom row the speedup over dense, one line per compressor.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..units import format_bandwidth, format_duration
from .files import write_bytes_atomic

#: what the plot reads from each run, and the formats it writes
PLOT_FIELDS = ("compressor", "workers", "bandwidth_bytes_per_s", "latency_s", "iteration_s",
               "speedup_vs_dense")
FORMATS = (".png", ".svg")


def check_runs(runs: Any, source: str = "runs") -> None:
    """Raise ConfigError unless ``runs`` is a non-empty list of rows with every field the
    plot needs (as ``results.json`` of `rsdgc-sim run` has)."""
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{source}: no runs to plot")
    for i, r in enumerate(runs):
        missing = [f for f in PLOT_FIELDS if not isinstance(r, Mapping) or f not in r]
        if missing:
            raise ConfigError(
                f"{source}: run {i} has no {', '.join(missing)}; `plot` reads the results.json "
                f"of `rsdgc-sim run`")


def plot_runs(runs: Sequence[Mapping[str, Any]], title: str = "", fmt: str = "png") -> bytes:
    """The study's runs (as in results.json) drawn as ``fmt`` (png or svg) bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    check_runs(runs)
    links = sorted({(r["bandwidth_bytes_per_s"], r["latency_s"]) for r in runs})
    labels = list(dict.fromkeys(r["compressor"] for r in runs))
    fig, axes = plt.subplots(2, len(links), figsize=(4.2 * len(links), 6.4), squeeze=False,
                             sharex=True)
    for col, (bw, lat) in enumerate(links):
        top, bottom = axes[0][col], axes[1][col]
        for label in labels:
            pts = sorted((r["workers"], r["iteration_s"], r["speedup_vs_dense"]) for r in runs
                         if r["compressor"] == label and (r["bandwidth_bytes_per_s"], r["latency_s"]) == (bw, lat))
            if not pts:
                continue
            w = [p[0] for p in pts]
            top.plot(w, [p[1] * 1e3 for p in pts], marker="o", label=label)
            bottom.plot(w, [p[2] for p in pts], marker="o", label=label)
        top.set_title(f"{format_bandwidth(bw)}, {format_duration(lat)}")
        top.set_ylabel("iteration (ms)")
        bottom.set_ylabel("speedup vs dense")
        bottom.axhline(1.0, color="grey", lw=0.8, ls="--")
        bottom.set_xlabel("workers")
        ticks = sorted({r["workers"] for r in runs})
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_plot(runs: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Draw the runs into ``path``, PNG or SVG by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{path}: a plot is written as {' or '.join(FORMATS)}")
    return write_bytes_atomic(path, plot_runs(runs, title, fmt=suffix[1:]))
