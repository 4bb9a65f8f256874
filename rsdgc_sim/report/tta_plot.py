"""The time-to-accuracy picture: test accuracy against simulated wall-clock time, one line
per compressor, one panel per grid point (workers, bandwidth, latency)."""

from __future__ import annotations

import io
from typing import Any

#: panels drawn at most (the rest are listed in the figure's note)
MAX_PANELS = 9


def _panel_title(row: dict[str, Any]) -> str:
    from ..units import format_bandwidth, format_duration  # lazy: imports pydantic

    return (f"{row['workers']} workers, {format_bandwidth(row['bandwidth_bytes_per_s'])}, "
            f"{format_duration(row['latency_s'])}")


def plot_tta(data: dict[str, Any], fmt: str = "png") -> bytes:
    """``data``: a ``tta.json`` (``rows`` and ``runs``). Accuracy at each evaluated step is
    drawn at ``step x iteration_s`` of that compressor at that grid point; the target is a
    dashed line and each compressor's time to it a dot."""
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib

    rows, runs = data["rows"], data["runs"]
    history = {(r["compressor"], r["workers"]): r["history"] for r in runs}
    points: list[tuple] = []
    for r in rows:
        key = (r["workers"], r["bandwidth_bytes_per_s"], r["latency_s"])
        if key not in points:
            points.append(key)
    shown = points[:MAX_PANELS]
    cols = min(3, len(shown))
    nrows = -(-len(shown) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.8 * nrows), squeeze=False)
    labels = list(dict.fromkeys(r["compressor"] for r in rows))
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    for ax, key in zip(axes.flat, shown, strict=False):
        panel = [r for r in rows if (r["workers"], r["bandwidth_bytes_per_s"], r["latency_s"]) == key]
        for r in panel:
            h = history[(r["compressor"], r["workers"])]
            t = [e["step"] * r["iteration_s"] for e in h]
            ax.plot(t, [e["accuracy"] for e in h], marker=".", color=colors[r["compressor"]],
                    label=r["compressor"])
            if r["time_to_target_s"] is not None:
                ax.plot([r["time_to_target_s"]], [r["target"]], "o", ms=8, mfc="none",
                        color=colors[r["compressor"]])
        ax.axhline(panel[0]["target"], ls="--", lw=1, color="0.4")
        ax.set_title(_panel_title(panel[0]), fontsize=10)
        ax.set_xlabel("simulated wall-clock time (s)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="lower right")
    title = f"{data['scenario']['name']}: time to {rows[0]['target']:g} test accuracy"
    if len(points) > len(shown):
        title += f" (first {len(shown)} of {len(points)} grid points)"
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    return buf.getvalue()
