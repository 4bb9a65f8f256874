"""Where a real DDP iteration with a compression hook spends its time, beside what the
profile says: the search for the per-iteration cost that no measurement held (issue 17).

Two gloo ranks on loopback (no shaping: the network is fast, so what is left is the cost
on the ranks themselves), each pinned to its own core with one torch thread, train the same
model with each compressor. Per compressor and iteration, rank 0 records:

* ``fwd``, ``bwd``, ``opt``: forward, ``loss.backward()`` (which returns only when every
  bucket's future has completed and DDP has copied the averaged buckets back into the
  gradients) and the optimizer step, with the hook;
* ``bwd alone``: backward under DDP's ``no_sync`` (the compute the simulator's composition
  takes, without the buckets' copy-in and copy-out);
* ``body``: the hook bodies (compression, packing, issuing the collectives), ``callbacks``:
  the futures' callbacks (unpacking, writing the averaged bucket), both from the hook's own
  timers (:class:`rsdgc_sim.ddp.HookStats`), and ``tail``: from the end of the last callback
  to the return of ``backward`` (DDP finalising: the copy of the buckets into ``.grad``);
* ``body cpu``, ``callbacks cpu``: the same parts' CPU time on their thread (the host time
  stretches when backward, a callback or gloo's threads share the core);
* ``extra``: ``bwd - bwd alone - body - callbacks - tail``: backward time that none of the
  others explains (compute slowed by the hook's work between its layers, the callbacks'
  thread scheduling, Python between buckets);
* the profile's compression and decompression (at 2 ranks) measured alone before, in the
  same process, through the hook's per-bucket code (``rsdgc_sim.profile``).

All times are medians over ``--iterations`` timed iterations, in ms. Prints a table; asserts
nothing.

    python benchmarks/hook_breakdown.py [--model resnet18] [--input-size 32] [--batch 16]
                                        [--iterations 10] [--json FILE]
    python benchmarks/hook_breakdown.py --from-json FILE     # the table of an earlier run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

COMPRESSORS = [
    {"label": "none", "name": "none"},
    {"label": "topk .01", "name": "topk", "params": {"density": 0.01}},
    {"label": "nsi .01", "name": "nsi", "params": {"density": 0.01}},
    {"label": "dgc .01", "name": "dgc", "params": {"density": 0.01}},
]


def _median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3 if xs else float("nan")


def rank_main(spec: dict) -> dict:
    """One rank: profile alone (rank 0), then train each compressor with the hook, timing
    every part; returns the medians (rank 0) or nothing."""
    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[rank % len(cores)]})
    torch.set_num_threads(1)
    model, size, batch = spec["model"], spec["input_size"], spec["batch"]
    out: dict = {"cases": {}}
    if rank == 0:
        from rsdgc_sim.profile.measure import measure_profile

        specs = {c["label"]: {"name": c["name"], **c.get("params", {})} for c in COMPRESSORS}
        prof = measure_profile(model, 45, size, batch, ["cpu"], specs, warmup=2, min_iterations=5)
        dev = prof.devices[0]
        out["profile"] = {
            label: {"compress": sum(c.compress_s for c in costs.values()),
                    "decompress": sum(c.decompress_s + (c.accumulate_s if c.sparse else 0.0)
                                      for c in costs.values())}
            for label, costs in dev.compression.items()}
        out["profile_compute"] = dev.forward_s + dev.backward_s + dev.optimizer_s
    dist.init_process_group("gloo")
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(batch, 3, size, size, generator=gen)
    y = torch.randint(0, 45, (batch,), generator=gen)
    for c in COMPRESSORS:
        out["cases"][c["label"]] = _case(c, spec, x, y)
    dist.destroy_process_group()
    return out


def _case(c: dict, spec: dict, x, y) -> dict[str, float]:
    """One compressor on this rank: the medians of every part (see the module doc), in ms."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.ddp import compression_hook, make_comm_hook
    from rsdgc_sim.models import create

    model, size, iters = spec["model"], spec["input_size"], spec["iterations"]
    ddp = DDP(create(model, num_classes=45, input_size=size, seed=0), broadcast_buffers=False)
    state, _ = make_comm_hook(c["name"], **c.get("params", {}))
    ends: list[float] = []

    def hook(st, bucket):
        return compression_hook(st, bucket).then(
            lambda f: (ends.append(time.perf_counter()), f.value())[1])

    hook.__annotations__.update(compression_hook.__annotations__)
    ddp.register_comm_hook(state, hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01,
                          momentum=state.compressor.optimizer_momentum(0.9))
    rows: dict[str, list[float]] = {k: [] for k in ("fwd", "bwd", "opt", "body", "callbacks",
                                                      "tail", "body cpu", "callbacks cpu")}
    st = state.stats

    def step(record: bool) -> None:
        opt.zero_grad(set_to_none=True)
        ends.clear()
        before = (st.compress_s, st.decompress_s, st.compress_cpu_s, st.decompress_cpu_s)
        t0 = time.perf_counter()
        loss = F.cross_entropy(ddp(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if record:
            after = (st.compress_s, st.decompress_s, st.compress_cpu_s, st.decompress_cpu_s)
            for k, v in zip(("body", "callbacks", "body cpu", "callbacks cpu"),
                            (a - b for a, b in zip(after, before, strict=True)), strict=True):
                rows[k].append(v)
            rows["fwd"].append(t1 - t0)
            rows["bwd"].append(t2 - t1)
            rows["opt"].append(t3 - t2)
            rows["tail"].append(t2 - max(ends) if ends else 0.0)

    for _ in range(state.dense_iters + 2):
        step(False)
    dist.barrier()
    for _ in range(iters):
        step(True)
    alone = []
    dist.barrier()
    with ddp.no_sync():
        for _ in range(iters):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(ddp(x), y)
            t = time.perf_counter()
            loss.backward()
            alone.append(time.perf_counter() - t)
    rows["bwd alone"] = alone
    dist.barrier()
    return {k: _median_ms(v) for k, v in rows.items()}


def table(result: dict, spec: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{spec['model']} {spec['input_size']} px, batch {spec['batch']}, 2 gloo "
                    "ranks on loopback, 1 core each; ms per iteration (medians); cb: the hook's "
                    "callbacks; prof: the profile",
              box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    cols = ("method", "fwd", "bwd", "bwd alone", "body", "body cpu", "cb", "cb cpu", "tail",
            "extra", "opt", "prof comp", "prof dec")
    for col in cols:
        t.add_column(col.replace(" ", "\n"), justify="left" if col == "method" else "right",
                     no_wrap=True)
    for label, r in result["cases"].items():
        extra = r["bwd"] - r["bwd alone"] - r["body"] - r["callbacks"] - r["tail"]
        p = result["profile"].get(label, {})
        t.add_row(label, *(f"{r[k]:.0f}" for k in ("fwd", "bwd", "bwd alone", "body", "body cpu",
                                                    "callbacks", "callbacks cpu", "tail")),
                  f"{extra:+.0f}", f"{r['opt']:.0f}", f"{p.get('compress', 0) * 1e3:.0f}",
                  f"{p.get('decompress', 0) * 1e3:.0f}")
    Console(width=100).print(t)


def main(argv: list[str] | None = None) -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--from-json":
        data = json.loads(Path(sys.argv[2]).read_text())
        table(data, data["spec"])
        return 0
    if len(sys.argv) > 2 and sys.argv[1] == "--rank":
        from rsdgc_sim.emulate.launcher import write_result

        write_result(rank_main(json.loads(sys.argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None, help="also write rank 0's numbers here")
    args = ap.parse_args(argv)
    from rsdgc_sim.emulate.launcher import launch

    spec = {"model": args.model, "input_size": args.input_size, "batch": args.batch,
            "iterations": args.iterations}
    t0 = time.time()
    results = launch([sys.executable, str(Path(__file__).resolve()), "--rank", json.dumps(spec)], 2,
                     env={"OMP_NUM_THREADS": "1"}, timeout_s=1800)
    if args.json is not None:
        args.json.write_text(json.dumps({"spec": spec, **results[0]}, indent=1))
    table(results[0], spec)
    print(f"{time.time() - t0:.0f} s; python benchmarks/hook_breakdown.py "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
