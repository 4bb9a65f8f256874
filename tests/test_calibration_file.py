"""Calibration files (rsdgc_sim.calibration): every problem reading one is a single
line, ScenarioFileError naming the file and the field, raised when it is read (not later, as
a simulator error about an infinite latency that names no file)."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest
from helpers import DELETE, set_at, within

from rsdgc_sim.calibration import Calibration, load_calibration, save_calibration
from rsdgc_sim.errors import OutputError, ScenarioFileError

GOOD = {
    "kind": "rsdgc-calibration", "version": 1, "source": "emulated", "backend": "gloo",
    "links": [{"nominal_bandwidth_bytes_per_s": 12500000.0, "alpha_s": 0.0002,
               "beta_s_per_byte": 8.4e-08, "r2": 0.999,
               "samples": [{"bytes": 4, "seconds": 0.0002}, {"bytes": 1048576, "seconds": 0.09}]}],
}


def _edit(path: str, value):
    """Content: the JSON text of GOOD with the value at ``path`` (a/0/b) replaced."""

    def make(_p: Path) -> str:
        data = copy.deepcopy(GOOD)
        set_at(data, path, value)
        return json.dumps(data)  # writes inf and nan as Infinity and NaN, as json can

    return make


def _mkdir(p: Path) -> None:
    p.mkdir()


#: kind -> (make the file: its text, or None when the maker made it; what follows the quoted
#: path in the message)
BAD = {
    "infinite latency": (_edit("links/0/alpha_s", float("inf")),
                         r": links\[0\]\.alpha_s: not a finite number \(got inf\)"),
    "NaN inverse bandwidth": (_edit("links/0/beta_s_per_byte", float("nan")),
                              r": links\[0\]\.beta_s_per_byte: not a finite number \(got nan\)"),
    "1e999 sample time": (lambda _p: json.dumps(GOOD).replace("0.09", "1e999"),
                          r": links\[0\]\.samples\[1\]\.seconds: not a finite number \(got inf\)"),
    "negative latency": (_edit("links/0/alpha_s", -1.0),
                         r": links\[0\]\.alpha_s: Input should be greater than or equal to 0 \(got -1\.0\)"),
    "string for a number": (_edit("links/0/alpha_s", "1e-4"),
                            r": links\[0\]\.alpha_s: Input should be a valid number"),
    "boolean for a number": (_edit("links/0/beta_s_per_byte", True),
                             r": links\[0\]\.beta_s_per_byte: Input should be a valid number"),
    "missing field": (_edit("links/0/beta_s_per_byte", DELETE),
                      r": links\[0\]\.beta_s_per_byte: required field is missing"),
    "unknown key": (_edit("links/0/alpha", 1e-4), r": links\[0\]\.alpha: unknown key"),
    "no links": (_edit("links", []), r": links: List should have at least 1 item"),
    "unknown source": (_edit("source", "lab"),
                       r": source: Input should be 'emulated', 'loopback' or 'cluster'"),
    "another kind": (_edit("kind", "profile"),
                     r" is not a calibration file \(kind must be 'rsdgc-calibration'\)"),
    "not an object": (lambda _p: "[]", r" is not a calibration file"),
    "invalid JSON": (lambda _p: "{", r" is not readable JSON: Expecting property name enclosed in "
                                     r"double quotes at line 1, column 2"),
    "truncated": (lambda _p: json.dumps(GOOD)[:100],
                  r" is not readable JSON: .* at line 1, column \d+"),
    "empty file": (lambda _p: "", r" is not readable JSON: Expecting value at line 1, column 1"),
    "not UTF-8": (lambda _p: b"\xff{}", r" is not UTF-8 text \(byte 0\)"),
    "a directory": (_mkdir, r" is a directory, not a JSON file"),
    "a FIFO": (lambda p: os.mkfifo(p), r" is a FIFO, not a JSON file"),
    "a broken link": (lambda p: p.symlink_to(p.with_name("gone.json")),
                      r" is a symbolic link to nothing"),
    "missing": (lambda _p: None, r" not found"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_calibration_file_is_one_error_naming_file_and_field(kind, tmp_path):
    """load_calibration of a bad file (non-finite or out-of-range values, mistyped, missing
    or unknown fields, not JSON, not a calibration, a directory, a FIFO, no file at all)
    raises one line: ScenarioFileError naming the file (``calibration file 'PATH': FIELD:
    REASON``, ``... 'PATH' is not readable JSON: ...``), never blocking."""
    path = tmp_path / "cal.json"
    content = BAD[kind][0](path)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    pattern = rf"^(calibration file )?{re.escape(repr(str(path)))}{BAD[kind][1]}"
    with pytest.raises(ScenarioFileError, match=pattern) as e:
        within(5, lambda: load_calibration(path))
    assert "\n" not in str(e.value)


def test_good_calibration_file_loads(tmp_path):
    """The file the bad ones are made from loads (the table's errors are theirs)."""
    (tmp_path / "cal.json").write_text(json.dumps(GOOD))
    # "created" is filled in at each validation (GOOD has none): it may differ by a second
    loaded = load_calibration(tmp_path / "cal.json").model_dump(exclude={"created"})
    assert loaded == Calibration.model_validate(GOOD).model_dump(exclude={"created"})


def test_scenario_with_an_infinite_calibrated_latency_fails_at_load(tiny, write_scenario, tmp_path):
    """A scenario whose cluster.calibration file has an infinite latency is refused when
    loaded, naming the file and the field (it used to load, and the simulation then failed
    with 'latency must be >= 0 s, got inf', naming no file)."""
    from rsdgc_sim.scenario import load_scenario

    data = copy.deepcopy(GOOD)
    data["links"][0]["alpha_s"] = float("inf")
    (tmp_path / "cal.json").write_text(json.dumps(data))
    tiny["cluster"]["calibration"] = "cal.json"
    with pytest.raises(ScenarioFileError, match=r"cluster\.calibration: calibration file '.*cal\.json': "
                                                r"links\[0\]\.alpha_s: not a finite number \(got inf\)"):
        load_scenario(write_scenario(tiny))


def test_save_calibration_failure_is_an_output_error_naming_the_file(tmp_path):
    """Saving where a file stands in the way of the folder: OutputError naming the file."""
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "cal.json"
    with pytest.raises(OutputError, match=rf"cannot write {re.escape(str(target))}"):
        save_calibration(Calibration.model_validate(GOOD), target)
