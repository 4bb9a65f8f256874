"""NSI ablation: which score makes RS-DGC (``nsi``) train best, against dense, top-k and DGC
at equal wire bytes.

Every method trains ``cnn_small`` with 4 virtual workers (``rsdgc_sim.train.train_virtual``,
data from ``rsdgc_sim.train.load_dataset``) for the same steps on the same shards from the
same seeds; the held-out accuracy after the last step and the bytes one worker sends per
compressed step are reported per data set as mean and min-max over the seeds.

**Equal bytes**: every sparsifier runs at ``density`` with the same dense-layer rule, the
one DGC's reference code uses: 1-D tensors (biases, norm layers) dense, every weight matrix
and convolution kernel compressed, whatever its size (``dense_1d: true, min_numel: 0``). NSI's
old default also sent tensors under 1000 elements dense, which in ``cnn_small`` (first
convolution 432 elements, classifier 640) made it send about 3.5x top-k's bytes; with one
rule for all, the methods differ only in *which* elements they send, and the table's bytes
column shows that they send the same number (NSI's layer-wise allocation shares the same
total per DDP bucket).

    python benchmarks/nsi_ablation.py                      # full: 2 data sets x 3 seeds
    python benchmarks/nsi_ablation.py --seeds 0 --steps 60 --datasets synthetic   # quick
    python benchmarks/nsi_ablation.py --jobs 2             # two runs at a time

Accuracy, not time, is measured: it can run beside other work.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rsdgc_sim.profile.devices import cpu_model  # noqa: E402
from rsdgc_sim.progress import Eta  # noqa: E402

DENSITY = 0.01
WORKERS = 4
MODEL = "cnn_small"
#: classes per data set (fashion_mnist has 10, synthetic_rs 8)
CLASSES = {"fashion_mnist": 10, "synthetic_rs": 8, "synthetic": 10}
#: the dense-layer rule every sparsifier shares (see the module docstring)
RULE = {"min_numel": 0, "dense_1d": True}


def methods(density: float) -> dict[str, dict]:
    """label -> compressor spec (``{"name": ..., **params}``)."""
    s = {"density": density, **RULE}
    nsi = {"name": "nsi", **s}
    return {
        "none": {"name": "none"},
        "topk": {"name": "topk", **s},
        "dgc": {"name": "dgc", **s},
        "nsi mean_std": {**nsi, "statistic": "mean_std"},
        "nsi mean_abs": {**nsi, "statistic": "mean_abs"},
        "nsi snr": {**nsi, "statistic": "snr"},
        "nsi abs_plus_mean": {**nsi, "statistic": "abs_plus_mean"},
        "nsi abs_times_mean": {**nsi, "statistic": "abs_times_mean"},
        "nsi abs_plus_mean static": {**nsi, "statistic": "abs_plus_mean", "dynamic": False},
        "nsi abs_times_mean static": {**nsi, "statistic": "abs_times_mean", "dynamic": False},
        # the quantizers send every tensor (no density): their bytes are fixed by the bits
        "qsgd": {"name": "qsgd"},
        "terngrad": {"name": "terngrad"},
        "efsignsgd": {"name": "efsignsgd"},
    }


@functools.cache
def _data(dataset: str, size: int, samples: int, seed: int):
    from rsdgc_sim.train import load_dataset

    return load_dataset(dataset, CLASSES[dataset], size, samples, seed)


def run_one(dataset: str, label: str, spec: dict, seed: int, args: dict) -> dict:
    """One training run; the row of the JSON output."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from rsdgc_sim.train import train_virtual

    torch.set_num_threads(1)
    data = _data(dataset, args["size"], args["samples"], seed)
    res = train_virtual(MODEL, CLASSES[dataset], args["size"], spec, WORKERS, args["batch"],
                        args["steps"], data, lr=args["lr"], seed=seed, label=label)
    return {"dataset": dataset, "method": label, "seed": seed, "spec": spec,
            "accuracy": res.final_accuracy, "bytes_per_worker_step": res.bytes_sent_per_worker,
            "wall_s": res.wall_s}


def summarize(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """(dataset, method) -> accuracy mean, min, max and mean bytes over the seeds."""
    out: dict[tuple[str, str], dict] = {}
    for key in dict.fromkeys((r["dataset"], r["method"]) for r in rows):
        acc = [r["accuracy"] for r in rows if (r["dataset"], r["method"]) == key]
        sent = [r["bytes_per_worker_step"] for r in rows if (r["dataset"], r["method"]) == key]
        out[key] = {"mean": statistics.fmean(acc), "min": min(acc), "max": max(acc),
                    "bytes": statistics.fmean(sent), "seeds": len(acc)}
    return out


def table(summary: dict, datasets: list[str], labels: list[str], title: str) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("data set", "method", "accuracy", "min-max", "vs topk", "bytes/step",
                "x topk"):
        t.add_column(col, justify="left" if col in ("data set", "method") else "right",
                     no_wrap=True)
    for ds in datasets:
        ref = summary.get((ds, "topk"))
        for label in labels:
            s = summary.get((ds, label))
            if s is None:
                continue
            t.add_row(
                ds, label, f"{s['mean']:.3f}", f"{s['min']:.3f}-{s['max']:.3f}",
                "" if ref is None else f"{s['mean'] - ref['mean']:+.3f}",
                f"{s['bytes']:,.0f}",
                "" if ref is None else f"{s['bytes'] / ref['bytes']:.2f}",
            )
        t.add_section()
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="fashion_mnist,synthetic_rs",
                    help=f"comma-separated, of: {', '.join(CLASSES)}")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16, help="samples per worker per step")
    ap.add_argument("--size", type=int, default=16, help="input size in pixels")
    ap.add_argument("--samples", type=int, default=4000, help="synthetic data sets' size")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--density", type=float, default=DENSITY)
    ap.add_argument("--methods", default="", help="comma-separated labels (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (processes)")
    ap.add_argument("--json", default="", help="write every run's row to this file")
    ap.add_argument("--table", default="", metavar="JSON",
                    help="print the table of a JSON file written by --json, run nothing")
    args = ap.parse_args(argv)
    if args.table:
        rows = json.loads(Path(args.table).read_text())
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        labels = list(dict.fromkeys(r["method"] for r in rows))
        seeds = ",".join(str(s) for s in dict.fromkeys(r["seed"] for r in rows))
        Console(width=100).print(table(summarize(rows), datasets, labels,
                                       f"{args.table}: seeds {seeds}; held-out accuracy"))
        return 0
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in CLASSES]
    if unknown:
        ap.error(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(CLASSES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    all_methods = methods(args.density)
    labels = [m.strip() for m in args.methods.split(",") if m.strip()] or list(all_methods)
    unknown = [m for m in labels if m not in all_methods]
    if unknown:
        ap.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(all_methods)}")
    common = {"steps": args.steps, "batch": args.batch, "size": args.size,
              "samples": args.samples, "lr": args.lr}
    tasks = [(ds, m, all_methods[m], s, common) for ds in datasets for s in seeds for m in labels]
    t0 = time.perf_counter()
    eta = Eta(len(tasks))
    rows: list[dict] = []

    def done(row: dict) -> None:
        rows.append(row)
        print(f"{eta.update(len(rows))}: {row['dataset']} {row['method']} seed {row['seed']}: "
              f"accuracy {row['accuracy']:.3f}, {row['bytes_per_worker_step']:,.0f} B/worker/step "
              f"({row['wall_s']:.0f} s)", flush=True)

    print(f"{len(tasks)} runs: {MODEL}, {WORKERS} workers, {args.steps} steps x {args.batch}, "
          f"{args.size} px, density {args.density}, {args.jobs} at a time", flush=True)
    if args.jobs <= 1:
        for task in tasks:
            done(run_one(*task))
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(run_one, *t) for t in tasks]):
                done(fut.result())
    wall = time.perf_counter() - t0
    title = (f"{MODEL}, {WORKERS} virtual workers, density {args.density}, {args.steps} steps x "
             f"{args.batch}/worker, {args.size} px, seeds {args.seeds}; held-out accuracy, bytes "
             "one worker sends per compressed step")
    Console(width=100).print(table(summarize(rows), datasets, labels, title))
    print(f"wall time {wall / 60:.1f} min ({len(tasks)} runs, {args.jobs} at a time) on "
          f"{cpu_model()}, {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
