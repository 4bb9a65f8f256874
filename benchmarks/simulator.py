"""Simulator speed: wall time to simulate one vgg19 training iteration.

vgg19-shaped synthetic profile (torchvision shapes, 143.7 M parameters, made-up compute
times; see ``rsdgc_sim.sim.synthetic``), compressors ``none`` (dense) and ``topk`` at
density 0.01, DDP buckets of 25 MiB (first 1 MiB), switch topology at 10 Gbit/s and 5 us,
ring allreduce + ring all-gather. For each worker count, every fidelity that applies
(``link`` up to ``--link-max`` workers). Prints a rich table with the wall time, the SimPy
events processed and events per second, and checks the goals:
``step`` at 1024 workers < 1 s, ``link`` at 256 < 60 s, ``analytic`` at 65,536 < 50 ms.

    python benchmarks/simulator.py            # full table
    python benchmarks/simulator.py --quick    # 8 and 64 workers only (a smoke run)

``--collectives`` instead times one collective call, ``collective_time`` at fidelity
``auto``, for ring allreduce, ring all-gather and the ``auto`` algorithm on every shipped
topology at 1,024, 8,192 and 65,536 workers (fat_tree with the smallest k that holds them;
100 MB allreduce, 100 kB per rank all-gather, 10 Gbit/s, 5 us). Each case runs in a fresh
process (``--timeout`` seconds at most, ``--max-memory`` address space) that reports its
wall time and peak resident memory; the goal is < 2 s per call:

    python benchmarks/simulator.py --collectives [--timeout 60] [--json-out FILE]
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time

import click
from rich.console import Console
from rich.table import Table

from rsdgc_sim.sim import SimPoint, TopologySpec, collective_time, simulate
from rsdgc_sim.sim.synthetic import synthetic_profile, vgg19_tensors
from rsdgc_sim.sim.topology import fat_tree_k_for

GOALS = {("step", 1024): 1.0, ("link", 256): 60.0, ("analytic", 65536): 0.05}
WORKERS = [8, 64, 256, 1024, 4096, 65536]
SCALE_WORKERS = [1024, 8192, 65536]
SCALE_TOPOLOGIES = ["switch", "ring", "tree", "fat_tree", "two_level", "torus2d"]
SCALE_ALGORITHMS = ["ring", "allgather_ring", "auto"]
SCALE_GOAL_S = 2.0


def _scale_case(topology: str, p: int, algorithm: str) -> dict:
    """One collective_time call at fidelity auto, timed, in this process."""
    params = {"k": fat_tree_k_for(p)} if topology == "fat_tree" else {}
    nbytes = 1e5 if algorithm.startswith("allgather") else 1e8
    t = time.perf_counter()
    r = collective_time(algorithm, p, nbytes, 1.25e9, 5e-6,
                        topology=TopologySpec(name=topology, params=params))
    wall = time.perf_counter() - t
    return {"topology": topology, "workers": p, "algorithm": algorithm, "wall_s": wall,
            "fidelity": r.fidelity, "exact": r.exact, "chosen": r.chosen,
            "simulated_s": r.simulated_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _scale_table(timeout: float, max_memory: int, json_out: str | None) -> None:
    console = Console(width=130)
    table = Table(title="collective_time(fidelity=auto): one call, fresh process "
                        "(10 Gbit/s, 5 us; 100 MB allreduce, 100 kB/rank all-gather)")
    for col in ("topology", "workers", "algorithm", "wall", "fidelity", "simulated",
                "peak RSS", "goal"):
        table.add_column(col, justify="right" if col in ("workers", "wall", "simulated",
                                                          "peak RSS") else "left")
    rows = []
    for p in SCALE_WORKERS:
        for topo in SCALE_TOPOLOGIES:
            for alg in SCALE_ALGORITHMS:
                cmd = [sys.executable, __file__, "--case", f"{topo}:{p}:{alg}"]
                try:
                    out = subprocess.run(
                        cmd, capture_output=True, text=True, timeout=timeout,
                        preexec_fn=lambda: resource.setrlimit(
                            resource.RLIMIT_AS, (max_memory, max_memory)))
                    row = (json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0
                           else {"error": (out.stderr.strip().splitlines() or ["?"])[-1]})
                except subprocess.TimeoutExpired:
                    row = {"error": f"> {timeout:g} s"}
                row.update(topology=topo, workers=p, algorithm=alg)
                rows.append(row)
                if "error" in row:
                    table.add_row(topo, str(p), alg, row["error"][:40], "", "", "",
                                  "[red]MISSED[/]")
                    continue
                fid = row["fidelity"] + ("" if row["exact"] else " (estimate)")
                alg_s = alg + (f" -> {row['chosen']}" if row["chosen"] else "")
                ok = row["wall_s"] < SCALE_GOAL_S
                table.add_row(topo, str(p), alg_s, f"{row['wall_s']:.3f} s", fid,
                              f"{row['simulated_s']:.5g} s", f"{row['peak_rss_mib']:.0f} MiB",
                              "[green]met[/]" if ok else "[red]MISSED[/]")
    _finish(console, table, rows, json_out)


def _finish(console, table, rows: list[dict], json_out: str | None) -> None:
    """Print the table and the machine; write the rows as JSON when asked."""
    console.print(table)
    console.print(f"machine: {platform.machine()} {platform.processor() or ''}, "
                  f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump(rows, fh, indent=1)


def _time(prof, point: SimPoint) -> tuple[float, object]:
    """Wall seconds of one simulate() call (the best of several for fast ones)."""
    best, res = float("inf"), None
    for _ in range(5):
        t = time.perf_counter()
        res = simulate(prof, point)
        best = min(best, time.perf_counter() - t)
        if best > 0.2:
            break
    return best, res


@click.command()
@click.option("--quick", is_flag=True, help="8 and 64 workers only")
@click.option("--collectives", is_flag=True,
              help="time one collective call at fidelity auto instead (see the docstring)")
@click.option("--timeout", default=60.0, show_default=True,
              help="--collectives: seconds per case")
@click.option("--max-memory", default=8 * 2**30, show_default=True,
              help="--collectives: address space per case (bytes)")
@click.option("--case", default=None, hidden=True)
@click.option("--link-max", default=256, show_default=True,
              help="largest worker count simulated at link fidelity")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None,
              help="also write the rows as JSON")
def main(quick: bool, collectives: bool, timeout: float, max_memory: int, case: str | None,
         link_max: int, json_out: str | None) -> None:
    if case:
        topo, p, alg = case.split(":")
        print(json.dumps(_scale_case(topo, int(p), alg)))
        return
    if collectives:
        _scale_table(timeout, max_memory, json_out)
        return
    console = Console(width=120)
    prof = synthetic_profile(vgg19_tensors(1000), model="vgg19", density=0.01)
    workers = [8, 64] if quick else WORKERS
    table = Table(title="rsdgc-sim: one vgg19 iteration (switch, 10 Gbit/s, 5 us, 25 MiB "
                        "buckets)")
    for col in ("compressor", "workers", "fidelity", "iteration", "events", "wall",
                "events/s", "goal"):
        table.add_column(col, justify="right" if col not in ("compressor", "fidelity",
                                                              "goal") else "left")
    rows = []
    for comp in ("none", "topk"):
        for p in workers:
            for fid in ("analytic", "step", "link"):
                if fid == "link" and p > link_max:
                    continue
                point = SimPoint(compressor=comp, workers=p, bandwidth_bytes_per_s=1.25e9,
                                 latency_s=5e-6, fidelity=fid)
                wall, res = _time(prof, point)
                goal = GOALS.get((fid, p))
                verdict = "" if goal is None else (
                    f"< {goal:g} s: " + ("[green]met[/]" if wall < goal else "[red]MISSED[/]"))
                eps = res.events / wall if res.events else 0.0
                table.add_row(comp, str(p), fid, f"{res.iteration_s:.4g} s", f"{res.events:,}",
                              f"{wall * 1e3:.2f} ms" if wall < 1 else f"{wall:.2f} s",
                              f"{eps:,.0f}" if eps else "-", verdict)
                rows.append({"compressor": comp, "workers": p, "fidelity": fid,
                             "iteration_s": res.iteration_s, "events": res.events,
                             "wall_s": wall, "events_per_s": eps, "goal_s": goal})
    _finish(console, table, rows, json_out)


if __name__ == "__main__":
    main()
