"""DDP gradient buckets, as PyTorch's ``DistributedDataParallel`` forms them.

Parameters are taken in *reverse* registration order (the order their gradients become
ready in backward) and packed into buckets: the first bucket closes once it holds at least
``first_bucket_bytes`` (1 MiB by default), every later one once it holds at least
``bucket_cap_bytes`` (25 MiB). A tensor larger than the cap gets a bucket of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..profile.schema import TensorInfo
from .config import DDPConfig


def assign_buckets(tensors: Sequence[TensorInfo], ddp: DDPConfig) -> list[list[int]]:
    """Buckets as lists of tensor indices (into ``tensors``), in communication order."""
    buckets: list[list[int]] = []
    cur: list[int] = []
    size = 0.0
    for i in reversed(range(len(tensors))):
        cur.append(i)
        size += tensors[i].nbytes
        limit = ddp.first_bucket_bytes if not buckets else ddp.bucket_cap_bytes
        if size >= limit:
            buckets.append(cur)
            cur, size = [], 0.0
    if cur:
        buckets.append(cur)
    return buckets
