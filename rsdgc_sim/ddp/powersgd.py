"""PowerSGD per DDP bucket, as torch's ``powerSGD_hook`` computes it on each rank, written as
phases around its three all-reduces so that N ranks can run in one process (the virtual
trainer, :mod:`rsdgc_sim.train.engine`) and one rank's phases can be timed (the profiler,
:mod:`rsdgc_sim.profile.powersgd_costs`). Real DDP ranks run torch's own hook
(:func:`rsdgc_sim.ddp.make_comm_hook`); ``tests/test_train_equivalence_powersgd.py`` trains
both side by side and compares every parameter after every step.

One rank, one bucket (``torch/distributed/algorithms/ddp_comm_hooks/powerSGD_hook.py``,
torch 2.13), state keyed by the bucket's index:

* before ``start_iter`` (counted in iterations, the last bucket ends one): DDP's dense
  average, the bucket divided by the world size, then summed (not this module);
* :meth:`BucketRound.compress` (the hook's body): with error feedback the bucket's error
  is added to it and the result copied; each gradient viewed as ``[shape[0], -1]`` is
  compressed or sent whole (:func:`~rsdgc_sim.compress.powersgd.compressed_rank`); the
  tensors sent whole are concatenated (not divided); the compressed ones are grouped by
  matrix shape, in the order each shape first appears, which is the order of ``P`` and ``Q``
  in their flat memories; ``Q`` is drawn (the first time a bucket is compressed, or always
  without ``warm_start``: one seed ``RandomState.randint(10**9)`` per bucket, then a normal
  draw per matrix) or the last one reused, orthogonalized; ``P = M Q``;
* all-reduce (sum) of the tensors sent whole; :meth:`BucketRound.unpack_whole`: divided by
  the world size, copied back into the bucket;
* all-reduce (sum) of ``P``; :meth:`BucketRound.middle`: ``P`` orthogonalized,
  ``Q = M^T P``;
* all-reduce (sum) of ``Q``; :meth:`BucketRound.decompress`: ``Q`` divided by the world
  size, ``M = P Q^T`` into the bucket, the new error = the copy minus the bucket (for the
  tensors sent whole: this rank's value minus the mean), and without ``warm_start`` every
  bucket's ``P`` and ``Q`` forgotten.

:func:`bucket_in_process` runs the phases for every rank with gloo's ring summation order
(:func:`~rsdgc_sim.ddp.semantics.ring_sum`) standing in for the all-reduces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..compress.powersgd import SEED_RANGE, compressed_rank, draw_q, orthogonalize
from .semantics import ring_sum


@dataclass
class PowerSGDRankState:
    """One rank's PowerSGD state, as torch's ``PowerSGDState``: per bucket index the error,
    the flat ``P`` and ``Q`` memories; the numpy RandomState of Q's seeds (seeded with the
    compressor's ``random_seed``, the same on every rank). The iteration is the engine's."""

    params: Any
    error: dict[int, torch.Tensor] = field(default_factory=dict)
    p_memory: dict[int, torch.Tensor] = field(default_factory=dict)
    q_memory: dict[int, torch.Tensor] = field(default_factory=dict)
    rng: np.random.RandomState | None = None

    def __post_init__(self) -> None:
        if self.rng is None:
            self.rng = np.random.RandomState(int(self.params.random_seed))

    def state_dict(self) -> dict[str, Any]:
        return {"error": dict(self.error), "p_memory": dict(self.p_memory),
                "q_memory": dict(self.q_memory), "rng": self.rng.get_state()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.error, self.p_memory = dict(sd["error"]), dict(sd["p_memory"])
        self.q_memory = dict(sd["q_memory"])
        self.rng = np.random.RandomState()
        self.rng.set_state(sd["rng"])


class BucketRound:
    """One rank's work on one bucket in one compressed iteration (see the module doc):
    :meth:`compress`, then, after each all-reduce, :meth:`unpack_whole`, :meth:`middle`,
    :meth:`decompress`. ``buf`` is the flat bucket (updated in place, as DDP's bucket
    buffer), ``shapes`` its gradients' shapes in bucket order."""

    def __init__(self, state: PowerSGDRankState, bucket: int, buf: torch.Tensor,
                 shapes: Sequence[Sequence[int]]):
        self.state, self.bucket, self.buf = state, bucket, buf
        self.views: list[torch.Tensor] = []
        off = 0
        for s in shapes:
            k = int(torch.Size(s).numel())
            self.views.append(buf[off : off + k].view(*s))
            off += k
        if off != buf.numel():
            raise ValueError(f"bucket {bucket}: shapes of {off} elements for a buffer of {buf.numel()}")
        self.copy: torch.Tensor | None = None
        self.whole: list[torch.Tensor] = []
        self.matrices: list[torch.Tensor] = []
        self.ps: list[torch.Tensor] = []
        self.qs: list[torch.Tensor] = []
        #: the all-reduce inputs: the tensors sent whole (concatenated), P, Q
        self.whole_memory = torch.empty(0)
        self.p_memory = torch.empty(0)
        self.q_memory = torch.empty(0)

    # -- the hook's body ---------------------------------------------------------------
    def compress(self) -> None:
        """Error feedback, the split, Q's initialisation and ``P = M Q``."""
        st, b, buf = self.state, self.bucket, self.buf
        p = st.params
        if p.error_feedback:
            if b in st.error:
                buf.add_(st.error[b])
            else:
                st.error[b] = torch.zeros_like(buf)
            self.copy = buf.detach().clone()
        by_shape: dict[tuple[int, int], list[torch.Tensor]] = {}
        p_size = q_size = 0
        for t in self.views:
            r = compressed_rank(t.shape, p.rank, p.min_compression_rate)
            if r:
                mat = t.view(t.shape[0], -1)
                by_shape.setdefault(tuple(mat.shape), []).append(mat)
                p_size += mat.shape[0] * r
                q_size += mat.shape[1] * r
            else:
                self.whole.append(t)
        self.whole_memory = (torch.cat([t.reshape(-1) for t in self.whole]) if self.whole
                             else torch.empty(0, device=buf.device, dtype=buf.dtype))
        randomize = not p.warm_start or b not in st.p_memory
        if randomize:
            st.p_memory[b] = torch.empty(p_size, device=buf.device, dtype=buf.dtype)
            st.q_memory[b] = torch.empty(q_size, device=buf.device, dtype=buf.dtype)
        self.p_memory, self.q_memory = st.p_memory[b], st.q_memory[b]
        pi = qi = 0
        for mats in by_shape.values():
            for mat in mats:
                n, m = mat.shape
                r = min(n, m, p.rank)
                self.matrices.append(mat.unsqueeze(0))
                self.ps.append(self.p_memory[pi : pi + n * r].view(1, n, r))
                self.qs.append(self.q_memory[qi : qi + m * r].view(1, m, r))
                pi += n * r
                qi += m * r
        eps = p.orthogonalization_epsilon
        if randomize:
            seed = int(st.rng.randint(SEED_RANGE))
            draws = draw_q(seed, [(q.shape[1], q.shape[2]) for q in self.qs], buf.dtype, buf.device)
            for q, d in zip(self.qs, draws, strict=True):
                q.copy_(d)
                orthogonalize(q, eps)
        else:
            for q in self.qs:
                orthogonalize(q, eps)
        for mat, q, pm in zip(self.matrices, self.qs, self.ps, strict=True):
            torch.bmm(mat, q, out=pm)

    # -- the futures' callbacks --------------------------------------------------------
    def unpack_whole(self, summed: torch.Tensor, world: int) -> None:
        """The summed tensors sent whole, divided by ``world``, back into the bucket."""
        mean = summed.div_(world)
        off = 0
        for t in self.whole:
            t.copy_(mean[off : off + t.numel()].view_as(t))
            off += t.numel()

    def middle(self, p_summed: torch.Tensor) -> None:
        """``P`` summed over the ranks (into this rank's P memory), orthogonalized;
        ``Q = M^T P``."""
        if p_summed is not self.p_memory:
            self.p_memory.copy_(p_summed)
        eps = self.state.params.orthogonalization_epsilon
        for pm in self.ps:
            orthogonalize(pm, eps)
        for mat, pm, q in zip(self.matrices, self.ps, self.qs, strict=True):
            torch.bmm(mat.transpose(1, 2), pm, out=q)

    def decompress(self, q_summed: torch.Tensor, world: int) -> None:
        """``Q`` summed over the ranks, divided by ``world``; ``M = P Q^T`` into the bucket;
        the new error."""
        if q_summed is not self.q_memory:
            self.q_memory.copy_(q_summed)
        self.q_memory.div_(world)
        for pm, q, mat in zip(self.ps, self.qs, self.matrices, strict=True):
            torch.bmm(pm, q.transpose(1, 2), out=mat)
        st, p = self.state, self.state.params
        if p.error_feedback:
            st.error[self.bucket] = self.copy - self.buf
        if not p.warm_start:
            st.p_memory.clear()
            st.q_memory.clear()


def bucket_in_process(states: Sequence[PowerSGDRankState], bucket: int,
                      bufs: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]]) -> int:
    """What ``len(states)`` ranks running torch's hook on bucket ``bucket`` compute: every
    rank's flat bucket ``bufs[r]`` becomes the averaged (decompressed) gradient, in place.
    Returns the bytes one rank puts into the three all-reduces."""
    world = len(states)
    rounds = [BucketRound(s, bucket, buf, shapes) for s, buf in zip(states, bufs, strict=True)]
    for r in rounds:
        r.compress()
    whole = ring_sum([r.whole_memory for r in rounds])
    for r in rounds:
        r.unpack_whole(whole.clone(), world)
    p_sum = ring_sum([r.p_memory for r in rounds])
    for r in rounds:
        r.middle(p_sum)
    q_sum = ring_sum([r.q_memory for r in rounds])
    for r in rounds:
        r.decompress(q_sum, world)
    first = rounds[0]
    return sum(t.numel() * t.element_size()
               for t in (first.whole_memory, first.p_memory, first.q_memory))


__all__ = ["BucketRound", "PowerSGDRankState", "bucket_in_process"]
