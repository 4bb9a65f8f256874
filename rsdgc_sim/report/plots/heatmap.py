"""A heat map of speedup over dense across two swept axes, one panel per compressor:
red where compression loses (< 1), blue where it pays off, each cell labelled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from .axes import axis_of, row_value
from .figure import grid, save


def heatmap_plot(data: Mapping[str, Any], axes: Mapping[str, list[Any]], x: str, y: str,
                 dense: str, fmt: str, title: str) -> bytes:
    # lazy: matplotlib, numpy
    import numpy as np
    from matplotlib.colors import Normalize
    from matplotlib.ticker import FixedLocator, FuncFormatter

    rest = [p for p in axes if p not in (x, y)]
    if rest:
        raise ConfigError(f"a heat map shows two swept axes ({x}, {y}); these results also "
                          f"sweep {', '.join(rest)}: choose a value of each with --where "
                          f"PATH=VALUE, or use --kind speedup")
    runs = [r for r in data["runs"] if r["compressor"] != dense]
    labels = list(dict.fromkeys(r["compressor"] for r in runs))
    if not labels:
        raise ConfigError("no compressor besides the dense reference to draw")
    xs, ys = axes[x], axes[y]
    xa, ya = axis_of(x, xs), axis_of(y, ys)
    grids = {}
    for label in labels:
        z = np.full((len(ys), len(xs)), np.nan)
        for r in runs:
            if r["compressor"] == label:
                z[ys.index(row_value(r, y)), xs.index(row_value(r, x))] = r["speedup_vs_dense"]
        grids[label] = z
    finite = np.concatenate([z[np.isfinite(z) & (z > 0)] for z in grids.values()])
    # colours by log(speedup), symmetric about 1: 0.5x is as red as 2x is blue, and a
    # 2 % difference stays pale
    m = max(float(np.abs(np.log10(finite)).max(initial=0.0)), np.log10(1.25))
    norm = Normalize(vmin=-m, vmax=m)
    fig, axs = grid(len(labels), height=0.45 * len(ys) + 2.2, width=0.9 * len(xs) + 2.6,
                    sharey=False)
    im = None
    for ax, label in zip(axs, labels, strict=True):
        z = grids[label]
        with np.errstate(divide="ignore", invalid="ignore"):
            zl = np.log10(z)
        im = ax.imshow(zl, cmap="RdBu", norm=norm, aspect="auto", origin="lower")
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(z[i, j]):
                    dark = abs(norm(zl[i, j]) - 0.5) > 0.3
                    ax.text(j, i, f"{z[i, j]:.2f}", ha="center", va="center", fontsize="x-small",
                            color="white" if dark else "black")
        ax.set_xticks(range(len(xs)), [xa.tick(v) for v in xs], rotation=30 if len(xs) > 4 else 0,
                      fontsize="small")
        ax.set_yticks(range(len(ys)), [ya.tick(v) for v in ys], fontsize="small")
        ax.set_xlabel(xa.label.split(" (")[0])
        ax.set_ylabel(ya.label.split(" (")[0])
        ax.set_title(label, fontsize="medium")
    fig.set_layout_engine("constrained")
    cb = fig.colorbar(im, ax=axs, shrink=0.9)
    steps = (0.8, 1, 1.25) if m < np.log10(2.5) else (1,)
    nice = [v for v in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, *steps, 2, 5, 10, 20, 50, 100)
            if abs(np.log10(v)) <= m]
    cb.locator = FixedLocator(np.log10(nice))
    cb.formatter = FuncFormatter(lambda v, _p: f"{10 ** v:.3g}")
    cb.update_ticks()
    cb.set_label("speedup over dense (x), log colour scale")
    return save(fig, fmt, title, tight=False)
