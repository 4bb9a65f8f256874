"""What one rank runs (``python -m rsdgc_sim.emulate.worker SPEC.json``), started by
:func:`rsdgc_sim.emulate.launcher.launch` with the torch.distributed environment set.

Five tasks, chosen by the spec's ``task``:

* ``"train"``: for each compressor of the spec, real DDP training of the spec's model on
  synthetic data with the compression hook: warm-up, timed DDP iterations and the same
  iterations under ``no_sync``; optionally (``measure_profile``, off in ``emulate``) a
  Profile measured by every rank at once first. Writes per-iteration wall times, the
  hook's statistics, a small-allreduce latency probe and the profile when measured.
* ``"calibrate"``: point-to-point ping-pong between rank 0 and rank 1 for message sizes
  from a few bytes up, giving one-way times to fit alpha and beta;
* ``"interference"``: on every rank, backward of the spec's model alone, then while
  all-reduces of ``message_bytes`` run back to back on another thread, then alone again;
* ``"ddp_overhead"``: on every rank, real DDP training of the spec's model with a hook that
  does no work of its own (one all-gather of a few bytes per bucket, the bucket returned
  as it is), in blocks of synchronised iterations and the same iterations under
  ``no_sync``: what DDP's synchronised path adds to an iteration beyond compute when the
  collectives take (almost) no time;
* ``"profile"``: the Profile of the spec's model and compressors measured in this process
  alone (no process group), with the spec's threads and cores: what an emulated rank's
  compute costs, measured before the emulation.

A spec's ``cpus`` (one list of core ids per rank) pins each rank to its cores
(``os.sched_setaffinity``) before torch starts its threads.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from ..models import create as create_model
from .launcher import write_result


def _init(backend: str = "gloo", timeout_s: float = 120.0) -> None:
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def _no_buffer_sync() -> dict[str, bool]:
    """DDP keyword that stops the buffer broadcast at every forward (renamed in torch 2.13)."""
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


def run_train(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``train`` task on this rank: the profile (when ``measure_profile``), the
    small-allreduce latency probe, then per compressor its DDP case (:func:`_train_case`)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    seed = int(spec.get("seed", 0))
    ncls, size = int(spec["num_classes"]), int(spec["input_size"])
    batch = int(spec["batch_size"])
    out: dict[str, Any] = {"rank": rank, "world_size": world, "cases": {}}
    if spec.get("measure_profile", True):
        out["profile"] = _measure_profile(spec)
    out["small_allreduce_s"] = _small_allreduces(int(spec.get("latency_probes", 30)))

    gen = torch.Generator().manual_seed(seed * 7919 + rank)
    x = torch.randn(batch, 3, size, size, generator=gen)
    y = torch.randint(0, ncls, (batch,), generator=gen)
    first = spec.get("first_bucket_bytes")
    if first is not None and hasattr(dist, "_DEFAULT_FIRST_BUCKET_BYTES"):
        dist._DEFAULT_FIRST_BUCKET_BYTES = int(first)
    for c in spec["compressors"]:
        out["cases"][c["label"]] = _train_case(spec, c, x, y)
        dist.barrier()
    return out


def _measure_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's Profile measured on this rank's CPU, every rank at once (as JSON data)."""
    dist.barrier()
    return _profile_data(spec)


def _profile_data(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's model and compressors profiled here on the CPU, as JSON data."""
    from ..profile.measure import measure_profile  # lazy: imports pydantic

    compressors = {c["label"]: {"name": c["name"], **c.get("params", {})}
                   for c in spec["compressors"]}
    prof = measure_profile(
        spec["model"], int(spec["num_classes"]), int(spec["input_size"]),
        int(spec["batch_size"]), ["cpu"], compressors,
        warmup=int(spec.get("profile_warmup", 1)),
        min_iterations=int(spec.get("profile_iterations", 3)), budget_s=0.0,
        seed=int(spec.get("seed", 0)),
    )  # fmt: skip
    return json.loads(prof.model_dump_json())


def _small_allreduces(probes: int) -> list[float]:
    """Per-message latency at this rank count: the seconds of ``probes`` one-element
    allreduces (after 3 untimed), all ranks idle otherwise."""
    tiny = torch.zeros(1)
    small = []
    dist.barrier()
    for i in range(probes + 3):
        t0 = time.perf_counter()
        dist.all_reduce(tiny)
        if i >= 3:
            small.append(time.perf_counter() - t0)
    return small


def _train_case(spec: dict[str, Any], c: dict[str, Any], x: torch.Tensor, y: torch.Tensor
                ) -> dict[str, Any]:
    """Compressor ``c``'s case: a fresh seeded model in DDP with the compression hook,
    warmed up (DDP's bucket rebuild, the hook's dense iterations, then ``warmup``
    compressed ones), timed over ``iterations``, then the same iterations under
    ``no_sync``; per-iteration times and the hook's statistics per iteration."""
    from ..compress import create as create_compressor
    from ..ddp import make_comm_hook  # lazy: imports pydantic

    seed = int(spec.get("seed", 0))
    net = create_model(spec["model"], num_classes=int(spec["num_classes"]),
                       input_size=int(spec["input_size"]), seed=seed)
    net.train()
    # the buffer broadcast at every forward is not part of the simulated iteration
    cap_mb = float(spec.get("bucket_cap_bytes", 25 * 2**20)) / 2**20
    ddp = DDP(net, bucket_cap_mb=cap_mb, **_no_buffer_sync())
    comp = create_compressor(c["name"], **c.get("params", {}))
    low_rank = bool(getattr(comp, "low_rank", False))
    state, hook = make_comm_hook(
        c["name"], seed=seed, dense_iters=int(spec.get("dense_iters", 2)),
        # torch's PowerSGD hook always averages its dense iterations
        warmup_comm=low_rank or bool(spec.get("warmup_comm", True)), **c.get("params", {}),
    )  # fmt: skip
    view = _HookView(state, hook, low_rank)
    ddp.register_comm_hook(state, view.hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=float(spec.get("lr", 0.01)),
                          momentum=comp.optimizer_momentum(0.9))
    fwd: list[float] = []

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = F.cross_entropy(ddp(x), y)
        fwd.append(time.perf_counter() - t0)
        loss.backward()
        opt.step()

    # DDP's bucket rebuild and the dense warm-up of the hook, then compressed warm-up
    while view.iteration() < view.dense_iters:
        step()
    for _ in range(int(spec.get("warmup", 1))):
        step()
    view.stats.reset()
    dist.barrier()
    fwd.clear()
    iters = int(spec.get("iterations", 3))
    times = _timed_steps(step, iters)
    n = max(1, view.stats.iterations)
    stats = dataclasses.replace(view.stats)
    # the same iterations without communication (DDP's no_sync): compute as it runs
    # inside DDP on this host now, with DDP's own overheads and the CPU shared as it is
    dist.barrier()
    with ddp.no_sync():
        local = _timed_steps(step, iters, each=True)
    out = {
        "local_iteration_s": local,
        "iteration_s": times,
        "forward_s": fwd,
        **{k: getattr(stats, k) / n for k in (
            "compress_s", "decompress_s", "compress_cpu_s", "decompress_cpu_s", "sent_bytes",
            "payload_bytes", "buckets")},
    }
    if low_rank:  # not measurable around torch's hook (rsdgc_sim.ddp.powersgd_hook)
        out["decompress_s"] = out["decompress_cpu_s"] = None
    return out


class _HookView:
    """What a case reads of its hook, for either kind: our ``CompressionHookState``, or
    torch's ``PowerSGDState`` with the :class:`~rsdgc_sim.ddp.powersgd_hook.PowerSGDHook`
    that counts its statistics (torch's own hook, on NCCL, wrapped in one that does not
    reorder): the hook to register, the iteration, the dense iterations, the stats."""

    def __init__(self, state: Any, hook: Any, low_rank: bool):
        self.state, self.hook, self.low_rank = state, hook, low_rank
        if low_rank:
            from ..ddp.powersgd_hook import PowerSGDHook

            if not isinstance(hook, PowerSGDHook):
                self.hook = PowerSGDHook(in_order=False)
            self.stats = self.hook.stats
            self.dense_iters = int(state.start_powerSGD_iter)
        else:
            self.stats = state.stats
            self.dense_iters = int(state.dense_iters)

    def iteration(self) -> int:
        return int(self.state.iter if self.low_rank else self.state.iteration)


def _timed_steps(step, iters: int, each: bool = False) -> list[float]:
    """The seconds of ``iters`` calls of ``step``: back to back, from the end of one to
    the end of the next, or (``each``) each call timed alone."""
    times = []
    t_prev = time.perf_counter()
    for _ in range(iters):
        if each:
            t_prev = time.perf_counter()
        step()
        t = time.perf_counter()
        times.append(t - t_prev)
        t_prev = t
    return times


def run_calibrate(spec: dict[str, Any]) -> dict[str, Any]:
    """Message timing between ranks 0 and 1 (other ranks wait). For each size, the times of
    ``repeats`` rounds after one warm-up round (5x as many for messages up to 64 KiB, whose
    latency is noisy on a loaded host). ``mode``:

    * ``"allreduce"`` (default): a 2-rank allreduce of ``2 n`` bytes; a ring allreduce of
      two ranks is two steps that each send ``n`` bytes both ways at once, so half its time
      is the time of one ``n``-byte message with both directions of the link loaded, as in
      every ring collective, through the same transport code as training's collectives;
    * ``"exchange"``: both ranks ``isend``/``irecv`` to each other at once (gloo serializes
      the two directions of one pair here: about half the link rate);
    * ``"pingpong"``: rank 0 sends, rank 1 answers; half the round trip.

    Sizes grow by 4x from ``min_bytes`` until one message takes ``max_message_s`` or reaches
    ``max_bytes``, two sizes at least (the same decision on both ranks: rank 0 broadcasts
    it)."""
    rank = dist.get_rank()
    mode = spec.get("mode", "allreduce")
    if mode == "allreduce" and dist.get_world_size() != 2:
        raise ValueError("allreduce calibration needs exactly 2 ranks")
    size = int(spec.get("min_bytes", 4))
    max_bytes = int(spec.get("max_bytes", 64 * 2**20))
    max_s = float(spec.get("max_message_s", 0.3))
    repeats = int(spec.get("repeats", 5))
    samples = []
    while True:
        out = torch.zeros(max(1, size // 4) * (2 if mode == "allreduce" else 1))
        inp = torch.zeros_like(out)
        nbytes = max(1, size // 4) * 4
        times = []
        n_rep = repeats * 5 if nbytes <= 64 * 1024 else repeats
        for r in range(n_rep + 1):
            if rank > 1:
                continue
            peer = 1 - rank
            t0 = time.perf_counter()
            if mode == "allreduce":
                dist.all_reduce(out)
                dt = (time.perf_counter() - t0) / 2
            elif mode == "exchange":
                reqs = [dist.isend(out, peer), dist.irecv(inp, peer)]
                for q in reqs:
                    q.wait()
                dt = time.perf_counter() - t0
            elif rank == 0:
                dist.send(out, 1)
                dist.recv(inp, 1)
                dt = (time.perf_counter() - t0) / 2
            else:
                dist.recv(inp, 0)
                dist.send(out, 0)
                dt = 0.0
            if r > 0:
                times.append(dt)
        flag = torch.zeros(1)
        if rank == 0:
            med = _median(times)
            samples.append({"bytes": nbytes, "seconds": times, "median_s": med})
            # at least two sizes, whatever the first took: alpha and beta need both
            flag[0] = 1.0 if len(samples) >= 2 and (med >= max_s or nbytes * 4 > max_bytes) \
                else 0.0
        dist.broadcast(flag, 0)
        if flag.item() > 0:
            break
        size = nbytes * 4
    return {"rank": rank, "mode": mode, "samples": samples}


def _batch(spec: dict[str, Any], rank: int):
    seed = int(spec.get("seed", 0))
    gen = torch.Generator().manual_seed(seed * 7919 + rank)
    size, batch = int(spec["input_size"]), int(spec["batch_size"])
    x = torch.randn(batch, 3, size, size, generator=gen)
    y = torch.randint(0, int(spec["num_classes"]), (batch,), generator=gen)
    return x, y


def run_interference(spec: dict[str, Any]) -> dict[str, Any]:
    """Backward times of the spec's model on this rank: ``repeats`` alone, ``repeats`` while
    all-reduces of ``message_bytes`` run back to back on a second thread (on every rank at
    once, as in training), then ``repeats`` alone again. The communication thread stops after
    the all-reduce in which any rank's stop flag (its first element) is set, so every rank
    issues the same number of all-reduces."""
    rank = dist.get_rank()
    net = create_model(spec["model"], num_classes=int(spec["num_classes"]),
                       input_size=int(spec["input_size"]), seed=int(spec.get("seed", 0)))
    net.train()
    x, y = _batch(spec, rank)
    repeats = int(spec.get("repeats", 10))

    def backward_s() -> float:
        net.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        t0 = time.perf_counter()
        loss.backward()
        return time.perf_counter() - t0

    for _ in range(int(spec.get("warmup", 2))):
        backward_s()
    dist.barrier()
    alone = [backward_s() for _ in range(repeats)]
    buf = torch.zeros(max(1, int(spec["message_bytes"]) // 4))
    stop = threading.Event()
    count = [0]

    def communicate() -> None:
        while True:
            buf.zero_()
            buf[0] = 1.0 if stop.is_set() else 0.0
            dist.all_reduce(buf)
            count[0] += 1
            if buf[0].item() > 0:
                return

    dist.barrier()
    comm = threading.Thread(target=communicate, daemon=True)
    comm.start()
    time.sleep(float(spec.get("lead_s", 0.05)))  # the first all-reduce is under way
    during = [backward_s() for _ in range(repeats)]
    stop.set()
    comm.join()
    dist.barrier()
    alone += [backward_s() for _ in range(repeats)]
    return {"rank": rank, "alone_s": alone, "during_s": during, "allreduces": count[0]}


def _idle_hook(_state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """A communication hook that does no work of its own: one all-gather of 4 floats per
    bucket (so the bucket still waits for every rank), the bucket returned unchanged."""
    small = torch.zeros(4, device=bucket.buffer().device)
    gathered = torch.empty(4 * dist.get_world_size(), device=small.device)
    fut = dist.all_gather_into_tensor(gathered, small, async_op=True).get_future()
    buf = bucket.buffer()
    return fut.then(lambda _f: buf)


def run_ddp_overhead(spec: dict[str, Any]) -> dict[str, Any]:
    """Per-iteration wall times of DDP with :func:`_idle_hook`, synchronised and under
    ``no_sync``, in ``blocks`` alternating blocks of ``iterations`` (so that a drift of the
    machine's speed falls on both), after ``warmup`` iterations (DDP's bucket rebuild
    included)."""
    net = create_model(spec["model"], num_classes=int(spec["num_classes"]),
                       input_size=int(spec["input_size"]), seed=int(spec.get("seed", 0)))
    net.train()
    ddp = DDP(net, **_no_buffer_sync())
    ddp.register_comm_hook(None, _idle_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    x, y = _batch(spec, dist.get_rank())

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        opt.step()

    for _ in range(int(spec.get("warmup", 3))):
        step()
    synced: list[float] = []
    local: list[float] = []
    iters = int(spec.get("iterations", 6))
    for _ in range(int(spec.get("blocks", 3))):
        dist.barrier()
        synced += _timed_steps(step, iters)
        dist.barrier()
        with ddp.no_sync():
            local += _timed_steps(step, iters, each=True)
    return {"rank": dist.get_rank(), "synced_s": synced, "local_s": local}


_idle_hook.__annotations__.update(_state=Any, bucket=dist.GradBucket,
                                  **{"return": torch.futures.Future[torch.Tensor]})


def run_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's Profile measured in this process, alone (see the module docstring)."""
    return {"rank": 0, "profile": _profile_data(spec)}


def pin(spec: dict[str, Any], rank: int) -> list[int] | None:
    """Pin this process to ``spec["cpus"][rank]`` (when given); the cores it runs on."""
    cpus = spec.get("cpus")
    if not cpus:
        return None
    mine = sorted(int(c) for c in cpus[rank % len(cpus)])
    os.sched_setaffinity(0, mine)
    return mine


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as f:
        spec = json.load(f)
    cpus = pin(spec, int(os.environ.get("RANK", "0")))
    threads = int(spec.get("threads", 1))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if spec["task"] == "profile":  # alone: no process group
        result = run_profile(spec)
        result.update(pid=os.getpid(), cpus=cpus, threads=threads)
        write_result(result)
        return 0
    _init(spec.get("backend", "gloo"), float(spec.get("collective_timeout_s", 300)))
    try:
        if spec["task"] == "train":
            result = run_train(spec)
        elif spec["task"] == "calibrate":
            result = run_calibrate(spec)
        elif spec["task"] == "interference":
            result = run_interference(spec)
        elif spec["task"] == "ddp_overhead":
            result = run_ddp_overhead(spec)
        else:
            raise ValueError(f"unknown task {spec['task']!r}")
        result.update(pid=os.getpid(), cpus=cpus, threads=threads)
        write_result(result)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
