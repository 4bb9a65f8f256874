"""A study's results: their format (:class:`StudyResult`, the run fields, the format
version) and writing them: results.json, results.csv and trace.json, each atomically."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..data_file import InvalidFile, read_json_data
from ..errors import ConfigError
from ..files import csv_bytes, json_bytes, write_files_atomic
from ..strict import excerpt
from ..units import format_bandwidth, format_duration
from .plots import draw_plots

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


def write_results(result: StudyResult, out_dir: str | Path, trace: bool = True, plot: bool = True) -> list[Path]:
    """Write ``results.json`` (scenario, profile summary, runs), ``results.csv`` (runs),
    when the runs were simulated with traces ``trace.json`` (Chrome Trace Event format), and
    the plots that fit the study (:func:`rsdgc_sim.report.plots.default_kinds`:
    ``speedup.png``, ``breakdown.png``, ...), all or nothing: every file is made and every
    path checked before any is written."""
    out = Path(out_dir)
    files = {
        out / "results.json": json_bytes(result.to_dict(), str(out / "results.json")),
        out / "results.csv": csv_bytes(csv_rows(result.runs, list(result.scenario.sweep)),
                                       [*RUN_FIELDS, *result.scenario.sweep]),
    }
    trace_data = None
    if trace and result.sims and all(s.spans is not None for s in result.sims):
        trace_data = combined_trace(result)
        files[out / "trace.json"] = json_bytes(trace_data, str(out / "trace.json"))
    if plot:  # speedup.png, breakdown.png, ... (the kinds that fit this study)

        title = f"{result.scenario.name}: {result.profile.model}, batch {result.profile.batch_size}/worker"
        drawn = draw_plots(result.to_dict(), title, trace=trace_data)
        files.update({out / f"{k}.png": b for k, b in drawn.items()})
    # everything made before anything is written: an error leaves the previous outputs
    return write_files_atomic(files)


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
