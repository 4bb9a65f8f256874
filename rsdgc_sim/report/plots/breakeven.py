"""The curve of ``rsdgc-sim breakeven``: speedup over dense against the varied value, one
line per compressor, each break-even marked and labelled."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .axes import Axis, axis_of, padded_range
from .figure import colours, grid, layout, save
from .lines import falls_at, place_labels


def _value(xa: Axis, v) -> str:
    """A break-even value with its unit (``74 workers``, ``25.76 Gbit/s``, ``0.0625``)."""
    return xa.value_text(v)


def breakeven_plot(results: Sequence, fmt: str = "png", title: str = "") -> bytes:
    """``results``: :class:`~rsdgc_sim.study.breakeven.Breakeven` per compressor."""
    path = results[0].path
    xs = sorted({v for r in results for v, _ in r.curve})
    xa = axis_of(path, xs)
    log = results[0].lo > 0 and (xa.log or path in ("cluster.workers", "cluster.bandwidth",
                                                    "cluster.latency") or
                                 results[0].hi / results[0].lo >= 10)
    col = colours([r.compressor for r in results])
    fig, (ax,) = grid(1, height=3.8, width=6.4)
    ys = [1.0]
    labels: list[dict] = []
    for i, r in enumerate(results):
        px = [xa.show(v) for v, _ in r.curve]
        py = [s for _, s in r.curve]
        ys += py
        at = "no break-even in range" if r.breakeven is None else \
            f"{r.direction} at {_value(xa, r.breakeven)}"
        ax.plot(px, py, marker="o", ms=3, color=col[r.compressor], label=f"{r.compressor}: {at}")
        if r.breakeven is not None:
            xb = xa.show(r.breakeven)
            ax.axvline(xb, color=col[r.compressor], lw=0.9, ls=":")
            ax.plot([xb], [1.0], "x", color="black", ms=8, mew=2, zorder=5)
            labels.append({"text": _value(xa, r.breakeven), "x": xb, "y": 1.0,
                           "falling": falls_at(px, py, xb), "colour": col[r.compressor],
                           "alt": i % 2 == 1})
    if log:
        ax.set_xscale("log", base=2 if path == "cluster.workers" else 10)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    lo, hi = min(ys), max(ys)
    if lo > 0 and hi / lo > 4:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(*padded_range(lo, hi, include=(1.0,), floor=0.0))
    ax.axhline(1.0, color="black", lw=0.9, ls="--", label="dense (= 1)")
    ax.set_xlabel(xa.label)
    ax.set_ylabel("speedup over dense (x)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    layout(fig, title)  # final before the labels are placed in it
    place_labels(ax, labels, fontsize="small")
    return save(fig, fmt, tight=False)
