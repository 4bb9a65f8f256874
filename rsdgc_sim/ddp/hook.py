"""DDP communication hooks that apply any rsdgc-sim compressor, for
``DistributedDataParallel.register_comm_hook``.

>>> state, hook = make_comm_hook("nsi", density=0.01)          # doctest: +SKIP
>>> ddp_model.register_comm_hook(state, hook)                   # doctest: +SKIP

Per bucket, as DDP hands it over when its last gradient is ready (the rules live in
:mod:`rsdgc_sim.ddp.semantics`, which the virtual-worker trainer uses too):

1. **Warm-up** (the first ``dense_iters`` iterations, at least 2): the bucket is averaged
   with one dense allreduce, exactly as DDP does without a hook. Iteration 0 runs on DDP's
   initial buckets, which DDP rebuilds in gradient-ready order after it; state keyed by
   bucket index is only meaningful from then on (as in PyTorch's ``PowerSGDState``).
2. **Compression**: every gradient in the bucket (``bucket.gradients()``, one view per
   parameter with the parameter's shape, so NSI sees conv/linear layers as 2-D) goes through
   ``compressor.compress_many`` with this rank's :class:`~rsdgc_sim.compress.CompressorState`
   (error feedback, momenta, schedules; tensors keyed ``"<bucket>/<position>"`` or by
   parameter name in the unwrapped model when ``model`` is given). Layer-wise schemes share the budget inside the
   bucket.
3. **Communication**, issued from the hook body:

   * values that every rank sends at the same positions, i.e. dense payloads (``none``,
     ``fp16``, the 1-D tensors NSI sends dense) and shared-index payloads (``randomk`` with
     ``shared_indices``, whose indices are never sent), are concatenated per dtype, divided
     by the world size (as PyTorch's ``fp16_compress_hook`` does, so that a half-precision
     sum cannot overflow where the mean does not) and summed with one allreduce;
   * per-rank (index, value) pairs (``Payload.needs_allgather``) are packed, per rank, into
     one byte buffer (:mod:`rsdgc_sim.ddp.wire`), padded to a capacity every rank agrees on,
     and exchanged with one fixed-size all-gather (gloo needs equal sizes). The capacity is
     the compressor's bound on the elements it sends (``Compressor.max_sent``) when it has
     one, else the largest count of any rank, exchanged first on a separate process group
     so that it never queues behind a transfer;
   * quantized payloads (``qsgd``, ``terngrad``, ``efsignsgd``: a float32 scale of the
     rank's own and bit-packed codes per tensor) are packed, per rank, into one byte buffer
     of exactly their wire bytes (the same size on every rank: it depends on the tensors'
     sizes only) and exchanged with one fixed-size all-gather.
4. **Decompression** in the future's callback: every rank writes the averaged values (dense,
   or scattered at the shared indices), adds all ranks' (index, value) pairs with one
   ``index_add_``, divided by the world size, and each quantized tensor's decompressed
   payloads, summed in rank order and divided by the world size, into the bucket buffer,
   so every rank ends with the same averaged gradient.

Works on gloo (CPU tensors) and NCCL (CUDA tensors): only ``all_reduce`` and
one flat all-gather (``all_gather_single``, formerly
``all_gather_into_tensor``) of contiguous tensors are used.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist

from ..compress import create
from ..compress.payload import Payload
from ..errors import ConfigError
from .bucket_work import BucketSend, dense_send, finish_receive, prepare_send
from .powersgd_hook import powersgd_hook
from .semantics import (
    MIN_DENSE_ITERS,
    capacity_bound,
    check_capacity,
    check_dense_iters,
    rank_state,
    tensor_names,
    uses_compressor,
)
from .state import CompressionHookState, HookStats

__all__ = [
    "MIN_DENSE_ITERS",
    "CompressionHookState",
    "HookStats",
    "compression_hook",
    "make_comm_hook",
    "powersgd_state",
]

# all-gather into one flat tensor: ``all_gather_single`` from torch 2.13 on (which deprecates
# ``all_gather_into_tensor``), the older name before
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def compression_hook(
    state: CompressionHookState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """The communication hook: see the module docstring."""
    if not state.compressing or not uses_compressor(state.compressor):
        return _average_uncompressed(state, bucket)
    t0, c0 = time.perf_counter(), time.thread_time()
    buf = bucket.buffer()
    send = _prepare_send(state, bucket)
    futures = _start_collectives(state, send)
    _sync_timing(state, buf)
    state.stats.compress_s += time.perf_counter() - t0
    state.stats.compress_cpu_s += time.thread_time() - c0
    state.end_bucket(bucket)
    world = state.world_size

    def finish(_: torch.futures.Future) -> torch.Tensor:
        # the averaged gradient goes into the bucket buffer itself (the gradients in it were
        # consumed by the compressor, which keeps its own copies)
        t1, c1 = time.perf_counter(), time.thread_time()
        finish_receive(send, state.compressor, world, buf)
        _sync_timing(state, buf)
        state.stats.decompress_s += time.perf_counter() - t1
        state.stats.decompress_cpu_s += time.thread_time() - c1
        return buf

    return torch.futures.collect_all(futures or [_done(None)]).then(finish)


# DDP checks the hook's annotations as objects; ``from __future__ import annotations`` made
# them strings
compression_hook.__annotations__.update(
    state=CompressionHookState,
    bucket=dist.GradBucket,
    **{"return": torch.futures.Future[torch.Tensor]},
)


def _done(value: Any) -> torch.futures.Future:
    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(value)
    return fut


def _sync_timing(state: CompressionHookState, buf: torch.Tensor) -> None:
    if buf.is_cuda and state.sync_timing:
        torch.cuda.current_stream(buf.device).synchronize()


def _average_uncompressed(
    state: CompressionHookState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """Warm-up and ``none``: one dense allreduce of the bucket, as DDP without a hook (or,
    in warm-up without ``warmup_comm``, the rank's own gradient)."""
    buf = bucket.buffer()
    if not state.compressing and not state.warmup_comm:
        state.end_bucket(bucket)
        return _done(buf)
    nbytes = buf.numel() * buf.element_size()
    state.stats.sent_bytes += nbytes
    state.stats.payload_bytes += nbytes
    state.stats.dense_bytes += nbytes
    dense_send(buf, state.world_size)
    fut = dist.all_reduce(buf, group=state.process_group, async_op=True).get_future()
    state.end_bucket(bucket)
    return fut.then(lambda f: f.value()[0])


def _tensor_names(state: CompressionHookState, bucket: dist.GradBucket) -> list[str]:
    """The bucket's tensors' names: parameter names when known, else ``"<bucket>/<j>"``."""
    names = state.param_names or {}
    return [
        names.get(p.data_ptr(), f"{bucket.index()}/{j}") for j, p in enumerate(bucket.parameters())
    ]


def _prepare_send(state: CompressionHookState, bucket: dist.GradBucket) -> BucketSend:
    """The bucket's send side (:func:`~rsdgc_sim.ddp.bucket_work.prepare_send`, the code the
    profiler times), counted in the stats."""
    buf = bucket.buffer()
    grads = bucket.gradients()
    if sum(g.numel() for g in grads) != buf.numel():
        raise ConfigError("bucket gradients do not tile the bucket buffer")
    send = prepare_send(state.compressor, state.compressor_state, _tensor_names(state, bucket),
                        grads, state.world_size, lambda ps: _capacity(state, bucket, ps))
    state.stats.payload_bytes += send.payload_bytes
    state.stats.dense_bytes += buf.numel() * buf.element_size()
    state.stats.sent_bytes += send.sent_bytes
    return send


def _start_collectives(state: CompressionHookState, send: BucketSend) -> list[torch.futures.Future]:
    """Issue the bucket's collectives: one allreduce per values dtype of what every rank
    sends at the same positions, one fixed-size all-gather of the per-rank pairs, one of the
    quantized payloads."""
    group = state.process_group
    futures = [dist.all_reduce(flat, group=group, async_op=True).get_future()
               for _, flat in send.allreduce]
    if (g := send.allgather) is not None:
        futures.append(_all_gather(g.gathered, g.packed, group=group, async_op=True).get_future())
    if (q := send.quantized) is not None:
        futures.append(_all_gather(q.gathered, q.packed, group=group, async_op=True).get_future())
    return futures


def _capacity(state: CompressionHookState, bucket: dist.GradBucket, payloads: list[Payload]) -> int:
    """Pairs per rank in the all-gather: the compressor's bound (``max_sent``), known to all
    ranks, or else the largest count of any rank (exchanged)."""
    local = sum(p.nnz for p in payloads)
    bound = capacity_bound(state.compressor, payloads, state.compressor_state.iteration)
    if bound is None:
        return _exchange_max(local, state, bucket.buffer().device)
    check_capacity(state.compressor, local, bound, bucket.index())
    return bound


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
    ``"threshold"``, ``"dgc"``, ``"nsi"``, ``"qsgd"``, ``"terngrad"``, ``"efsignsgd"`` ...; ``params`` go to
    :func:`rsdgc_sim.compress.create`) or a compressor object. ``dense_iters``: iterations
    averaged densely before compression starts (at least 2, for DDP's bucket rebuild).
    ``seed``: this rank's compressor state is seeded with ``seed + rank`` (random-k draws
    differ between ranks, unless ``shared_indices``). ``model``: when given, tensors are
    keyed by parameter name (without DDP's ``module.`` prefix). ``warmup_comm=False`` skips communication in the warm-up
    iterations (timing runs only).

    A compressor that applies momentum itself (``compressor.applies_momentum``, e.g.
    ``dgc``) needs an optimizer without momentum.

    ``powersgd`` returns torch's own ``PowerSGDState`` (:func:`powersgd_state`) and
    ``powerSGD_hook``: itself on NCCL, on gloo called in bucket order by a
    :class:`~rsdgc_sim.ddp.powersgd_hook.PowerSGDHook` (torch's hook issues a bucket's
    second and third all-reduces from its futures' callbacks, which race the next bucket's
    first on gloo: see :mod:`rsdgc_sim.ddp.powersgd_hook`); ``seed`` and ``model`` do not
    apply to it (Q's seed is the compressor's ``random_seed``, the same on every rank).

    Call it on every rank, after ``init_process_group`` (it may create a small extra process
    group, collectively, for compressors without a fixed bound on their payload).
    """
    check_dense_iters(dense_iters)
    if not dist.is_available() or not dist.is_initialized():
        raise ConfigError("make_comm_hook needs torch.distributed initialised (init_process_group)")
    if isinstance(compressor, str):
        comp = create(compressor, **params)
    else:
        if params:
            raise ConfigError("give compressor parameters only with a compressor name")
        comp = compressor
    if getattr(comp, "low_rank", False):
        if not warmup_comm:
            raise ConfigError("powersgd: torch's hook always communicates (warmup_comm=False "
                              "is not supported)")
        return powersgd_state(comp, process_group, dense_iters), powersgd_hook(process_group)
    rank = dist.get_rank(process_group) if process_group is not None else dist.get_rank()
    names = tensor_names(model) if model is not None else None
    state = CompressionHookState(
        compressor=comp,
        compressor_state=rank_state(seed, rank),
        process_group=process_group,
        size_group=_size_group(comp, process_group),
        dense_iters=dense_iters,
        param_names=names,
        warmup_comm=bool(warmup_comm),
    )
    return state, compression_hook


def powersgd_state(comp: Any, process_group: Any = None, dense_iters: int = MIN_DENSE_ITERS) -> Any:
    """torch's ``PowerSGDState`` for a ``powersgd`` compressor: its parameters under torch's
    names; compression starts at ``max(start_iter, dense_iters)``."""
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState

    p = comp.p
    return PowerSGDState(
        process_group=process_group,
        matrix_approximation_rank=p.rank,
        start_powerSGD_iter=max(p.start_iter, dense_iters),
        min_compression_rate=p.min_compression_rate,
        use_error_feedback=p.error_feedback,
        warm_start=p.warm_start,
        orthogonalization_epsilon=p.orthogonalization_epsilon,
        random_seed=p.random_seed,
    )


def _size_group(comp: Any, process_group: Any) -> Any:
    """A separate group for the payload-size exchange, made (collectively) only for sparse
    compressors without a bound on what they send."""
    max_sent = getattr(comp, "max_sent", None)
    if not getattr(comp, "sparse", True) or (max_sent is not None and max_sent([1], 0) is not None):
        return None
    return dist.new_group(
        ranks=None if process_group is None else dist.get_process_group_ranks(process_group),
        backend=dist.get_backend(process_group),
    )
