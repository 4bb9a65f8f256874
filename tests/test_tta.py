"""Time to accuracy (`rsdgc-sim tta`): the join of training curves and simulated iteration
times, its files, its checks and its bad input."""

from __future__ import annotations

import csv
import json
import time

import pytest
from click.testing import CliRunner
from helpers import one_line_error

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.scenario import load_scenario
from rsdgc_sim.study.tta import TTA_FIELDS, check_tta, steps_to_target, tta_workers


@pytest.fixture
def tta_data(tiny):
    """The tiny scenario on a device model (the profile is estimated in milliseconds; the
    training runs here on the CPU), with a train section that reaches 0.5 quickly."""
    tiny["device"] = {"model": "H100-SXM"}
    tiny["model"]["num_classes"] = 4
    tiny["model"]["input_size"] = 12
    tiny["cluster"]["workers"] = [2]
    tiny["train"] = {"dataset": "synthetic", "samples": 400, "steps": 30, "target": 0.5,
                     "eval_every": 5}
    return tiny


def test_steps_to_target_is_the_first_evaluation_at_or_above_it():
    h = [{"step": 5, "accuracy": 0.4}, {"step": 10, "accuracy": 0.5}, {"step": 15, "accuracy": 0.45},
         {"step": 20, "accuracy": 0.7}]
    assert steps_to_target(h, 0.5) == 10
    assert steps_to_target(h, 0.6) == 20
    assert steps_to_target(h, 0.71) is None


def test_tta_joins_training_steps_and_simulated_iteration_time(tta_data, write_scenario, tmp_path):
    """Every row: time_to_target_s = steps_to_target x iteration_s, the steps from the training
    curve in tta.json, the iteration time the simulator gives `run` for the same point; the
    CSV has the same rows, and the plot is a PNG."""
    out = tmp_path / "out"
    path = write_scenario(tta_data)
    r = CliRunner().invoke(cli, ["tta", str(path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "tta.json").read_text())
    rows = data["rows"]
    assert [(x["compressor"], x["workers"]) for x in rows] == [
        ("none", 2), ("topk(density=0.1)", 2), ("none", 2), ("topk(density=0.1)", 2)]
    runs = {(x["compressor"], x["workers"]): x for x in data["runs"]}
    for row in rows:
        assert set(TTA_FIELDS) <= set(row)
        hist = runs[(row["compressor"], row["workers"])]["history"]
        assert [h["step"] for h in hist] == [5, 10, 15, 20, 25, 30]
        assert row["steps_to_target"] == steps_to_target(hist, 0.5)
        if row["steps_to_target"] is None:
            assert row["time_to_target_s"] is None
        else:
            assert row["time_to_target_s"] == row["steps_to_target"] * row["iteration_s"]
    # the simulated iteration time is `run`'s for the same scenario and point
    r2 = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "run"), "--no-plot", "-q"])
    assert r2.exit_code == 0, r2.output
    sim = json.loads((tmp_path / "run" / "results.json").read_text())["runs"]
    key = lambda x: (x["compressor"], x["workers"], x["bandwidth_bytes_per_s"])  # noqa: E731
    assert sorted((key(x), x["iteration_s"]) for x in rows) == sorted((key(x), x["iteration_s"]) for x in sim)
    with open(out / "tta.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert (out / "tta.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_target_not_reached_is_a_result_not_an_error(tta_data, write_scenario, tmp_path):
    """A target no run reaches: exit 0, `not in N` in the table, null fields in tta.json."""
    tta_data["train"].update(steps=4, eval_every=2, target=1.0)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["tta", str(write_scenario(tta_data)), "--out", str(out), "--no-plot"])
    assert r.exit_code == 0, r.output
    assert "not in 4" in r.stdout
    rows = json.loads((out / "tta.json").read_text())["rows"]
    assert all(x["steps_to_target"] is None and x["time_to_target_s"] is None for x in rows)


def test_train_workers_must_be_the_clusters(tta_data, write_scenario):
    """An explicit train.workers other than cluster.workers is refused with the reason (the
    global batch); without it the cluster's counts are used."""
    sc = load_scenario(write_scenario(tta_data))
    assert tta_workers(sc) == [2]
    tta_data["train"]["workers"] = [4]
    with pytest.raises(ConfigError, match=r"global batch.*remove train.workers"):
        tta_workers(load_scenario(write_scenario(tta_data)))
    tta_data["train"]["workers"] = [2]
    assert tta_workers(load_scenario(write_scenario(tta_data))) == [2]


@pytest.mark.parametrize("case, pattern", [
    ("no_target", r"train.target: set the test accuracy to reach"),
    ("workers", r"differs from cluster.workers"),
    ("target_zero", r"train.target"),
    ("target_above_one", r"train.target"),
    ("cli_target", r"--target"),
    ("cli_target_nan", r"--target nan: target: Input should be a finite number"),
    ("cli_steps", r"--steps 10000001: steps: Input should be less than or equal to 10000000"),
    ("cluster_2000", r"cluster.workers \[2000\]: tta trains as many virtual workers as the "
                     r"cluster has, at most 1024"),
])
def test_bad_tta_input_is_one_line_and_writes_nothing(case, pattern, tta_data, write_scenario, tmp_path):
    args = []
    if case == "no_target":
        del tta_data["train"]["target"]
    elif case == "workers":
        tta_data["train"]["workers"] = 3
    elif case == "target_zero":
        tta_data["train"]["target"] = 0
    elif case == "target_above_one":
        tta_data["train"]["target"] = 1.5
    elif case == "cli_target_nan":
        args = ["--target", "nan"]
    elif case == "cli_steps":
        args = ["--steps", "10000001"]
    elif case == "cluster_2000":
        tta_data["cluster"]["workers"] = [2, 2000]
    else:
        args = ["--target", "1.5"]
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["tta", str(write_scenario(tta_data)), "--out", str(out), *args])
    one_line_error(r, pattern, t0)
    assert not out.exists()


def test_cli_overrides_replace_only_their_fields(tta_data, write_scenario):
    """--target and --steps change those two fields of the train section, validated, and
    leave the rest of the scenario as loaded."""
    from rsdgc_sim.cli.tta import _with_train

    sc = load_scenario(write_scenario(tta_data))
    got = _with_train(sc, {"target": 0.5, "steps": 7})
    assert got.train == sc.train.model_copy(update={"target": 0.5, "steps": 7})
    assert got.model_copy(update={"train": sc.train}) == sc


def test_check_tta_accepts_a_complete_scenario(tta_data, write_scenario):
    check_tta(load_scenario(write_scenario(tta_data)))


def test_killed_tta_resumes_from_its_checkpoints(tta_data, write_scenario, tmp_path, monkeypatch):
    """`tta` stopped during the second compressor's training and run again reuses the first
    compressor's finished checkpoint and the second's partial one, and writes the same
    tta.json as an uninterrupted run."""

    path = write_scenario(tta_data)
    whole = tmp_path / "whole"
    assert CliRunner().invoke(cli, ["tta", str(path), "--out", str(whole), "--no-plot"]).exit_code == 0
    from rsdgc_sim.train import virtual

    original = virtual.train_virtual

    def stop_in_topk(*a, **kw):
        if "topk" in kw.get("label", ""):
            kw["checkpoint_every_s"] = 0

            def say(m):
                if ": step 13/" in str(m):
                    raise KeyboardInterrupt
            kw["progress"], kw["progress_every_s"] = say, 0
        return original(*a, **kw)

    out = tmp_path / "out"
    monkeypatch.setattr("rsdgc_sim.train.runs.train_virtual", stop_in_topk)
    r = CliRunner().invoke(cli, ["tta", str(path), "--out", str(out), "--no-plot"])
    assert r.exit_code != 0 and not (out / "tta.json").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["none-2w.pt", "topk_density=0.1_-2w.pt"]
    monkeypatch.setattr("rsdgc_sim.train.runs.train_virtual", original)
    r = CliRunner().invoke(cli, ["tta", str(path), "--out", str(out), "--no-plot"])
    assert r.exit_code == 0, r.output
    assert "resuming at step 30" in r.output and "resuming at step 12" in r.output
    a = json.loads((whole / "tta.json").read_text())
    b = json.loads((out / "tta.json").read_text())
    for run in a["runs"] + b["runs"]:
        run.pop("wall_s"), run.pop("resumed_from")
    assert a == b


def test_relative_data_folders_start_at_the_scenario_file(tta_data, tmp_path):
    """A relative train.dataset folder (and train.data_dir) is found next to the scenario file,
    wherever the command runs from, as calibration and profile files are; built-in data set
    names stay names."""
    import yaml

    folder = tmp_path / "scen"
    folder.mkdir()
    tta_data["train"]["dataset"] = "images/NWPU"
    (folder / "s.yaml").write_text(yaml.safe_dump(tta_data))
    assert load_scenario(folder / "s.yaml").train.dataset == str(folder / "images" / "NWPU")
    tta_data["train"].update(dataset="fashion_mnist", data_dir="fm")
    (folder / "s.yaml").write_text(yaml.safe_dump(tta_data))
    sc = load_scenario(folder / "s.yaml")
    assert (sc.train.dataset, sc.train.data_dir) == ("fashion_mnist", str(folder / "fm"))


def test_a_checkpoint_replaced_by_a_folder_is_one_line_before_training(tta_data, write_scenario,
                                                                       tmp_path):
    """A run's checkpoint occupied by a folder: one line naming it, exit 2, before any run
    trains (not a crash after the first run's training), nothing written."""
    from rsdgc_sim.scenario import load_scenario
    from rsdgc_sim.train.runs import checkpoint_name

    path = write_scenario(tta_data)
    sc = load_scenario(path)
    out = tmp_path / "out"
    label = list(sc.compressor_specs())[-1]
    (out / "checkpoints" / checkpoint_name(label, tta_workers(sc)[-1])).mkdir(parents=True)
    t0 = time.perf_counter()
    one_line_error(CliRunner().invoke(cli, ["tta", str(path), "--out", str(out), "--no-plot"]),
                   r"checkpoint .*\.pt: is a folder", t0)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]
