"""What each compressor costs: median time after warm-up, and its ratio to exact
``torch.topk`` of the same k on the same tensor, measured in the same run.

Flat tensors (1M, 10M, 25M fp32 elements, viewed as near-square 2-D matrices so that NSI
windows apply) are compressed one at a time with ``compress``; the real per-layer gradients
of ``resnet50`` and ``vgg19`` (one backward pass on random data) are compressed as one
iteration with ``compress_many``, against ``torch.topk`` summed over the same tensors.

    python benchmarks/compressors.py            # full run
    python benchmarks/compressors.py --quick    # a short run
    python benchmarks/compressors.py --eager    # NSI score without torch.compile

Each compressor keeps one CompressorState across repeats (steady state: residuals exist,
``state.step()`` after each call). Calls are timed round-robin, one of each per round, and
the ratio is the median over rounds of (compressor time / torch.topk time in that round), so
that background load on a shared machine affects both sides alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rsdgc_sim.compress import CompressorState, create, set_compiled  # noqa: E402
from rsdgc_sim.compress.select import k_for  # noqa: E402
from rsdgc_sim.profile.devices import cpu_model  # noqa: E402

DENSITY = 0.01


def compressors(threshold: float) -> dict[str, dict]:
    """label -> create() arguments; every sparsifier at DENSITY, everything compressed."""
    s = {"density": DENSITY}
    return {
        "none": {"name": "none"},
        "fp16": {"name": "fp16"},
        "topk": {"name": "topk", **s},
        "randomk": {"name": "randomk", **s},
        "threshold": {"name": "threshold", "threshold": threshold, **s},
        "dgc": {"name": "dgc", **s},
        "nsi exact": {"name": "nsi", "selector": "exact", **s},
        "nsi sampled": {"name": "nsi", "selector": "sampled", **s},
        "nsi static exact": {"name": "nsi", "selector": "exact", "dynamic": False, **s},
        # the quantizers: compress is quantize + bit-pack (every element, no density)
        "qsgd": {"name": "qsgd"},
        "terngrad": {"name": "terngrad"},
        "efsignsgd": {"name": "efsignsgd"},
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flat_case(numel: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    rows = int(math.isqrt(numel))
    while numel % rows:
        rows -= 1
    return torch.randn(rows, numel // rows, generator=gen).to(device)


def model_grads(name: str, device: torch.device) -> dict[str, torch.Tensor]:
    from rsdgc_sim.models import create as create_model

    model = create_model(name, num_classes=45, input_size=64, seed=0, device=device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 64, 64, generator=gen).to(device)
    y = torch.randint(0, 45, (4,), generator=gen).to(device)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def topk_reference(tensors: dict[str, torch.Tensor]):
    ks = {n: k_for(t.numel(), DENSITY) for n, t in tensors.items()}

    def run():
        for n, t in tensors.items():
            torch.topk(t.reshape(-1).abs(), ks[n], sorted=False)

    return run


def bench_case(label, tensors, device, args, rows, threshold):
    """Time torch.topk and every compressor on ``tensors`` round-robin (one call of each per
    round, so that all see the same background load); report median times and the median
    over rounds of the ratio to torch.topk in the same round."""
    dense_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    numel = sum(t.numel() for t in tensors.values())
    ref_label = "torch.topk (reference)"
    runners = {ref_label: topk_reference(tensors)}
    outs: dict[str, dict] = {}
    single = len(tensors) == 1
    for clabel, spec in compressors(threshold).items():
        if args.only and clabel not in args.only:
            continue
        spec = dict(spec)
        comp = create(spec.pop("name"), **spec)
        state = CompressorState(seed=0)
        outs[clabel] = {}
        if single:
            ((name, t),) = tensors.items()

            def run(comp=comp, state=state, name=name, t=t, out=outs[clabel]):
                out[name] = comp.compress(name, t, state)
                state.step()
        else:

            def run(comp=comp, state=state, out=outs[clabel]):
                out.update(comp.compress_many(tensors, state))
                state.step()

        runners[clabel] = run
    for _ in range(args.warmup):
        for run in runners.values():
            run()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):
        for k, run in runners.items():
            sync(device)
            t0 = time.perf_counter()
            run()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    ref = times[ref_label]
    rows.append([label, numel, ref_label, statistics.median(ref), 1.0, None, None])
    for k, ts in times.items():
        if k == ref_label:
            continue
        ratio = statistics.median(t / r for t, r in zip(ts, ref, strict=True))
        wire = sum(p.wire_bytes for p in outs[k].values())
        t = statistics.median(ts)
        rows.append([label, numel, k, t, ratio, wire, dense_bytes / wire])
        print(f"  {label:>10} {k:<18} {t * 1e3:9.1f} ms  x{ratio:5.2f}", flush=True)


def machine() -> str:
    return (
        f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run: fewer sizes and repeats")
    ap.add_argument("--eager", action="store_true", help="NSI score without torch.compile")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default=None, help="flat tensor sizes (default 1e6,1e7,2.5e7)")
    ap.add_argument("--models", default=None, help="default resnet50,vgg19; '' for none")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated compressor labels")
    ap.add_argument("--json", default="", help="write the rows to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    if args.sizes is None:
        args.sizes = "1e6,2.5e7" if args.quick else "1e6,1e7,2.5e7"
    if args.models is None:
        args.models = "resnet50" if args.quick else "resnet50,vgg19"
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    device = torch.device(args.device)
    set_compiled(False if args.eager else True)
    gen = torch.Generator().manual_seed(0)
    rows: list[list] = []
    t0 = time.perf_counter()
    if not args.eager:  # compile once, outside every timing (dynamic shapes: all layers)
        create("nsi", min_numel=0).compress("warm", torch.randn(64, 64).to(device), CompressorState())
        print(f"torch.compile warm-up: {time.perf_counter() - t0:.1f} s", flush=True)
    for s in [float(x) for x in args.sizes.split(",") if x]:
        n = int(s)
        x = flat_case(n, device, gen)
        thr = float(torch.quantile(x.reshape(-1)[: 1 << 20].abs().float().cpu(), 1 - DENSITY))
        bench_case(f"{n / 1e6:g}M", {"x": x}, device, args, rows, thr)
        del x
    for m in [x for x in args.models.split(",") if x]:
        grads = model_grads(m, device)
        sample = torch.cat([g.reshape(-1)[:100_000].abs().cpu() for g in grads.values()])
        thr = float(torch.quantile(sample, 1 - DENSITY))
        bench_case(m, grads, device, args, rows, thr)
        del grads

    table = Table(title=f"Compressors at density {DENSITY} on {device} ({machine()})")
    for col in ("tensor", "elements", "compressor", "median ms", "x torch.topk", "wire MB", "compression"):
        table.add_column(col, justify="left" if col in ("tensor", "compressor") else "right")
    for label, numel, comp, t, ratio, wire, cr in rows:
        table.add_row(
            label,
            f"{numel / 1e6:.1f}M",
            comp,
            f"{t * 1e3:.1f}",
            f"{ratio:.2f}",
            "" if wire is None else f"{wire / 1e6:.2f}",
            "" if cr is None else f"{cr:.1f}x",
        )
    Console(width=160).print(table)
    print(f"compile: {'off (eager)' if args.eager else 'on'}; repeats {args.repeats}, "
          f"warm-up {args.warmup}; total {time.perf_counter() - t0:.0f} s")
    if args.json:
        keys = ["tensor", "elements", "compressor", "median_s", "ratio_to_topk", "wire_bytes",
                "compression"]
        Path(args.json).write_text(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
