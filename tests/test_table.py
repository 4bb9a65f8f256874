"""The results table (rsdgc_sim.report.table) reads in a terminal of 100 columns."""

import io

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
    """At width 100 every line fits, nothing is elided, every number is whole, and every
    compressor label is whole on its row (report.table.fit_labels; it used to be folded
    over two lines)."""
    text = _render()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" not in text
    for r in RUNS:
        for c in COLUMNS:
            if not c.wide_only:
                assert c.cell(r) in text, (c.header, c.cell(r))
    assert any(line.startswith("nsi(density=0.01, kernel=3) ") for line in text.splitlines())


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


def _ranged(r, it=(11.0, 13.0), sp=(0.5, 0.6)):
    return {**r, "iteration_s_low": it[0], "iteration_s_high": it[1],
            "speedup_vs_dense_low": sp[0], "speedup_vs_dense_high": sp[1]}


def test_ranges_show_as_percent_columns_within_100_columns():
    """Rows with ranges get a ``±%`` column after the iteration time and after the speedup:
    the larger distance to an end, in % of the value (an open end: inf); the table still
    fits 100 columns with the widest cells, every cell whole."""
    runs = [_ranged(RUNS[0]), _ranged(RUNS[1], it=(0.0, 12.3456), sp=(0.53, None)),
            {**_ranged(RUNS[2], it=(12.3456, 12.3456), sp=(11.07, 200.0)),
             "speedup_vs_dense": 11.07},
            _ranged(RUNS[3], it=(12.3, 12.35)), *RUNS[4:]]
    cells = [[c.cell(r) for c in COLUMNS if c.header == "±\n%"] for r in runs[:5]]
    # 1.3456 / 12.3456 = 10.9 %; 0.07 / 0.53 = 13.2 %; 12.3456 / 12.3456; 188.93 / 11.07
    assert cells == [["11", "13"], ["100", "inf"], ["0", "1k+"], ["<1", "13"], ["0", "0"]]
    buf = io.StringIO()
    Console(file=buf, width=100, color_system=None).print(results_table(runs, "t"))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" not in text and "11.07x 1k+" in text and " inf " in text
    assert text.splitlines()[1].split() == ["iter", "±", "compress", "exposed", "payload",
                                            "NIC", "tx", "vs", "±", "samples"]


def test_no_ranges_no_percent_columns():
    """Rows without a range wider than a point (an estimated profile, an older file) show
    no ``±`` column."""
    assert "±" not in _render()
    flat = [_ranged(r, it=(r["iteration_s"],) * 2, sp=(r["speedup_vs_dense"],) * 2) for r in RUNS]
    buf = io.StringIO()
    Console(file=buf, width=100, color_system=None).print(results_table(flat, "t"))
    assert "±" not in buf.getvalue()
