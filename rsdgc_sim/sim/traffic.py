"""Bytes that leave a worker's NIC in one collective call.

A payload is not what a worker transmits: a ring all-gather forwards the ``p - 1`` other
ranks' payloads besides its own, a ring allreduce sends ``2(p-1)/p`` of the message. This
module counts what the worker ranks put on the wire, averaged over the ``p`` workers (hosts
that are not workers, such as parameter servers, are not counted):

    bytes_transmitted = sum over phases, repetitions and transfers whose source is a worker
                        of the transfer's bytes, divided by p

read off the same :class:`~rsdgc_sim.sim.collectives.base.Phase` description the simulator
times. Symmetric algorithms send the same on every worker; for the common ones the count
has a closed form, used beyond a size where enumerating transfers would be slow (and tested
equal to the enumeration below it):

* ring allreduce, halving-doubling (p a power of two), binomial tree (reduce then
  broadcast: every rank but the root sends once in each): ``2(p-1)/p n``;
* ring and recursive-doubling all-gather: ``(p-1) m`` padded, ``(p-1)/p sum(m_i)`` exact.
"""

from __future__ import annotations

import math

from .collectives import Collective, Message
from .collectives.base import log2_exact
from .topology.graph import Topology

#: above this many ranks the closed forms are used where they exist
ENUMERATE_UP_TO = 1024


def closed_bytes_transmitted(coll: Collective, p: int, msg: Message) -> float | None:
    if coll.name in ("ring", "tree") or (
            coll.name == "halving_doubling" and log2_exact(p) is not None):
        return 2 * (p - 1) / p * msg.nbytes
    if coll.name in ("allgather_ring", "allgather_recursive_doubling"):
        if msg.per_rank is None:
            return (p - 1) * msg.nbytes
        return (p - 1) / p * math.fsum(msg.per_rank)
    return None


def _enumerate(coll: Collective, p: int, msg: Message, topo: Topology) -> float:
    total = 0.0
    for ph in coll.phases(p, msg, topo):
        if isinstance(ph.nbytes, tuple):
            sent = math.fsum(b for (s, _d), b in zip(ph.pairs, ph.nbytes, strict=True) if s < p)
        else:
            sent = ph.nbytes * sum(1 for s, _d in ph.pairs if s < p)
        total += ph.repeat * sent
    return total / p


def bytes_transmitted(coll: Collective, p: int, msg: Message, topo: Topology) -> float:
    """Mean bytes one of the ``p`` workers transmits in one call of ``coll`` on ``msg``."""
    if p <= 1:
        return 0.0
    if p > ENUMERATE_UP_TO and (c := closed_bytes_transmitted(coll, p, msg)) is not None:
        return c
    return _enumerate(coll, p, msg, topo)


__all__ = ["ENUMERATE_UP_TO", "bytes_transmitted", "closed_bytes_transmitted"]
