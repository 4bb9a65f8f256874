"""Stacked bars of the iteration: compute, compression, exposed communication, and the
communication hidden behind backward (overlapped: drawn hatched, past the iteration's end
mark, since it costs no time). Where rows carry ``iteration_s_low``/``_high`` (the profile's
interquartile spread carried through the simulator) the end mark has an error bar."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .axes import axis_of, row_value, spans_decades
from .figure import grid, panels, save, short_value
from .lines import band

#: the segments: (label, colour, hatched)
SEGMENTS = (
    ("compute", "#4c72b0", False),
    ("compression", "#dd8452", False),
    ("exposed communication", "#c44e52", False),
    ("hidden communication (overlapped)", "#c44e52", True),
)
#: x values shown at most per panel (evenly picked from the sweep; the title says so)
MAX_GROUPS = 8


def segments(row: Mapping[str, Any]) -> list[float]:
    """compute, compression, exposed and hidden communication of a row (seconds); hidden =
    communication - exposed communication."""
    comm, exposed = row["communication_s"], row["exposed_communication_s"]
    return [row["compute_s"], row["compression_s"], exposed, max(0.0, comm - exposed)]


def breakdown_plot(data: Mapping[str, Any], axes: Mapping[str, list[Any]], x: str, fmt: str,
                   title: str) -> bytes:
    from matplotlib.ticker import FuncFormatter  # lazy: matplotlib

    runs = data["runs"]
    xvals = axes.get(x) or sorted({row_value(r, x) for r in runs}, key=repr)
    xa = axis_of(x, xvals)
    shown = xvals
    if len(xvals) > MAX_GROUPS:
        step = (len(xvals) - 1) / (MAX_GROUPS - 1)
        shown = [xvals[round(i * step)] for i in range(MAX_GROUPS)]
        title = f"{title} ({MAX_GROUPS} of {len(xvals)} values of {xa.label})".strip()
    labels = list(dict.fromkeys(r["compressor"] for r in runs))
    groups = panels(runs, axes, [x])
    log = log_axis(runs)
    n_bars = len(shown) * len(labels)
    fig, axs = grid(len(groups), height=0.32 * n_bars + 0.25 * len(shown) + 1.4, width=6.4)
    for ax, (ptitle, rows) in zip(axs, groups, strict=True):
        ticks, names, pos = [], [], 0.0
        for v in shown:
            for label in labels:
                row = next((r for r in rows if r["compressor"] == label
                            and row_value(r, x) == v), None)
                if row is None:
                    continue
                left = 0.0
                for (name, colour, hatched), sec in zip(SEGMENTS, segments(row), strict=True):
                    ax.barh(pos, sec * 1e3, left=left, height=0.72, color="white" if hatched else colour,
                            edgecolor=colour, hatch="////" if hatched else None,
                            lw=0.8 if hatched else 0, label=name)
                    left += sec * 1e3
                ax.plot([row["iteration_s"] * 1e3] * 2, [pos - 0.45, pos + 0.45], color="black",
                        lw=1.6, label="iteration time")
                lo, hi = band(row, "iteration_s", 1e3)
                if lo < hi:
                    ax.errorbar(row["iteration_s"] * 1e3, pos, xerr=[[row["iteration_s"] * 1e3 - lo],
                                [hi - row["iteration_s"] * 1e3]], fmt="none", ecolor="black",
                                elinewidth=1.0, capsize=3,
                                label="iteration time's range (profile spread)")
                if log:  # the bar's length is no longer its time: say it, past the bar
                    ms = row["iteration_s"] * 1e3
                    ax.annotate(f"{ms:,.0f} ms" if ms >= 1000 else f"{ms:.3g} ms",
                                (max(left, ms), pos), textcoords="offset points",
                                xytext=(4, 0), va="center", fontsize="x-small")
                ticks.append(pos)
                names.append(f"{short_value(xa, v)} · {label}" if x in axes else label)
                pos += 1
            pos += 0.5
        ax.set_yticks(ticks, names, fontsize="small")
        ax.set_ylim(pos - 0.2, -0.8)  # first bar on top (set, not inverted: y is shared)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(left=log[0], right=log[1])
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1
                                                       else f"{v:g}"))
            ax.set_xlabel("time per iteration (ms, log scale: the bars span over 100x)")
        else:
            ax.set_xlabel("time per iteration (ms)")
            ax.set_xlim(left=0)
        ax.grid(True, axis="x", alpha=0.3)
        if ptitle:
            ax.set_title(ptitle, fontsize="medium")
    handles, names = axs[0].get_legend_handles_labels()
    uniq = dict(zip(names, handles, strict=True))
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=3, fontsize="small",
               frameon=False)
    return save_with_legend_room(fig, fmt, title)


def log_axis(runs) -> tuple[float, float] | None:
    """The x range (ms) of a logarithmic time axis when the bars' ends span more than
    :data:`~.axes.LOG_RANGE` times (one 14 s bar would flatten 50 ms ones to slivers); None:
    linear from 0. The range starts a decade below the shortest iteration."""
    ends = [max(sum(segments(r)), r["iteration_s"]) * 1e3 for r in runs]
    if not spans_decades([r["iteration_s"] * 1e3 for r in runs] + ends):
        return None
    lo = min(r["iteration_s"] for r in runs if r["iteration_s"] > 0) * 1e3
    return 10 ** math.floor(math.log10(lo / 2)), max(ends) * 2.5


def save_with_legend_room(fig, fmt: str, title: str) -> bytes:
    """Lay out the panels above the shared legend (two rows of it) and save."""
    if title:
        fig.suptitle(title, fontsize="medium")
    h = fig.get_size_inches()[1]
    top = 1 - 0.25 * (title.count("\n") + 1) / h if title else 1
    fig.tight_layout(rect=(0, min(0.45, 0.55 / h), 1, top))
    return save(fig, fmt, tight=False)


__all__ = ["breakdown_plot", "segments", "save"]
