"""The DDP hook's state on one rank (as PyTorch's ``PowerSGDState``): the compressor, this
rank's compressor state, the iteration count, and what the hook did (:class:`HookStats`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from ..compress.memory import CompressorState
from .semantics import MIN_DENSE_ITERS, compressing


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
    #: CPU time of the thread that ran the hook bodies / the callbacks in them: what they
    #: cost the core when other threads (backward, gloo's) share it and stretch their host
    #: time; without the work of torch's other intra-op threads
    compress_cpu_s: float = 0.0
    decompress_cpu_s: float = 0.0
    #: bytes this rank put on the wire: allreduce input plus its all-gather share
    sent_bytes: int = 0
    #: bytes of the payloads themselves (sum of ``Payload.wire_bytes``)
    payload_bytes: int = 0
    dense_bytes: int = 0

    def reset(self) -> None:
        self.__init__()


class CompressionHookState:
    """The hook's state on one rank. Make it with :func:`~rsdgc_sim.ddp.make_comm_hook`.

    * ``compressor``, ``compressor_state``: the (stateless) compressor and this rank's
      residuals, momenta, schedules; ``compressor_state.step()`` once per iteration, after
      the iteration's last bucket;
    * ``process_group``: the ranks that average (None: the default group); ``size_group``:
      a separate group for exchanging payload sizes (None: not needed);
    * ``dense_iters``: iterations averaged densely first (at least :data:`MIN_DENSE_ITERS`);
    * ``param_names``: parameter ``data_ptr`` -> name, to key tensors by name (None: by
      ``"<bucket>/<position>"``);
    * ``warmup_comm``: False skips communication in the warm-up iterations (each rank keeps
      its own gradient: timing runs only, the ranks diverge);
    * ``sync_timing``: synchronize the CUDA stream around the timed parts (exact stats,
      slower on GPUs);
    * ``iteration``: iterations begun so far; ``stats``: :class:`HookStats`.
    """

    __slots__ = (
        "compressor",
        "compressor_state",
        "process_group",
        "size_group",
        "dense_iters",
        "param_names",
        "warmup_comm",
        "sync_timing",
        "iteration",
        "stats",
    )

    def __init__(
        self,
        compressor: Any,
        compressor_state: CompressorState,
        process_group: Any = None,
        size_group: Any = None,
        dense_iters: int = MIN_DENSE_ITERS,
        param_names: Mapping[int, str] | None = None,
        warmup_comm: bool = True,
        sync_timing: bool = False,
    ):
        self.compressor = compressor
        self.compressor_state = compressor_state
        self.process_group = process_group
        self.size_group = size_group
        self.dense_iters = dense_iters
        self.param_names = param_names
        self.warmup_comm = warmup_comm
        self.sync_timing = sync_timing
        self.iteration = 0
        self.stats = HookStats()

    @property
    def compressing(self) -> bool:
        """Whether this iteration is compressed (past the dense warm-up)."""
        return compressing(self.iteration, self.dense_iters)

    @property
    def world_size(self) -> int:
        """Ranks in the process group."""
        return dist.get_world_size(self.process_group)

    def end_bucket(self, bucket: dist.GradBucket) -> None:
        """Count a bucket; after the iteration's last one, advance the iteration (and the
        compressor state's schedules, once per compressed iteration)."""
        self.stats.buckets += 1
        if not bucket.is_last():
            return
        self.stats.iterations += 1
        if self.compressing:
            self.stats.compressed_iterations += 1
            self.compressor_state.step()
        self.iteration += 1

    def __repr__(self) -> str:
        return (
            f"CompressionHookState({self.compressor!r}, iteration={self.iteration}, "
            f"dense_iters={self.dense_iters})"
        )
