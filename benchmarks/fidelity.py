"""Fidelity of the simulator against real DDP runs on emulated links.

For each model (``cnn_small`` at 32x32, ``resnet18`` at 64x64), ranks (2, 4), link rate
(50, 100, 400 Mbit/s) and compressor (``none``, ``topk`` and ``nsi`` at density 0.01):
real DDP training through the compression hook over network namespaces shaped with tc tbf
(``rsdgc_sim.emulate``), and the simulator's prediction of the same configuration from the
profile the ranks measured and the link calibration. Prints measured, predicted and error
per case, and the median and worst |error|. Goal: median |error| <= 10 %, worst <= 20 %.

Run as root (namespaces and tc); without, ranks run on unshaped loopback and the figures say
nothing about the links. ``--quick``: 2 ranks at 100 and 400 Mbit/s only.

A case is *link-bound* when moving its payload over the calibrated link takes longer than
the rank's compute and compression: the regime the network model is about. On a 2-core
host, CPU-bound cases also measure how the ranks' threads share the cores (the gloo thread
that moves the data competes with compute), which the simulator does not model.

    python benchmarks/fidelity.py [--quick] [--out DIR] [--from-json DIR/fidelity.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rsdgc_sim.emulate.calibrate import calibrate_links
from rsdgc_sim.emulate.calibration import Calibration
from rsdgc_sim.emulate.run import emulate_scenario
from rsdgc_sim.scenario import scenario_from_dict

MODELS = {"cnn_small": (32, 32), "resnet18": (64, 16)}  # name -> (input size, batch per rank)
COMPRESSORS = [
    {"name": "none"},
    {"name": "topk", "density": 0.01},
    {"name": "nsi", "density": 0.01},
]


def scenario(model: str, workers: list[int], rates_mbit: list[float]):
    size, batch = MODELS[model]
    return scenario_from_dict(
        {
            "schema_version": 1,
            "name": f"fidelity-{model}",
            "model": {"name": model, "num_classes": 45, "input_size": size},
            "batch_size": batch,
            "device": "cpu",
            "profile": {"warmup": 1, "iterations": 4},
            "compressors": COMPRESSORS,
            "cluster": {
                "workers": workers,
                "bandwidth": [f"{r:g}Mbit/s" for r in rates_mbit],
                "latency": "0us",
            },
        },
        source="fidelity",
    )


def transfer_s(row: dict) -> float:
    """Time the iteration's payload needs on the calibrated link, uncontended: ring
    allreduce ``2 (p-1)/p n`` for dense payloads, ring all-gather ``(p-1) n`` for sparse."""
    p, n, bw = row["workers"], row["sent_bytes"], row["predicted_bandwidth_bytes_per_s"]
    factor = 2 * (p - 1) / p if row["compressor"] == "none" else (p - 1)
    return factor * n / bw


def link_bound(row: dict) -> bool:
    """The link, not the CPU, bounds the iteration: transferring takes longer than the
    rank's compute and compression together."""
    return transfer_s(row) > row["compute_s"] + row["compress_s"] + row["decompress_s"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 ranks at 100 and 400 Mbit/s only")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="write fidelity.json here")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="print the table of an earlier run's fidelity.json instead of running")
    args = ap.parse_args(argv)
    console = Console(width=130)
    workers = [2] if args.quick else [2, 4]
    rates = [100.0, 400.0] if args.quick else [50.0, 100.0, 400.0]

    t0 = time.time()
    say = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        rows, notes, mode = saved["rows"], saved.get("notes", []), saved.get("mode", "netns")
        cal = Calibration.model_validate(saved["calibration"])
    else:
        cal = calibrate_links([r * 1e6 / 8 for r in rates], repeats=5, progress=say)
        rows, notes = [], []
        for model in args.models:
            rep = emulate_scenario(
                scenario(model, workers, rates), iterations=args.iterations, warmup=1,
                calibration=cal, progress=say,
            )  # fmt: skip
            for c in rep.cases:
                rows.append({"model": model, **c.__dict__})
            notes += rep.notes
            mode = rep.mode
    elapsed = time.time() - t0

    t = Table(title=f"fidelity: measured vs predicted iteration time ({platform.node()}, "
                    f"{os.cpu_count()} cores, {mode})")  # fmt: skip
    for col in ("model", "compressor", "ranks", "link", "measured", "predicted", "error",
                "compute", "hook", "sent/rank", "bound"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("model", "compressor") else "right")
    errs, link_errs = [], []
    for r in rows:
        err = r["error"]
        if err is not None:
            errs.append(abs(err))
            if link_bound(r):
                link_errs.append(abs(err))
        t.add_row(
            r["model"], r["compressor"], str(r["workers"]),
            f"{r['bandwidth_bytes_per_s'] * 8 / 1e6:g} Mbit/s",
            f"{r['measured_iteration_s'] * 1e3:.1f} ms",
            "-" if r["predicted_iteration_s"] is None else f"{r['predicted_iteration_s'] * 1e3:.1f} ms",
            "-" if err is None else f"{err:+.1%}",
            f"{r['compute_s'] * 1e3:.0f} ms",
            f"{(r['compress_s'] + r['decompress_s']) * 1e3:.0f} ms",
            f"{r['sent_bytes'] / 1e6:.2f} MB", "link" if link_bound(r) else "CPU",
        )  # fmt: skip
    console.print(t)
    for f in cal.links:
        console.print(
            f"calibration {f.nominal_bandwidth_bytes_per_s * 8 / 1e6 if f.nominal_bandwidth_bytes_per_s else 0:g}"
            f" Mbit/s: alpha {f.alpha_s * 1e6:.0f} us, efficiency "
            f"{(f.efficiency or 0):.1%}"
        )
    for name, es in (("link-bound cases", link_errs), ("all cases", errs)):
        if es:
            console.print(
                f"{name}: median |error| {statistics.median(es):.1%}, worst {max(es):.1%} "
                f"over {len(es)} (goal: median <= 10 %, worst <= 20 %)"
            )
    console.print(f"{elapsed:.0f} s")
    for n in dict.fromkeys(notes):
        console.print(f"note: {n}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fidelity.json").write_text(json.dumps({
            "rows": rows, "notes": notes, "mode": mode,
            "calibration": json.loads(cal.model_dump_json()),
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
