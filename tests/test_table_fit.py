"""Every table a command prints fits 100 terminal columns with every compressor label whole
(rsdgc_sim.report.table.fit_labels): in its cell, or shown short in the cell and whole in
the legend under the table. Checked on the tables of `run`, `tta`, `train`, `compare`,
`breakeven`, `emulate`, `profile` and `list`, in a 100-column terminal and in a pipe
(where the console is 200 columns wide)."""

from __future__ import annotations

import io
import json
import re
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from rsdgc_sim.cli import cli
from rsdgc_sim.report.table import TABLE_WIDTH, fit_labels, results_table, short_label

ROOT = Path(__file__).resolve().parent.parent
TEACHING = ROOT / "scenarios" / "teaching"
RIVALS = TEACHING / "profiles" / "resnet50_v100_rivals.json"

#: the labels of tta_quickstart and the longer ones a scenario makes by default
LABELS = ["none", "topk(density=0.01)", "nsi(density=0.01)", "randomk(density=0.01)",
          "powersgd(rank=1)", "qsgd", "terngrad", "efsignsgd", "topk(density=0.001)",
          "randomk(density=0.001)", "powersgd(rank=4)", "qsgd(levels=4)",
          "terngrad(clip=2.5)", "nsi(density=0.01, kernel=3)",
          "threshold(density=0.01, threshold=0.001)"]


def check_fits(text: str, labels) -> None:
    """Every line of ``text`` has at most 100 characters, and every label is whole on one
    line: in a cell (a word of the line), or in the legend (``SHORT = LABEL``) with its
    short form whole in a cell."""
    lines = text.splitlines()
    too_long = [line for line in lines if len(line) > TABLE_WIDTH]
    assert not too_long, f"{len(too_long[0])} columns: {too_long[0]!r}"
    legend = dict(reversed(m.groups()) for line in lines
                  if (m := re.fullmatch(r"(\S.*?) = (.+?)\s*", line)))
    cells = [line for line in lines if " = " not in line]
    for label in labels:
        shown = legend.get(label, label)
        pattern = rf"(^|\s){re.escape(shown)}(\s|$)"
        assert any(re.search(pattern, line) for line in cells), (label, shown, text)


def render(renderable, width: int) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(renderable)
    return buf.getvalue()


def check_both(renderable, labels) -> None:
    for width in (TABLE_WIDTH, 200):
        check_fits(render(renderable, width), labels)


def _run_row(label: str, ranges: bool) -> dict:
    row = {"compressor": label, "workers": 65536, "topology": "switch", "collective": "ring",
           "fidelity": "analytic", "bandwidth_bytes_per_s": 1.25e8, "latency_s": 5e-6,
           "iteration_s": 12.3456, "compute_s": 0.0446, "compression_s": 1.2345,
           "communication_s": 10.4525, "exposed_communication_s": 9.9999,
           "bytes_sent_per_worker": 44_795_904.0, "bytes_transmitted_per_worker": 2.9e12,
           "compression_ratio": 48.04, "speedup_vs_dense": 0.53, "scaling_efficiency": 0.25,
           "samples_per_s": 28512.77}
    if ranges:
        row.update(iteration_s_low=1.0, iteration_s_high=None,
                   speedup_vs_dense_low=0.1, speedup_vs_dense_high=5.0)
    return row


@pytest.mark.parametrize("ranges", [False, True])
def test_results_table_keeps_every_label_whole(ranges):
    """`run`'s table with the widest numbers, the ±% columns and every long label: 100
    columns, labels whole (the old table cut ``topk(density=0.001`` from its ``)``)."""
    check_both(results_table([_run_row(x, ranges) for x in LABELS], "t"), LABELS)


def test_labels_that_fit_are_shown_in_full_without_legend():
    """A table with room for its labels shows them as they are, no legend."""
    t = results_table([_run_row(x, False) for x in LABELS[:9]], "t")
    assert t.legend == {}
    text = render(t, TABLE_WIDTH)
    assert "topk(density=0.001) " in text and " = " not in text


def test_short_labels_are_the_values_and_distinct():
    """``topk .001`` for ``topk(density=0.001)``; too long or taken: the name and #N."""
    assert short_label("topk(density=0.001)") == "topk .001"
    assert short_label("nsi(density=0.01, kernel=3)") == "nsi .01 3"
    assert short_label("powersgd(rank=4)") == "powersgd 4"
    assert short_label("my label") == "my label"

    def build(shown):
        from rsdgc_sim.report.table import add_label_column, new_table

        t = new_table()
        add_label_column(t)
        t.add_column("x" * 85, no_wrap=True)
        for v in shown.values():
            t.add_row(v, "1")
        return t

    labels = ["topk(density=0.001)", "topk .001", "threshold(density=0.01, threshold=0.001)"]
    t = fit_labels(build, labels)
    assert t.legend == {"topk#1": "topk(density=0.001)", "threshold#2": labels[2]}
    check_both(t, labels)


def test_tta_table():
    """`tta`'s table with tta_quickstart's eight compressors and longer labels (the old one
    was 103 columns wide, cut to ``randomk(density=0…`` in a 100-column terminal)."""
    from rsdgc_sim.cli.tta import tta_table
    from rsdgc_sim.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "tta_quickstart.yaml")
    rows = [{"compressor": x, "workers": 4, "bandwidth_bytes_per_s": bw, "latency_s": 5e-5,
             "steps_to_target": None if i % 2 else 280, "steps": 300,
             "iteration_s": 123.456, "time_to_target_s": 34567.8, "final_accuracy": 0.8125}
            for i, x in enumerate(LABELS) for bw in (1.25e6, 1.25e8)]
    check_both(tta_table(SimpleNamespace(scenario=sc, rows=rows)), LABELS)


def test_train_command_table(write_scenario, tmp_path):
    """`train` (the command, 2 steps of cnn_small) prints a table of 100 columns at most
    with every label whole."""
    labels = ["none", "randomk(density=0.001)", "nsi(density=0.01, kernel=3)"]
    specs = [{"name": "none"}, {"name": "randomk", "density": 0.001},
             {"name": "nsi", "density": 0.01, "kernel": 3}]
    data = {"name": "tiny-train", "model": {"name": "cnn_small", "num_classes": 4,
                                            "input_size": 8},
            "batch_size": 2, "device": "cpu", "compressors": specs,
            "cluster": {"workers": 2, "bandwidth": "1Gbit/s", "latency": "5us"},
            "train": {"samples": 64, "steps": 1, "workers": 16}}
    path = write_scenario(data)
    r = CliRunner().invoke(cli, ["train", str(path), "--out", str(tmp_path / "o")],
                           terminal_width=TABLE_WIDTH, env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    check_fits(r.stdout, labels)


def test_compare_command_table(tmp_path):
    """`compare` of two results with long labels: 100 columns, labels whole."""
    runs = [dict(_run_row(x, False), point={"cluster.workers": w}, workers=w)
            for x in LABELS for w in (4, 65536)]
    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"format": 0, "runs": runs}))
    from rsdgc_sim.report.compare import compare_runs, compare_table

    check_both(compare_table(compare_runs(runs, runs), "a" * 60, "b" * 60), LABELS)


def test_breakeven_command_table(tmp_path):
    """`breakeven` on the rivals' teaching scenario (committed profile): 100 columns."""
    data = yaml.safe_load((TEACHING / "allreduce_vs_allgather.yaml").read_text())
    data["profile"] = {"file": str(RIVALS)}
    data["cluster"]["workers"] = 16
    data["cluster"]["bandwidth"] = "10Gbit/s"
    data.pop("sweep", None)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    r = CliRunner().invoke(cli, ["breakeven", str(path), "--vary", "cluster.bandwidth",
                                 "--lo", "100Mbit/s", "--hi", "100Gbit/s", "--no-plot"],
                           terminal_width=TABLE_WIDTH, env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    labels = [f"powersgd(rank={k})" for k in (8, 5)] + ["efsignsgd", "topk(density=0.01)"]
    check_fits(r.stdout, labels)


def test_profile_command_tables():
    """`profile` of a teaching scenario (its committed profile): both tables fit."""
    r = CliRunner().invoke(cli, ["profile", str(TEACHING / "allreduce_vs_allgather.yaml")],
                           terminal_width=TABLE_WIDTH, env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    check_fits(r.stdout, ["powersgd(rank=8)", "powersgd(rank=5)", "efsignsgd"])


def test_profile_tables_with_long_labels():
    """The compression table of a profile whose labels are long: 100 columns, whole."""
    from rsdgc_sim.profile.store import load_profile
    from rsdgc_sim.report.profile_table import profile_tables

    prof = load_profile(RIVALS)
    long = {"none": "none", "powersgd(rank=8)": "powersgd(rank=8, " + "x" * 60 + ")",
            "efsignsgd": "threshold(density=0.01, threshold=0.001)"}
    for d in prof.devices:
        d.compression = {long.get(k, k): v for k, v in d.compression.items()}
    devices, compression = profile_tables(prof)
    check_both(devices, [])
    check_both(compression, [long[k] for k in ("powersgd(rank=8)", "efsignsgd")])


def test_emulate_table():
    """`emulate`'s table with long labels and wide numbers: 100 columns, labels whole."""
    from rsdgc_sim.cli.emulate import emulate_table
    from rsdgc_sim.emulate.report import EmulateCase, EmulateReport

    def case(label):
        values = {f.name: 12.3456 for f in fields(EmulateCase)}
        values.update(compressor=label, workers=1024, oversubscribed=True, threads=1,
                      cpus=[[0]], spread_exceeds_error=True, decompress_s=None,
                      prediction_error=-12.345, composition_error=9.876, key={},
                      iteration_s=[], bandwidth_bytes_per_s=1.25e7)
        return EmulateCase(**values)

    report = EmulateReport(scenario="emulate-small", model="cnn_small", mode="netns",
                           netem=True, notes=[], calibration=None,
                           cases=[case(x) for x in LABELS])
    check_both(emulate_table(report), LABELS)
