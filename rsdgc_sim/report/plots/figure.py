"""Shared drawing helpers: the figure, the panels of the axes that are not drawn on x, a
compressor's colour, and saving as PNG or SVG (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError
from .axes import Axis, axis_of, row_value

#: panels drawn at most (one per combination of the axes not on x)
MAX_PANELS = 12
#: inches of one panel
PANEL_W, PANEL_H = 4.6, 3.4


def pyplot():
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # lazy: matplotlib

    return plt


def colours(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per compressor, the dense reference always black."""
    plt = pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    out, it = {}, itertools.cycle(cycle)
    for label in labels:
        out[label] = "black" if label in ("none", "dense") else next(it)
    return out


def panels(runs: Sequence[Mapping[str, Any]], axes: Mapping[str, list[Any]],
           drawn: Sequence[str]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """The runs split by every swept axis not in ``drawn``: (title, rows) per panel."""
    rest = [p for p in axes if p not in drawn]
    if not rest:
        return [("", list(runs))]
    groups: dict[tuple, list] = {}
    for r in runs:
        groups.setdefault(tuple(repr(row_value(r, p)) for p in rest), []).append(r)
    if len(groups) > MAX_PANELS:
        raise ConfigError(
            f"{len(groups)} panels (one per combination of {', '.join(rest)}); at most "
            f"{MAX_PANELS}: choose a value of some with --where PATH=VALUE, or --x among "
            f"the swept axes")
    ax_of = {p: axis_of(p, axes[p]) for p in rest}
    out = []
    order = {p: [repr(v) for v in axes[p]] for p in rest}
    for key in sorted(groups, key=lambda k: tuple(order[p].index(v) if v in order[p] else 0
                                                  for p, v in zip(rest, k, strict=True))):
        rows = groups[key]
        title = ", ".join(short_value(ax_of[p], row_value(rows[0], p)) for p in rest)
        out.append((title, rows))
    return out


def short_value(ax: Axis, v: Any) -> str:
    """A value of an axis in a few words (``8 workers``, ``10Gbit/s``, ``density 0.01``)."""
    if ax.path == "cluster.workers":
        return f"{v} worker{'' if v == 1 else 's'}"
    if ax.path in ("cluster.bandwidth", "cluster.latency", "cluster.topology.name",
                   "cluster.collective"):
        return ax.tick(v)
    return f"{ax.path.rsplit('.', 1)[-1]} {ax.tick(v)}"


def grid(n: int, height: float = PANEL_H, width: float = PANEL_W, sharey: bool = True):
    """A figure with ``n`` panels, up to 3 per row; returns (fig, flat list of axes)."""
    plt = pyplot()
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.6),
                            squeeze=False, sharey=sharey)
    flat = [a for row in axs for a in row]
    for a in flat[n:]:
        a.set_visible(False)
    return fig, flat[:n]


def set_x(ax, axis: Axis, values: Sequence[Any]) -> None:
    """Scale, ticks at the swept values (with their units) and label of the x axis."""
    from matplotlib.ticker import NullFormatter, NullLocator  # lazy: matplotlib

    if axis.log:
        ax.set_xscale("log", base=2 if axis.path == "cluster.workers" else 10)
    shown = [axis.show(v) for v in values]
    if len(shown) <= 10:
        ax.set_xticks(shown, [_tick_text(axis, v) for v in values])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(axis.label)


def _tick_text(axis: Axis, v: Any) -> str:
    s = axis.show(v)
    return f"{s:g}" if axis.numeric else str(v)


def layout(fig, title: str = "") -> None:
    """The figure's title, and the panels laid out below it (tight_layout alone lets a
    long title run into the top panels' titles)."""
    if title:
        lines = title.count("\n") + 1
        fig.suptitle(title, fontsize="medium")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 * lines / fig.get_size_inches()[1]))
    else:
        fig.tight_layout()


def save(fig, fmt: str, title: str = "", tight: bool = True) -> bytes:
    """The figure as ``fmt`` (png or svg) bytes; ``tight=False`` keeps a colour bar's
    layout."""
    if tight:
        layout(fig, title)
    elif title:
        fig.suptitle(title, fontsize="medium")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    pyplot().close(fig)
    return buf.getvalue()
