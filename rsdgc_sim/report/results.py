"""Writing a study's results: results.json, results.csv and trace.json, each atomically."""

from __future__ import annotations

from pathlib import Path

from .files import write_csv_atomic, write_json_atomic


def write_results(result, out_dir: str | Path, trace: bool = True) -> list[Path]:
    """Write ``results.json`` (scenario, profile summary, runs), ``results.csv`` (runs) and,
    when the runs were simulated with traces, ``trace.json`` (Chrome Trace Event format)."""
    from ..run import RUN_FIELDS

    out = Path(out_dir)
    written = [
        write_json_atomic(out / "results.json", result.to_dict()),
        write_csv_atomic(out / "results.csv", result.runs, RUN_FIELDS),
    ]
    if trace and result.sims and getattr(result.sims[0], "spans", None):
        from ..sim.trace import chrome_trace_many

        labels = [f"{r['compressor']} | {r['workers']} workers | {r['bandwidth_bytes_per_s'] * 8 / 1e9:g} Gbit/s" for r in result.runs]
        written.append(write_json_atomic(out / "trace.json", chrome_trace_many(result.sims, labels)))
    return written
