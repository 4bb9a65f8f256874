"""torch's own ``powerSGD_hook`` on real DDP ranks, made safe for gloo, with the statistics
that can be taken around it.

**Why a wrapper on gloo.** torch's hook issues a bucket's first all-reduce (the tensors sent
whole) in its body, on the thread that runs backward, and the bucket's ``P`` and ``Q``
all-reduces from the futures' callbacks, on the communication threads. With several
buckets, the ``P`` or ``Q`` all-reduce of bucket ``b`` then races the first all-reduce of
bucket ``b + 1``: ranks can issue them in different orders. Collectives are matched by the
order each rank issued them, so a mismatch pairs a ``P`` of one rank with another rank's tensors of another
size and gloo aborts ("Received data size doesn't match expected size"), or silently sums
the wrong tensors when the sizes agree. (On NCCL a collective's future completes once the collective is queued
on the stream, so the callbacks run in the hook's body, on one thread, in order: torch's
hook is used as it is there.) :class:`PowerSGDHook` (``in_order``) waits, before
handing bucket ``b`` to torch's hook, for bucket ``b - 1``'s future, which completes after
its ``Q`` all-reduce and decompression: every rank then issues whole, P, Q of bucket 0,
then of bucket 1, and so on. Backward still overlaps the communication of the bucket before
the one it is computing; the values are torch's own (the wrapper only delays the call).
Dense iterations (before ``start_powerSGD_iter``: one all-reduce per bucket, issued in the
body) are not delayed.

**What is measured** (``stats``, a :class:`~rsdgc_sim.ddp.state.HookStats`):

* ``compress_s`` / ``compress_cpu_s``: the host and thread time of torch's hook body on a
  compressed bucket: error feedback, the copy, the split, ``Q`` orthogonalized, ``P = M Q``
  and issuing the first all-reduce (the wait for the previous bucket excluded);
* ``sent_bytes``, ``payload_bytes``: the values torch's state counts as sent
  (``total_numel_after_compression``) times the element size; dense iterations send the
  whole bucket; ``dense_bytes``: the bucket's bytes;
* ``buckets``, ``iterations``, ``compressed_iterations``.

**What is not**: ``decompress_s`` and the middle phase stay 0. torch runs the callbacks
(the tensors sent whole copied back; ``P`` orthogonalized and ``Q = M^T P``; ``M = P Q^T``
and the error) on the communication thread, each one blocking on the next all-reduce inside
it (``.wait()``), so no timer around the hook or its future separates their work from the
network's; the profile's measured phases (:mod:`rsdgc_sim.profile.powersgd_costs`, the same
operations) stand for them.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist

from .state import HookStats

__all__ = ["PowerSGDHook", "powersgd_hook"]


class PowerSGDHook:
    """A DDP communication hook (``register_comm_hook(state, hook)`` with torch's
    ``PowerSGDState``) that calls torch's ``powerSGD_hook`` for every bucket, after the
    previous bucket's future when ``in_order`` (see the module doc), and counts ``stats``."""

    def __init__(self, in_order: bool = True):
        from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import powerSGD_hook

        #: torch's hook, which computes every value
        self.hook = powerSGD_hook
        self.in_order = in_order
        self.stats = HookStats()
        self.previous: torch.futures.Future | None = None
        # DDP records the hook's name, as a function's
        self.__name__ = self.__qualname__ = f"{type(self).__name__}({powerSGD_hook.__name__})"

    def __call__(self, state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        compressing = state.iter >= state.start_powerSGD_iter
        if compressing and self.in_order and self.previous is not None:
            self.previous.wait()
        buf = bucket.buffer()
        size = buf.element_size()
        before = state.total_numel_before_compression
        after = state.total_numel_after_compression
        t0, c0 = time.perf_counter(), time.thread_time()
        fut = self.hook(state, bucket)
        st = self.stats
        if compressing:
            st.compress_s += time.perf_counter() - t0
            st.compress_cpu_s += time.thread_time() - c0
            sent = (state.total_numel_after_compression - after) * size
            st.dense_bytes += (state.total_numel_before_compression - before) * size
        else:
            sent = buf.numel() * size
            st.dense_bytes += sent
        st.sent_bytes += sent
        st.payload_bytes += sent
        st.buckets += 1
        if bucket.is_last():
            st.iterations += 1
            st.compressed_iterations += int(compressing)
        self.previous = fut
        return fut


# DDP checks the hook's annotations as objects; ``from __future__ import annotations`` made
# them strings
PowerSGDHook.__call__.__annotations__.update(
    bucket=dist.GradBucket, **{"return": torch.futures.Future[torch.Tensor]})


def powersgd_hook(process_group: Any = None) -> Any:
    """The hook to register with torch's ``PowerSGDState`` on ``process_group`` (None: the
    default group): torch's ``powerSGD_hook`` itself on NCCL, which orders a group's
    collectives on its stream; elsewhere (gloo) a :class:`PowerSGDHook` that issues them in
    one order on every rank."""
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import powerSGD_hook

    if dist.get_backend(process_group) == "nccl":
        return powerSGD_hook
    return PowerSGDHook(in_order=True)
