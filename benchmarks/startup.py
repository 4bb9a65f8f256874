"""Benchmark of start-up: how long `rsdgc-sim --help` takes (and its peak memory), and how
long an unchanged 1,000-point study takes to run again (every point reused from OUT/points,
its estimated profile from the cache), beside their goals.

    .venv/bin/python benchmarks/startup.py

Each case is the real command in a fresh process, timed by wall clock: `--help` 5 times,
the rerun 3 times, medians printed. The study (10 worker counts x 10 bandwidths x 5
latencies x 2 overlap settings, cnn_small on a V100 device model, so no measuring) is made
in a temporary folder with its own profile cache and run once first, untimed. The bare
interpreter (`python -c pass`) is printed as the machine's yardstick. Asserts nothing
but that each rerun simulated nothing (a change to the package's measuring code between
the runs gives a new profile key, so new points); numbers depend on the machine and its
load: say which when you quote them.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the goals (seconds) on a normal machine
HELP_GOAL_S = 0.2
RERUN_GOAL_S = 1.0

SCENARIO = """\
schema_version: 1
name: startup-benchmark
model: {name: cnn_small, num_classes: 10, input_size: 32}
batch_size: 32
device: {model: V100}
compressors:
  - {name: none}
  - {name: topk, density: 0.01}
cluster:
  workers: [1, 2, 4, 8, 12, 16, 24, 32, 48, 64]
  topology: {name: switch}
  bandwidth: [100Mbit/s, 250Mbit/s, 500Mbit/s, 1Gbit/s, 2.5Gbit/s, 5Gbit/s, 10Gbit/s,
              25Gbit/s, 40Gbit/s, 100Gbit/s]
  latency: [1us, 5us, 20us, 100us, 1ms]
ddp: {bucket_cap: 25MiB, first_bucket: 1MiB, overlap: true}
sweep:
  ddp.overlap: [true, false]
"""


def command() -> list[str]:
    """The installed `rsdgc-sim` beside this interpreter, else `python -m rsdgc_sim.cli`."""
    script = Path(sys.executable).parent / "rsdgc-sim"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rsdgc_sim.cli"]


def timed(argv: list[str], env: dict[str, str], expect: str = "") -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process (its output discarded; failure, or a
    stderr without ``expect``: exit with its stderr)."""
    with tempfile.TemporaryFile() as err_file:  # read after the process, never a full pipe
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err_file)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err_file.seek(0)
        err = err_file.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}): {err.strip()[-400:]}")
    if expect not in err:
        sys.exit(f"{' '.join(argv)} did not say {expect!r} (the package's code changed "
                 f"meanwhile, so its profile and points did?): {err.strip()[-400:]}")
    return wall, usage.ru_maxrss


def median_of(n: int, argv: list[str], env: dict[str, str],
              expect: str = "") -> tuple[float, int]:
    """Median wall seconds and the largest peak RSS of ``n`` runs."""
    runs = [timed(argv, env, expect) for _ in range(n)]
    return statistics.median(w for w, _ in runs), max(r for _, r in runs)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rsdgc-startup-bench-"))
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RSDGC_SIM_CACHE": str(tmp / "cache")}
        scenario = tmp / "study.yaml"
        scenario.write_text(SCENARIO)
        run = [*command(), "run", str(scenario), "--out", str(tmp / "out")]
        print("first run (estimates the profile, simulates 1,000 points; not timed)...",
              file=sys.stderr)
        timed(run, env)
        bare, bare_rss = median_of(5, [sys.executable, "-c", "pass"], env)
        help_s, help_rss = median_of(5, [*command(), "--help"], env)
        # an unchanged rerun, or not timed: one that simulates is not what this measures
        rerun_s, rerun_rss = median_of(3, run, env, expect="points: 0 simulated, 1000 reused")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [("python -c pass (yardstick)", "median of 5", bare, bare_rss, None),
            ("rsdgc-sim --help", "median of 5", help_s, help_rss, HELP_GOAL_S),
            ("unchanged 1,000-point rerun", "median of 3", rerun_s, rerun_rss, RERUN_GOAL_S)]
    print(f"{'case':<30} {'runs':<12} {'wall s':>8} {'goal s':>7} {'peak RSS':>10}")
    for name, runs, wall, rss, goal in rows:
        goal_text = "-" if goal is None else f"{goal:.1f}"
        print(f"{name:<30} {runs:<12} {wall:>8.3f} {goal_text:>7} {rss / 1024:>7.1f} MiB")
    print(f"({' '.join(command())}; {os.cpu_count()} CPUs; the goals are for a normal "
          f"machine)")


if __name__ == "__main__":
    main()
