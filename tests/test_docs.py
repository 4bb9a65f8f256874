"""The README's quoted outputs are the code's (`make docs`, `docs/regenerate.py`): every
regenerated block (the teaching scenarios and `compare`, which simulate committed profiles)
is what its commands print now, and every measured block (the quickstart, `tta`, the
compressor study) shows a command that still runs as shown and is re-run by
`docs/regenerate.py --measured NAME`."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def regenerate():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import regenerate
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return regenerate


@pytest.fixture(scope="module")
def readme():
    return (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_readme_quotes_what_the_commands_print(regenerate, readme, tmp_path):
    """Regenerating a README whose quoted break-even drifted by one worker gives back the
    README as committed: its blocks are exactly the commands' output, and a drifted
    number would be caught (`docs/regenerate.py --check` exits 1 on it)."""
    drifted = readme.replace("74 workers stops paying off", "75 workers stops paying off", 1)
    assert drifted != readme
    assert regenerate.regenerate(drifted, tmp_path, plots=False) == readme


def test_every_fenced_output_is_regenerated_or_measured(regenerate, readme):
    """A fenced block that quotes a command (a `$ ` line) or a table (a line that is one
    `────` rule) sits inside a regenerate or a measured marker: none is left to drift by
    hand."""
    marked = [m.span() for pat in (regenerate.BLOCK, regenerate.MEASURED_BLOCK)
              for m in pat.finditer(readme)]
    for m in re.finditer(r"^```[a-z]*\n(.*?)^```\n", readme, re.S | re.M):
        body = m[1]
        quotes = re.search(r"^\$ |^\s*─{10,}\s*$", body, re.M)
        if quotes:
            inside = any(a <= m.start() and m.end() <= b for a, b in marked)
            line = readme[:m.start()].count("\n") + 1
            assert inside, f"README.md line {line}: a quoted output outside the markers"


def test_measured_blocks_show_the_command_that_is_measured(regenerate, readme):
    """Each measured block opens with its `# measured ...` line and the command
    docs/regenerate.py runs; a block that shows another command is refused."""
    assert set(regenerate.measured_blocks(readme)) == set(regenerate.MEASURED)
    other = readme.replace("$ OMP_NUM_THREADS=1 rsdgc-sim tta scenarios/tta_quickstart.yaml",
                           "$ rsdgc-sim tta scenarios/tta_quickstart.yaml", 1)
    assert other != readme
    with pytest.raises(regenerate.DocsError, match=r"measured block tta: shows `\$ rsdgc-sim"):
        regenerate.measured_blocks(other)
    no_head = readme.replace("<!-- measured: tta -->\n```\n# measured ",
                             "<!-- measured: tta -->\n```\n# ", 1)
    with pytest.raises(regenerate.DocsError, match=r"measured block tta: .*# measured DATE"):
        regenerate.measured_blocks(no_head)


def test_measured_commands_still_run_as_shown(regenerate, tmp_path):
    """--check's part for the measured blocks: the committed commands parse and find their
    files (`make -n run` ends with the line the quickstart shows); a missing scenario, an
    unknown option, a script option that is gone and a changed make recipe are each
    refused, without running anything."""
    cwd = regenerate.scratch(tmp_path)
    for m in regenerate.MEASURED.values():
        regenerate.check_command(m, cwd)
    tta = regenerate.MEASURED["tta"]
    bad = [
        (replace(tta, argv=("rsdgc-sim", "tta", "scenarios/tta_quickstrt.yaml")),
         r"tta_quickstrt\.yaml: no such file"),
        (replace(tta, argv=(*tta.argv, "--time-axes", "log")), r"no longer parses: .*--time-axes"),
        (replace(regenerate.MEASURED["compressor_study"],
                 argv=("python", "benchmarks/compressor_study.py", "--threads", "1")),
         r"compressor_study\.py takes no --threads \(its options: .*--jobs"),
        (replace(regenerate.MEASURED["quickstart"],
                 between=("...", ".venv/bin/rsdgc-sim run --out out")),
         r"make -n run: its last line is `\.venv/bin/rsdgc-sim run  --out out`"),
    ]
    for m, pattern in bad:
        with pytest.raises(regenerate.DocsError, match=pattern):
            regenerate.check_command(m, cwd)


def test_remeasuring_writes_the_block_back_with_machine_and_date(regenerate, tmp_path,
                                                                 monkeypatch):
    """--measured NAME runs the block's command in the scratch folder and writes back its
    output under a new `# measured DATE on MACHINE; load ...; TIME` line and the command;
    the rest of the README is left as it was."""
    fake = regenerate.Measured(shown="rsdgc-sim --version", argv=("rsdgc-sim", "--version"),
                               minutes=0.01)
    monkeypatch.setattr(regenerate, "MEASURED", {"v": fake})
    text = ("before\n<!-- measured: v -->\n```\n# measured long ago\n$ rsdgc-sim --version\n"
            "rsdgc-sim, version 0.0\n```\n<!-- /measured -->\nafter\n")
    new = regenerate.remeasure(text, ["v"], regenerate.scratch(tmp_path))
    lines = new.splitlines()
    assert lines[:3] == ["before", "<!-- measured: v -->", "```"]
    assert re.fullmatch(r"# measured \d{4}-\d\d-\d\d on .+ \(\d+ cores, .+\), torch \S+; "
                        r"load [\d.]+ at the start, [\d.]+ at the end; \d+ s", lines[3]), lines[3]
    assert lines[4] == "$ rsdgc-sim --version"
    assert re.fullmatch(r"rsdgc-sim, version \S+", lines[5]) and lines[5] != "rsdgc-sim, version 0.0"
    assert lines[6:] == ["```", "<!-- /measured -->", "after"]
    assert regenerate.measured_blocks(new) == {"v": "\n".join(lines[2:7]) + "\n"}


def test_a_measured_block_quotes_from_its_start_line(regenerate, tmp_path, monkeypatch):
    """A measured block with a start pattern quotes its output from the first line that
    matches (the compressor study's table, not its progress lines); an output without such a
    line is a DocsError, not a block quoting nothing."""
    m = regenerate.Measured(shown="rsdgc-sim --help", argv=("rsdgc-sim", "--help"),
                            minutes=0.01, start=r"^Commands:")
    monkeypatch.setitem(regenerate.MEASURED, "_help", m)
    body = regenerate.measure("_help", regenerate.scratch(tmp_path)).splitlines()
    assert body[2:4] == ["$ rsdgc-sim --help", "Commands:"]
    monkeypatch.setitem(regenerate.MEASURED, "_help", replace(m, start=r"^No such line"))
    with pytest.raises(regenerate.DocsError, match=r"_help: no line of its output matches"):
        regenerate.measure("_help", regenerate.scratch(tmp_path))
