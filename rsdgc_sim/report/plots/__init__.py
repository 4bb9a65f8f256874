"""Plots of a study, read at a glance (matplotlib, Agg backend: no screen needed).

Kinds (``rsdgc-sim plot RESULTS --kind KIND``; ``run`` writes the useful ones):

* ``speedup``: speedup over dense against the swept axis (log axes for bandwidth, latency
  and workers), one line per compressor, the break-even (where it crosses 1) marked;
* ``iteration``: iteration time against the swept axis;
* ``breakdown``: stacked bars of the iteration: compute, compression, exposed and hidden
  communication;
* ``efficiency``: scaling efficiency (dense at one worker / this iteration);
* ``heatmap``: speedup over two swept axes, one panel per compressor;
* ``timeline``: one iteration from ``trace.json``: which bucket waits on what.

The x axis follows what was swept (:mod:`.axes`); other swept axes become panels; a study
with more axes than fit is drawn in slices (:mod:`.slices`, ``plot --where``). y ranges
are at least 10 % of their value high, so a 2 % difference never looks like a cliff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...files import write_bytes_atomic, write_files_atomic
from .axes import axis_of, pick_x, resolve_path, study_axes
from .breakdown import breakdown_plot
from .heatmap import heatmap_plot
from .lines import line_plot
from .slices import file_stem, plan, select

#: what every plot reads from each run, and the formats it writes
PLOT_FIELDS = ("compressor", "workers", "bandwidth_bytes_per_s", "latency_s", "iteration_s",
               "speedup_vs_dense")
#: what some kinds read besides
KIND_FIELDS = {
    "breakdown": ("compute_s", "compression_s", "communication_s", "exposed_communication_s"),
    "efficiency": ("scaling_efficiency",),
    "timeline": ("compute_s", "communication_s", "exposed_communication_s"),
}
FORMATS = (".png", ".svg")
KINDS = ("speedup", "iteration", "breakdown", "efficiency", "heatmap", "timeline")


def check_runs(runs: Any, source: str = "runs", kind: str = "speedup") -> None:
    """Raise ConfigError unless ``runs`` is a non-empty list of rows with every field the
    plot needs (as ``results.json`` of `rsdgc-sim run` has)."""
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{source}: no runs to plot")
    need = PLOT_FIELDS + KIND_FIELDS.get(kind, ())
    for i, r in enumerate(runs):
        mapping = isinstance(r, dict) or isinstance(r, Mapping)  # dict first: the ABC is slow
        missing = [f for f in need if f not in r] if mapping else list(need)
        if missing:
            raise ConfigError(
                f"{source}: run {i} has no {', '.join(missing)}; `plot` reads the results.json "
                f"of `rsdgc-sim run`")


def dense_label(data: Mapping[str, Any]) -> str:
    """The dense reference's label: the scenario's first ``none`` compressor, else
    ``none``."""
    scen = data.get("scenario")
    for c in (scen.get("compressors") or []) if isinstance(scen, Mapping) else []:
        if isinstance(c, Mapping) and c.get("name") == "none" and set(c) <= {"name", "label"}:
            return str(c.get("label") or "none")
    return "none"


def draw(data: Mapping[str, Any], kind: str, fmt: str = "png", x: str | None = None,
         y: str | None = None, title: str = "", trace: Mapping[str, Any] | None = None,
         compressor: str | None = None,
         where: Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None) -> bytes:
    """One plot of a results.json's ``data`` as ``fmt`` (png or svg) bytes; ``where``
    (path -> value, :func:`.slices.select`) draws only that slice of the study, the title
    saying which."""
    if kind not in KINDS:
        raise ConfigError(f"--kind {kind}: one of {', '.join(KINDS)}")
    runs = data.get("runs") if isinstance(data, Mapping) else None
    check_runs(runs, kind=kind)
    among = None
    if where:
        part = select(data, where)
        among = part.indices
        if kind != "timeline":  # it keeps every row (trace.json's ids index them) and its
            data = part.data    # title names the case it draws
            title = f"{title}; {part.label}" if title else part.label
    axes = study_axes(data)
    dense = dense_label(data)
    if kind in ("speedup", "iteration", "efficiency"):
        return line_plot(data, axes, pick_x(axes, x), kind, dense, fmt, title)
    if kind == "breakdown":
        return breakdown_plot(data, axes, pick_x(axes, x), fmt, title)
    if kind == "heatmap":
        xp, yp = heat_axes(axes, x, y)
        return heatmap_plot(data, axes, xp, yp, dense, fmt, title)
    from .timeline import timeline_plot  # lazy: imports pydantic

    if trace is None:
        raise ConfigError("--kind timeline reads trace.json (written by `run` beside "
                          "results.json unless --no-trace)")
    return timeline_plot(trace, runs, dense, compressor, fmt, title, axes=axes, among=among)


def heat_axes(axes: Mapping[str, list[Any]], x: str | None, y: str | None) -> tuple[str, str]:
    """The two axes of a heat map: ``--x``/``--y`` or the two swept ones."""
    if len(axes) < 2:
        raise ConfigError(f"a heat map needs two swept axes; these results sweep "
                          f"{', '.join(axes) or 'nothing'}: use --kind speedup")
    xp = pick_x(axes, x)
    yp = pick_x({k: v for k, v in axes.items() if k != xp}, y) if y is None else resolve_path(y)
    if yp not in axes or yp == xp:
        raise ConfigError(f"--y {y}: a swept axis other than {xp} ({', '.join(axes)})")
    return xp, yp


def default_kinds(data: Mapping[str, Any], has_trace: bool) -> list[str]:
    """The kinds `run` writes: speedup (iteration time when only dense ran) and breakdown
    always; efficiency when workers were swept; a heat map for two swept numeric axes (one
    per slice of the others, :func:`draw_plots`); the timeline with a trace."""
    axes = study_axes(data)
    compressors = {r.get("compressor") for r in data.get("runs") or []}
    dense = dense_label(data)
    # speedup over dense says nothing when dense is all there is: iteration time instead
    kinds = ["speedup" if compressors - {dense} else "iteration", "breakdown"]
    if "cluster.workers" in axes:
        kinds.append("efficiency")
    if sum(axis_of(p, v).numeric for p, v in axes.items()) >= 2 and compressors - {dense}:
        kinds.append("heatmap")
    if has_trace:
        kinds.append("timeline")
    return kinds


def write_plot(data: Mapping[str, Any], path: str | Path, kind: str = "speedup",
               title: str = "", **kw: Any) -> Path:
    """Draw ``kind`` into ``path``, PNG or SVG by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{path}: a plot is written as {' or '.join(FORMATS)}")
    return write_bytes_atomic(path, draw(data, kind, fmt=suffix[1:], title=title, **kw))


def draw_plots(data: Mapping[str, Any], title: str = "",
               trace: Mapping[str, Any] | None = None,
               kinds: Sequence[str] | None = None,
               skipped: list[tuple[str, str]] | None = None) -> dict[str, bytes]:
    """The default kinds (or ``kinds``) drawn as PNG, by file name stem: ``<kind>`` when
    the whole study fits one figure, else one ``<kind>--key=value...`` per slice of the
    axes that do not fit (:func:`.slices.plan`, :func:`.slices.file_stem`). A default kind
    this study cannot draw even in slices is left out and added to ``skipped`` as (kind,
    reason); a kind asked for raises."""
    drawn: dict[str, bytes] = {}
    for k in (kinds or default_kinds(data, trace is not None)):
        try:
            drawn.update(_draw_kind(data, k, title, trace if k == "timeline" else None))
        except ConfigError as e:
            if kinds:
                raise
            if skipped is not None:
                skipped.append((k, str(e)))
    return drawn


def _draw_kind(data: Mapping[str, Any], kind: str, title: str,
               trace: Mapping[str, Any] | None) -> dict[str, bytes]:
    """``kind`` whole, or, when the study has more axes than one figure draws, one per
    slice (:func:`.slices.plan`)."""
    try:
        return {kind: draw(data, kind, title=title, trace=trace)}
    except ConfigError:
        if kind == "timeline":
            raise
        combos = plan(data, kind)  # too many slices: raises why
        if combos == [{}]:  # nothing to fix: slices would not help
            raise
    return {file_stem(kind, {p: [v] for p, v in fixed.items()}):
            draw(data, kind, title=title, trace=trace, where=fixed) for fixed in combos}


def write_plots(data: Mapping[str, Any], out_dir: str | Path, title: str = "",
                trace: Mapping[str, Any] | None = None,
                kinds: Sequence[str] | None = None,
                skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """:func:`draw_plots` as ``<kind>.png`` in ``out_dir``, all drawn before any is written
    (:func:`rsdgc_sim.files.write_files_atomic`)."""
    out = Path(out_dir)
    drawn = draw_plots(data, title, trace, kinds, skipped)
    return write_files_atomic({out / f"{k}.png": b for k, b in drawn.items()}, "plot")


__all__ = ["FORMATS", "KINDS", "check_runs", "default_kinds", "draw", "draw_plots",
           "write_plot", "write_plots"]
