"""Three candidates for the per-iteration cost that no measurement holds on the sparse path
(issue 17; docs/emulation.md, "What a hook's iteration costs"), each measured in one
process on one core with one torch thread, so that nothing but the candidate differs:

* ``copy-in``: DDP's copy of every gradient into its bucket's flat buffer, timed inside
  backward from post-accumulate-grad hooks (what the reducer does per gradient);
* ``inline``: backward with each bucket compressed inline as it completes (the profiler's
  and the hook's placement) minus the compression itself, against backward alone: what
  the hook's work costs the layers after it (cold caches);
* ``thread``: the receive side (:func:`rsdgc_sim.ddp.bucket_work.finish_receive`) run on
  a second thread pinned to the same core while backward runs, against run after
  backward on the same thread: what sharing the core and the GIL costs.

Backward alone and the variants alternate, pair by pair; medians of ``--pairs`` pairs, in
ms. Every time is CPU time (the process's, or a thread's), so that another process taking
the core (a loaded machine) does not show up as a cost. Prints a table; asserts nothing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sparse_path_checks.py [--pairs 12]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import threading
import time

import torch
import torch.nn.functional as F

from rsdgc_sim.compress import create as create_compressor
from rsdgc_sim.compress.memory import CompressorState
from rsdgc_sim.ddp.bucket_work import finish_receive, prepare_send
from rsdgc_sim.models import create as create_model
from rsdgc_sim.profile.bucket_costs import _bucket_buffer, _capacity, _deliver, bucket_names

COMPRESSORS = ("topk", "nsi", "dgc")


class Case:
    """ResNet-18 at ``size`` px, batch ``batch``; DDP's default buckets."""

    def __init__(self, size: int, batch: int):
        self.net = create_model("resnet18", num_classes=45, input_size=size, seed=0)
        self.net.train()
        self.params = list(self.net.named_parameters())
        self.opt = torch.optim.SGD([p for _, p in self.params], lr=0.01, momentum=0.9)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, 3, size, size, generator=g)
        self.y = torch.randint(0, 45, (batch,), generator=g)
        order: list[str] = []
        hooks = [p.register_post_accumulate_grad_hook(lambda _p, n=n: order.append(n))
                 for n, p in self.params]
        F.cross_entropy(self.net(self.x), self.y).backward()
        for h in hooks:
            h.remove()
        ready = {n: i for i, n in enumerate(order)}
        names = [n for n, _ in self.params]
        self.buckets = bucket_names(names, [p.numel() * 4 for _, p in self.params], ready,
                                    1 << 20, 25 << 20)

    def backward(self, on_ready) -> float:
        """One step; ``on_ready(name, grad)`` per gradient; the backward's CPU time (the
        process's: every thread)."""
        self.opt.zero_grad(set_to_none=True)
        hooks = [p.register_post_accumulate_grad_hook(lambda p, n=n: on_ready(n, p.grad))
                 for n, p in self.params]
        loss = F.cross_entropy(self.net(self.x), self.y)
        t0 = time.process_time()
        loss.backward()
        dt = time.process_time() - t0
        for h in hooks:
            h.remove()
        self.opt.step()
        return dt


def copy_in(case: Case, pairs: int) -> dict[str, float]:
    bufs = {n: torch.empty(p.numel()) for n, p in case.params}
    spent = [0.0]

    def copy(n, g):
        t = time.thread_time()
        bufs[n].copy_(g.reshape(-1))
        spent[0] += time.thread_time() - t

    out = []
    for _ in range(pairs + 2):
        spent[0] = 0.0
        case.backward(copy)
        out.append(spent[0])
    return {"copy-in": statistics.median(out[2:])}


def _handing(case: Case, comp, state, cap, sink):
    """An ``on_ready`` that hands each complete bucket over in order (DDP's rule) and
    compresses it inline; the compression's thread time goes to ``sink``."""
    got: dict[str, torch.Tensor] = {}
    handed: list = []

    def on_ready(n, g):
        got[n] = g
        while len(handed) < len(case.buckets) and all(m in got for m in case.buckets[len(handed)]):
            b = len(handed)
            t = time.thread_time()
            buf, views = _bucket_buffer(got, case.buckets[b])
            send = prepare_send(comp, state, case.buckets[b], views, 2, cap)
            sink["compress"] += time.thread_time() - t
            handed.append((_deliver(send, 2, []), buf))
            if sink.get("queue") is not None:
                sink["queue"].put(handed[-1])

    return on_ready, handed


def inline_and_thread(case: Case, name: str, pairs: int) -> dict[str, float]:
    comp = create_compressor(name, density=0.01)
    state = CompressorState(seed=0)
    cap = _capacity(comp, state)
    q: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()

    def worker():
        while (item := q.get()) is not None:
            t = time.thread_time()
            finish_receive(item[0], comp, 2, item[1])
            done.put(time.thread_time() - t)

    threading.Thread(target=worker, daemon=True).start()
    rows: dict[str, list[float]] = {"inline": [], "serial": [], "thread": []}
    for i in range(pairs + 2):
        alone = case.backward(lambda _n, _g: None)
        for mode in ("serial", "thread"):
            sink = {"compress": 0.0, "queue": q if mode == "thread" else None}
            on_ready, handed = _handing(case, comp, state, cap, sink)
            backward = case.backward(on_ready)
            t0 = time.process_time()
            recv = 0.0
            for send, buf in handed:
                if mode == "serial":
                    t = time.thread_time()
                    finish_receive(send, comp, 2, buf)
                    recv += time.thread_time() - t
                else:
                    recv += done.get()
            total = backward + time.process_time() - t0  # backward, then the receive side
            state.step()
            if i >= 2:
                extra = total - alone - sink["compress"] - recv
                rows[mode].append(extra)
                if mode == "serial":
                    rows["inline"].append(extra)
    q.put(None)
    return {"inline": statistics.median(rows["inline"]),
            "thread": statistics.median(rows["thread"]) - statistics.median(rows["serial"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args(argv)
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    case = Case(args.input_size, args.batch)
    base = copy_in(case, args.pairs)
    print(f"resnet18 {args.input_size} px, batch {args.batch}, one core, one torch thread; "
          f"medians of {args.pairs} pairs, ms per iteration")
    print(f"{'check':<10}{'topk':>10}{'nsi':>10}{'dgc':>10}")
    print(f"{'copy-in':<10}" + f"{base['copy-in'] * 1e3:>10.1f}" * 1 + " (all: DDP's copy)")
    got = {c: inline_and_thread(case, c, args.pairs) for c in COMPRESSORS}
    for key in ("inline", "thread"):
        print(f"{key:<10}" + "".join(f"{got[c][key] * 1e3:>+10.1f}" for c in COMPRESSORS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
