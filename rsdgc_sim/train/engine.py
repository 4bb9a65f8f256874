"""N virtual DDP ranks in one process: one data-parallel iteration computed exactly as N
real ranks running our DDP communication hook compute it (the rules are
:mod:`rsdgc_sim.ddp.semantics`, which the hook uses too).

Per iteration, every worker ``w`` (rank ``w``) starts from rank 0's batch-norm buffers (DDP
broadcasts them before every forward), runs forward and backward on its own batch with its
own random-number stream (dropout), and compresses its gradients bucket by bucket with its
own compressor state. The buckets are DDP's rebuilt ones, cut from the order in which
worker 0's gradients became ready in iteration 0. Each bucket is then exchanged as the
hook's collectives would exchange it, and every parameter's ``.grad`` holds the averaged
gradient, ready for the optimizer. The module keeps no hidden state: :meth:`state_dict`
and :meth:`load_state_dict` make a checkpoint resume to the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..ddp.powersgd import PowerSGDRankState, bucket_in_process
from ..ddp.semantics import (
    bucket_assignment,
    check_dense_iters,
    compress_bucket,
    compressing,
    exchange_in_process,
    initial_buckets,
    rank_seed,
    rank_state,
    ring_sum,
    uses_compressor,
)

#: (x, y) -> scalar loss of one worker's batch
LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class IterationStats:
    """What one iteration did."""

    #: sum of the workers' losses (a tensor on the device: reading it syncs)
    loss_sum: torch.Tensor
    #: bytes one worker put into the collectives (the hook's ``HookStats.sent_bytes``)
    collective_bytes: int
    #: bytes of one worker's payloads (values and indices, mean over workers; the hook's
    #: ``HookStats.payload_bytes``)
    payload_bytes: float
    #: whether the compressor ran (past the dense warm-up)
    compressed: bool


class VirtualDDP:
    """``workers`` virtual ranks sharing ``net`` (synchronous data parallelism keeps every
    replica identical, so one copy of the parameters stands for all)."""

    def __init__(
        self, net: torch.nn.Module, compressor: Any, workers: int, *, seed: int = 0,
        dense_iters: int = 2, first_bucket_bytes: int = 2**20,
        bucket_cap_bytes: int = 25 * 2**20, device: str | torch.device = "cpu",
    ):
        self.net = net
        self.compressor = compressor
        self.workers = workers
        self.dense_iters = check_dense_iters(dense_iters)
        #: ``powersgd``: each rank's PowerSGD state (torch's hook compresses from
        #: ``max(start_iter, dense_iters)`` on), else None
        self.low_rank: list[PowerSGDRankState] | None = None
        if getattr(compressor, "low_rank", False):
            self.dense_iters = max(self.dense_iters, int(compressor.p.start_iter))
            self.low_rank = [PowerSGDRankState(compressor.p) for _ in range(workers)]
        self.first_bucket_bytes = int(first_bucket_bytes)
        self.bucket_cap_bytes = int(bucket_cap_bytes)
        self.device = torch.device(device)
        self.names = [n for n, p in net.named_parameters() if p.requires_grad]
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.buffers = [b for _, b in net.named_buffers()]
        self.states = [rank_state(seed, w) for w in range(workers)]
        self.rng = [_seeded_rng(rank_seed(seed, w), self.device) for w in range(workers)]
        #: DDP's rebuilt buckets (parameter indices), known after iteration 0
        self.buckets: list[list[int]] | None = None
        self.iteration = 0

    # --- one iteration ---------------------------------------------------------------

    def iterate(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], loss_fn: LossFn) -> IterationStats:
        """One iteration on ``batches`` (one ``(x, y)`` per worker, on the device): leaves
        the averaged gradient in every parameter's ``.grad``."""
        if len(batches) != self.workers:
            raise ValueError(f"{len(batches)} batches for {self.workers} workers")
        start = [b.detach().clone() for b in self.buffers]
        rank0 = start
        compressed = compressing(self.iteration, self.dense_iters) and uses_compressor(self.compressor)
        buckets = self.buckets if self.buckets is not None else initial_buckets(len(self.params))
        dense: list[list[torch.Tensor]] = []  # per worker, per bucket: the allreduce input
        parts: list[list[Any]] = []  # per worker, per bucket: the payloads
        order: list[int] = []
        loss_total = torch.zeros((), device=self.device)
        for w, (x, y) in enumerate(batches):
            _load(self.buffers, start)
            record = self._record_ready(order) if self.iteration == 0 and w == 0 else []
            with _rng(self.rng, w, self.device):
                self.net.zero_grad(set_to_none=True)
                loss = loss_fn(self.net, x, y)
                loss.backward()
            for h in record:
                h.remove()
            loss_total += loss.detach()
            if w == 0:
                rank0 = [b.detach().clone() for b in self.buffers]
            grads = [p.grad for p in self.params]
            if compressed and self.low_rank is not None:  # DDP's bucket buffers, copied
                parts.append([torch.cat([grads[i].reshape(-1) for i in b]) for b in buckets])
            elif compressed:
                parts.append([
                    compress_bucket(self.compressor, self.states[w], [self.names[i] for i in b],
                                    [grads[i] for i in b])
                    for b in buckets
                ])
            else:  # DDP's dense average: each rank's bucket divided by world, then summed
                dense.append([torch.cat([grads[i].reshape(-1) for i in b]).div_(self.workers)
                              for b in buckets])
        _load(self.buffers, rank0)
        if compressed and self.low_rank is not None:
            sent = payload = self._exchange_low_rank(parts)
        elif compressed:
            payload = sum(p.wire_bytes for pw in parts for bucket in pw for _, p in bucket) / self.workers
            sent = self._exchange(parts)
            for s in self.states:
                s.step()
        else:
            for b, idx in enumerate(buckets):
                self._scatter(idx, ring_sum([d[b] for d in dense]))
            sent = payload = sum(p.numel() * p.element_size() for p in self.params)
        if self.iteration == 0:
            self.buckets = bucket_assignment(
                [p.numel() * p.element_size() for p in self.params], order,
                self.first_bucket_bytes, self.bucket_cap_bytes)
        self.iteration += 1
        return IterationStats(loss_total, sent, payload, compressed)

    def _record_ready(self, order: list[int]) -> list[Any]:
        """Hooks that append each parameter's index when its gradient is ready (DDP's
        autograd hooks fire at the same moment)."""
        return [
            p.register_post_accumulate_grad_hook(lambda _p, i=i: order.append(i))
            for i, p in enumerate(self.params)
        ]

    def _exchange(self, parts: list[list[Any]]) -> int:
        """Every bucket as the hook's collectives deliver it, into the parameters' grads."""
        sent = 0
        for b, idx in enumerate(self.buckets):
            ps = [self.params[i] for i in idx]
            flat = torch.zeros(sum(p.numel() for p in ps), dtype=ps[0].dtype, device=self.device)
            sent += exchange_in_process(self.compressor, [pw[b] for pw in parts],
                                        self.states[0].iteration, b, flat)
            self._scatter(idx, flat)
        return sent

    def _exchange_low_rank(self, bufs: list[list[torch.Tensor]]) -> int:
        """Every bucket as ``len(bufs)`` ranks running torch's PowerSGD hook leave it (the
        same on every rank), into the parameters' grads; the bytes one rank all-reduced."""
        sent = 0
        for b, idx in enumerate(self.buckets):
            shapes = [tuple(self.params[i].shape) for i in idx]
            sent += bucket_in_process(self.low_rank, b, [bw[b] for bw in bufs], shapes)
            self._scatter(idx, bufs[0][b])
        return sent

    def _scatter(self, idx: list[int], flat: torch.Tensor) -> None:
        """The flat averaged bucket into its parameters' ``.grad``."""
        off = 0
        for i in idx:
            p = self.params[i]
            p.grad = flat[off : off + p.numel()].view_as(p).clone()
            off += p.numel()

    # --- checkpoints -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "buckets": self.buckets,
            "states": [s.state_dict() for s in self.states],
            "rng": [dict(r) for r in self.rng],
            "low_rank": None if self.low_rank is None else [s.state_dict() for s in self.low_rank],
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.iteration = int(sd["iteration"])
        self.buckets = sd["buckets"]
        for s, st in zip(self.states, sd["states"], strict=True):
            s.load_state_dict(st)
        self.rng = [dict(r) for r in sd["rng"]]
        if self.low_rank is not None:
            for s, st in zip(self.low_rank, sd["low_rank"], strict=True):
                s.load_state_dict(st)


def _load(buffers: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for b, v in zip(buffers, values, strict=True):
            b.copy_(v)


def _seeded_rng(seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A rank's random-number state (as a fresh process seeded with ``seed``)."""
    with torch.random.fork_rng(devices=_cuda(device)):
        torch.manual_seed(seed)
        return _get_rng(device)


def _cuda(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _get_rng(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


class _rng:
    """Worker ``w``'s random-number stream for the duration of the block (the caller's is
    restored after)."""

    def __init__(self, states: list[dict[str, torch.Tensor]], w: int, device: torch.device):
        self.states, self.w, self.device = states, w, device

    def __enter__(self):
        self.saved = _get_rng(self.device)
        _set_rng(self.states[self.w], self.device)

    def __exit__(self, *exc):
        self.states[self.w] = _get_rng(self.device)
        _set_rng(self.saved, self.device)


def _set_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
