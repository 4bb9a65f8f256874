"""Compressor study: RS-DGC (``nsi``) against dense, the sparsifiers, PowerSGD and the
quantizers, bytes per worker and held-out accuracy side by side.

Every method trains ``cnn_small`` with 4 virtual workers (``rsdgc_sim.train.train_virtual``,
data from ``rsdgc_sim.train.load_dataset``) for the same steps on the same shards from the
same seeds; the held-out accuracy after the last step and the bytes one worker sends per
compressed step are reported per data set as mean and min-max over the seeds.

The methods (``--set study``, the default): ``none`` (dense), ``topk``, ``dgc``, ``nsi``
(default score), ``randomk``, all at ``--density``; ``powersgd`` (torch's PowerSGD, its
defaults except the rank); ``qsgd``, ``terngrad``, ``efsignsgd`` (their defaults).

**Equal bytes for the sparsifiers**: every sparsifier runs at ``density`` with the same
dense-layer rule, the one DGC's reference code uses: 1-D tensors (biases, norm layers)
dense, every weight matrix and convolution kernel compressed, whatever its size
(``dense_1d: true, min_numel: 0``); they differ only in *which* elements they send (NSI's
layer-wise allocation shares the same total per DDP bucket).

**PowerSGD at NSI's bytes**: its rank is the one whose wire bytes (torch's rule,
``rsdgc_sim.compress.powersgd.wire_bytes``) come closest to what ``nsi`` sends per worker
and compressed step (``rank_for_bytes``; ties: the smaller rank). NSI's bytes are measured
by a 4-step ``nsi`` run per data set before the study starts (they do not depend on the
seed); the rank is printed, and shown in the table.

**The quantizers** send every tensor (no density): their bytes are fixed by the bits per
element (qsgd 6 at 16 levels, terngrad 2, efsignsgd 1), so they are compared at their own
bytes, shown in the same column.

**Sized for one core**: the full run (2 data sets x 3 seeds x 9 methods = 54 runs, 200 steps
of 16 samples per worker at 16 px, 4,000 synthetic_rs images) took 14.2 min with
``--jobs 1`` on one core of a 2-core AMD EPYC VM shared with other work (load average 2 to
5; 6 to 39 s a run, the quantizers' packing the slowest), under a 25 min budget for one
core. 300 steps would take about 21 min there: too close to it on a busy machine.

    python benchmarks/compressor_study.py --jobs 1          # full: 2 data sets x 3 seeds
    python benchmarks/compressor_study.py --seeds 0 --steps 60 --datasets synthetic_rs  # quick
    python benchmarks/compressor_study.py --set nsi         # the NSI score ablation

``--set nsi`` is the NSI score ablation (``benchmarks/nsi_ablation.py`` runs it): dense,
top-k, DGC and NSI's scores at top-k's bytes, compared with top-k.

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
#: the method each set compares with (the "vs" and "x" columns)
REFERENCE = {"study": "nsi", "nsi": "topk"}
#: steps of the run that measures NSI's bytes (2 dense, then compressed ones)
BYTES_PROBE_STEPS = 4


def methods(density: float, which: str = "study") -> dict[str, dict]:
    """label -> compressor spec (``{"name": ..., **params}``) of the set ``which``;
    ``powersgd``'s rank is filled in per data set (:func:`powersgd_rank`)."""
    s = {"density": density, **RULE}
    nsi = {"name": "nsi", **s}
    if which == "study":
        return {
            "none": {"name": "none"},
            "topk": {"name": "topk", **s},
            "dgc": {"name": "dgc", **s},
            "nsi": nsi,
            "randomk": {"name": "randomk", **s},
            "powersgd": {"name": "powersgd"},
            "qsgd": {"name": "qsgd"},
            "terngrad": {"name": "terngrad"},
            "efsignsgd": {"name": "efsignsgd"},
        }
    if which == "nsi":
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
        }
    raise ValueError(f"unknown method set {which!r}; choose from {', '.join(REFERENCE)}")


@functools.cache
def _data(dataset: str, size: int, samples: int, seed: int):
    from rsdgc_sim.train import load_dataset

    return load_dataset(dataset, CLASSES[dataset], size, samples, seed)


def _train(dataset: str, spec: dict, seed: int, args: dict, steps: int, label: str):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from rsdgc_sim.train import train_virtual

    torch.set_num_threads(1)
    data = _data(dataset, args["size"], args["samples"], seed)
    return train_virtual(MODEL, CLASSES[dataset], args["size"], spec, WORKERS, args["batch"],
                         steps, data, lr=args["lr"], seed=seed, label=label)


def run_one(dataset: str, label: str, spec: dict, seed: int, args: dict) -> dict:
    """One training run; the row of the JSON output."""
    res = _train(dataset, spec, seed, args, args["steps"], label)
    return {"dataset": dataset, "method": label, "seed": seed, "spec": spec,
            "accuracy": res.final_accuracy, "bytes_per_worker_step": res.bytes_sent_per_worker,
            "wall_s": res.wall_s}


def powersgd_rank(dataset: str, nsi_spec: dict, args: dict) -> tuple[int, float, int]:
    """(rank, NSI's bytes, PowerSGD's bytes at that rank) for ``dataset``'s model: the rank
    whose wire bytes come closest to what ``nsi_spec`` sends per worker and compressed step,
    measured by a short run."""
    from rsdgc_sim.compress.powersgd import rank_for_bytes, wire_bytes
    from rsdgc_sim.models import create

    target = _train(dataset, nsi_spec, 0, args, BYTES_PROBE_STEPS, "nsi").bytes_sent_per_worker
    model = create(MODEL, num_classes=CLASSES[dataset], input_size=args["size"], device="meta")
    shapes = [tuple(p.shape) for p in model.parameters()]
    rank = rank_for_bytes(shapes, target)
    return rank, target, wire_bytes(shapes, rank)


def display(label: str, spec: dict) -> str:
    """The method's name in the table (PowerSGD with its rank)."""
    return f"{label} rank {spec['rank']}" if spec.get("name") == "powersgd" and "rank" in spec else label


def summarize(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """(dataset, method) -> accuracy mean, min, max and mean bytes over the seeds."""
    out: dict[tuple[str, str], dict] = {}
    for key in dict.fromkeys((r["dataset"], r["method"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["method"]) == key]
        acc = [r["accuracy"] for r in mine]
        out[key] = {"mean": statistics.fmean(acc), "min": min(acc), "max": max(acc),
                    "bytes": statistics.fmean(r["bytes_per_worker_step"] for r in mine),
                    "seeds": len(acc), "name": display(key[1], mine[0]["spec"])}
    return out


def table(summary: dict, datasets: list[str], labels: list[str], title: str,
          ref: str) -> Table:
    """The study's table: per data set and method, accuracy (mean, min-max, difference from
    dense and from ``ref``) and bytes per worker and compressed step (and their ratio to
    ``ref``'s)."""
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("data set", "method", "accuracy", "min-max", "vs none", f"vs {ref}",
                "bytes/step", f"x {ref}"):
        t.add_column(col, justify="left" if col in ("data set", "method") else "right",
                     no_wrap=True)
    for ds in datasets:
        base, other = summary.get((ds, "none")), summary.get((ds, ref))
        for label in labels:
            s = summary.get((ds, label))
            if s is None:
                continue
            t.add_row(
                ds, s["name"], f"{s['mean']:.3f}", f"{s['min']:.3f}-{s['max']:.3f}",
                "" if base is None else f"{s['mean'] - base['mean']:+.3f}",
                "" if other is None else f"{s['mean'] - other['mean']:+.3f}",
                f"{s['bytes']:,.0f}",
                "" if other is None else f"{s['bytes'] / other['bytes']:.2f}",
            )
        t.add_section()
    return t


def main(argv=None, *, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="study", choices=list(REFERENCE),
                    help="study: the compressors side by side; nsi: NSI's scores (default: study)")
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
    ref = REFERENCE[args.set]
    if args.table:
        rows = json.loads(Path(args.table).read_text())
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        labels = list(dict.fromkeys(r["method"] for r in rows))
        seeds = ",".join(str(s) for s in dict.fromkeys(r["seed"] for r in rows))
        ref = ref if ref in labels else labels[0]
        Console(width=100).print(table(summarize(rows), datasets, labels,
                                       f"{args.table}: seeds {seeds}; held-out accuracy", ref))
        return 0
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in CLASSES]
    if unknown:
        ap.error(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(CLASSES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    all_methods = methods(args.density, args.set)
    labels = [m.strip() for m in args.methods.split(",") if m.strip()] or list(all_methods)
    unknown = [m for m in labels if m not in all_methods]
    if unknown:
        ap.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(all_methods)}")
    common = {"steps": args.steps, "batch": args.batch, "size": args.size,
              "samples": args.samples, "lr": args.lr}
    t0 = time.perf_counter()
    specs = {ds: dict(all_methods) for ds in datasets}
    if "powersgd" in labels:
        for ds in datasets:
            rank, target, sent = powersgd_rank(ds, all_methods["nsi"], common)
            specs[ds]["powersgd"] = {**all_methods["powersgd"], "rank": rank}
            print(f"{ds}: nsi sends {target:,.0f} B/worker/step; powersgd rank {rank} sends "
                  f"{sent:,} B (the closest rank)", flush=True)
    tasks = [(ds, m, specs[ds][m], s, common) for ds in datasets for s in seeds for m in labels]
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
    # rows in the table's order, whatever finished first
    rows.sort(key=lambda r: (datasets.index(r["dataset"]), labels.index(r["method"]), r["seed"]))
    title = (f"{MODEL}, {WORKERS} virtual workers, density {args.density}, {args.steps} steps x "
             f"{args.batch}/worker, {args.size} px, seeds {args.seeds}; held-out accuracy, bytes "
             "one worker sends per compressed step")
    Console(width=100).print(table(summarize(rows), datasets, labels, title, ref))
    print(f"wall time {wall / 60:.1f} min ({len(tasks)} runs, {args.jobs} at a time) on "
          f"{cpu_model()}, {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
