"""Line plots against the swept axis: speedup over dense (break-even marked), iteration
time, scaling efficiency; one line per compressor, one panel per value of the other axes.

Where rows carry a range (``<field>_low``/``_high``: the profile's interquartile spread
carried through the simulator), each line has a band (a numeric x) or error bars (a
categorical one) from low to high; an open end (``_high`` None) is drawn to the value."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .axes import Axis, axis_of, is_finite, padded_range, row_value
from .figure import colours, grid, layout, panels, save, set_x

#: what each line kind draws: row field, y label, factor to the drawn unit
LINE_KINDS = {
    "speedup": ("speedup_vs_dense", "speedup over dense (x)", 1.0),
    "iteration": ("iteration_s", "iteration time (ms)", 1e3),
    "efficiency": ("scaling_efficiency", "scaling efficiency (dense at 1 worker = 1)", 1.0),
}


def crossings(xs: Sequence[float], ys: Sequence[float], log: bool, level: float = 1.0
              ) -> list[float]:
    """Where the piecewise-linear curve (linear in log x when ``log``) goes from one side of
    ``level`` to the other; points on the level (one worker: speedup exactly 1) are passed
    through, not counted as crossings unless the curve changes side there."""
    pts = [(x, y - level) for x, y in zip(xs, ys, strict=True)]
    out = []
    prev = None  # the last point off the level
    for i, (x1, b) in enumerate(pts):
        if b == 0:
            continue
        if prev is not None and prev[1] * b < 0:
            x0, a = prev
            if pts[i - 1][1] == 0:  # it changed side on the level itself
                out.append(pts[i - 1][0])
            else:
                t = a / (a - b)
                out.append(math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0))) if log
                           else x0 + t * (x1 - x0))
        prev = (x1, b)
    return out


def line_plot(data: Mapping[str, Any], axes: Mapping[str, list[Any]], x: str, kind: str,
              dense: str, fmt: str, title: str) -> bytes:
    field, ylabel, yscale = LINE_KINDS[kind]
    runs = [r for r in data["runs"] if is_finite(r.get(field))]
    xvals = axes.get(x) or sorted({row_value(r, x) for r in runs})
    xa = axis_of(x, xvals)
    labels = list(dict.fromkeys(r["compressor"] for r in runs))
    if kind == "speedup":
        labels = [lb for lb in labels if lb != dense] or labels
    groups = panels(runs, axes, [x])  # too many panels: refused before matplotlib loads
    col = colours(labels)
    fig, axs = grid(len(groups))
    ys_all: list[float] = []
    marked = 0
    to_label: dict[int, list[dict]] = {}  # panel -> its break-even labels
    banded = ""  # how the first range was drawn: "band" or "bars"
    for k, (ax, (ptitle, rows)) in enumerate(zip(axs, groups, strict=True)):
        for n, label in enumerate(labels):
            pts = [(row_value(r, x), r[field] * yscale, *band(r, field, yscale))
                   for r in rows if r["compressor"] == label]
            if not pts:
                continue
            pts = _ordered(pts, xa, xvals)
            px = [xa.show(p[0]) if xa.numeric else xvals.index(p[0]) for p in pts]
            py = [p[1] for p in pts]
            ys_all += py
            ax.plot(px, py, marker="o", ms=4, color=col[label], label=label)
            lo, hi = [p[2] for p in pts], [p[3] for p in pts]
            if any(a < y or b > y for y, a, b in zip(py, lo, hi, strict=True)):
                ys_all += lo + hi
                how = _draw_band(ax, px, py, lo, hi, col[label], xa.numeric)
                banded = banded or how
            if kind == "speedup" and xa.numeric and len(px) > 1:
                marked += _mark_breakeven(ax, xa, px, py, col[label], n,
                                          to_label.setdefault(k, []))
        if ptitle:
            ax.set_title(ptitle, fontsize="medium")
        if xa.numeric:
            set_x(ax, xa, xvals)
        else:
            ax.set_xticks(range(len(xvals)), [xa.tick(v) for v in xvals])
            ax.set_xlabel(xa.label)
        ax.grid(True, alpha=0.3)
    if ys_all:
        _y_range(axs, kind, ys_all)
    axs[0].set_ylabel(ylabel)
    if kind == "speedup":
        for ax in axs:
            ax.axhline(1.0, color="black", lw=0.9, ls="--")
            lo, _ = ax.get_ylim()
            if lo < 1:
                ax.axhspan(lo, 1.0, color="tab:red", alpha=0.06, lw=0)
        axs[0].plot([], [], color="black", ls="--", lw=0.9, label=f"{dense} (= 1)")
        if marked:
            axs[0].plot([], [], "kx", ms=7, mew=2, label="break-even (speedup = 1)")
    if banded:  # the legend's sample: a band, or an error bar
        what = "range: profile's interquartile spread"
        if banded == "band":
            axs[0].fill_between([], [], [], color="grey", alpha=0.25, lw=0, label=what)
        else:
            axs[0].plot([], [], color="grey", lw=0, marker="|", ms=10, mew=1.2, label=what)
    axs[0].legend(fontsize="small")
    layout(fig, title)  # final before the labels are placed in it
    for k, todo in to_label.items():
        place_labels(axs[k], todo)
    return save(fig, fmt, tight=False)


def band(r: Mapping[str, Any], field: str, yscale: float = 1.0) -> tuple[float, float]:
    """The row's range of ``field`` (``<field>_low``, ``<field>_high``) times ``yscale``;
    the value itself where a row has no range (an older results file, or a ``_high`` that
    is None: unbounded, drawn to the value)."""
    v = r[field]
    lo, hi = r.get(f"{field}_low"), r.get(f"{field}_high")
    lo = lo if is_finite(lo) and lo <= v else v
    hi = hi if is_finite(hi) and hi >= v else v
    return lo * yscale, hi * yscale


def _draw_band(ax, px: list, py: list[float], lo: list[float], hi: list[float], colour,
               numeric: bool) -> str:
    """A translucent band from ``lo`` to ``hi`` (numeric x, more than one point), else
    error bars; returns which (``band`` or ``bars``)."""
    if numeric and len(px) > 1:
        ax.fill_between(px, lo, hi, color=colour, alpha=0.18, lw=0)
        return "band"
    ax.errorbar(px, py, yerr=[[y - a for y, a in zip(py, lo, strict=True)],
                              [b - y for y, b in zip(py, hi, strict=True)]],
                fmt="none", ecolor=colour, elinewidth=1.2, capsize=3)
    return "bars"


def _ordered(pts, xa: Axis, xvals: list) -> list:
    if xa.numeric:
        return sorted(pts, key=lambda p: p[0])
    return sorted(pts, key=lambda p: xvals.index(p[0]) if p[0] in xvals else 0)


def _mark_breakeven(ax, xa: Axis, px: list[float], py: list[float], colour, n: int,
                    labels: list[dict]) -> int:
    """An x on the dashed line where the speedup crosses 1; its value (and unit) is added
    to ``labels``, placed once the axes are final (:func:`place_labels`). Returns how many
    it marked."""
    found = crossings(px, py, xa.log)
    for xc in found:
        ax.plot([xc], [1.0], "x", color="black", ms=8, mew=2, zorder=5)
        ax.plot([xc], [1.0], "x", color=colour, ms=6, mew=1.2, zorder=6)
        labels.append({"text": xa.value_text(xc / xa.scale, digits=3), "x": xc, "y": 1.0,
                       "falling": falls_at(px, py, xc), "colour": colour, "alt": n % 2 == 1})
    return len(found)


def falls_at(px: list[float], py: list[float], xc: float) -> bool:
    """Whether the curve goes from above 1 to below it at ``xc``."""
    after = [y for x, y in zip(px, py, strict=True) if x > xc and y != 1.0]
    return bool(after) and after[0] < 1.0


def place_labels(ax, labels: list[dict], fontsize: str = "x-small") -> None:
    """Each label (``text`` at ``x``, ``y``, where a curve crosses a level line) in the
    first corner around its point that no line of ``ax`` and no label placed before
    crosses: first the corners the curve leaves empty (above right or below left where it
    falls, ``falling``; below right or above left where it rises; ``alt`` tries the second
    first), then the other two; on a white box, so that a line that still passes (nowhere
    free) goes under the text, not through it. Call it once the axes' limits are final."""
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    paths = [ln.get_path().transformed(ln.get_transform()) for ln in ax.get_lines()
             if len(ln.get_xdata()) > 1]
    legend = ax.get_legend()
    placed: list = [legend.get_window_extent(renderer)] if legend is not None else []
    for lab in labels:
        clear = [(True, lab["falling"]), (False, not lab["falling"])]
        if lab.get("alt"):
            clear.reverse()
        corners = clear + [(right, not up) for right, up in clear]
        for i, (right, up) in enumerate(corners):
            ann = _annotate(ax, lab, right, up, fontsize)
            box = ann.get_window_extent(renderer)
            if inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and \
                    box.y1 <= inside.y1 and not any(b.overlaps(box) for b in placed) and \
                    not any(p.intersects_bbox(box, filled=False) for p in paths):
                break
            ann.remove()
            if i == len(corners) - 1:  # nowhere free: the first corner, over the lines
                box = _annotate(ax, lab, *corners[0], fontsize).get_window_extent(renderer)
        placed.append(box)


def _annotate(ax, lab: dict, right: bool, up: bool, fontsize: str):
    return ax.annotate(lab["text"], (lab["x"], lab["y"]), textcoords="offset points",
                       xytext=(6 if right else -6, 6 if up else -6),
                       ha="left" if right else "right", va="bottom" if up else "top",
                       fontsize=fontsize, color=lab["colour"], zorder=8,
                       bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                             "alpha": 0.85})


def _y_range(axs, kind: str, ys: list[float]) -> None:
    """Speedup: a log axis when it spans more than 10x (1 in the middle of what matters),
    else linear and at least 10 % high; efficiency: 0 to at least 1; times: from 0."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # lazy: matplotlib

    lo, hi = min(ys), max(ys)
    if kind == "speedup" and lo > 0 and max(hi, 1.0) / min(lo, 1.0) > 10:
        for ax in axs:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        axs[0].set_ylim(min(lo, 1.0) / 1.25, max(hi, 1.0) * 1.25)
        return
    if kind == "speedup":
        a, b = padded_range(lo, hi, include=(1.0,), floor=0.0)
    elif kind == "efficiency":
        a, b = 0.0, max(1.05, hi * 1.08)
    else:
        a, b = padded_range(0.0 if lo >= 0 else lo, hi, floor=0.0 if lo >= 0 else None)
    axs[0].set_ylim(a, b)
