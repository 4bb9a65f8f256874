"""Benchmark of a study: a 1,000-point sweep of the quickstart model (switch, `auto`
fidelity) once its profile exists: every point simulated, serially and with ``--jobs 2``,
then the same command again (every point reused from the point store).

    .venv/bin/python benchmarks/study.py [--points-out DIR] [--jobs 2]

Each case is the real command (``rsdgc-sim run``, a fresh process: imports included), timed
by wall clock; the profile is measured (or found in the cache) first and not timed. Prints
a table: points simulated and reused, wall seconds, points per second, and the ratio to the
serial run. Numbers depend on the machine and its load: say which when you quote them.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: 10 worker counts x 10 bandwidths x 5 latencies x 2 (overlap or not) = 1,000 points
WORKERS = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64]
BANDWIDTHS = ["100Mbit/s", "250Mbit/s", "500Mbit/s", "1Gbit/s", "2.5Gbit/s", "5Gbit/s",
              "10Gbit/s", "25Gbit/s", "40Gbit/s", "100Gbit/s"]
LATENCIES = ["1us", "5us", "20us", "100us", "1ms"]


def scenario() -> dict:
    from rsdgc_sim.scenario import bundled_path, read_yaml

    data = copy.deepcopy(read_yaml(bundled_path()))
    data["name"] = "study-benchmark"
    data["cluster"].update({"workers": WORKERS, "bandwidth": BANDWIDTHS,
                            "latency": LATENCIES, "topology": {"name": "switch"},
                            "fidelity": "auto"})
    data["sweep"] = {"ddp.overlap": [True, False]}
    return data


def rsdgc(*args: str) -> float:
    """Wall seconds of one `rsdgc-sim` command (its output discarded; failure: exit)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rsdgc_sim.cli", *args], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"rsdgc-sim {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="processes of the --jobs case")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    tmp = Path(tempfile.mkdtemp(prefix="rsdgc-study-bench-"))
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(scenario(), sort_keys=False))
    out = tmp / "out"
    common = ["--out", str(out), "--no-plot", "--no-trace", "-q"]
    print("profile (measured once, or found in the cache; not timed)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "rsdgc_sim.cli", "profile", str(path)],
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True,
                   stdout=subprocess.DEVNULL)
    import json

    cases = [("serial, every point", ["--fresh"]),
             ("unchanged rerun (resume)", []),
             (f"--jobs {args.jobs}, every point", ["--fresh", "--jobs", str(args.jobs)])]
    rows = []
    for label, extra in cases:
        wall = rsdgc("run", str(path), *common, *extra)
        res = json.loads((out / "results.json").read_text())
        rows.append((label, res["points_computed"], res["points_reused"], wall))
    serial = rows[0][3]
    t = Table(title=f"1,000-point sweep of the quickstart model ({os.cpu_count()} cores, "
                    f"load {os.getloadavg()[0]:.1f})", header_style="bold")
    for col in ("case", "simulated", "reused", "wall s", "points/s", "vs serial"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for label, computed, reused, wall in rows:
        t.add_row(label, str(computed), str(reused), f"{wall:.1f}",
                  f"{(computed + reused) / wall:.0f}", f"{serial / wall:.2f}x")
    Console(width=100).print(t)
    print(f"(wall seconds of the whole command, Python start and imports included; "
          f"scenario {path})")


if __name__ == "__main__":
    main()
