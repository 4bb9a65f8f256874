"""Regenerate the README's quoted outputs and images from the code (`make docs`).

Every fenced block of README.md that quotes what a command prints is one of two kinds:

* **regenerated** (:data:`BLOCKS`), between ``<!-- regenerate: NAME -->`` and
  ``<!-- /regenerate -->``: outputs that need no measurement (the teaching scenarios and
  ``compare`` simulate committed profiles, so they print the same on every machine). The
  block is ``$ rsdgc-sim ...`` lines, each followed by what it prints on stdout at 100
  columns (a command shown with ``>/dev/null`` runs for its files only). This script runs
  them and writes their output back, then draws the images of :data:`IMAGES` into
  docs/img/; ``--check`` exits 1 when the README differs from what they print now.
* **measured** (:data:`MEASURED`), between ``<!-- measured: NAME -->`` and
  ``<!-- /measured -->``: outputs that time or train something on this machine (the
  quickstart's profile, ``tta``, the compressor study, the fidelity benchmark). Their first line says where and when they
  were measured (``# measured DATE on MACHINE, ...``), their second is the command.
  ``--measured NAME`` (or ``all``) runs it again, in a scratch folder with an empty profile
  cache, and writes the block back with this machine and today's date; ``--check`` only
  makes sure each command still runs as shown (its files exist, its options parse).

Commands run in a scratch folder that holds links to the repository's ``scenarios/``,
``benchmarks/``, ``Makefile`` and ``.venv``, so every path a block shows (``scenarios/...``,
``out/...``) is the one that ran.

    .venv/bin/python docs/regenerate.py                      # README blocks and docs/img/
    .venv/bin/python docs/regenerate.py --check              # exit 1 if README.md would change
    .venv/bin/python docs/regenerate.py --measured quickstart   # about a minute on 2 cores
    .venv/bin/python docs/regenerate.py --measured all       # about 50 minutes (as root)

``tests/test_docs.py`` runs the check, so a quoted output cannot drift from the code.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: what the scratch folder links to in the repository
LINKS = ("scenarios", "benchmarks", "Makefile", ".venv")
#: a command shown with this at its end runs for its files; its output is not quoted
QUIET = ">/dev/null"

#: block name -> the ``rsdgc-sim`` commands whose stdout it quotes, run in order
BLOCKS: dict[str, list[list[str]]] = {
    "compare": [
        ["run", "scenarios/teaching/sparse_vs_dense.yaml", "--set", "cluster.workers=[4, 16]",
         "--no-plot", "--out", "out/a", QUIET],
        ["run", "scenarios/teaching/sparse_vs_dense.yaml", "--set", "cluster.workers=[4, 16, 64]",
         "--set", "ddp.overlap=true", "--no-plot", "--out", "out/b", QUIET],
        ["compare", "out/a/results.json", "out/b/results.json"],
    ],
    "sparse_vs_dense": [
        ["run", "scenarios/teaching/sparse_vs_dense.yaml", "--out", "out/sparse_vs_dense"],
        ["breakeven", "scenarios/teaching/sparse_vs_dense.yaml", "--vary", "cluster.workers",
         "--out", "out/sparse_vs_dense_breakeven"],
    ],
    "fat_tree": [
        ["run", "scenarios/teaching/fat_tree_oversubscription.yaml", "--out", "out/fat_tree"],
    ],
}

#: the README's images: (file in docs/img, the command that draws it after :data:`BLOCKS`)
IMAGES: list[tuple[str, list[str]]] = [
    ("sparse_vs_dense_speedup.png", ["plot", "out/sparse_vs_dense/results.json", "--kind",
                                     "speedup"]),
    ("sparse_vs_dense_breakeven.png", ["COPY", "out/sparse_vs_dense_breakeven/breakeven.png"]),
    ("fat_tree_heatmap.png", ["plot", "out/fat_tree/results.json", "--kind", "heatmap"]),
    ("fat_tree_breakdown.png", ["plot", "out/fat_tree/results.json", "--kind", "breakdown"]),
    ("overlap_timeline.png", ["RUN", "scenarios/teaching/overlap.yaml", "out/overlap",
                              "--where", "ddp.overlap=true", "--where",
                              "cluster.bandwidth=25Gbit/s"]),
]


@dataclass(frozen=True)
class Measured:
    """A measured block: ``argv`` runs in the scratch folder (``rsdgc-sim ...`` or
    ``python SCRIPT ...``) with ``env`` added, and the block quotes its output under
    ``$ shown``."""

    shown: str
    argv: tuple[str, ...]
    minutes: float
    env: dict[str, str] = field(default_factory=dict)
    #: quote stderr too, interleaved as a terminal shows it (else stdout only)
    stderr: bool = False
    #: lines the block shows between the command and its output (what ``make`` prints)
    between: tuple[str, ...] = ()
    #: quote from the first line that matches (else from the first line)
    start: str | None = None
    #: stop before the first line after ``start`` that matches (else quote to the end)
    end: str | None = None
    #: a make target whose recipe's last line must be ``between[-1]`` (``make -n``)
    make: str | None = None


#: block name -> how it is measured
MEASURED: dict[str, Measured] = {
    # `make run` with .venv installed: its last recipe line, an empty profile cache
    "quickstart": Measured(
        shown="make run", argv=("rsdgc-sim", "run", "--out", "out"), minutes=1.5,
        stderr=True, between=("...", ".venv/bin/rsdgc-sim run  --out out"), make="run"),
    "tta": Measured(
        shown="OMP_NUM_THREADS=1 rsdgc-sim tta scenarios/tta_quickstart.yaml --out out/tta",
        argv=("rsdgc-sim", "tta", "scenarios/tta_quickstart.yaml", "--out", "out/tta"),
        env={"OMP_NUM_THREADS": "1"}, minutes=16),
    "compressor_study": Measured(
        shown="OMP_NUM_THREADS=1 python benchmarks/compressor_study.py --jobs 1",
        argv=("python", "benchmarks/compressor_study.py", "--jobs", "1"),
        env={"OMP_NUM_THREADS": "1"}, minutes=15, start=r"^\s*cnn_small, \d+ virtual workers"),
    # needs root (network namespaces, tc); the per-case table and its summary only
    "fidelity": Measured(
        shown="OMP_NUM_THREADS=1 python benchmarks/fidelity.py --cases resnet18:2 --cases "
              "resnet18@32:2",
        argv=("python", "benchmarks/fidelity.py", "--cases", "resnet18:2", "--cases",
              "resnet18@32:2"),
        env={"OMP_NUM_THREADS": "1"}, minutes=30, start=r"^\s*fidelity \(", end=r"^all cases"),
}

BLOCK = re.compile(r"(<!-- regenerate: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /regenerate -->)",
                   re.S)
MEASURED_BLOCK = re.compile(
    r"(<!-- measured: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /measured -->)", re.S)


class DocsError(Exception):
    """The README and the code disagree, or a command failed: the message says which."""


def scratch(tmp: Path) -> Path:
    """``tmp`` made into a folder that looks like the repository to a command: links to
    :data:`LINKS`, and an empty profile cache in ``cache/``."""
    for name in LINKS:
        if (ROOT / name).exists() and not (tmp / name).exists():
            (tmp / name).symlink_to(ROOT / name)
    (tmp / "cache").mkdir(exist_ok=True)
    return tmp


def _argv(args: list[str] | tuple[str, ...]) -> list[str]:
    """The process to start for ``rsdgc-sim ARGS`` or ``python SCRIPT ARGS``."""
    if args[0] == "python":
        return [sys.executable, *args[1:]]
    args = args[1:] if args[0] == "rsdgc-sim" else args
    script = Path(sys.executable).parent / "rsdgc-sim"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "rsdgc_sim.cli"]
    return [*cli, *args]


def _env(cwd: Path, extra: dict[str, str] | None = None, threads: bool = True) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "100", "PYTHONUNBUFFERED": "1",
           "RSDGC_SIM_CACHE": str(cwd / "cache")}
    if threads:
        env["OMP_NUM_THREADS"] = "1"
    else:
        env.pop("OMP_NUM_THREADS", None)
    return {**env, **(extra or {})}


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        stderr: bool = False) -> str:
    """What ``rsdgc-sim ARGS`` (or ``python ...``) prints in ``cwd``: stdout, or stdout and
    stderr as one terminal shows them. A failure is a DocsError with its last words."""
    args = [a for a in args if a != QUIET]
    proc = subprocess.run(_argv(args), cwd=cwd, env=env or _env(cwd), text=True,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if stderr else subprocess.PIPE)
    if proc.returncode != 0:
        said = (proc.stdout if stderr else proc.stderr).strip()[-400:]
        raise DocsError(f"`{shlex.join(args)}` failed (exit {proc.returncode}): {said}")
    return proc.stdout


def shown(args: list[str] | tuple[str, ...]) -> str:
    """A command as a shell takes it: ``rsdgc-sim`` first, quoted where needed."""
    quiet = args[-1] == QUIET
    words = shlex.join(["rsdgc-sim", *[a for a in args if a != QUIET]])
    return f"{words} {QUIET}" if quiet else words


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def block_text(name: str, cwd: Path, plots: bool = True) -> str:
    """The fenced block of ``name``: each command as typed, then its output. ``plots=False``
    (``--check``): a ``run`` draws no plots (they go to stderr's "wrote" line and to files,
    never to the stdout quoted here; about a second each)."""
    lines = []
    for args in BLOCKS[name]:
        lines.append(f"$ {shown(args)}")
        quick = plots or args[0] != "run" or "--no-plot" in args
        out = run(args if quick else [*args[:1], "--no-plot", *args[1:]], cwd)
        if args[-1] != QUIET:
            lines.extend(_lines(out))
    return "```\n" + "\n".join(lines) + "\n```\n"


def regenerate(text: str, out: Path, plots: bool = True) -> str:
    """``text`` (the README) with every regenerated block's output made again (commands run
    in the scratch folder ``out``; ``plots``: as :func:`block_text`); an unknown block name
    or a block of :data:`BLOCKS` missing from the README is a DocsError."""
    cwd = scratch(out)
    seen = set()

    def sub(m: re.Match) -> str:
        name = m["name"]
        if name not in BLOCKS:
            raise DocsError(f"README.md: unknown block {name!r} (known: {', '.join(BLOCKS)})")
        seen.add(name)
        return m.group(1) + block_text(name, cwd, plots) + m.group(4)

    new = BLOCK.sub(sub, text)
    if missing := set(BLOCKS) - seen:
        raise DocsError(f"README.md has no block for {', '.join(sorted(missing))}")
    return new


def draw_images(out: Path) -> None:
    """The images of :data:`IMAGES` into docs/img/, from the outputs :func:`regenerate`
    left in the scratch folder ``out``."""
    img = ROOT / "docs" / "img"
    for name, args in IMAGES:
        if args[0] == "COPY":
            (img / name).write_bytes((out / args[1]).read_bytes())
        elif args[0] == "RUN":
            run(["run", args[1], "--out", args[2]], out)
            run(["plot", f"{args[2]}/results.json", "--kind", "timeline", *args[3:],
                 "--out", str(img / name)], out)
        else:
            run([*args, "--out", str(img / name)], out)


# ---- measured blocks ---------------------------------------------------------------------

def measured_blocks(text: str) -> dict[str, str]:
    """name -> body of every measured block in ``text``; an unknown name, a block missing
    or one whose first lines are not ``# measured ...`` and ``$ COMMAND`` as
    :data:`MEASURED` says is a DocsError."""
    found = {m["name"]: m["body"] for m in MEASURED_BLOCK.finditer(text)}
    if unknown := set(found) - set(MEASURED):
        raise DocsError(f"README.md: unknown measured block {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(MEASURED)})")
    if missing := set(MEASURED) - set(found):
        raise DocsError(f"README.md has no measured block for {', '.join(sorted(missing))}")
    for name, body in found.items():
        lines = body.splitlines()
        want = f"$ {MEASURED[name].shown}"
        if len(lines) < 3 or lines[0] != "```" or not lines[1].startswith("# measured "):
            raise DocsError(f"README.md, measured block {name}: it must open with ``` and a "
                            f"`# measured DATE on MACHINE` line")
        if lines[2] != want:
            raise DocsError(f"README.md, measured block {name}: shows `{lines[2]}`; "
                            f"docs/regenerate.py measures `{want}`")
    return found


def check_command(m: Measured, cwd: Path) -> None:
    """That ``m`` still runs as shown, without running it: an ``rsdgc-sim`` command's
    options and arguments parse (click, as the command would) and its input files exist in
    ``cwd``; a script exists and declares every option given (``add_argument``);
    ``make -n TARGET`` ends with the recipe line the block shows. A DocsError says what no
    longer holds."""
    if m.argv[0] == "rsdgc-sim":
        import click  # lazy: the package's own click

        from rsdgc_sim.cli.app import COMMANDS, load_command

        name, args = m.argv[1], list(m.argv[2:])
        if name not in COMMANDS:
            raise DocsError(f"`{shlex.join(m.argv)}`: no command {name!r}")
        cmd = load_command(name)
        try:
            ctx = cmd.make_context(name, args)
        except click.ClickException as e:
            raise DocsError(f"`{shlex.join(m.argv)}` no longer parses: {e.format_message()}") from None
        for p in cmd.params:
            value = ctx.params.get(p.name)
            if (isinstance(p, click.Argument) and isinstance(p.type, click.Path) and value
                    and not (cwd / value).exists()):
                raise DocsError(f"`{shlex.join(m.argv)}`: {value}: no such file")
    else:
        script = cwd / m.argv[1]
        if not script.is_file():
            raise DocsError(f"{m.argv[1]}: no such script")
        declared = _script_options(script)
        if bad := [a for a in m.argv[2:] if a.startswith("-") and a.split("=")[0] not in declared]:
            raise DocsError(f"{m.argv[1]} takes no {', '.join(bad)} (its options: "
                            f"{', '.join(sorted(declared))})")
    if m.make:
        out_arg = m.argv[m.argv.index("--out") + 1]
        # a make of its own: under `make test` the parent's MAKEFLAGS/MAKELEVEL would make
        # it print "Entering/Leaving directory" lines around the recipe
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
        proc = subprocess.run(["make", "--no-print-directory", "-n", m.make, f"OUT={out_arg}"],
                              cwd=ROOT, capture_output=True, text=True, env=env)
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or last != m.between[-1]:
            raise DocsError(f"make -n {m.make}: its last line is `{last}`; the README shows "
                            f"`{m.between[-1]}`")


def _script_options(script: Path) -> set[str]:
    """The options a script's argparse declares: the ``-x``/``--name`` strings of its
    ``add_argument`` calls (read from its source: nothing is imported or run)."""
    import ast  # lazy: only here

    found = set()
    for node in ast.walk(ast.parse(script.read_text(), str(script))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            found |= {a.value for a in node.args
                      if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
    return found


def check(text: str, out: Path) -> None:
    """DocsError unless every regenerated block is what its commands print now and every
    measured block's command still runs as shown."""
    if regenerate(text, out, plots=False) != text:
        raise DocsError("README.md: quoted outputs differ from the code's; run `make docs`")
    measured_blocks(text)
    for m in MEASURED.values():
        check_command(m, scratch(out))


def machine() -> str:
    """This machine in a few words: CPU model, cores, GPUs (nvidia-smi), torch."""
    from rsdgc_sim.profile.devices import cpu_model  # lazy: imports torch (measuring only)

    cpu = cpu_model()
    gpus = "no GPU"
    if shutil.which("nvidia-smi"):
        proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        names = [ln.split(":", 1)[1].split("(")[0].strip() for ln in proc.stdout.splitlines()
                 if ln.startswith("GPU ")]
        if names:
            gpus = f"{len(names)}x {names[0]}"
    try:
        torch = f"torch {metadata.version('torch')}"
    except metadata.PackageNotFoundError:
        torch = "no torch"
    return f"{cpu} ({os.cpu_count()} cores, {gpus}), {torch}"


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 60 else f"{int(s // 60)} min {s % 60:.0f} s"


def measure(name: str, cwd: Path) -> str:
    """Run measured block ``name`` in the scratch folder ``cwd``; its new fenced block."""
    m = MEASURED[name]
    load0, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load0 > cores / 2:
        print(f"warning: load {load0:.1f} on {cores} cores: {name}'s times will come out long "
              f"(its block says so); measure on an idle machine", file=sys.stderr, flush=True)
    shutil.rmtree(cwd / "cache", ignore_errors=True)  # measured with an empty profile cache
    scratch(cwd)
    t0 = time.perf_counter()
    out = run(list(m.argv), cwd, _env(cwd, m.env, threads="OMP_NUM_THREADS" in m.env),
              stderr=m.stderr)
    wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    lines = _lines(out.replace(f"{cwd}/", "").replace(f"{ROOT}/", ""))
    if m.start:
        first = next((i for i, ln in enumerate(lines) if re.search(m.start, ln)), None)
        if first is None:
            raise DocsError(f"{name}: no line of its output matches {m.start!r}")
        lines = lines[first:]
    if m.end:
        last = next((i for i, ln in enumerate(lines) if i and re.search(m.end, ln)), len(lines))
        lines = lines[:last]
    head = (f"# measured {datetime.date.today().isoformat()} on {machine()}; load "
            f"{load0:.1f} at the start, {load1:.1f} at the end; {_duration(wall)}")
    return "```\n" + "\n".join([head, f"$ {m.shown}", *m.between, *lines]) + "\n```\n"


def measure_announced(name: str, cwd: Path) -> str:
    """:func:`measure`, saying so on stderr first."""
    print(f"measuring {name}: `{MEASURED[name].shown}` (about {MEASURED[name].minutes:g} "
          f"min)", file=sys.stderr, flush=True)
    return measure(name, cwd)


def substitute(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the measured blocks named in ``blocks`` replaced by their new bodies."""
    measured_blocks(text)

    def sub(m: re.Match) -> str:
        return m.group(1) + blocks[m["name"]] + m.group(4) if m["name"] in blocks else m.group(0)

    return MEASURED_BLOCK.sub(sub, text)


def remeasure(text: str, names: list[str], cwd: Path) -> str:
    """``text`` with the measured blocks ``names`` run again (each says so on stderr)."""
    return substitute(text, {name: measure_announced(name, cwd) for name in names})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if README.md would change, or a measured command no longer "
                         "runs as shown")
    ap.add_argument("--measured", metavar="NAME", action="append", default=[],
                    help=f"run this measured block again and write it back (repeatable; "
                         f"{', '.join(f'{n}: ~{m.minutes:g} min' for n, m in MEASURED.items())}"
                         f"; all)")
    ap.add_argument("--work", metavar="DIR", default=None,
                    help="the scratch folder (kept; a tta run killed there resumes from its "
                         "checkpoints); default: a temporary one")
    a = ap.parse_args(argv)
    names = list(MEASURED) if "all" in a.measured else a.measured
    if bad := [n for n in names if n not in MEASURED]:
        ap.error(f"--measured {', '.join(bad)}: one of {', '.join(MEASURED)}, all")
    text = README.read_text()
    with tempfile.TemporaryDirectory(prefix="rsdgc-docs-") as tmp:
        work = Path(a.work).resolve() if a.work else Path(tmp)
        if work == ROOT or ROOT in work.parents:
            ap.error(f"--work {a.work}: a scratch folder outside the repository")
        work.mkdir(parents=True, exist_ok=True)
        cwd = scratch(work)
        try:
            if a.check:
                check(text, cwd)
                return 0
            if names:
                # substituted into the README as it is when they end (a measurement takes
                # minutes: edits made meanwhile stay)
                measured_blocks(text)  # the README's blocks are sound before minutes go
                blocks = {n: measure_announced(n, cwd) for n in names}
                README.write_text(substitute(README.read_text(), blocks))
                print(f"wrote {README.relative_to(ROOT)} ({', '.join(names)} measured)")
                return 0
            README.write_text(regenerate(text, cwd))
            draw_images(cwd)
        except DocsError as e:
            print(f"docs/regenerate.py: {e}", file=sys.stderr)
            return 1
    print(f"wrote {README.relative_to(ROOT)} ({len(BLOCKS)} blocks) and {len(IMAGES)} images "
          f"in docs/img/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
