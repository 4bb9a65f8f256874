"""Reading user YAML files (rsdgc_sim.yaml_file): one ScenarioFileError naming the file for
every way a file can be wrong, quickly, and never a hang or a traceback."""

import os
import time

import pytest

from rsdgc_sim.errors import ScenarioFileError
from rsdgc_sim.yaml_file import MAX_NODES, parse_yaml, read_yaml_file


def test_duplicate_keys_name_the_key_and_both_lines():
    """YAML lets a repeated key win silently; we refuse it, at any depth."""
    with pytest.raises(ScenarioFileError, match=r"s\.yaml: .*key 'batch_size' is given twice \(lines 1 and 3\)"):
        parse_yaml("batch_size: 8\nname: x\nbatch_size: 16\n", "s.yaml")
    with pytest.raises(ScenarioFileError, match=r"key 'name' is given twice \(lines 2 and 3\)"):
        parse_yaml("model:\n  name: cnn_small\n  name: resnet50\n", "s.yaml")


def test_alias_bomb_is_refused_fast():
    """Nine levels of ten aliases stand for 10^9 values: refused in well under a second,
    without building them, and the message stays short."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    t0 = time.perf_counter()
    with pytest.raises(ScenarioFileError, match=f"expand to more than {MAX_NODES:,}") as e:
        parse_yaml("\n".join(lines), "bomb.yaml")
    assert time.perf_counter() - t0 < 2.0
    assert len(str(e.value)) < 200


def test_shared_anchors_within_bounds_are_fine():
    """Anchors and aliases a person writes (a few reuses) still load."""
    assert parse_yaml("a: &x {k: 1}\nb: *x\n", "s.yaml") == {"a": {"k": 1}, "b": {"k": 1}}


@pytest.mark.parametrize("text, pattern", [
    ("a: " + "[" * 5000 + "]" * 5000, r"nested too deeply|nests deeper"),
    ("a: " + "9" * 5000, r"cannot read: .*digits"),
    ("a: [1, 2\n", r"invalid YAML at line"),
    ("name: x\x01\n", r"invalid YAML: unacceptable character #x0001"),
    ("name: x\x00y\n", r"invalid YAML: unacceptable character #x0000"),
])
def test_pathological_documents(text, pattern):
    """Deep nesting, 5000-digit integers, syntax errors, a control character or a NUL byte
    in the text (the YAML reader refuses them before parsing, which was a traceback): one
    line each."""
    with pytest.raises(ScenarioFileError, match=r"^s\.yaml: " + pattern) as e:
        parse_yaml(text, "s.yaml")
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_files_that_are_not_regular_files(tmp_path):
    """A directory, a FIFO (would block forever), a device (/dev/zero never ends), a path
    with a NUL byte or over 255 characters, a file too large, invalid UTF-8: refused
    before reading, naming the path."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: \xff\xfe\n")
    cases = [
        (tmp_path, "a directory, not a YAML file"),
        (fifo, "a FIFO, not a YAML file"),
        ("/dev/zero", "a device, not a YAML file"),
        ("a\0b.yaml", "unreadable"),
        ("x" * 300 + ".yaml", "unreadable"),
        (big, "bytes, more than"),
        (bad, "not UTF-8"),
        (tmp_path / "missing.yaml", "no such file"),
    ]
    for path, pattern in cases:
        t0 = time.perf_counter()
        with pytest.raises(ScenarioFileError, match=pattern) as e:
            read_yaml_file(path)
        assert time.perf_counter() - t0 < 2.0
        assert "\n" not in str(e.value)
