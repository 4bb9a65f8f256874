"""Fidelity of the simulator against real DDP runs on emulated links: prediction and
composition, case by case.

For each model case (``cnn_small`` at 32x32, ``resnet18`` at 64x64 and at 32x32), ranks
(2, 4), link rate (50, 100, 400 Mbit/s) and compressor (``none``, ``topk``, ``nsi`` and
``dgc`` at density 0.01): real
DDP training through the compression hook over network namespaces shaped with tc tbf
(``rsdgc_sim.emulate``), beside two simulator numbers:

* ``prediction``: from what a user has *before* running: a profile measured alone in its
  own process with the threads and cores of one rank, and a calibration file measured
  before (links and compute-communication interference, with the model's backward);
* ``composition``: the same simulator fed with the run's own compute and compression.

A second table puts the profile's compression and decompression per iteration beside what
the hook paid in the run (its own timers, mean over ranks), for the sparse compressors.

Each case: the median and IQR of the measured iteration time over ``--iterations`` timed
iterations (ranks pinned to cores, warmed up); ``~`` marks a case whose spread (IQR /
median) exceeds its prediction error; ``*`` marks ranks x threads > cores (oversubscribed).
The headline covers the cases with ranks <= cores and a measured iteration >= 100 ms (the
issue's goal: prediction median |error| <= 10 %, worst <= 20 %; composition median <= 5 %,
worst <= 10 %); the other cases are printed and summarised on their own, never dropped.

Resumable: everything goes to ``--out`` (default ``out/fidelity``): one calibration file per
model, ``<model>/emulate.json`` rewritten after every point; a rerun skips what is there.
``--cases`` selects cases as ``MODEL[:RANKS[:MBIT]]`` (repeatable); ``--quick`` is
``cnn_small`` at 2 ranks, 100 and 400 Mbit/s. Run as root (namespaces and tc); without,
ranks run on unshaped loopback and the figures say nothing about the links.

    python benchmarks/fidelity.py [--quick] [--cases cnn_small:2:100 ...] [--out DIR]
    python benchmarks/fidelity.py --from-json DIR     # print the table of an earlier run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rsdgc_sim.calibration import Calibration, load_calibration, save_calibration
from rsdgc_sim.emulate.calibrate import InterferenceSpec, calibrate_links
from rsdgc_sim.emulate.cores import available_cores
from rsdgc_sim.emulate.orchestrate import emulate_scenario
from rsdgc_sim.scenario import scenario_from_dict

#: model case -> (model, input size, batch per rank)
MODELS = {"cnn_small": ("cnn_small", 32, 32), "resnet18": ("resnet18", 64, 16),
          "resnet18@32": ("resnet18", 32, 16)}
NUM_CLASSES = 45
WORKERS = [2, 4]
RATES_MBIT = [50.0, 100.0, 400.0]
COMPRESSORS = [
    {"name": "none"},
    {"name": "topk", "density": 0.01},
    {"name": "nsi", "density": 0.01},
    {"name": "dgc", "density": 0.01},
]
#: a rough iteration time per model on one core (s), for the duration estimate only
ROUGH_ITERATION_S = {"cnn_small": 0.15, "resnet18": 1.2, "resnet18@32": 0.35}
GOAL = {"prediction": (0.10, 0.20), "composition": (0.05, 0.10)}  # median, worst


#: the least timed iterations of each profile stage, the timed iterations per case and DDP's
#: overhead blocks: on this VM the speed swings by about 12 % over 10-30 s, so each number
#: is a median over 10-20 s (a profile stage stops at 6 iterations when they agree, which
#: takes 1-2 s: a median over one swing); the overhead's synchronised and ``no_sync`` blocks
#: alternate often enough that a swing falls on both
PROFILE_ITERATIONS = 30
ITERATIONS = 20
OVERHEAD = {"overhead_iterations": 4, "overhead_blocks": 8}


def scenario(case: str, workers: list[int], rates_mbit: list[float],
             profile_iterations: int = PROFILE_ITERATIONS):
    model, size, batch = MODELS[case]
    return scenario_from_dict(
        {
            "schema_version": 1,
            "name": f"fidelity-{case.replace('@', '-')}",
            "model": {"name": model, "num_classes": NUM_CLASSES, "input_size": size},
            "batch_size": batch,
            "device": "cpu",
            "profile": {"warmup": 2, "iterations": profile_iterations},
            "compressors": COMPRESSORS,
            "cluster": {
                "workers": workers,
                "bandwidth": [f"{r:g}Mbit/s" for r in rates_mbit],
                "latency": "0us",
            },
        },
        source="fidelity",
    )


def selection(args) -> dict[str, tuple[list[int], list[float]]]:
    """model -> (ranks, rates) to run, from ``--quick``, ``--models`` and ``--cases``."""
    if args.quick:
        return {"cnn_small": ([2], [100.0, 400.0])}
    if not args.cases:
        return {m: (WORKERS, RATES_MBIT) for m in args.models}
    out: dict[str, tuple[list[int], list[float]]] = {}
    for c in args.cases:
        parts = c.split(":")
        model = parts[0]
        if model not in MODELS or len(parts) > 3:
            raise SystemExit(f"--cases {c!r}: MODEL[:RANKS[:MBIT]] with MODEL in {list(MODELS)}")
        ranks = [int(parts[1])] if len(parts) > 1 else WORKERS
        rates = [float(parts[2])] if len(parts) > 2 else RATES_MBIT
        w, r = out.get(model, ([], []))
        out[model] = (sorted(set(w + ranks)), sorted(set(r + rates)))
    return out


def _params(case: str) -> int:
    from rsdgc_sim.models import count_parameters, create

    model, size, _ = MODELS[case]
    return count_parameters(create(model, num_classes=NUM_CLASSES, input_size=size, device="meta"))


def estimate_s(sel, iterations: int, profile_iterations: int = PROFILE_ITERATIONS) -> float:
    """A rough duration: per model a calibration (ping-pong and interference per rate,
    ~40 s each, and DDP's overhead once: ~10 s of start-up and its blocks of synchronised
    and ``no_sync`` iterations) and a profile (~20 s of start-up and warm-up, then at least
    ``profile_iterations`` of compute and of each compressor, each about an iteration);
    per point ~15 s of start-up; per case ``dense 2 + warm-up 2 + timed`` iterations of the
    model's rough compute time (times the ranks per core) plus, for ``none``, the ring
    all-reduce of the dense gradient at the link rate, and as many ``no_sync`` iterations
    of compute alone."""
    cores = len(available_cores())
    total = 0.0
    overhead_iterations = 3 + 2 * OVERHEAD["overhead_iterations"] * OVERHEAD["overhead_blocks"]
    for model, (ranks, rates) in sel.items():
        rough = ROUGH_ITERATION_S[model]
        total += 40 * len(rates) + 10 + overhead_iterations * rough
        total += 20 + (1 + len(COMPRESSORS)) * profile_iterations * rough
        dense_bytes = 4 * _params(model)
        for w in ranks:
            compute = ROUGH_ITERATION_S[model] * max(1.0, w / cores)
            for rate in rates:
                ring_s = 2 * (w - 1) / w * dense_bytes / (rate * 1e6 / 8)
                total += 15 + len(COMPRESSORS) * (4 + 2 * iterations) * compute
                total += (4 + iterations) * ring_s
    return total


def in_headline(r: dict) -> bool:
    """Cases the goal is about: ranks x threads <= cores and iterations >= 100 ms."""
    return not r["oversubscribed"] and r["measured_iteration_s"] >= 0.1


def row_goal(r: dict) -> str:
    """``met`` (prediction within 20 % and composition within 10 %), ``pred`` or ``comp``
    (only that one), ``missed``; ``oversub`` or ``<100ms``: not a headline case."""
    if r["oversubscribed"]:
        return "oversub"
    if r["measured_iteration_s"] < 0.1:
        return "<100ms"
    ok_p = r["prediction_error"] is not None and abs(r["prediction_error"]) <= GOAL["prediction"][1]
    ok_c = r["composition_error"] is not None and abs(r["composition_error"]) <= GOAL["composition"][1]
    return {(True, True): "met", (True, False): "pred", (False, True): "comp",
            (False, False): "missed"}[(ok_p, ok_c)]  # fmt: skip


def _pct(x) -> str:
    return "-" if x is None else f"{x:+.1%}"


def short(label: str) -> str:
    """``topk(density=0.01)`` -> ``topk .01``: the table fits 100 columns."""
    return label.replace("(density=0", " ").replace(")", "")


def table(rows: list[dict], mode: str) -> Table:
    from rich import box

    t = Table(title=f"fidelity ({platform.node()}, {len(available_cores())} cores, {mode}); "
                    "times in ms", box=box.SIMPLE_HEAD, padding=(0, 0))  # fmt: skip
    for col in ("model", "compressor", "ranks", "Mbit/s", "measured", "IQR", "predicted",
                "pred err", "comp err", "goal"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("model", "compressor", "goal") else "right",
                     no_wrap=True)
    for r in rows:
        t.add_row(
            r["model"], short(r["compressor"]),
            f"{r['workers']}{'*' if r['oversubscribed'] else ''}",
            f"{r['bandwidth_bytes_per_s'] * 8 / 1e6:g}",
            f"{r['measured_iteration_s'] * 1e3:.1f}", f"{r['measured_iqr_s'] * 1e3:.1f}",
            f"{r['predicted_iteration_s'] * 1e3:.1f}",
            _pct(r["prediction_error"]) + ("~" if r["spread_exceeds_error"] else ""),
            _pct(r["composition_error"]), row_goal(r),
        )  # fmt: skip
    return t


def _ratio(profiled, paid) -> str:
    return "-" if profiled is None or not paid else f"{profiled / paid - 1:+.0%}"


def _ranks(r: dict) -> str:
    return f"{r['workers']}{'*' if r['oversubscribed'] else ''}"


def cost_table(rows: list[dict]) -> Table:
    """Per sparse case, in ms per iteration: the profile's compression and decompression (at
    the case's ranks) beside what the hook paid in the run (host time, and its thread's CPU
    time: the host time stretches when backward or gloo's threads share the core), with the
    profile's error against each."""
    from rich import box

    t = Table(title="compression (comp) and decompression (dec) per iteration, ms: the profile "
                    "(prof) vs the hook in the run (host time, its thread's CPU time) and the "
                    "profile's error against each (h/c, %); p: ranks",
              box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for col in ("model", "method", "p", "Mb/s", "comp prof", "hook", "cpu", "err% h/c",
                "dec prof", "hook", "cpu", "err% h/c"):
        t.add_column(col.replace(" ", "\n"),
                     justify="left" if col in ("model", "method") else "right", no_wrap=True)
    for r in rows:
        if r["compressor"] == "none" or r.get("profiled_compress_s") is None:
            continue
        cells = []
        for what in ("compress", "decompress"):
            prof, host, cpu = r[f"profiled_{what}_s"], r[f"{what}_s"], r.get(f"{what}_cpu_s")
            cells += [f"{prof * 1e3:.1f}", f"{host * 1e3:.1f}",
                      "-" if cpu is None else f"{cpu * 1e3:.1f}",
                      f"{_ratio(prof, host).rstrip('%')}/{_ratio(prof, cpu).rstrip('%')}"]
        t.add_row(r["model"], short(r["compressor"]), _ranks(r),
                  f"{r['bandwidth_bytes_per_s'] * 8 / 1e6:g}", *cells)
    return t


def cost_summary(rows: list[dict]) -> list[str]:
    """Median and worst |profile / hook - 1| of compression and decompression over the
    headline sparse cases, against the hook's host time and its CPU time (goal: 15 %)."""
    rs = [r for r in rows if in_headline(r) and r["compressor"] != "none"
          and r.get("profiled_compress_s") is not None]
    if not rs:
        return ["profile vs hook: no headline sparse case"]
    out = []
    for paid, suffix in (("host time", "_s"), ("CPU time", "_cpu_s")):
        parts = []
        for what in ("compress", "decompress"):
            es = [abs(r[f"profiled_{what}_s"] / r[f"{what}{suffix}"] - 1) for r in rs
                  if r.get(f"{what}{suffix}")]
            if es:
                parts.append(f"{what} median {statistics.median(es):.1%}, worst {max(es):.1%}")
        out.append(f"profile vs hook {paid}, {len(rs)} headline sparse cases: "
                   + ("; ".join(parts) or "not recorded") + " (goal 15 %)")
    return out


def summary(rows: list[dict]) -> list[str]:
    """The interference factor per model and rate and DDP's overhead per model (both from
    the calibration), then the median and worst |error| of both errors over the headline
    cases, the others and all."""
    ks = {(r["model"], r["bandwidth_bytes_per_s"]): r["interference_factor"] for r in rows}
    out = ["interference k: " + ", ".join(f"{m} {bw * 8 / 1e6:g} Mbit/s {k:.2f}"
                                          for (m, bw), k in ks.items())]
    ovh = {r["model"]: r.get("sync_overhead_s", 0.0) for r in rows}
    out.append("DDP overhead per iteration: " + ", ".join(f"{m} {s * 1e3:.1f} ms"
                                                          for m, s in ovh.items()))
    groups = [("headline (ranks <= cores, >= 100 ms)", [r for r in rows if in_headline(r)]),
              ("other cases", [r for r in rows if not in_headline(r)]), ("all cases", rows)]
    for name, rs in groups:
        if not rs:
            continue
        parts = []
        for err in ("prediction", "composition"):
            es = [abs(r[f"{err}_error"]) for r in rs if r[f"{err}_error"] is not None]
            med, worst = statistics.median(es), max(es)
            gm, gw = GOAL[err]
            verdict = "met" if med <= gm and worst <= gw else "missed"
            parts.append(f"{err} median {med:.1%}, worst {worst:.1%}"
                         + (f" (goal {gm:.0%}/{gw:.0%}: {verdict})" if name.startswith("head") else ""))
        spread = sum(r["spread_exceeds_error"] for r in rs)
        out.append(f"{name}, {len(rs)} cases: " + "; ".join(parts)
                   + f"; spread > prediction error in {spread}")
        if name.startswith("head"):
            out.append("headline prediction |error| per compressor, median (worst): "
                       + per_compressor(rs))
    return out


def per_compressor(rows: list[dict]) -> str:
    """Each compressor's median and worst |prediction error| over ``rows``, and whether
    the median meets the goal."""
    by: dict[str, list[float]] = {}
    for r in rows:
        if r["prediction_error"] is not None:
            by.setdefault(short(r["compressor"]), []).append(abs(r["prediction_error"]))
    goal = GOAL["prediction"][0]
    return ", ".join(f"{c} {statistics.median(es):.1%} ({max(es):.1%})"
                     + ("" if statistics.median(es) <= goal else " missed")
                     for c, es in by.items())


def run(args, console: Console) -> tuple[list[dict], list[str], str]:
    say = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    sel = selection(args)
    console.print(f"about {estimate_s(sel, args.iterations, args.profile_iterations) / 60:.0f} "
                  f"min (rough; resumable)")
    args.out.mkdir(parents=True, exist_ok=True)
    rows, notes, mode = [], [], "netns"
    for model, (ranks, rates) in sel.items():
        name, size, batch = MODELS[model]
        cal_path = args.out / f"calibration-{model}.json"
        needed = {r * 1e6 / 8 for r in rates}
        cal: Calibration | None = load_calibration(cal_path) if cal_path.exists() else None
        have = {f.nominal_bandwidth_bytes_per_s for f in cal.links} if cal else set()
        if cal is None or not needed <= have:
            rates_all = sorted(needed | {h for h in have if h})
            cal = calibrate_links(rates_all, repeats=5, progress=say, interference=InterferenceSpec(
                model=name, num_classes=NUM_CLASSES, input_size=size, batch_size=batch,
                **OVERHEAD,
            ))  # fmt: skip
            save_calibration(cal, cal_path)
        rep = emulate_scenario(
            scenario(model, ranks, rates, args.profile_iterations), out_dir=args.out / model, iterations=args.iterations,
            warmup=2, calibration=cal, progress=say,
        )  # fmt: skip
        rows += [{"model": model, **c.__dict__} for c in rep.cases]
        notes += rep.notes
        mode = rep.mode
    return rows, notes, mode


def from_json(folder: Path) -> tuple[list[dict], list[str], str]:
    rows, notes, mode = [], [], "netns"
    for model in MODELS:
        f = folder / model / "emulate.json"
        if f.exists():
            d = json.loads(f.read_text())
            rows += [{"model": model, **c} for c in d["cases"]]
            notes += d["notes"]
            mode = d["mode"]
    return rows, notes, mode


def _positive(text: str) -> int:
    """argparse's type for a count of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is less than 1")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="cnn_small, 2 ranks, 100 and 400 Mbit/s")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--cases", action="append", default=[],
                    help="MODEL[:RANKS[:MBIT]], repeatable (e.g. resnet18:2:100)")
    ap.add_argument("--iterations", type=_positive, default=ITERATIONS,
                    help="timed iterations per case")
    ap.add_argument("--profile-iterations", type=_positive, default=PROFILE_ITERATIONS,
                    help="the least timed iterations of each profile stage")
    ap.add_argument("--out", type=Path, default=Path("out/fidelity"),
                    help="folder of the calibrations and emulate.json files (resumable)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="print the table of an earlier run's --out folder instead of running")
    args = ap.parse_args(argv)
    console = Console(width=100)
    t0 = time.time()
    if args.from_json is not None:
        rows, notes, mode = from_json(args.from_json)
        if not rows:
            ap.error(f"--from-json {args.from_json}: no <model>/emulate.json with cases there")
    else:
        rows, notes, mode = run(args, console)
    console.print(table(rows, mode))
    for line in summary(rows):
        console.print(line)
    console.print(cost_table(rows))
    for line in cost_summary(rows):
        console.print(line)
    console.print(f"{time.time() - t0:.0f} s; python benchmarks/fidelity.py "
                  + " ".join(argv if argv is not None else sys.argv[1:]))
    for n in dict.fromkeys(notes):
        console.print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
