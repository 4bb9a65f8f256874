"""The time-to-accuracy picture: test accuracy against simulated wall-clock time, one line
per compressor, one panel per grid point (workers, bandwidth, latency); its time axis
linear, logarithmic, or chosen per panel (``--time-axis`` of `tta` and `plot --kind tta`)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # types only
    from matplotlib.figure import Figure

#: panels drawn at most (the rest are listed in the figure's note)
MAX_PANELS = 9
#: the choices of ``--time-axis`` -> ``log_time`` of :func:`plot_tta`
TIME_AXES: dict[str, bool | None] = {"auto": None, "linear": False, "log": True}
#: what each row and each run of a tta.json needs to be drawn
ROW_FIELDS = ("compressor", "workers", "bandwidth_bytes_per_s", "latency_s", "target",
              "iteration_s", "time_to_target_s")
RUN_FIELDS = ("compressor", "workers", "history")
#: the time axis turns logarithmic (``log_time=None``) when the curves of a panel end this
#: many times apart: dense's 38 s would squeeze a compressor's 5 s into the first eighth
LOG_TIME_RATIO = 4.0


def wants_log_time(curve_ends: list[float]) -> bool:
    """Whether curves that end at these times (s) read better on a log time axis: the
    longest more than :data:`LOG_TIME_RATIO` times the shortest."""
    ends = [t for t in curve_ends if t > 0]
    return bool(ends) and max(ends) / min(ends) > LOG_TIME_RATIO


def check_tta_data(data: Any, source: str = "tta.json") -> None:
    """Raise one ConfigError naming ``source`` unless ``data`` is a tta.json that can be
    drawn: rows and runs with the fields the plot reads, a run (training curve) for every
    row's compressor and workers."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{source}: {why}; `plot --kind tta` reads the tta.json of "
                           f"`rsdgc-sim tta`")

    if not isinstance(data, Mapping):
        raise bad("not an object")
    for key, need in (("rows", ROW_FIELDS), ("runs", RUN_FIELDS)):
        items = data.get(key)
        if not isinstance(items, list) or not items:
            raise bad(f"no {key}")
        for i, item in enumerate(items):
            missing = [f for f in need if f not in item] if isinstance(item, Mapping) else need
            if missing:
                raise bad(f"{key[:-1]} {i} has no {', '.join(missing)}")
    for i, run in enumerate(data["runs"]):
        h = run["history"]
        if not isinstance(h, list) or not all(
                isinstance(e, Mapping) and _number(e.get("step")) and _number(e.get("accuracy"))
                for e in h):
            raise bad(f"run {i}: history is not a list of {{step, accuracy}}")
    for i, r in enumerate(data["rows"]):
        if not _number(r["iteration_s"]) or not (r["time_to_target_s"] is None
                                                 or _number(r["time_to_target_s"])):
            raise bad(f"row {i}: iteration_s and time_to_target_s must be numbers")
    curves = {(r["compressor"], r["workers"]) for r in data["runs"]}
    for i, r in enumerate(data["rows"]):
        if (r["compressor"], r["workers"]) not in curves:
            raise bad(f"row {i} ({r['compressor']}, {r['workers']} workers) has no training "
                      f"curve in runs")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _panel_title(row: dict[str, Any]) -> str:
    from ..units import format_bandwidth, format_duration  # lazy: imports pydantic

    return (f"{row['workers']} workers, {format_bandwidth(row['bandwidth_bytes_per_s'])}, "
            f"{format_duration(row['latency_s'])}")


def plot_tta(data: dict[str, Any], fmt: str = "png", log_time: bool | None = None) -> bytes:
    """``data``: a ``tta.json`` (``rows`` and ``runs``) drawn by :func:`tta_figure`, as
    ``fmt`` (png or svg) bytes."""
    import matplotlib.pyplot as plt  # lazy: matplotlib

    fig = tta_figure(data, log_time)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    return buf.getvalue()


def tta_figure(data: dict[str, Any], log_time: bool | None = None) -> Figure:
    """The figure of a ``tta.json`` (``rows`` and ``runs``). Accuracy at each evaluated
    step is drawn at ``step x iteration_s`` of that compressor at that grid point; the
    target is a dashed line and each compressor's time to it a dot. ``log_time``: a
    logarithmic time axis (True), a linear one (False), or, None, logarithmic in the panels
    whose curves end more than :data:`LOG_TIME_RATIO` times apart (:func:`wants_log_time`).
    The caller closes it (``plt.close``)."""
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
        ends = [history[(r["compressor"], r["workers"])][-1]["step"] * r["iteration_s"]
                for r in panel if history[(r["compressor"], r["workers"])]]
        log = wants_log_time(ends) if log_time is None else log_time
        for r in panel:
            h = history[(r["compressor"], r["workers"])]
            if log:  # step 0 has no place on a log axis
                h = [e for e in h if e["step"] > 0]
            t = [e["step"] * r["iteration_s"] for e in h]
            ax.plot(t, [e["accuracy"] for e in h], marker=".", color=colors[r["compressor"]],
                    label=r["compressor"])
            if r["time_to_target_s"] is not None:
                ax.plot([r["time_to_target_s"]], [r["target"]], "o", ms=8, mfc="none",
                        color=colors[r["compressor"]])
        ax.axhline(panel[0]["target"], ls="--", lw=1, color="0.4")
        ax.set_title(_panel_title(panel[0]), fontsize=10)
        if log:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # lazy

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"simulated wall-clock time (s{', log scale' if log else ''})")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    # below the panels: inside one, the legend hid the curves that end low and late
    handles, names = axes.flat[0].get_legend_handles_labels()
    ncol = min(len(names), 8 if cols > 1 else 3)
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    legend_rows = -(-len(names) // ncol)
    scen = data.get("scenario")
    name = scen.get("name", "tta") if isinstance(scen, Mapping) else "tta"
    title = f"{name}: time to {rows[0]['target']:g} test accuracy"
    if len(points) > len(shown):
        title += f" (first {len(shown)} of {len(points)} grid points)"
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.2 * legend_rows / fig.get_size_inches()[1], 1, 1))
    return fig
