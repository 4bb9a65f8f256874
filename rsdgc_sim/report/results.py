"""Writing a study's results: results.json, results.csv and trace.json, each atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .files import write_csv_atomic, write_json_atomic


def write_results(result, out_dir: str | Path, trace: bool = True, plot: bool = True) -> list[Path]:
    """Write ``results.json`` (scenario, profile summary, runs), ``results.csv`` (runs),
    when the runs were simulated with traces ``trace.json`` (Chrome Trace Event format), and
    the plots that fit the study (:func:`rsdgc_sim.report.plots.default_kinds`:
    ``speedup.png``, ``breakdown.png``, ...)."""
    from ..run import RUN_FIELDS

    out = Path(out_dir)
    written = [
        write_json_atomic(out / "results.json", result.to_dict()),
        write_csv_atomic(out / "results.csv", csv_rows(result.runs, list(result.scenario.sweep)),
                         [*RUN_FIELDS, *result.scenario.sweep]),
    ]
    trace_data = None
    if trace and result.sims and all(s.spans is not None for s in result.sims):
        trace_data = combined_trace(result)
        written.append(write_json_atomic(out / "trace.json", trace_data))
    if plot:  # speedup.png, breakdown.png, ... (the kinds that fit this study)
        from .plots import write_plots

        title = f"{result.scenario.name}: {result.profile.model}, batch {result.profile.batch_size}/worker"
        written += write_plots(result.to_dict(), out, title, trace=trace_data)
    return written


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
    from ..data_file import InvalidFile, read_json_data
    from ..errors import ConfigError

    try:
        return read_json_data(src)
    except InvalidFile as e:
        if e.missing:
            raise ConfigError(f"{src}: no such file") from None
        raise ConfigError(f"{src}: not a results.json of `rsdgc-sim run` ({e})") from None


def load_results(path: str | Path) -> dict:
    """A results.json of `rsdgc-sim run`, checked to be of this version's format; anything
    else is one ConfigError saying what it is (another version: which)."""
    from ..errors import ConfigError
    from ..run import RESULTS_FORMAT

    src = Path(path)
    data = read_results_json(src)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ConfigError(f"{src}: not a results.json of `rsdgc-sim run` (no list of runs)")
    fmt = data.get("format")
    if fmt != RESULTS_FORMAT:
        from .. import __version__

        by = (f"rsdgc-sim {data['version']}" if isinstance(data.get("version"), str)
              else "an earlier rsdgc-sim (no version recorded)")
        raise ConfigError(f"{src}: written by {by}, results format {fmt or 1}; this is "
                          f"rsdgc-sim {__version__}, format {RESULTS_FORMAT}: run the study "
                          f"again with this version")
    return data


def combined_trace(result) -> dict:
    """One Chrome trace for the whole study: one process per run (compressor x grid point),
    one thread per worker, each run's iteration starting at time 0."""
    from ..sim.trace import chrome_trace
    from ..units import format_bandwidth, format_duration

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
