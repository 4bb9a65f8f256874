"""A study's results: their format (:class:`StudyResult`, the run fields, the format
version) and writing them: results.json, results.csv and trace.json, each atomically."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..data_file import InvalidFile, read_json_data, read_text
from ..errors import ConfigError
from ..files import csv_bytes, json_bytes, write_files_atomic
from ..strict import excerpt
from ..units import format_bandwidth, format_duration
from .plots import KINDS, default_kinds, draw_plots
from .plots.slices import is_plot_file

if TYPE_CHECKING:  # types only: report reads what the layers below produce
    from ..profile.schema import Profile
    from ..scenario import Scenario


#: the fields of one run in results.json / results.csv, in order
RUN_FIELDS = [
    "compressor", "workers", "topology", "collective", "fidelity", "exact", "bandwidth_bytes_per_s",
    "latency_s", "iteration_s", "iteration_s_low", "iteration_s_high", "compute_s",
    "compression_s", "communication_s",
    "exposed_communication_s", "bytes_sent_per_worker", "bytes_transmitted_per_worker",
    "compression_ratio",
    "speedup_vs_dense", "speedup_vs_dense_low", "speedup_vs_dense_high", "scaling_efficiency",
    "samples_per_s",
]


#: run fields that may be None (no compression ratio without a payload; no upper speedup
#: bound when an iteration takes no time under a quartile)
_MAY_BE_NONE = {"compression_ratio", "speedup_vs_dense_high"}
_TEXT_FIELDS = {"compressor", "topology", "collective", "fidelity"}


def run_problem(run: Any) -> str | None:
    """What makes ``run`` not a run of this version's results (None: nothing): a mapping
    with every run field, text where text is due, ``exact`` a bool, every number finite and
    at least 0, the iteration time above 0, ``point`` a mapping and ``buckets`` a list
    when present."""
    if not isinstance(run, dict):
        return f"not a mapping ({type(run).__name__})"
    for f in RUN_FIELDS:
        if f not in run:
            return f"no {f}"
        v = run[f]
        if f in _TEXT_FIELDS:
            ok, want = isinstance(v, str), "text"
        elif f == "exact":
            ok, want = isinstance(v, bool), "true or false"
        elif v is None:
            ok, want = f in _MAY_BE_NONE, "a number"
        else:
            ok = (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                  and (v > 0 if f == "iteration_s" else v >= 0))
            want = "a number > 0" if f == "iteration_s" else "a number >= 0"
        if not ok:
            return f"{f} is {excerpt(v)}, not {want}"
    if not isinstance(run.get("point", {}), dict):
        return "point is not a mapping"
    if not isinstance(run.get("buckets", []), list):
        return "buckets is not a list"
    return None


#: the layout of results.json (``format``; a file of another one is refused with its version)
RESULTS_FORMAT = 2


@dataclass
class StudyResult:
    """What `rsdgc-sim run` reports: the resolved scenario, the profile used (the first
    variant's, with a sweep), one row per compressor x point, and the simulator's results
    (for traces: only when every point was simulated here, with traces).

    * ``axes``: dotted scenario path -> its values, for every axis with more than one value
      (the sweep's paths, then ``cluster.workers``, ``cluster.bandwidth``, ``cluster.latency``);
      each row's ``point`` gives every axis's value (single-valued ones too);
    * ``points_computed`` / ``points_reused``: points simulated now / found in the point store;
    * ``profiles_measured`` / ``profiles_reused``: distinct profiles measured (or estimated)
      now / taken from the cache or a file.
    """

    scenario: Scenario
    profile: Profile
    runs: list[dict[str, Any]]
    sims: list[Any] = field(default_factory=list, repr=False)
    profile_cached: bool = False
    axes: dict[str, list[Any]] = field(default_factory=dict)
    points_computed: int = 0
    points_reused: int = 0
    profiles_measured: int = 0
    profiles_reused: int = 0

    def profile_summary(self) -> dict[str, Any]:
        p = self.profile
        return {
            "key": p.key,
            "model": p.model,
            "params": p.params,
            "batch_size": p.batch_size,
            "input_size": p.input_size,
            "devices": [{"device": d.device, "name": d.device_name, "forward_s": d.forward_s,
                         "backward_s": d.backward_s, "optimizer_s": d.optimizer_s,
                         "nsi_compile": d.nsi_compile, "estimated": d.estimated,
                         "source": d.source, "spread": d.spread} for d in p.devices],
            "torch_version": p.torch_version,
            "host": p.host,
            "machine": p.machine,
            "created": p.created,
            "settings": p.settings,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RESULTS_FORMAT,
            "version": __version__,
            "scenario": self.scenario.model_dump(mode="json"),
            "profile": self.profile_summary(),
            "axes": self.axes,
            "points_computed": self.points_computed,
            "points_reused": self.points_reused,
            "profiles_measured": self.profiles_measured,
            "profiles_reused": self.profiles_reused,
            "runs": self.runs,
        }


def write_results(result: StudyResult, out_dir: str | Path, trace: bool = True, plot: bool = True,
                  skipped: list[tuple[str, str]] | None = None,
                  removed: list[Path] | None = None,
                  kept: list[Path] | None = None) -> list[Path]:
    """Write ``results.json`` (scenario, profile summary, runs), ``results.csv`` (runs),
    when the runs were simulated with traces ``trace.json`` (Chrome Trace Event format), and
    the plots that fit the study (:func:`rsdgc_sim.report.plots.default_kinds`:
    ``speedup.png``, ``breakdown.png``, ...; per slice where the study has more axes than
    one figure draws), all or nothing: every file is made and every path checked before any
    is written. The outputs of an earlier run in ``out_dir`` that this one does not write
    again (:func:`stale_outputs`: a heat map the new grid makes none of, a trace.json not
    made this time) are removed once the new ones are in place, and added to ``removed``; a
    plot kind that cannot be drawn is added to ``skipped`` as (kind, reason). Plots drawn
    from the same results by an earlier run are kept, not drawn again
    (:func:`kept_outputs`), and added to ``kept``."""
    out = Path(out_dir)
    data = result.to_dict()
    trace_data = None
    if trace and result.sims and all(s.spans is not None for s in result.sims):
        trace_data = combined_trace(result)
    old = _previous(out / "results.json")
    same = kept_outputs(out, data, plot, trace_data is not None, old)
    files: dict[Path, bytes] = {}
    if same is None or old != data:  # an unchanged rerun of an unchanged rerun: not written
        files[out / "results.json"] = json_bytes(data, str(out / "results.json"))
    if same is not None and (out / "results.csv").is_file():  # the same rows: the same CSV
        same.append(out / "results.csv")
    else:
        files[out / "results.csv"] = csv_bytes(csv_rows(result.runs, list(result.scenario.sweep)),
                                               [*RUN_FIELDS, *result.scenario.sweep])
    if trace_data is not None:
        files[out / "trace.json"] = json_bytes(trace_data, str(out / "trace.json"))
    if kept is not None and same is not None:
        kept.extend(p for p in same if p.suffix == ".png")
    if plot and same is None:  # speedup.png, breakdown.png, ... (the kinds that fit)
        title = f"{result.scenario.name}: {result.profile.model}, batch {result.profile.batch_size}/worker"
        drawn = draw_plots(data, title, trace=trace_data, skipped=skipped)
        files.update({out / f"{k}.png": b for k, b in drawn.items()})
    stale = [p for p in stale_outputs(out, files) if same is None or p not in same]
    # everything made before anything is written: an error leaves the previous outputs
    written = write_files_atomic(files, remove=stale)
    if removed is not None:
        removed.extend(stale)
    return written


#: results.json fields that describe how a run went, not its results
RUN_COUNTERS = ("points_computed", "points_reused", "profiles_measured", "profiles_reused")


def kept_outputs(out_dir: Path, data: Mapping[str, Any], plot: bool, traced: bool,
                 old: Any) -> list[Path] | None:
    """The plots (and trace.json) of an earlier run that describe exactly these results,
    kept instead of drawn again (a second per picture: an unchanged study reruns in a
    second, not a minute), or None to draw. They are kept when ``out_dir``'s results.json
    holds the same results from the same version (the run counters aside), no trace is
    made now, and every plot kind the study draws has its file (whole or in slices) there:
    then the earlier run drew them from the same rows with the same code. ``old``: that
    results.json, parsed (None: none)."""
    if not plot or traced:
        return None
    if not isinstance(old, dict) or any(
            old.get(k) != v for k, v in data.items() if k not in RUN_COUNTERS):
        return None
    try:
        names = [p.name for p in out_dir.iterdir()
                 if p.name == "trace.json" or is_plot_file(p.name, KINDS)]
    except OSError:
        return None
    drawn = {n.removesuffix(".png").partition("--")[0] for n in names if n.endswith(".png")}
    if not set(default_kinds(data, "trace.json" in names)) <= drawn:
        return None
    return [out_dir / n for n in names]


def _previous(path: Path) -> Any:
    """The results.json an earlier run left at ``path`` (parsed once per run), or None.
    Only compared with the new results (whose numbers are finite), it is not walked for
    NaN and infinities as :func:`~rsdgc_sim.data_file.read_json_data` walks a file it
    hands on (10 ms for 1,000 points): one there only makes it differ, and it is
    written again."""
    try:
        return json.loads(read_text(path, what="a JSON file"))
    except (InvalidFile, OSError, ValueError, RecursionError):
        return None


def outputs_text(paths: list[Path], removed: list[Path] = (), kept: list[Path] = ()) -> str:
    """The files written, for the "wrote" line (a kind's slices as one entry:
    ``heatmap--*.png (4 slices)``), and the stale ones removed."""
    from .plots.slices import SLICE_SEP

    names: dict[str, int] = {}
    for p in paths:
        kind, sep, _ = p.name.partition(SLICE_SEP)
        key = f"{kind}{SLICE_SEP}*.png" if sep and p.suffix == ".png" else p.name
        names[key] = names.get(key, 0) + 1
    text = (", ".join(f"{k} ({n} slices)" if SLICE_SEP in k else k for k, n in names.items())
            or "nothing new (the files there hold these results)")
    if kept:
        text += f"; kept {len(kept)} plot(s) drawn from the same results by the last run"
    if removed:
        text += (f"; removed {', '.join(p.name for p in removed)} (left by an earlier run, "
                 f"not made from these results)")
    return text


def stale_outputs(out_dir: Path, files: Mapping[Path, bytes]) -> list[Path]:
    """The files in ``out_dir`` that `run` writes (trace.json, ``<kind>.png`` and the
    slices' ``<kind>--key=value....png``) and that are not among ``files``: left by an
    earlier run, they no longer describe these results. Nothing else is touched (the
    point store, other files, folders)."""
    try:
        entries = sorted(out_dir.iterdir()) if out_dir.is_dir() else []
    except OSError:
        return []
    ours = [p for p in entries if (p.name == "trace.json" or is_plot_file(p.name, KINDS))
            and p not in files and (p.is_symlink() or p.is_file())]
    return ours


def csv_rows(runs: list[dict], paths: list[str]) -> list[dict]:
    """Rows with the swept paths as columns (a list or mapping value as JSON)."""
    if not paths:
        return runs
    out = []
    for r in runs:
        point = r.get("point", {})
        out.append({**r, **{p: point[p] if isinstance(point.get(p), (str, int, float, bool))
                            else json.dumps(point.get(p)) for p in paths}})
    return out


def read_results_json(src: Path) -> Any:
    """The JSON in ``src``, or one ConfigError saying why it cannot be a results file
    (through the project's reader of users' data files: a regular file only, so a FIFO or
    a device such as /dev/zero is refused from its ``stat`` instead of read forever; a
    size cap; UTF-8; no non-finite numbers)."""
    try:
        return read_json_data(src)
    except InvalidFile as e:
        if e.missing:
            raise ConfigError(f"{src}: no such file") from None
        raise ConfigError(f"{src}: not a results.json of `rsdgc-sim run` ({e})") from None


def load_results(path: str | Path) -> dict:
    """A results.json of `rsdgc-sim run`, checked to be of this version's format; anything
    else is one ConfigError saying what it is (another version: which)."""
    src = Path(path)
    data = read_results_json(src)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ConfigError(f"{src}: not a results.json of `rsdgc-sim run` (no list of runs)")
    fmt = data.get("format")
    if fmt != RESULTS_FORMAT:
        by = (f"rsdgc-sim {data['version']}" if isinstance(data.get("version"), str)
              else "an earlier rsdgc-sim (no version recorded)")
        raise ConfigError(f"{src}: written by {by}, results format {fmt or 1}; this is "
                          f"rsdgc-sim {__version__}, format {RESULTS_FORMAT}: run the study "
                          f"again with this version")
    for i, run in enumerate(data["runs"]):
        if (problem := run_problem(run)) is not None:
            raise ConfigError(f"{src}: run {i}: {problem} (not a run `rsdgc-sim run` writes)")
    return data


def combined_trace(result: StudyResult) -> dict:
    """One Chrome trace for the whole study: one process per run (compressor x grid point),
    one thread per worker, each run's iteration starting at time 0."""
    from ..sim.trace import chrome_trace  # lazy: imports numpy, networkx, simpy, yaml

    events: list[dict] = []
    for pid, (row, sim) in enumerate(zip(result.runs, result.sims, strict=True)):
        label = (f"{row['compressor']} | {row['workers']} workers | "
                 f"{format_bandwidth(row['bandwidth_bytes_per_s'])} | {format_duration(row['latency_s'])}")
        for ev in chrome_trace(sim)["traceEvents"]:
            ev = {**ev, "pid": pid}
            if ev.get("name") == "process_name":
                ev["args"] = {"name": label}
            events.append(ev)
    return {"traceEvents": events, "displayTimeUnit": "ms"}
