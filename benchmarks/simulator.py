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
"""

from __future__ import annotations

import json
import os
import platform
import time

import click
from rich.console import Console
from rich.table import Table

from rsdgc_sim.sim import SimPoint, simulate
from rsdgc_sim.sim.synthetic import synthetic_profile, vgg19_tensors

GOALS = {("step", 1024): 1.0, ("link", 256): 60.0, ("analytic", 65536): 0.05}
WORKERS = [8, 64, 256, 1024, 4096, 65536]


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
@click.option("--link-max", default=256, show_default=True,
              help="largest worker count simulated at link fidelity")
@click.option("--json-out", type=click.Path(dir_okay=False), default=None,
              help="also write the rows as JSON")
def main(quick: bool, link_max: int, json_out: str | None) -> None:
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
    console.print(table)
    console.print(f"machine: {platform.machine()} {platform.processor() or ''}, "
                  f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
