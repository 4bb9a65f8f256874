"""Writing a study's results: results.json, results.csv and trace.json, each atomically."""

from __future__ import annotations

from pathlib import Path

from .files import write_csv_atomic, write_json_atomic


def write_results(result, out_dir: str | Path, trace: bool = True, plot: bool = True) -> list[Path]:
    """Write ``results.json`` (scenario, profile summary, runs), ``results.csv`` (runs),
    when the runs were simulated with traces ``trace.json`` (Chrome Trace Event format), and
    ``plot.png`` (iteration time and speedup against workers)."""
    from ..run import RUN_FIELDS

    out = Path(out_dir)
    written = [
        write_json_atomic(out / "results.json", result.to_dict()),
        write_csv_atomic(out / "results.csv", result.runs, RUN_FIELDS),
    ]
    if trace and result.sims and all(s.spans is not None for s in result.sims):
        written.append(write_json_atomic(out / "trace.json", combined_trace(result)))
    if plot:
        from .plots import write_plot

        title = f"{result.scenario.name}: {result.profile.model}, batch {result.profile.batch_size}/worker"
        written.append(write_plot(result.runs, out / "plot.png", title))
    return written


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
