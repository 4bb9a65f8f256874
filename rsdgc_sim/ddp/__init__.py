"""DDP communication hooks that apply rsdgc-sim's compressors in real
``torch.distributed`` training (gloo on CPUs, NCCL on GPUs), locally or under ``torchrun``."""

from .hook import (
    MIN_DENSE_ITERS,
    CompressionHookState,
    HookStats,
    compression_hook,
    make_comm_hook,
)

__all__ = [
    "MIN_DENSE_ITERS",
    "CompressionHookState",
    "HookStats",
    "compression_hook",
    "make_comm_hook",
]
