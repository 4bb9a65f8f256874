"""Atomic result files: complete or absent, never half-written."""

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsdgc_sim.errors import OutputError
from rsdgc_sim.files import json_bytes, write_csv_atomic, write_json_atomic


def test_json_written_whole_with_normal_mode(tmp_path):
    """The file holds the data and has the usual mode (umask applied), no temp left."""
    p = write_json_atomic(tmp_path / "sub" / "r.json", {"a": [1, 2]})
    assert json.loads(p.read_text()) == {"a": [1, 2]}
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    """A value that cannot be serialised (NaN is not JSON) is one OutputError naming the
    field, and leaves the previous file intact."""
    p = write_json_atomic(tmp_path / "r.json", {"ok": 1})
    with pytest.raises(OutputError, match=r"r\.json: runs\[1\]\.loss is not a finite number"):
        write_json_atomic(p, {"runs": [{"loss": 1.0}, {"loss": float("nan")}]})
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


def test_a_set_of_files_is_written_all_or_nothing(tmp_path):
    """One path of the set occupied by a folder: nothing of the set is written, the earlier
    files are kept, no temporary file is left."""
    from rsdgc_sim.files import write_files_atomic

    a, b, c = tmp_path / "a.json", tmp_path / "b.csv", tmp_path / "c.png"
    write_files_atomic({a: b"old a", b: b"old b"})
    c.mkdir()
    with pytest.raises(OutputError, match=r"c\.png: is a folder"):
        write_files_atomic({a: b"new a", b: b"new b", c: b"new c"})
    assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.json", "b.csv", "c.png"]


def test_a_failed_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    from rsdgc_sim import files

    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    real = files.os.replace
    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OutputError, match="b.csv: No space left"):
        files.write_files_atomic({tmp_path / "a.json": b"a", tmp_path / "b.csv": b"b"})
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.json"]


def test_run_writes_nothing_when_one_output_is_occupied(tmp_path):
    """`run` whose results.csv is taken by a folder: one line naming it, exit 2, and
    results.json and the plots of the previous run untouched (all outputs are checked and
    made before any is written)."""
    from click.testing import CliRunner

    from rsdgc_sim.cli import cli

    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "teaching" / "ring_vs_tree.yaml"
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(out)])
    assert r.exit_code == 0, r.output
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir() if p.is_file()}
    assert {"results.json", "results.csv", "breakdown.png"} <= set(before)
    (out / "results.csv").unlink()
    (out / "results.csv").mkdir()
    r = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(out)])
    assert r.exit_code == 2
    assert "results.csv: is a folder" in r.output
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir() if p.is_file()}
    assert after == {k: v for k, v in before.items() if k != "results.csv"}



json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4) | st.integers(-3, 3) | st.booleans() | st.none(),
                      inner, max_size=4),
    max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_bytes_is_the_standard_indented_json(data):
    """The fast writer's bytes are ``json.dumps(data, indent=2)``'s, for any mix of nested
    and scalar items, keys of every JSON-able type, unicode and empty containers."""
    assert json_bytes(data) == (json.dumps(data, indent=2) + "\n").encode()


def test_json_bytes_names_a_non_finite_number_however_deep():
    for data, where in (({"a": [1, {"b": float("nan")}]}, "a[1].b"), ([float("inf")], "[0]")):
        with pytest.raises(OutputError, match=rf"x\.json: {re.escape(where)} is not a finite"):
            json_bytes(data, "x.json")


#: number literals and whether JSON parsing makes them non-finite
LITERALS = [("1e400", True), ("-1E+0309", True), ("1e308", False), ("1.5e-400", False),
            ("NaN", True), ("Infinity", True), ("-Infinity", True), ("12", False),
            ("1" + "0" * 308 + ".0", False), ("2" + "0" * 308 + ".0", True),
            ("1" + "0" * 309 + ".0", True),
            ("1" + "0" * 400, False)]  # an integer, however long, is finite


@settings(max_examples=150, deadline=None)
@given(data=json_values, pick=st.sampled_from(LITERALS), where=st.sampled_from(["a", "b"]))
def test_non_finite_numbers_are_found_wherever_they_are(tmp_path_factory, data, pick, where):
    """A literal that parses as NaN or infinity, placed anywhere in any document, is one
    InvalidFile naming its location; a finite one (or a huge integer) is read as written."""
    from rsdgc_sim.data_file import InvalidFile, read_json_data

    literal, bad = pick
    doc = {"a": [data, "@@"], "b": {"x": data}} if where == "a" else {"a": [data], "b": {"x": "@@"}}
    path = tmp_path_factory.mktemp("nf") / "d.json"
    path.write_text(json.dumps(doc).replace('"@@"', literal))
    if bad:
        with pytest.raises(InvalidFile, match=r"^" + re.escape("a[1]" if where == "a" else "b.x")):
            read_json_data(path)
    else:
        got = read_json_data(path)
        assert got == json.loads(json.dumps(doc).replace('"@@"', literal))
