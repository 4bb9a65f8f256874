"""DDP communication hooks that apply any rsdgc-sim compressor, for
``DistributedDataParallel.register_comm_hook``.

>>> state, hook = make_comm_hook("nsi", density=0.01)          # doctest: +SKIP
>>> ddp_model.register_comm_hook(state, hook)                   # doctest: +SKIP

Per bucket, as DDP hands it over when its last gradient is ready:

1. **Warm-up** (the first ``dense_iters`` iterations, at least 2): the bucket is averaged
   with one dense allreduce, exactly as DDP does without a hook. Iteration 0 runs on DDP's
   initial buckets, which DDP rebuilds in gradient-ready order after it; state keyed by
   bucket index is only meaningful from then on (as in PyTorch's ``PowerSGDState``).
2. **Compression**: every gradient in the bucket (``bucket.gradients()``, one view per
   parameter with the parameter's shape, so NSI sees conv/linear layers as 2-D) goes through
   ``compressor.compress_many`` with this rank's :class:`~rsdgc_sim.compress.CompressorState`
   (error feedback, momenta, schedules; tensors keyed ``"<bucket>/<position>"`` or by
   parameter name when ``model`` is given). Layer-wise schemes share the budget inside the
   bucket.
3. **Communication**, issued from the hook body: dense payloads (``none``, ``fp16``, the
   1-D tensors NSI sends dense) are concatenated and summed with one allreduce; sparse
   payloads are packed, per rank, into one byte buffer (a count per tensor, then int32
   indices, then values), padded to a capacity every rank agrees on, and exchanged with one
   fixed-size all-gather (gloo needs equal sizes). The capacity is the compressor's bound on
   the number of sent elements (k, see :func:`capacity_bound`) when it has one, else the
   largest count of any rank, exchanged first on a separate process group so that it never
   queues behind a transfer.
4. **Decompression** in the future's callback: every rank writes the summed dense parts
   and adds all ranks' (index, value) pairs with one ``index_add_``, divided by the world
   size, into the bucket buffer, so every rank ends with the same averaged gradient.

Works on gloo (CPU tensors) and NCCL (CUDA tensors): only ``all_reduce`` and
one flat all-gather (``all_gather_single``, formerly
``all_gather_into_tensor``) of contiguous tensors are used.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from ..compress.memory import CompressorState
from ..compress.payload import Payload
from ..errors import ConfigError

#: DDP rebuilds its buckets after iteration 0; compression starts at this iteration or later
MIN_DENSE_ITERS = 2

# all-gather into one flat tensor: ``all_gather_single`` from torch 2.13 on (which deprecates
# ``all_gather_into_tensor``), the older name before
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


@dataclass
class HookStats:
    """What the hook did, summed over the iterations since the last :meth:`reset`."""

    iterations: int = 0
    compressed_iterations: int = 0
    buckets: int = 0
    #: host time in the hook body of compressed buckets (compression, packing, issuing the
    #: collectives): the time backward is paused; on CUDA exact only with ``sync_timing``
    compress_s: float = 0.0
    #: host time in the futures' callbacks (unpacking, adding, averaging)
    decompress_s: float = 0.0
    #: bytes this rank put on the wire: allreduce input plus its all-gather share
    sent_bytes: int = 0
    #: bytes of the payloads themselves (sum of ``Payload.wire_bytes``)
    payload_bytes: int = 0
    dense_bytes: int = 0

    def reset(self) -> None:
        self.__init__()


@dataclass
class CompressionHookState:
    """The hook's state on one rank: the compressor, this rank's compressor state, the
    iteration count and statistics. Make it with :func:`make_comm_hook`."""

    compressor: Any
    compressor_state: CompressorState
    process_group: Any = None
    size_group: Any = None  # separate group for the capacity exchange (None: not needed)
    dense_iters: int = MIN_DENSE_ITERS
    param_names: Mapping[int, str] | None = None  # data_ptr -> name
    #: False: warm-up iterations keep each rank's own gradient and send nothing (only for
    #: timing runs that do not care about the model, e.g. emulation; ranks then diverge)
    warmup_comm: bool = True
    #: synchronize the CUDA stream around the timed parts (exact stats, slower on GPUs)
    sync_timing: bool = False
    iteration: int = 0
    stats: HookStats = field(default_factory=HookStats)

    @property
    def compressing(self) -> bool:
        return self.iteration >= self.dense_iters

    def _end_bucket(self, bucket: dist.GradBucket) -> None:
        self.stats.buckets += 1
        if bucket.is_last():
            self.stats.iterations += 1
            if self.compressing:
                self.stats.compressed_iterations += 1
                self.compressor_state.step()
            self.iteration += 1


def _group_size(group: Any) -> int:
    return dist.get_world_size(group) if group is not None else dist.get_world_size()


def _dense_allreduce(state: CompressionHookState, bucket: dist.GradBucket) -> torch.futures.Future:
    buf = bucket.buffer()
    world = _group_size(state.process_group)
    buf.div_(world)
    state.stats.sent_bytes += buf.numel() * buf.element_size()
    state.stats.payload_bytes += buf.numel() * buf.element_size()
    state.stats.dense_bytes += buf.numel() * buf.element_size()
    fut = dist.all_reduce(buf, group=state.process_group, async_op=True).get_future()
    state._end_bucket(bucket)
    return fut.then(lambda f: f.value()[0])


def _names(state: CompressionHookState, bucket: dist.GradBucket) -> list[str]:
    params = bucket.parameters()
    if state.param_names is not None:
        out = []
        for j, p in enumerate(params):
            out.append(state.param_names.get(p.data_ptr(), f"{bucket.index()}/{j}"))
        return out
    return [f"{bucket.index()}/{j}" for j in range(len(params))]


def capacity_bound(compressor: Any, numels: list[int], iteration: int) -> int | None:
    """Most elements one rank can send for sparse tensors of ``numels`` at compressor
    ``iteration``, known to every rank without communication, or None when the compressor
    has no such bound (``threshold``; then the ranks exchange their counts).

    Exact-k sparsifiers (``topk``, ``randomk``, ``dgc``, ``nsi`` without layer-wise density)
    send at most ``k_for(n, density)`` per tensor; layer-wise ``nsi`` shares
    ``round(density * sum(n))`` among the tensors (one element of slack for rounding)."""
    from ..compress.select import k_for

    name = getattr(compressor, "name", "")
    p = getattr(compressor, "p", None)
    if name not in ("topk", "randomk", "dgc", "nsi") or p is None:
        return None
    density_at = getattr(compressor, "density_at", None)
    density = float(density_at(iteration)) if density_at is not None else float(p.density)
    if name == "nsi" and getattr(p, "dynamic", False):
        return int(round(density * float(sum(numels)))) + 1
    return sum(k_for(n, density) for n in numels)


def _pack(payloads: list[Payload], capacity: int, vdtype: torch.dtype, device) -> torch.Tensor:
    n = len(payloads)
    es = torch.empty((), dtype=vdtype).element_size()
    vbytes = ((capacity * es + 3) // 4) * 4
    buf = torch.zeros(4 * n + 4 * capacity + vbytes, dtype=torch.uint8, device=device)
    counts = buf[: 4 * n].view(torch.int32)
    idx = buf[4 * n : 4 * n + 4 * capacity].view(torch.int32)
    vals = buf[4 * n + 4 * capacity : 4 * n + 4 * capacity + capacity * es].view(vdtype)
    off = 0
    for j, p in enumerate(payloads):
        k = p.nnz
        counts[j] = k
        idx[off : off + k] = p.indices
        vals[off : off + k] = p.values.to(vdtype)
        off += k
    return buf


def _unpack_sum(
    gathered: torch.Tensor,
    world: int,
    n: int,
    capacity: int,
    vdtype: torch.dtype,
    offsets: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Add every rank's (index, value) pairs, divided by ``world``, into the flat bucket
    tensor ``out`` (one ``index_add_``)."""
    per = gathered.numel() // world
    es = torch.empty((), dtype=vdtype).element_size()
    rows = gathered.view(world, per)
    all_idx, all_val = [], []
    for r in range(world):
        row = rows[r]
        counts = row[: 4 * n].view(torch.int32).to(torch.int64)
        total = int(counts.sum())
        if total > capacity:
            raise ConfigError(f"rank {r} sent {total} elements, more than the capacity {capacity}")
        idx = row[4 * n : 4 * n + 4 * capacity].view(torch.int32)[:total].to(torch.int64)
        vals = row[4 * n + 4 * capacity : 4 * n + 4 * capacity + es * capacity].view(vdtype)
        all_idx.append(idx + torch.repeat_interleave(offsets, counts))
        all_val.append(vals[:total])
    out.index_add_(0, torch.cat(all_idx), torch.cat(all_val).to(out.dtype), alpha=1.0 / world)


def compression_hook(
    state: CompressionHookState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """The communication hook: see the module docstring."""
    if not state.compressing:
        if not state.warmup_comm:
            fut: torch.futures.Future = torch.futures.Future()
            fut.set_result(bucket.buffer())
            state._end_bucket(bucket)
            return fut
        return _dense_allreduce(state, bucket)
    if getattr(state.compressor, "name", None) == "none":  # identity: plain DDP averaging
        return _dense_allreduce(state, bucket)
    t0 = time.perf_counter()
    group = state.process_group
    world = _group_size(group)
    buf = bucket.buffer()
    grads = bucket.gradients()
    names = _names(state, bucket)
    numels = [g.numel() for g in grads]
    starts = [0]
    for m in numels[:-1]:
        starts.append(starts[-1] + m)
    if starts[-1] + numels[-1] != buf.numel():
        raise ConfigError("bucket gradients do not tile the bucket buffer")

    payloads = state.compressor.compress_many(dict(zip(names, grads, strict=True)), state.compressor_state)
    ordered = [payloads[nm] for nm in names]
    state.stats.payload_bytes += sum(p.wire_bytes for p in ordered)
    state.stats.dense_bytes += buf.numel() * buf.element_size()

    dense_j = [j for j, p in enumerate(ordered) if p.indices is None]
    sparse_j = [j for j, p in enumerate(ordered) if p.indices is not None]
    futs: list[torch.futures.Future] = []

    # dense part: one allreduce (per values dtype)
    dense_groups: dict[torch.dtype, list[int]] = {}
    for j in dense_j:
        dense_groups.setdefault(ordered[j].values.dtype, []).append(j)
    dense_bufs: list[tuple[list[int], torch.Tensor]] = []
    for js in dense_groups.values():
        flat = torch.cat([ordered[j].values.reshape(-1) for j in js])
        state.stats.sent_bytes += flat.numel() * flat.element_size()
        futs.append(dist.all_reduce(flat, group=group, async_op=True).get_future())
        dense_bufs.append((js, flat))

    # sparse part: one fixed-size all-gather
    sparse_info = None
    if sparse_j:
        sp = [ordered[j] for j in sparse_j]
        vdtype = sp[0].values.dtype
        if any(p.values.dtype != vdtype for p in sp):
            vdtype = torch.float32
        local = sum(p.nnz for p in sp)
        capacity = capacity_bound(
            state.compressor, [p.numel for p in sp], state.compressor_state.iteration
        )
        if capacity is None:
            capacity = _exchange_max(local, state, buf.device)
        elif local > capacity:
            raise ConfigError(
                f"compressor {getattr(state.compressor, 'name', '?')!r} sent {local} elements "
                f"in bucket {bucket.index()}, more than its bound {capacity}"
            )
        packed = _pack(sp, capacity, vdtype, buf.device)
        gathered = torch.empty(world * packed.numel(), dtype=torch.uint8, device=buf.device)
        state.stats.sent_bytes += packed.numel()
        futs.append(
            _all_gather(gathered, packed, group=group, async_op=True).get_future()
        )
        offsets = torch.tensor([starts[j] for j in sparse_j], dtype=torch.int64, device=buf.device)
        sparse_info = (gathered, len(sp), capacity, vdtype, offsets)

    if buf.is_cuda and state.sync_timing:
        torch.cuda.current_stream(buf.device).synchronize()
    state.stats.compress_s += time.perf_counter() - t0
    state._end_bucket(bucket)
    comp = state.compressor

    def finish(_: torch.futures.Future) -> torch.Tensor:
        # the averaged gradient goes into the bucket buffer itself (the gradients in it were
        # consumed by the compressor, which keeps its own copies): no allocation, and no
        # pass over the whole bucket besides zeroing the sparse tensors' slices
        t1 = time.perf_counter()
        out = buf
        for js, flat in dense_bufs:
            off = 0
            for j in js:
                p = ordered[j]
                m = p.values.numel()
                summed = Payload(flat[off : off + m], None, p.numel, p.shape, p.dtype, p.name)
                dst = out[starts[j] : starts[j] + p.numel]
                dst.copy_(comp.decompress(summed).reshape(-1)).div_(world)
                off += m
        if sparse_info is not None:
            gathered, n, capacity, vdtype, offsets = sparse_info
            for j in sparse_j:
                out[starts[j] : starts[j] + numels[j]].zero_()
            _unpack_sum(gathered, world, n, capacity, vdtype, offsets, out)
        if out.is_cuda and state.sync_timing:
            torch.cuda.current_stream(out.device).synchronize()
        state.stats.decompress_s += time.perf_counter() - t1
        return out

    if not futs:  # an empty bucket cannot happen in DDP; keep the contract anyway
        done: torch.futures.Future = torch.futures.Future()
        done.set_result(None)
        futs.append(done)
    return torch.futures.collect_all(futs).then(finish)


# DDP checks the hook's annotations as objects; ``from __future__ import annotations`` made
# them strings
compression_hook.__annotations__.update(
    state=CompressionHookState, bucket=dist.GradBucket, **{"return": torch.futures.Future[torch.Tensor]}
)


def _exchange_max(local: int, state: CompressionHookState, device) -> int:
    group = state.size_group if state.size_group is not None else state.process_group
    t = torch.tensor([local], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return int(t.item())


def make_comm_hook(
    compressor: str | Any,
    *,
    process_group: Any = None,
    dense_iters: int = MIN_DENSE_ITERS,
    seed: int = 0,
    model: torch.nn.Module | None = None,
    warmup_comm: bool = True,
    **params: Any,
) -> tuple[CompressionHookState, Any]:
    """``(state, hook)`` for ``DistributedDataParallel.register_comm_hook(state, hook)``.

    ``compressor``: a name (``"none"``, ``"fp16"``, ``"topk"``, ``"randomk"``,
    ``"threshold"``, ``"dgc"``, ``"nsi"`` ...; ``params`` go to
    :func:`rsdgc_sim.compress.create`) or a compressor object. ``dense_iters``: iterations
    averaged densely before compression starts (at least 2, for DDP's bucket rebuild).
    ``seed``: this rank's compressor state is seeded with ``seed + rank`` (random-k draws
    differ between ranks). ``model``: when given, tensors are keyed by parameter name.
    ``warmup_comm=False`` skips communication in the warm-up iterations (timing runs only).

    Call it on every rank, after ``init_process_group`` (it may create a small extra process
    group, collectively, for compressors without a fixed bound on their payload).
    """
    if isinstance(dense_iters, bool) or not isinstance(dense_iters, int):
        raise ConfigError(f"dense_iters must be an integer, got {dense_iters!r}")
    if dense_iters < MIN_DENSE_ITERS:
        raise ConfigError(
            f"dense_iters={dense_iters}: compression can start only after DDP rebuilt its "
            f"buckets, at iteration {MIN_DENSE_ITERS} or later"
        )
    if not dist.is_available() or not dist.is_initialized():
        raise ConfigError("make_comm_hook needs torch.distributed initialised (init_process_group)")
    if isinstance(compressor, str):
        from ..compress import create

        comp = create(compressor, **params)
    else:
        if params:
            raise ConfigError("give compressor parameters only with a compressor name")
        comp = compressor
    rank = dist.get_rank(process_group) if process_group is not None else dist.get_rank()
    size_group = None
    if _may_be_sparse(comp) and capacity_bound(comp, [1], 0) is None:
        backend = dist.get_backend(process_group)
        size_group = dist.new_group(
            ranks=None if process_group is None else dist.get_process_group_ranks(process_group),
            backend=backend,
        )
    names = None
    if model is not None:
        names = {p.data_ptr(): n for n, p in model.named_parameters() if p.requires_grad}
    state = CompressionHookState(
        compressor=comp,
        compressor_state=CompressorState(seed=seed + rank),
        process_group=process_group,
        size_group=size_group,
        dense_iters=dense_iters,
        param_names=names,
        warmup_comm=bool(warmup_comm),
    )
    return state, compression_hook


def _may_be_sparse(comp: Any) -> bool:
    return bool(getattr(comp, "sparse", True))
