"""What one rank does with one DDP bucket on its own, around the collectives: the send side
(compress every gradient, split the payloads by how they travel, build the collectives'
inputs) and the receive side (write the averaged gradient into the bucket buffer).

Two callers run exactly this code, so that what is measured is what training pays:

* the communication hook (:mod:`rsdgc_sim.ddp.hook`): :func:`prepare_send` (or, on DDP's
  dense path, :func:`dense_send`) in the hook's body, the collectives on :class:`BucketSend`'s inputs, :func:`finish_receive` in the
  future's callback;
* the profiler (:mod:`rsdgc_sim.profile.measure`): the same two calls per bucket, in
  gradient-ready order, right after a real backward pass, with the collectives' results
  stood in for (the allreduce inputs summed as they are, every rank's packed buffer equal to
  this one's).

Nothing here talks to the network; the rules themselves are in
:mod:`rsdgc_sim.ddp.semantics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..compress.memory import CompressorState
from ..compress.payload import Payload
from .semantics import (
    Part,
    allgather_input,
    allgather_layout,
    allreduce_input,
    compress_bucket,
    quantized_input,
    split_exchanges,
    split_quantized,
    write_allgather,
    write_allreduce,
    write_quantized,
)
from .wire import Layout

#: pairs per rank in the all-gather, given this rank's payloads of the bucket
Capacity = Callable[[list[Payload]], int]


@dataclass
class Allgather:
    """The per-rank (index, value) pairs of a bucket: this rank's packed buffer and the
    (uninitialised) buffer that receives every rank's, end to end."""

    parts: list[Part]
    layout: Layout
    packed: torch.Tensor
    gathered: torch.Tensor


@dataclass
class QuantizedGather:
    """The quantized payloads of a bucket: this rank's buffer (scales and packed codes,
    exactly their wire bytes) and the (uninitialised) buffer that receives every rank's."""

    parts: list[Part]
    packed: torch.Tensor
    gathered: torch.Tensor


@dataclass
class BucketSend:
    """One rank's side of one bucket before the collectives: every payload with where it
    starts in the bucket; per values dtype, the same-position parts and their allreduce
    input (already divided by the world size); the all-gather of per-rank pairs, if any;
    the all-gather of quantized payloads, if any."""

    parts: list[Part]
    allreduce: list[tuple[list[Part], torch.Tensor]]
    allgather: Allgather | None
    quantized: QuantizedGather | None = None

    @property
    def payload_bytes(self) -> int:
        """Bytes of the payloads themselves (the sum of ``Payload.wire_bytes``)."""
        return sum(p.wire_bytes for _, p in self.parts)

    @property
    def sent_bytes(self) -> int:
        """Bytes this rank puts into the collectives: allreduce inputs plus its packed
        buffers."""
        sent = sum(flat.numel() * flat.element_size() for _, flat in self.allreduce)
        sent += self.allgather.packed.numel() if self.allgather is not None else 0
        return sent + (self.quantized.packed.numel() if self.quantized is not None else 0)


def prepare_send(
    compressor: Any, state: CompressorState, names: Sequence[str], grads: Sequence[torch.Tensor],
    world: int, capacity: Capacity,
) -> BucketSend:
    """The send side of one bucket: ``compress_many`` over its gradients (in bucket order,
    keyed ``names``), the allreduce inputs of same-position payloads, and this rank's
    packed all-gather buffer, sized by ``capacity`` (called with the per-rank payloads; the
    hook's agrees on it with the other ranks) with room for ``world`` of them."""
    parts = compress_bucket(compressor, state, names, grads)
    same_positions, per_rank = split_exchanges(parts)
    per_rank, quantized = split_quantized(per_rank)
    allreduce = [(ps, allreduce_input(ps, world)) for ps in same_positions]
    gather = quant = None
    if quantized:
        packed = quantized_input(quantized, grads[0].device)
        gathered = torch.empty(world * packed.numel(), dtype=torch.uint8, device=packed.device)
        quant = QuantizedGather(quantized, packed, gathered)
    if per_rank:
        device = grads[0].device
        layout = allgather_layout([p for _, p in per_rank], capacity([p for _, p in per_rank]))
        packed = allgather_input(per_rank, layout, device)
        gathered = torch.empty(world * packed.numel(), dtype=torch.uint8, device=device)
        gather = Allgather(per_rank, layout, packed, gathered)
    return BucketSend(parts, allreduce, gather, quant)


def dense_send(buf: torch.Tensor, world: int) -> torch.Tensor:
    """The local work of DDP's own dense path (warm-up iterations, ``none``): the bucket
    divided by the world size in place, ready for one allreduce that sums it."""
    return buf.div_(world)


def finish_receive(send: BucketSend, compressor: Any, world: int, out: torch.Tensor) -> None:
    """The receive side of one bucket, once its collectives have ended (the allreduce inputs
    summed in place, ``allgather.gathered`` filled): the averaged gradient into the flat
    bucket ``out``."""
    for parts, summed in send.allreduce:
        write_allreduce(summed, parts, compressor, out)
    if send.allgather is not None:
        g = send.allgather
        write_allgather(g.gathered, world, g.layout, g.parts, out)
    if send.quantized is not None:
        q = send.quantized
        write_quantized(q.gathered, world, q.parts, compressor, out)
