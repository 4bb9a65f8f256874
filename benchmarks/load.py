"""Profiles that hold under load: one resnet18 scenario profiled twice, each time with a
fresh profile cache, once on the machine as it is ("quiet") and once beside busy-loop
processes ("loaded"), and top-k's speedup over dense simulated from each profile at a
network-bound and a compute-bound point.

    python benchmarks/load.py                   # 3 busy loops, 8 workers at 1 and 100 Gbit/s
    python benchmarks/load.py --busy 6 --bandwidth 1Gbit/s 10Gbit/s 100Gbit/s

The scenario is the quickstart's model and batch (resnet18, 45 classes, 64 px, batch 8 per
worker, on the CPU) with ``none`` and ``topk`` at density 0.01. Torch keeps its default
thread count (one per core), as ``make run`` runs it: leave ``OMP_NUM_THREADS`` unset. The
busy loops (``python -c 'while True: pass'``) start after the quiet profile and are killed
after the loaded one, on an error or ^C too, and die with this process where Linux allows
(``PR_SET_PDEATHSIG``). Everything goes through the public API
(:func:`rsdgc_sim.study.profiles.profile_scenario`, :func:`rsdgc_sim.study.simulate.simulate_scenario`).

It prints two tables and asserts nothing: per point, top-k's speedup over dense from each
profile (with its range from the profile's quartiles) and their ratio; per measured
quantity, each profile's median, spread, samples kept and samples discarded as preempted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rsdgc_sim.profile.schema import DeviceProfile, Profile
from rsdgc_sim.profile.store import ProfileStore
from rsdgc_sim.scenario.load import scenario_from_dict
from rsdgc_sim.study.profiles import profile_scenario
from rsdgc_sim.study.simulate import simulate_scenario
from rsdgc_sim.units import format_bandwidth


def scenario(workers: int, bandwidths: list[str], warmup: int, iterations: int):
    return scenario_from_dict({
        "schema_version": 1,
        "name": "load",
        "model": {"name": "resnet18", "num_classes": 45, "input_size": 64},
        "batch_size": 8,
        "device": "cpu",
        "profile": {"warmup": warmup, "iterations": iterations},
        "compressors": [{"name": "none"}, {"name": "topk", "density": 0.01}],
        "cluster": {"workers": [workers], "topology": {"name": "switch"},
                    "bandwidth": bandwidths, "latency": "5us"},
    }, source="benchmarks/load.py")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the benchmark dies (Linux; elsewhere nothing)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[list[int]]:
    """``n`` processes spinning ``while True: pass``, killed (and reaped) on the way out."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                          preexec_fn=_die_with_parent))
        time.sleep(0.5)  # let them reach the CPUs
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        for p in procs:
            p.wait()


def measure(sc, label: str, console: Console) -> tuple[Profile, float, float | None]:
    """A profile measured now (a fresh, temporary cache), the seconds it took and the
    1-minute load average just before."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    console.print(f"[bold]{label}[/bold]: load average {load:.1f}, profiling ..."
                  if load is not None else f"[bold]{label}[/bold]: profiling ...")
    said = lambda m: console.print(f"  {m}") if str(m).startswith("warning") else None  # noqa: E731
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rsdgc-load-") as cache:
        prof, _ = profile_scenario(sc, store=ProfileStore(cache), refresh=True, progress=said)
    return prof, time.perf_counter() - t0, load


def speedups(sc, prof: Profile) -> dict[tuple[int, float], tuple[float, float, float, dict]]:
    """Per point (workers, bytes/s): top-k's speedup over dense, its low and high, and
    dense's row."""
    rows, _ = simulate_scenario(sc, prof)
    dense_label = sc.dense_label()
    dense = {(r["workers"], r["bandwidth_bytes_per_s"]): r for r in rows if r["compressor"] == dense_label}
    return {(r["workers"], r["bandwidth_bytes_per_s"]):
            (r["speedup_vs_dense"], r["speedup_vs_dense_low"], r["speedup_vs_dense_high"],
             dense[(r["workers"], r["bandwidth_bytes_per_s"])])
            for r in rows if r["compressor"] != dense_label}


def quantity(dev: DeviceProfile, key: str) -> float | None:
    """The stored median behind spread key ``key``, in seconds."""
    kind, _, label = key.partition(":")
    if label:
        costs = dev.compression.get(label)
        field = {"compress": "compress_s", "decompress": "decompress_s"}.get(kind)
        return None if costs is None or field is None else sum(getattr(c, field) for c in costs.values())
    return getattr(dev, key, None)


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--busy", type=int, default=3, help="busy-loop processes beside the loaded profile")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--bandwidth", nargs="+", default=["1Gbit/s", "100Gbit/s"],
                    help="per-host link bandwidths: one network-bound, one compute-bound")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=5, help="min_iterations of each stage")
    ap.add_argument("--rounds", type=int, default=1, help="quiet/loaded pairs, one after another")
    ap.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                    help="skip the unreported warm-up profile")
    args = ap.parse_args()

    import torch

    console = Console(width=100)
    sc = scenario(args.workers, args.bandwidth, args.warmup, args.iterations)
    console.print(f"{platform.node()}: {os.cpu_count()} CPUs, torch {torch.__version__} with "
                  f"{torch.get_num_threads()} threads"
                  + (f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})"
                     if "OMP_NUM_THREADS" in os.environ else " (default)"))
    if args.warm_up:
        measure(sc, "warm-up (not reported: the first profile in a process pays one-time costs)",
                console)
    for r in range(args.rounds):
        tag = f" {r + 1}/{args.rounds}" if args.rounds > 1 else ""
        quiet = measure(sc, f"quiet{tag}", console)
        with busy_loops(args.busy) as pids:
            loaded = measure(sc, f"beside {args.busy} busy loops{tag} (pids "
                                 f"{', '.join(map(str, pids))})", console)
        report(console, sc, args.workers, quiet, loaded)


def report(console: Console, sc, workers: int, quiet_run, loaded_run) -> None:
    """The two tables and how each profile was measured."""
    quiet, loaded = quiet_run[0], loaded_run[0]
    q, lo = speedups(sc, quiet), speedups(sc, loaded)
    t = Table(title=f"top-k (density 0.01) speedup over dense \\[range], resnet18 64 px batch 8, "
                    f"{workers} workers", title_justify="left")
    for col in ("point", "dense iter (comm exposed)", "quiet", "loaded", "loaded/quiet"):
        t.add_column(col, justify="left" if col == "point" else "right")

    def cell(v):
        s, low, high, _ = v
        return escape(f"{s:.2f}x [{low:.2f}-{'' if high is None else f'{high:.2f}'}]")

    for pt in q:
        dq = q[pt][3]
        t.add_row(f"{pt[0]} x {format_bandwidth(pt[1])}",
                  f"{ms(dq['iteration_s'])} ms ({ms(dq['exposed_communication_s'])} ms)",
                  cell(q[pt]), cell(lo[pt]), f"{lo[pt][0] / q[pt][0]:.3f}")
    console.print(t)

    dq, dl = quiet.devices[0], loaded.devices[0]
    t = Table(title="profile medians, ms (±IQR/2); samples kept / discarded as preempted",
              title_justify="left")
    for col in ("quantity", "quiet", "kept/disc", "loaded", "kept/disc", "loaded/quiet"):
        t.add_column(col, justify="left" if col == "quantity" else "right")
    for key in dq.spread:
        a, b = quantity(dq, key), quantity(dl, key)
        t.add_row(key, f"{ms(a)} ±{ms(dq.spread[key] / 2)}",
                  f"{dq.samples.get(key, 0)}/{dq.discarded.get(key, 0)}",
                  f"{ms(b)} ±{ms(dl.spread.get(key, 0.0) / 2)}",
                  f"{dl.samples.get(key, 0)}/{dl.discarded.get(key, 0)}",
                  f"{b / a:.3f}" if a and b is not None else "-")
    console.print(t)
    for name, (prof, secs, load) in (("quiet", quiet_run), ("loaded", loaded_run)):
        s = prof.settings
        console.print(f"{name}: measured in {secs:.0f} s, load average before "
                      f"{'-' if load is None else f'{load:.1f}'}, preemption detection "
                      f"{s.get('preemption', '?')}, nice {s.get('nice', '?')}, torch threads "
                      f"{s.get('torch_threads', '?')}")


if __name__ == "__main__":
    main()
