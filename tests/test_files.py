"""Atomic result files: complete or absent, never half-written."""

import json
import os

import pytest

from rsdgc_sim.files import write_csv_atomic, write_json_atomic


def test_json_written_whole_with_normal_mode(tmp_path):
    """The file holds the data and has the usual mode (umask applied), no temp left."""
    p = write_json_atomic(tmp_path / "sub" / "r.json", {"a": [1, 2]})
    assert json.loads(p.read_text()) == {"a": [1, 2]}
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    """A value that cannot be serialised (NaN is not JSON) leaves the previous file intact."""
    p = write_json_atomic(tmp_path / "r.json", {"ok": 1})
    with pytest.raises(ValueError):
        write_json_atomic(p, {"bad": float("nan")})
    assert json.loads(p.read_text()) == {"ok": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_csv_columns_in_order(tmp_path):
    """CSV rows follow the given columns; extra keys are ignored."""
    p = write_csv_atomic(tmp_path / "r.csv", [{"b": 2, "a": 1, "z": 0}], ["a", "b"])
    assert p.read_text() == "a,b\n1,2\n"


def test_crash_during_write_removes_temp(tmp_path, monkeypatch):
    """If the final rename fails, the temp file is removed, the old file stays, and the
    failure is one OutputError naming the file."""
    from rsdgc_sim import files

    p = write_json_atomic(tmp_path / "r.json", {"ok": 1})

    def boom(*_a):
        raise OSError("disk gone")

    monkeypatch.setattr(files.os, "replace", boom)
    from rsdgc_sim.errors import OutputError

    with pytest.raises(OutputError, match=r"cannot write .*r\.json: disk gone"):
        write_json_atomic(p, {"new": 2})
    assert json.loads(p.read_text()) == {"ok": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]
