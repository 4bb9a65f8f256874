"""``powersgd``: PyTorch's PowerSGD (Vogels, Karimireddy, Jaggi, NeurIPS 2019), a rank-r
approximation of each gradient matrix, sent as two all-reduced factors.

The rules, as torch's ``powerSGD_hook`` applies them (torch/distributed/algorithms/
ddp_comm_hooks/powerSGD_hook.py):

* each tensor is viewed as the matrix ``M = tensor.view(shape[0], -1)`` (n x m), of rank
  ``r' = min(n, m, rank)``; it is compressed iff ``(n + m) r' min_compression_rate < n m``
  (:func:`compressed_rank`), and then ``(n + m) r'`` values go on the wire: ``P`` (n x r')
  and ``Q`` (m x r'). Every other tensor, 1-D ones always (m = 1), is sent whole;
* ``Q`` starts as a standard normal draw, orthogonalized; with ``warm_start`` the last
  iteration's ``Q`` is reused (orthogonalized again);
* ``P = M Q``, all-reduced (summed), orthogonalized (:func:`orthogonalize`);
  ``Q = M^T P``, all-reduced, divided by the world size; the approximation is ``P Q^T``;
* error feedback: what the approximation missed is added to the next gradient.

This module is the one-rank algorithm behind the compressor API (``compress`` sends a
tensor's ``P`` and ``Q``, ``decompress`` returns ``P Q^T``; the residual and, with
``warm_start``, ``Q`` are kept in the :class:`~rsdgc_sim.compress.CompressorState`, ``Q``
where DGC keeps its momentum). Between ranks PowerSGD is not "decompress and add": ``P`` is
summed before it is orthogonalized and ``Q`` is computed from that sum, so N ranks run it
per DDP bucket with two all-reduces: torch's own hook on real ranks
(:func:`rsdgc_sim.ddp.make_comm_hook`), :mod:`rsdgc_sim.ddp.powersgd` (the same
operations, with in-process stand-ins for the collectives) in the virtual trainer and the
profiler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import COMPRESSORS, Compressor, check_same
from .memory import CompressorState
from .params import PowerSGDParams
from .payload import Payload, dense_payload, low_rank_payload

#: the seeds torch draws for Q's initialisation: ``RandomState.randint(SEED_RANGE)``
SEED_RANGE = 1_000_000_000


def matrix_shape(shape: Sequence[int]) -> tuple[int, int] | None:
    """``(n, m)`` of ``tensor.view(shape[0], -1)``; None for a 0-D tensor (no rows)."""
    if len(shape) == 0:
        return None
    return int(shape[0]), math.prod(int(d) for d in shape[1:])


def compressed_rank(shape: Sequence[int], rank: int, min_compression_rate: float) -> int:
    """The rank ``r'`` a tensor of ``shape`` is compressed to, or 0 when torch's rule sends it
    whole: ``r' = min(n, m, rank)``, compressed iff ``(n + m) r' min_compression_rate < n m``."""
    nm = matrix_shape(shape)
    if nm is None:
        return 0
    n, m = nm
    r = min(n, m, int(rank))
    return r if (n + m) * r * min_compression_rate < n * m else 0


def wire_elements(shape: Sequence[int], rank: int, min_compression_rate: float) -> int:
    """Values one rank sends for a tensor of ``shape``: ``(n + m) r'`` when compressed, else
    every element."""
    r = compressed_rank(shape, rank, min_compression_rate)
    if r == 0:
        return int(torch.Size(shape).numel())
    n, m = matrix_shape(shape)  # type: ignore[misc]
    return (n + m) * r


def low_rank_bytes(shape: Sequence[int], rank: int, min_compression_rate: float,
                   element_size: int) -> tuple[int, int]:
    """``(wire_bytes, q_bytes)`` one rank all-reduces for a tensor of ``shape``: every value
    it sends (:func:`wire_elements`), and of them ``Q``'s ``m r'`` (the second round; 0 for a
    tensor sent whole, in the first)."""
    r = compressed_rank(shape, rank, min_compression_rate)
    q = matrix_shape(shape)[1] * r if r else 0  # type: ignore[index]
    return wire_elements(shape, rank, min_compression_rate) * element_size, q * element_size


def wire_bytes(shapes: Sequence[Sequence[int]], rank: int, min_compression_rate: float = 2.0,
               element_size: int = 4) -> int:
    """Bytes one rank sends per compressed iteration for tensors of ``shapes`` (torch's rule,
    :func:`wire_elements` per tensor: ``(n + m) r'`` values when compressed, else every
    element), at ``element_size`` bytes a value (4: float32)."""
    return element_size * sum(wire_elements(s, rank, min_compression_rate) for s in shapes)


def max_useful_rank(shapes: Sequence[Sequence[int]]) -> int:
    """The largest rank that can change what ``shapes`` send: the largest ``min(n, m)`` of
    their matrix views (at least 1). Above it every tensor's ``r'`` stays the same."""
    mats = [nm for nm in map(matrix_shape, shapes) if nm is not None]
    return max([1, *(min(n, m) for n, m in mats)])


def rank_for_bytes(shapes: Sequence[Sequence[int]], target_bytes: float, *,
                   min_compression_rate: float = 2.0, element_size: int = 4) -> int:
    """The PowerSGD ``rank`` whose :func:`wire_bytes` for ``shapes`` come closest to
    ``target_bytes`` (ties: the smaller rank), searched over ``1..max_useful_rank(shapes)``.

    Use it to compare PowerSGD with another compressor at (nearly) equal bytes: pass the
    model's parameter shapes and the other compressor's bytes per worker and compressed
    step. The bytes are a step function of the rank (tensors switch to "sent whole" when
    their rank stops paying off), so the whole range is searched, not bisected."""
    if not target_bytes >= 0:
        raise ValueError(f"target_bytes must be >= 0, got {target_bytes}")
    best_rank, best_gap = 1, math.inf
    for rank in range(1, max_useful_rank(shapes) + 1):
        gap = abs(wire_bytes(shapes, rank, min_compression_rate, element_size) - target_bytes)
        if gap < best_gap:
            best_rank, best_gap = rank, gap
    return best_rank


def orthogonalize(matrices: torch.Tensor, epsilon: float = 0.0) -> None:
    """Orthonormalize the columns of each matrix of a batch ``[b, rows, cols]`` in place, as
    torch's ``_orthogonalize``: Gram-Schmidt for ``cols <= 2`` and half precision (each
    column divided by its norm, ``+ epsilon`` when epsilon is not 0, then projected out of
    the columns after it), else the Q of a QR factorization."""
    if not (matrices.dim() == 3 and matrices.shape[2] <= matrices.shape[1]):
        raise ValueError(f"orthogonalize needs [batch, rows, cols <= rows], got {tuple(matrices.shape)}")
    cols = matrices.shape[2]
    if cols <= 2 or matrices.dtype in (torch.float16, torch.bfloat16):
        for i in range(cols):
            col = matrices[:, :, i : i + 1]
            if epsilon == 0:
                col /= torch.norm(col, dim=1, keepdim=True)
            else:
                col /= torch.norm(col, dim=1, keepdim=True) + epsilon
            if i + 1 < cols:
                rest = matrices[:, :, i + 1 :]
                rest -= torch.sum(col * rest, dim=1, keepdim=True) * col
    else:
        r = torch.empty(matrices.shape[0], cols, cols, device=matrices.device, dtype=matrices.dtype)
        torch.linalg.qr(matrices, out=(matrices, r))


def draw_q(seed: int, shapes: Sequence[tuple[int, int]], dtype: torch.dtype,
           device: torch.device | str) -> list[torch.Tensor]:
    """Q's initial draws as torch's hook makes them: a CPU generator seeded with ``seed``,
    one standard normal ``[1, m, r]`` per shape in turn (torch seeds the global CPU generator
    inside ``fork_rng``; an explicit generator of the same kind draws the same numbers),
    moved to ``device``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return [torch.randn(1, m, r, generator=g, device="cpu", dtype=dtype).to(device)
            for m, r in shapes]


@COMPRESSORS.register("powersgd")
class PowerSGD(Compressor):
    """PyTorch's PowerSGD: rank-r factors P and Q, all-reduced per DDP bucket in two rounds.

    The compressor API runs it at one rank (see the module doc); N ranks run it per DDP
    bucket (torch's hook, :mod:`rsdgc_sim.ddp.powersgd`)."""

    name = "powersgd"
    sparse = False
    Params = PowerSGDParams
    #: per DDP bucket, two all-reduces (P, then Q) with work between them: the engines run
    #: it through :mod:`rsdgc_sim.ddp.powersgd` (or torch's hook), not per payload
    low_rank = True

    def rank_of(self, shape: Sequence[int]) -> int:
        """``r'`` of a tensor of ``shape`` (0: sent whole)."""
        return compressed_rank(shape, self.p.rank, self.p.min_compression_rate)

    def _compress(self, name: str, grad: torch.Tensor, state: CompressorState) -> Payload:
        p = self.p
        a = grad
        if p.error_feedback:
            r = state.residual(name)
            if r is not None:
                check_same(name, r, grad)
                a = grad + r
        rank = self.rank_of(grad.shape)
        if rank == 0:  # sent whole: at one rank the mean is the tensor, nothing is left over
            state.set_residual(name, None)
            return dense_payload(name, a if a is not grad else grad, grad)
        n, m = matrix_shape(grad.shape)  # type: ignore[misc]
        mat = a.reshape(1, n, m)
        q = state.momentum(name) if p.warm_start else None
        if q is None or q.shape != (1, m, rank):
            seed = int(torch.randint(SEED_RANGE, (1,), generator=state.generator("cpu")))
            q = draw_q(seed, [(m, rank)], a.dtype, a.device)[0]
        else:
            q = q.clone()
        orthogonalize(q, p.orthogonalization_epsilon)
        pm = torch.bmm(mat, q)
        orthogonalize(pm, p.orthogonalization_epsilon)
        q = torch.bmm(mat.transpose(1, 2), pm)
        if p.warm_start:
            state.set_momentum(name, q)
        if p.error_feedback:
            state.set_residual(name, (a.reshape(n, m) - pm[0] @ q[0].T).reshape(grad.shape))
        return low_rank_payload(name, pm.reshape(-1), q.reshape(-1), rank, grad)
