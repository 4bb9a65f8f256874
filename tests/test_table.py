"""The results table (rsdgc_sim.report.table) reads in a terminal of 100 columns."""

import io
import re

from rich.console import Console

from rsdgc_sim.report.table import COLUMNS, results_table


def _row(compressor, workers, bw=1.25e9):
    return {"compressor": compressor, "workers": workers, "topology": "switch",
            "collective": "ring", "fidelity": "analytic", "bandwidth_bytes_per_s": bw,
            "latency_s": 5e-6, "iteration_s": 12.3456, "compute_s": 0.0446,
            "compression_s": 0.1259, "communication_s": 10.4525,
            "exposed_communication_s": 9.3361, "bytes_sent_per_worker": 44_795_904.0,
            "bytes_transmitted_per_worker": 2_953_000_000.0, "compression_ratio": 48.04,
            "speedup_vs_dense": 0.53, "scaling_efficiency": 0.25, "samples_per_s": 28512.77}


RUNS = [_row(c, w, bw) for c in ("none", "topk(density=0.01)", "nsi(density=0.01, kernel=3)")
        for w in (1, 64, 65536) for bw in (1.25e8, 1.25e12)]


def _render(wide=False, width=100) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(results_table(RUNS, "t", wide=wide))
    return buf.getvalue()


def test_default_table_fits_100_columns_without_cutting_a_cell():
    """At width 100 every line fits, nothing is elided, every number is whole, and long
    compressor labels wrap instead of being cut."""
    text = _render()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" not in text
    # the compressor column, read down: a wrapped label continues on the next line
    first = re.sub(r"\s+", "", "".join(line[:21] for line in text.splitlines()))
    for r in RUNS:
        for c in COLUMNS:
            if not c.wide_only:
                cell = c.cell(r)
                if c.header == "compressor":
                    assert re.sub(r"\s+", "", cell) in first, cell
                else:
                    assert cell in text, (c.header, cell)


def test_one_worker_sends_nothing_and_samples_have_three_figures():
    """On one worker the bytes columns say "-"; samples/s has 3 significant figures."""
    cells = {c.header: c.cell(RUNS[0]) for c in COLUMNS}
    assert cells["payload\n/worker"] == "-" and cells["NIC tx\n/worker"] == "-"
    assert cells["samples\n/s"] == "28500"
    assert {c.header: c.cell(RUNS[2]) for c in COLUMNS}["payload\n/worker"] == "42.72MiB"
    sig = {c.header: c for c in COLUMNS}["samples\n/s"].cell
    assert [sig({"samples_per_s": x}) for x in (38.0, 4.934, 283.4, 1011.6)] == [
        "38.0", "4.93", "283", "1010"]


def test_wide_table_has_every_column():
    """--wide adds latency, compute, comm, ratio and scaling."""
    text = _render(wide=True, width=200)
    for word in ("latency", "compute", "comm", "ratio", "48.0x", "scaling", "25%"):
        assert word in text
    assert "latency" not in _render()
