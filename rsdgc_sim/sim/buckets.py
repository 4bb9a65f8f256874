"""DDP gradient buckets, as PyTorch's ``DistributedDataParallel`` forms them.

In its first iteration DDP takes the parameters in *reverse* registration order; after it,
DDP rebuilds the buckets once in the order the gradients actually became ready (rank 0's
order, broadcast to all ranks) and keeps them for the rest of training. Either way the
tensors are packed in that order: the first bucket closes once it holds at least
``first_bucket_bytes`` (1 MiB by default), every later one once it holds at least
``bucket_cap_bytes`` (25 MiB). A tensor larger than the cap gets a bucket of its own.

The simulator models the steady state: the rebuilt buckets, in the gradient-ready order of
the profile's first device (ties broken by reverse registration order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..profile.schema import TensorInfo
from .config import DDPConfig


def ready_order(tensors: Sequence[TensorInfo],
                ready_s: Mapping[str, float] | None = None) -> list[int]:
    """Tensor indices in the order DDP buckets them: by gradient-ready time when
    ``ready_s`` is given (the rebuilt buckets), else reverse registration order (the first
    iteration's)."""
    rev = list(reversed(range(len(tensors))))
    if ready_s is None:
        return rev
    return sorted(rev, key=lambda i: ready_s[tensors[i].name])


def assign_buckets(tensors: Sequence[TensorInfo], ddp: DDPConfig,
                   ready_s: Mapping[str, float] | None = None) -> list[list[int]]:
    """Buckets as lists of tensor indices (into ``tensors``), in communication order."""
    buckets: list[list[int]] = []
    cur: list[int] = []
    size = 0.0
    for i in ready_order(tensors, ready_s):
        cur.append(i)
        size += tensors[i].nbytes
        limit = ddp.first_bucket_bytes if not buckets else ddp.bucket_cap_bytes
        if size >= limit:
            buckets.append(cur)
            cur, size = [], 0.0
    if cur:
        buckets.append(cur)
    return buckets
