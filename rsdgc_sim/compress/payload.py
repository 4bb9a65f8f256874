"""What a compressor puts on the wire for one gradient tensor, and how payloads turn back
into dense gradients (one, or the sum of several ranks' payloads of the same tensor)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .bitpack import packed_bytes, unpack

#: bytes of one index on the wire (indices are int32)
INDEX_BYTES = 4
#: bytes of a quantized payload's scale on the wire (float32)
SCALE_BYTES = 4


@dataclass(eq=False)
class Payload:
    """One tensor's compressed form.

    * ``values``: what is sent, 1-D. Dense payload: all ``numel`` values, possibly in another
      dtype (``fp16``); sparse payload: the sent values, in the gradient's dtype.
    * ``indices``: int32 flat indices (into the row-major flattened gradient) of ``values``,
      unique, or ``None`` when the payload is dense.
    * ``numel``, ``shape``, ``dtype``: of the original gradient, so that
      :func:`decompress` restores it.
    * ``shared_indices``: every rank chose the same ``indices`` (they follow from a seed all
      ranks share, as in GRACE's random-k): only the values go on the wire, summed by
      allreduce.
    * ``rank``: a low-rank payload (``powersgd``) when > 0: ``values`` are the factors ``P``
      (n x rank, n = ``shape[0]``) then ``Q`` (m x rank), row-major; the tensor is
      ``P Q^T``. 0 otherwise.
    """

    values: torch.Tensor
    indices: torch.Tensor | None
    numel: int
    shape: torch.Size
    dtype: torch.dtype
    name: str = ""
    shared_indices: bool = False
    rank: int = 0

    @property
    def sparse(self) -> bool:
        """True when the payload is (index, value) pairs (shared or per rank)."""
        return self.indices is not None

    @property
    def needs_allgather(self) -> bool:
        """True when each rank sends its own (index, value) pairs, which only an all-gather
        can aggregate; False for dense payloads and shared-index ones (allreduce of values)."""
        return self.indices is not None and not self.shared_indices

    @property
    def nnz(self) -> int:
        """Number of values sent."""
        return int(self.values.numel())

    @property
    def wire_bytes(self) -> int:
        """Exactly what a collective moves for this payload: the values in their dtype plus
        4 bytes per int32 index when the indices are sent (:attr:`needs_allgather`)."""
        n = int(self.values.numel()) * self.values.element_size()
        if self.needs_allgather:
            n += int(self.indices.numel()) * INDEX_BYTES
        return n

    @property
    def device(self) -> torch.device:
        return self.values.device


@dataclass(eq=False)
class QuantizedPayload(Payload):
    """A quantized tensor (``qsgd``, ``terngrad``, ``efsignsgd``): one code per element,
    bit-packed (:mod:`rsdgc_sim.compress.bitpack`), and one float32 ``scale`` per tensor.

    * ``values``: the packed codes, uint8, ``ceil(numel * bits / 8)`` bytes;
    * ``scale``: 0-d float32 (the norm, max |a| or mean |a| of the tensor);
    * ``bits``: bits per code. With 1 bit the code is the sign alone (1: negative) and
      the element is ``+-scale``; with more, the code is ``magnitude << 1 | negative`` and
      the element is ``scale / levels * (+-magnitude)``, magnitude in ``0..levels`` (a
      zero magnitude never carries the sign bit).

    Each rank's scale is its own, so quantized payloads are all-gathered
    (:attr:`needs_allgather`), then decompressed and summed; every rank's payload of a
    tensor has the same size, which depends on ``numel`` and ``bits`` only."""

    scale: torch.Tensor | None = None
    levels: int = 1
    bits: int = 1

    @property
    def needs_allgather(self) -> bool:
        return True

    @property
    def nnz(self) -> int:
        """Number of elements the payload stands for (every element has a code)."""
        return self.numel

    @property
    def wire_bytes(self) -> int:
        """The packed codes and the float32 scale: ``ceil(numel * bits / 8) + 4``."""
        return packed_bytes(self.numel, self.bits) + SCALE_BYTES


def quantized_payload(name: str, packed: torch.Tensor, scale: torch.Tensor, levels: int,
                      bits: int, like: torch.Tensor) -> QuantizedPayload:
    """A quantized payload: ``packed`` codes of ``bits`` bits, ``scale`` (sent as float32)
    and ``levels`` for a gradient like ``like``."""
    return QuantizedPayload(
        values=packed.reshape(-1),
        indices=None,
        numel=like.numel(),
        shape=like.shape,
        dtype=like.dtype,
        name=name,
        scale=scale.reshape(()).to(torch.float32),
        levels=int(levels),
        bits=int(bits),
    )


def dequantize(codes: torch.Tensor, scale: torch.Tensor, levels: int, bits: int,
               dtype: torch.dtype) -> torch.Tensor:
    """The values of unpacked ``codes`` (see :class:`QuantizedPayload`) in ``dtype``:
    ``scale / levels * q``, q the signed magnitude (+-1 for sign codes), the float32 scale
    taken to ``dtype`` first."""
    s = scale.to(dtype)
    if bits == 1:
        q = 1 - 2 * codes.to(dtype)
    else:
        mag = (codes >> 1).to(dtype)
        q = torch.where((codes & 1).bool(), -mag, mag)
    return s / levels * q


def _quantized_dense(payload: QuantizedPayload) -> torch.Tensor:
    """The flat values of a quantized payload in the gradient's dtype (decoded in float32
    for half-precision gradients, then cast)."""
    dtype = torch.float32 if payload.dtype in (torch.float16, torch.bfloat16) else payload.dtype
    codes = unpack(payload.values, payload.numel, payload.bits)
    return dequantize(codes, payload.scale, payload.levels, payload.bits, dtype).to(payload.dtype)


def dense_payload(name: str, values: torch.Tensor, like: torch.Tensor) -> Payload:
    """A dense payload carrying ``values`` (flattened, any dtype) for a gradient like ``like``."""
    return Payload(
        values=values.reshape(-1),
        indices=None,
        numel=like.numel(),
        shape=like.shape,
        dtype=like.dtype,
        name=name,
    )


def low_rank_payload(name: str, p: torch.Tensor, q: torch.Tensor, rank: int,
                     like: torch.Tensor) -> Payload:
    """A low-rank payload: the factors ``p`` (n x rank) and ``q`` (m x rank) of a gradient
    like ``like`` viewed as n x m (n = its first dimension)."""
    return Payload(
        values=torch.cat([p.reshape(-1), q.reshape(-1)]),
        indices=None,
        numel=like.numel(),
        shape=like.shape,
        dtype=like.dtype,
        name=name,
        rank=int(rank),
    )


def _low_rank_dense(payload: Payload) -> torch.Tensor:
    """``P Q^T`` of a low-rank payload, flat, in the payload's values dtype."""
    n, r = int(payload.shape[0]), payload.rank
    m = payload.numel // max(1, n)
    p = payload.values[: n * r].view(n, r)
    q = payload.values[n * r : (n + m) * r].view(m, r)
    return (p @ q.T).reshape(-1)


def sparse_payload(
    name: str,
    values: torch.Tensor,
    indices: torch.Tensor,
    like: torch.Tensor,
    shared: bool = False,
) -> Payload:
    """A sparse payload: ``values`` at flat ``indices`` (any integer dtype, stored as int32);
    ``shared``: the same indices on every rank."""
    return Payload(
        values=values.reshape(-1),
        indices=indices.reshape(-1).to(torch.int32),
        numel=like.numel(),
        shape=like.shape,
        dtype=like.dtype,
        name=name,
        shared_indices=bool(shared),
    )


def decompress(payload: Payload) -> torch.Tensor:
    """The dense gradient a payload stands for: same shape and dtype as the original, zeros
    where nothing was sent. A dense payload in the gradient's dtype is returned without copy."""
    if isinstance(payload, QuantizedPayload):
        return _quantized_dense(payload).view(payload.shape)
    if payload.rank:
        return _low_rank_dense(payload).to(payload.dtype).view(payload.shape)
    if payload.indices is None:
        return payload.values.to(payload.dtype).view(payload.shape)
    out = torch.zeros(payload.numel, dtype=payload.dtype, device=payload.values.device)
    out[payload.indices] = payload.values.to(payload.dtype)
    return out.view(payload.shape)


def accumulate(out: torch.Tensor, payload: Payload, alpha: float = 1.0) -> torch.Tensor:
    """Add ``alpha * payload`` into the dense tensor ``out`` in place (index_add for sparse
    payloads, one pass); returns ``out``. ``out`` must have the payload's number of elements."""
    if out.numel() != payload.numel:
        raise ConfigError(
            f"cannot add payload {payload.name!r} of {payload.numel} elements "
            f"into a tensor of {out.numel()}"
        )
    flat = out.view(-1)
    if isinstance(payload, QuantizedPayload):
        flat.add_(_quantized_dense(payload).to(out.dtype), alpha=alpha)
    elif payload.rank:
        flat.add_(_low_rank_dense(payload).to(out.dtype), alpha=alpha)
    elif payload.indices is None:
        flat.add_(payload.values.to(out.dtype), alpha=alpha)
    else:
        flat.index_add_(0, payload.indices, payload.values.to(out.dtype), alpha=alpha)
    return out


def decompress_sum(payloads: Iterable[Payload], average: bool = False) -> torch.Tensor:
    """Sum (or mean, ``average=True``) of several payloads of the same tensor, e.g. the p
    ranks' payloads after an all-gather, as one dense tensor of the gradient's shape and
    dtype. All sparse payloads are added with a single ``index_add_`` over their
    concatenated (index, value) pairs; duplicates across ranks add up."""
    ps = list(payloads)
    if not ps:
        raise ConfigError("decompress_sum needs at least one payload")
    first = ps[0]
    for p in ps[1:]:
        if p.numel != first.numel or tuple(p.shape) != tuple(first.shape):
            raise ConfigError(
                f"decompress_sum: payload {p.name!r} has shape {tuple(p.shape)}, "
                f"expected {tuple(first.shape)}"
            )
    dtype = first.dtype
    out = torch.zeros(first.numel, dtype=dtype, device=first.values.device)
    sparse = [p for p in ps if p.indices is not None]
    for p in ps:
        if isinstance(p, QuantizedPayload):  # in rank order
            out.add_(_quantized_dense(p).to(dtype))
        elif p.rank:
            out.add_(_low_rank_dense(p).to(dtype))
        elif p.indices is None:
            out.add_(p.values.to(dtype))
    if len(sparse) == 1:
        out.index_add_(0, sparse[0].indices, sparse[0].values.to(dtype))
    elif sparse:
        idx = torch.cat([p.indices for p in sparse])
        val = torch.cat([p.values.to(dtype) for p in sparse])
        out.index_add_(0, idx, val)
    if average:
        out.div_(len(ps))
    return out.view(first.shape)
