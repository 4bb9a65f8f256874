"""How close the roofline estimate (rsdgc_sim.profile.estimate) comes to a measured profile.

On this machine's CPU: measure real profiles (rsdgc_sim.profile.measure.measure_profile,
2 warm-up and at least 5 timed iterations, at most 5 s per stage) of ``cnn_small``, ``resnet18`` and ``vgg11`` at small
sizes, estimate the same profiles for a CPU device model of this machine, and print per
model forward, backward, optimizer and, per compressor, compress / decompress / accumulate
(summed over tensors): measured, estimated, ratio (estimated / measured), and whether the
estimated wire bytes equal the measured payloads'.

The CPU device model's numbers are measured here first (say so in any report): peak FP32
FLOP/s from a 2048x2048 sgemm, memory bandwidth from a 128 MiB ``torch.add`` into an
existing tensor (read 2, write 1), the page-fault rate from the same add into a fresh
tensor, the per-op overhead from a loop of tiny in-place adds; efficiency 1.0, since these
are rates this machine reaches. Everything runs on ``--threads`` threads (default 1: on a
shared 2-core machine a second thread mostly measures the neighbours). Then prints what the
H100-SXM table entry predicts for the quickstart's question (rsdgc_sim/data/quickstart.yaml).

    python benchmarks/estimate_vs_measured.py            # the three models
    python benchmarks/estimate_vs_measured.py --quick    # cnn_small only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsdgc_sim.profile.device_models import DeviceModel, device_model  # noqa: E402
from rsdgc_sim.profile.estimate import estimate_profile  # noqa: E402
from rsdgc_sim.profile.measure import measure_profile  # noqa: E402
from rsdgc_sim.profile.schema import Profile  # noqa: E402

DENSITY = 0.01
COMPRESSORS = {
    "none": {"name": "none"},
    "fp16": {"name": "fp16"},
    "topk": {"name": "topk", "density": DENSITY},
    "randomk": {"name": "randomk", "density": DENSITY},
    "threshold": {"name": "threshold", "threshold": 0.0, "density": DENSITY},
    "dgc": {"name": "dgc", "density": DENSITY},
    "nsi": {"name": "nsi", "density": DENSITY, "kernel": 3},
}
#: (model, input size, batch): small enough for a 2-core CPU
CASES = [("cnn_small", 32, 8), ("resnet18", 64, 8), ("vgg11", 32, 8)]


def _best(fn, repeat: int = 5) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def this_cpu() -> tuple[DeviceModel, str]:
    """A device model of this machine from three quick measurements, and how it was made."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    flops = 2 * n**3 / _best(lambda: a @ b)
    m = 1 << 25
    x, y, z = torch.randn(m), torch.randn(m), torch.empty(m)
    t_out = _best(lambda: torch.add(x, y, out=z))
    bw = 12 * m / t_out
    fault = 4 * m / max(1e-9, _best(lambda: torch.add(x, y)) - t_out)
    s = torch.zeros(16)
    reps = 2000
    overhead = _best(lambda: [s.add_(1.0) for _ in range(reps)]) / reps
    cores = torch.get_num_threads()
    dev = device_model({"cpu": {
        "cores": cores, "gflops_per_core": flops / cores / 1e9, "memory_bandwidth": bw,
        "efficiency": 1.0, "op_overhead": overhead, "page_fault_bandwidth": fault,
        "name": "this CPU (measured)",
    }})
    how = (f"this CPU, {cores} thread(s): sgemm {flops / 1e9:.0f} GFLOP/s "
           f"({flops / cores / 1e9:.0f} per core; AVX-512 datasheet-style peak 2 FMA x 16 "
           f"lanes x 2 x 2.1 GHz = 134 per core), torch.add {bw / 1e9:.1f} GB/s, "
           f"page faults {fault / 1e9:.1f} GB/s, op overhead {overhead * 1e6:.1f} us, "
           f"efficiency 1.0")
    return dev, how


def _sums(p: Profile, label: str) -> tuple[float, float, float, int]:
    costs = p.devices[0].compression[label].values()
    return (sum(c.compress_s for c in costs), sum(c.decompress_s for c in costs),
            sum(c.accumulate_s for c in costs), sum(c.wire_bytes for c in costs))


def _row(name: str, meas: float, est: float, note: str = "") -> str:
    ratio = est / meas if meas > 0 else float("nan")
    return f"  {name:<24} {meas * 1e3:>10.3f} {est * 1e3:>10.3f} {ratio:>7.2f}  {note}"


def compare(model: str, size: int, batch: int, dev: DeviceModel,
            device: str = "cpu") -> list[float]:
    t0 = time.perf_counter()
    meas = measure_profile(model, 45, size, batch, device, COMPRESSORS, warmup=2,
                           min_iterations=5, budget_s=5.0)
    t1 = time.perf_counter()
    est = estimate_profile(model, 45, size, batch, COMPRESSORS, dev)
    t2 = time.perf_counter()
    m, e = meas.devices[0], est.devices[0]
    print(f"\n{model}, {size} px, batch {batch}, {meas.params:,} parameters in {len(meas.tensors)} "
          f"tensors (measured in {t1 - t0:.1f} s, estimated in {t2 - t1:.2f} s)")
    print(f"  {'quantity':<24} {'meas ms':>10} {'est ms':>10} {'est/meas':>7}  wire bytes")
    ratios = []
    for q in ("forward_s", "backward_s", "optimizer_s"):
        print(_row(q[:-2], getattr(m, q), getattr(e, q)))
        ratios.append(getattr(e, q) / getattr(m, q))
    for label in COMPRESSORS:
        mc, md, ma, mw = _sums(meas, label)
        ec, ed, ea, ew = _sums(est, label)
        same = "equal" if mw == ew else f"meas {mw:,} est {ew:,}"
        print(_row(f"{label} compress", mc, ec, same))
        print(_row(f"{label} decompress", md, ed))
        print(_row(f"{label} accumulate", ma, ea))
    return ratios


def quickstart_on_h100() -> None:
    from rsdgc_sim.scenario import load_scenario
    from rsdgc_sim.study.profiles import _profile_compressors

    sc = load_scenario()
    dev = device_model({"model": "H100-SXM"})
    m = sc.model
    t0 = time.perf_counter()
    p = estimate_profile(m.name, m.num_classes, m.input_size, sc.batch_size, _profile_compressors(sc), dev)
    d = p.devices[0]
    print(f"\nquickstart ({m.name}, {m.input_size} px, batch {sc.batch_size}) on {d.source} "
          f"(estimated in {time.perf_counter() - t0:.2f} s):")
    print(f"  forward {d.forward_s * 1e3:.3f} ms, backward {d.backward_s * 1e3:.3f} ms, "
          f"optimizer {d.optimizer_s * 1e3:.3f} ms")
    for label in d.compression:
        c, de, a, w = _sums(p, label)
        print(f"  {label:<28} compress {c * 1e3:7.3f} ms, decompress {de * 1e3:7.3f} ms, "
              f"accumulate {a * 1e3:7.3f} ms, {w:,} wire bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="cnn_small only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--device", default="cpu",
                    help="cpu (against a model of this CPU) or cuda (against --model)")
    ap.add_argument("--model", default="H100-SXM",
                    help="the device model to compare a CUDA measurement with")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.device == "cpu":
        dev, how = this_cpu()
    else:
        dev = device_model({"model": args.model})
        how = f"{dev.name} (table), measured on {torch.cuda.get_device_name(0)}"
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs (load {load:.2f}); device model: {how}")
    ratios = []
    for model, size, batch in CASES[:1] if args.quick else CASES:
        ratios += compare(model, size, batch, dev, args.device)
    print(f"\nmedian est/meas of forward, backward, optimizer: {statistics.median(ratios):.2f} "
          f"(the efficiency that would make it 1 is about {min(1.0, statistics.median(ratios)):.2f})")
    quickstart_on_h100()
    print(f"\nwall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
