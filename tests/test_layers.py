"""The package's layers hold (import-linter's contracts in pyproject.toml), and the
contracts catch what they are for: an import that climbs a layer, a cycle between two
modules of one package, torch imported by a torch-free layer. Each mistake is made in a
copy of the package; the checker must fail on it naming the import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed "
                                                          "(make install-test)")


def _lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the package in ``root`` (its own pyproject.toml's contracts)."""
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "rsdgc_sim", tmp_path / "rsdgc_sim",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_package_keeps_every_contract():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kept, 0 broken" in r.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    root = _copy(tmp_path)
    _append(root / "rsdgc_sim" / "sim" / "network.py", "from ..report import results  # up")
    r = _lint(root)
    assert r.returncode != 0
    assert "rsdgc_sim.sim is not allowed to import rsdgc_sim.report" in r.stdout
    assert "rsdgc_sim.sim.network -> rsdgc_sim.report.results" in r.stdout


def test_a_cycle_inside_one_package_is_refused(tmp_path):
    """sim.simulate imports sim.timeline; the reverse import closes a cycle that no layer
    rule sees (both are in sim)."""
    root = _copy(tmp_path)
    _append(root / "rsdgc_sim" / "sim" / "timeline.py", "from . import simulate  # cycle")
    r = _lint(root)
    assert r.returncode != 0
    assert "layers: arrows only point down KEPT" in r.stdout
    assert "No cycles are allowed in rsdgc_sim.sim" in r.stdout


def test_torch_in_a_torch_free_layer_is_refused(tmp_path):
    root = _copy(tmp_path)
    _append(root / "rsdgc_sim" / "scenario" / "model.py", "import torch  # not here")
    r = _lint(root)
    assert r.returncode != 0
    assert "rsdgc_sim.scenario is not allowed to import torch" in r.stdout
    assert "rsdgc_sim.scenario.model -> torch" in r.stdout
