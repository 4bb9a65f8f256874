"""Regenerate the README's quoted outputs and images from the code (`make docs`).

Each quoted output in README.md sits between ``<!-- regenerate: NAME -->`` and
``<!-- /regenerate -->``: a fenced block of ``$ rsdgc-sim ...`` lines, each followed by what
the command prints on stdout at 100 columns. This script runs the commands of every block
(:data:`BLOCKS`) and writes their output back, then draws the images of :data:`IMAGES` into
docs/img/. Only outputs that need no measurement are here (the teaching scenarios simulate
committed profiles, so their output is the same on every machine); the quickstart's, the
tta example's and the benchmarks' numbers are measured, and the README says where and how.

    .venv/bin/python docs/regenerate.py            # rewrite README.md and docs/img/
    .venv/bin/python docs/regenerate.py --check    # exit 1 if README.md would change

``tests/test_docs.py`` runs the check, so a quoted output cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: block name -> the commands whose stdout it quotes (``OUT`` is a temporary folder)
BLOCKS: dict[str, list[list[str]]] = {
    "sparse_vs_dense": [
        ["run", "scenarios/teaching/sparse_vs_dense.yaml", "--out", "OUT/sparse_vs_dense"],
        ["breakeven", "scenarios/teaching/sparse_vs_dense.yaml", "--vary", "cluster.workers",
         "--out", "OUT/sparse_vs_dense_breakeven"],
    ],
    "fat_tree": [
        ["run", "scenarios/teaching/fat_tree_oversubscription.yaml", "--out", "OUT/fat_tree"],
    ],
}

#: the README's images: (file in docs/img, the command that draws it after :data:`BLOCKS`)
IMAGES: list[tuple[str, list[str]]] = [
    ("sparse_vs_dense_speedup.png", ["plot", "OUT/sparse_vs_dense/results.json", "--kind",
                                     "speedup"]),
    ("sparse_vs_dense_breakeven.png", ["COPY", "OUT/sparse_vs_dense_breakeven/breakeven.png"]),
    ("fat_tree_heatmap.png", ["plot", "OUT/fat_tree/results.json", "--kind", "heatmap"]),
    ("fat_tree_breakdown.png", ["plot", "OUT/fat_tree/results.json", "--kind", "breakdown"]),
    ("overlap_timeline.png", ["RUN", "scenarios/teaching/overlap.yaml", "OUT/overlap",
                              "--where", "ddp.overlap=true", "--where",
                              "cluster.bandwidth=25Gbit/s"]),
]

BLOCK = re.compile(r"(<!-- regenerate: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /regenerate -->)",
                   re.S)


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "rsdgc-sim"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rsdgc_sim.cli"]


def _run(args: list[str], out: Path) -> str:
    """stdout of ``rsdgc-sim ARGS`` (``OUT`` replaced by ``out``) at 100 columns."""
    argv = [a.replace("OUT", str(out)) for a in args]
    env = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*_cli(), *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"rsdgc-sim {' '.join(argv)} failed: {proc.stderr.strip()[-400:]}")
    return proc.stdout


def block_text(name: str, out: Path) -> str:
    """The fenced block of ``name``: each command as typed, then its output."""
    lines = []
    for args in BLOCKS[name]:
        shown = " ".join(a.replace("OUT/", "out/") for a in args)
        lines.append(f"$ rsdgc-sim {shown}")
        lines.extend(line.rstrip() for line in _run(args, out).splitlines())
    return "```\n" + "\n".join(lines) + "\n```\n"


def regenerate(text: str, out: Path) -> str:
    """``text`` (the README) with every block's output made again; an unknown block name
    or a block of :data:`BLOCKS` missing from the README is an error."""
    seen = set()

    def sub(m: re.Match) -> str:
        name = m["name"]
        if name not in BLOCKS:
            sys.exit(f"README.md: unknown block {name!r} (known: {', '.join(BLOCKS)})")
        seen.add(name)
        return m.group(1) + block_text(name, out) + m.group(4)

    new = BLOCK.sub(sub, text)
    if missing := set(BLOCKS) - seen:
        sys.exit(f"README.md has no block for {', '.join(sorted(missing))}")
    return new


def draw_images(out: Path) -> None:
    img = ROOT / "docs" / "img"
    for name, args in IMAGES:
        if args[0] == "COPY":
            (img / name).write_bytes(Path(args[1].replace("OUT", str(out))).read_bytes())
        elif args[0] == "RUN":
            _run(["run", args[1], "--out", args[2]], out)
            _run(["plot", f"{args[2]}/results.json", "--kind", "timeline", *args[3:],
                  "--out", str(img / name)], out)
        else:
            _run([*args, "--out", str(img / name)], out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md would change")
    a = ap.parse_args()
    text = README.read_text()
    with tempfile.TemporaryDirectory(prefix="rsdgc-docs-") as tmp:
        new = regenerate(text, Path(tmp))
        if a.check:
            if new != text:
                sys.exit("README.md: quoted outputs differ from the code's; run `make docs`")
            return
        README.write_text(new)
        draw_images(Path(tmp))
    print(f"wrote {README.relative_to(ROOT)} ({len(BLOCKS)} blocks) and {len(IMAGES)} images "
          f"in docs/img/")


if __name__ == "__main__":
    main()
