"""`rsdgc-sim train` without a scenario trains the bundled train_quickstart (a small CNN on
synthetic remote-sensing scenes, about a minute on one core), not the quickstart's
ResNet-18 (4.3 minutes, accuracies near chance)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.scenario import bundled_path, load_scenario


def test_bundled_train_quickstart_is_small():
    """cnn_small on synthetic_rs, 2 workers, 100 steps, dense and four compressors."""
    sc = load_scenario(bundled_path("train_quickstart"))
    assert (sc.model.name, sc.train.dataset, sc.train.workers, sc.train.steps) == (
        "cnn_small", "synthetic_rs", [2], 100)
    assert list(sc.compressor_specs()) == ["none", "topk(density=0.01)", "nsi(density=0.01)",
                                           "powersgd(rank=1)", "efsignsgd"]


def test_train_without_scenario_trains_train_quickstart(tmp_path, monkeypatch):
    """`train --steps 1` with no scenario: the table's title and train.json name
    train_quickstart and its model."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["train", "--steps", "1"], terminal_width=100)
    assert r.exit_code == 0, r.output
    assert "train_quickstart: cnn_small on synthetic_rs, 1 steps" in r.stdout
    data = json.loads((tmp_path / "out" / "train.json").read_text())
    assert data["scenario"]["name"] == "train_quickstart"
    assert [row["compressor"] for row in data["runs"]] == [
        "none", "topk(density=0.01)", "nsi(density=0.01)", "powersgd(rank=1)", "efsignsgd"]
