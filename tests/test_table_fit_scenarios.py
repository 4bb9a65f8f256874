"""The table `run` prints for every shipped scenario (scenarios/*.yaml and
scenarios/teaching/*.yaml) fits 100 terminal columns with every compressor label whole.
Nothing is measured: the teaching scenarios simulate from their committed profiles, the
others (``device: auto`` or ``cpu``) are estimated for a V100 device model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.scenario import load_scenario
from tests.test_table_fit import check_fits

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted(
    (ROOT / "scenarios" / "teaching").glob("*.yaml"))


def _runnable(path: Path, tmp_path: Path) -> Path:
    """``path`` itself where it names a profile file or a device model; else a copy that
    estimates for a V100 (so that nothing is measured here)."""
    data = yaml.safe_load(path.read_text())
    if (data.get("profile") or {}).get("file") or isinstance(data.get("device"), dict):
        return path
    data["device"] = {"model": "V100"}
    copy = tmp_path / path.name
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def test_every_shipped_scenario_is_covered():
    """The list above is every scenario in the repository, the new ones included."""
    names = {p.name for p in SHIPPED}
    assert {"quickstart.yaml", "tta_quickstart.yaml", "sparse_vs_dense.yaml",
            "allreduce_vs_allgather.yaml"} <= names and len(SHIPPED) >= 13


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_run_table_fits_100_columns(path, tmp_path):
    """`run` (COLUMNS=100, a 100-column CliRunner) prints no line over 100 columns and
    every compressor label whole (before: ``topk(density=0.001`` and ``)`` on two lines in
    sparse_vs_dense)."""
    runnable = _runnable(path, tmp_path)
    r = CliRunner().invoke(cli, ["run", str(runnable), "--out", str(tmp_path / "out"),
                                 "--no-plot", "--no-trace", "-q"],
                           terminal_width=100, env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    check_fits(r.stdout, load_scenario(runnable).compressor_specs())
