"""`rsdgc-sim compare A B`: rows matched by compressor and point, differences in
iteration time and its breakdown, unmatched points listed, other versions refused."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.report.compare import compare_runs, compare_table, hidden, unmatched_lines
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.orchestrate import run_scenario
from tests.helpers import one_line_error

PROFILE = Path(__file__).resolve().parent.parent / "scenarios/teaching/profiles/resnet50_v100.json"


def _study(workers, overlap: bool) -> dict:
    sc = scenario_from_dict({
        "name": f"overlap-{overlap}", "model": {"name": "resnet50", "num_classes": 45, "input_size": 128},
        "batch_size": 32, "device": {"model": "V100"}, "profile": {"file": str(PROFILE)},
        "compressors": [{"name": "none"}, {"name": "topk", "density": 0.01}],
        "cluster": {"workers": workers, "bandwidth": "10Gbit/s", "latency": "5us"},
        "ddp": {"overlap": overlap}})
    return json.loads(json.dumps(run_scenario(sc).to_dict()))


@pytest.fixture(scope="module")
def pair():
    """A: no overlap at 4 and 16 workers; B: overlap at 4, 16 and 64 workers."""
    return _study([4, 16], False), _study([4, 16, 64], True)


def test_rows_match_by_compressor_and_point(pair):
    """2 compressors x 2 common worker counts matched; B's 64-worker rows listed apart."""
    a, b = pair
    cmp = compare_runs(a["runs"], b["runs"])
    assert [(ra["compressor"], ra["workers"], rb["workers"]) for ra, rb in cmp.matched] == [
        ("none", 4, 4), ("topk(density=0.01)", 4, 4), ("none", 16, 16),
        ("topk(density=0.01)", 16, 16)]
    assert cmp.only_a == [] and [r["workers"] for r in cmp.only_b] == [64, 64]
    assert cmp.varying() == ["cluster.workers"]
    lines = unmatched_lines(cmp)
    assert lines == ["only in B: none at 64 workers (no such point in A)",
                     "only in B: topk(density=0.01) at 64 workers (no such point in A)"]


def test_old_rows_without_point_match_by_flat_keys(pair):
    """Rows of a file without ``point`` match on workers, bandwidth, latency, topology."""
    a, b = pair
    old = [{k: v for k, v in r.items() if k != "point"} for r in a["runs"]]
    assert len(compare_runs(old, b["runs"]).matched) == 4


def test_table_shows_the_differences(pair):
    """The table gives both iteration times, B/A and B - A of each part, in 100 columns;
    overlap makes dense faster (green) by moving communication from exposed to hidden."""
    from rich.console import Console

    a, b = pair
    cmp = compare_runs(a["runs"], b["runs"])
    console = Console(width=100, record=True, color_system="truecolor")
    console.print(compare_table(cmp))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    ra, rb = cmp.matched[0]  # dense at 4 workers
    assert f"{ra['iteration_s'] * 1e3:.4g}" in text and f"{rb['iteration_s'] * 1e3:.4g}" in text
    assert f"{rb['iteration_s'] / ra['iteration_s']:.3f}" in text
    d_hidden = (hidden(rb) - hidden(ra)) * 1e3
    assert d_hidden > 0 and f"{d_hidden:+.3g}" in text
    # faster by more than 1 %: green; within 1 %: plain; slower: red
    styles = [row.style for row in compare_table(cmp).rows]
    assert styles == ["green", None, "green", "green"]
    slower = compare_table(compare_runs(b["runs"], a["runs"]))
    assert [row.style for row in slower.rows] == ["red", None, "red", "red"]


def test_compare_command(pair, tmp_path):
    """`rsdgc-sim compare A B` prints the table and the unmatched points."""
    a, b = pair
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    r = CliRunner().invoke(cli, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output
    assert "A = " in r.stdout and "topk(density=0.01)" in r.stdout
    assert "only in B: none at 64 workers" in r.stdout


def test_compare_bad_input(pair, tmp_path):
    """A results file of another version (says which), not JSON, missing, a device or a
    FIFO (which `compare` read forever): one line each, within seconds."""
    a, _ = pair
    good = tmp_path / "a.json"
    good.write_text(json.dumps(a))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in a.items() if k not in ("format", "version")}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**a, "format": 99, "version": "9.0"}))
    text = tmp_path / "t.json"
    text.write_text("not json")
    fifo = tmp_path / "r.fifo"  # read, it would block forever
    os.mkfifo(fifo)
    cases = [
        ([str(good), str(old)], r"old\.json: written by an earlier rsdgc-sim \(no version "
                                r"recorded\), results format 1"),
        ([str(other), str(good)], r"other\.json: written by rsdgc-sim 9\.0, results format 99"),
        ([str(good), str(text)], r"t\.json: not a results\.json"),
        ([str(good), str(tmp_path / "none.json")], r"none\.json.*(does not exist|no such file)"),
        ([str(good), "/dev/zero"], r"/dev/zero: not a results\.json .*\(a device, not a JSON file\)"),
        ([str(fifo), str(good)], r"r\.fifo: not a results\.json .*\(a FIFO, not a JSON file\)"),
    ]
    for args, pattern in cases:
        one_line_error(CliRunner().invoke(cli, ["compare", *args]), pattern, time.perf_counter())


def test_each_row_of_b_matches_once(pair):
    """A point twice in A: the first copy is matched, the second listed as only in A."""
    a, b = pair
    cmp = compare_runs([*a["runs"], a["runs"][0]], b["runs"])
    assert len(cmp.matched) == 4 and cmp.only_a == [a["runs"][0]]
