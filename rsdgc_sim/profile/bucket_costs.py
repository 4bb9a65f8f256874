"""What a compressor costs per iteration, measured the way training pays for it: per DDP
bucket, in gradient-ready order, through the communication hook's own code
(:func:`rsdgc_sim.ddp.bucket_work.prepare_send` and :func:`~rsdgc_sim.ddp.bucket_work.finish_receive`),
inside a real backward pass, at the moment DDP would call the hook.

Each timed iteration:

1. a real forward and backward (``backward``); as each gradient becomes ready it goes into
   its flat bucket buffer (DDP's copy, untimed: part of backward), and as soon as a bucket
   is complete, and every bucket ahead of it has been handed over (DDP launches buckets in
   order), the hook body's work runs right there, on the gradients backward has just
   left in the caches, timed as **compress**: ``compress_many`` over the bucket, the split
   by how payloads travel, the allreduce input, the wire packing and the receive buffer's
   allocation;
2. after backward, per bucket in order, the callback's work, timed as **decompress** twice,
   with the payloads of 1 and of :data:`WORLD` ranks (unpacking, one ``index_add_`` of every
   rank's pairs, each quantized payload decompressed and summed, the dense writes), in
   alternating order; the collectives' results are stood in for (untimed: the network's):
   the other ranks' packed buffers (pairs, quantized payloads) are this rank's of the
   previous iterations (other indices and draws, as other ranks' are), or this one's at
   first;
3. the compressor state steps once, as after a real iteration.

Per bucket, the receive side at ``p`` ranks is ``D(p) = D(1) + (p - 1) x slope``: the
profile stores, per tensor, ``decompress_s`` (its share of ``D(1)``) and, for all-gathered
tensors, ``accumulate_s`` (its share of the slope), so the simulator's
``decompress_s + (p - 1) x accumulate_s`` gives back the measured bucket at any ``p``. The
shares inside a bucket follow each tensor's own compress / decompress / accumulate time
(timed alone, only as weights): the sum over a bucket is the measured bucket.

A compressor that does not compress (``none``) takes DDP's dense path in the hook
(:func:`rsdgc_sim.ddp.bucket_work.dense_send`): its compression is that path's local work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..compress.base import Compressor
from ..compress.memory import CompressorState
from ..ddp.bucket_work import BucketSend, dense_send, finish_receive, prepare_send
from ..ddp.semantics import bucket_assignment, capacity_bound, uses_compressor
from ..errors import ProfileError
from ..progress import Eta, Transient
from .devices import synchronize
from .sampling import StopRule, median, time_until_stable
from .schema import TensorCost

#: the rank count of the second receive-side measurement (the first is 1): the slope of the
#: receive side in the ranks comes from the two
WORLD = 4

Clock = Callable[[], float]


@dataclass(frozen=True)
class CompressionCosts:
    """One compressor on one device: per-tensor costs, and the per-iteration totals behind
    them (one sample per clean timed iteration): ``compress`` and ``decompress`` (the
    receive side at one rank, the sum of ``decompress_s``), why timing stopped and how many
    iterations were discarded as preempted."""

    costs: dict[str, TensorCost]
    compress: list[float]
    decompress: list[float]
    reason: str
    discarded: int = 0


def steady_state_iteration(comp: Any) -> int:
    """The first iteration at which ``comp`` compresses at its target density: the end of its
    density warm-up (``warmup_iters`` of ``dgc`` and ``nsi``, the iteration count
    :func:`rsdgc_sim.compress.schedule.density_at` is driven by), 0 without one."""
    return max(0, int(getattr(comp.p, "warmup_iters", 0) or 0))


def ready_order(names: Sequence[str], ready_s: Mapping[str, float]) -> list[int]:
    """Tensor indices by gradient-ready time, ties in reverse registration order (the order
    DDP rebuilds its buckets in, and the simulator's :func:`rsdgc_sim.sim.buckets.ready_order`)."""
    return sorted(reversed(range(len(names))), key=lambda i: ready_s[names[i]])


def bucket_names(names: Sequence[str], sizes_bytes: Sequence[int], ready_s: Mapping[str, float],
                 first_bucket_bytes: int, bucket_cap_bytes: int) -> list[list[str]]:
    """DDP's rebuilt buckets as lists of tensor names, in communication order."""
    order = ready_order(names, ready_s)
    return [[names[i] for i in b]
            for b in bucket_assignment(sizes_bytes, order, first_bucket_bytes, bucket_cap_bytes)]


def _capacity(comp: Any, state: Any) -> Callable[[list[Any]], int]:
    """The all-gather's pairs per rank: the compressor's bound, else this rank's count (the
    hook exchanges the largest count; every rank sends about as many)."""
    def capacity(payloads: list[Any]) -> int:
        bound = capacity_bound(comp, payloads, state.iteration)
        return bound if bound is not None else sum(p.nnz for p in payloads)
    return capacity


def _bucket_buffer(grads: Mapping[str, torch.Tensor], names: Sequence[str]
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A flat bucket buffer holding ``names``' gradients, and the per-tensor views into it
    (what DDP's ``GradBucket.buffer()`` and ``gradients()`` give the hook)."""
    buf = torch.cat([grads[n].reshape(-1) for n in names])
    views, off = [], 0
    for n in names:
        k = grads[n].numel()
        views.append(buf[off:off + k].view(grads[n].shape))
        off += k
    return buf, views


def _gathered(g: Any, world: int, others: Sequence[torch.Tensor]) -> Any:
    """An all-gather (``Allgather`` or ``QuantizedGather``) as it would end for ``world``
    ranks: this rank's packed buffer first, then the others' (``others``: packed buffers of
    the same size, used in turn; this one's where there are none)."""
    n = g.packed.numel()
    rows = g.gathered[: world * n].view(world, n)
    fill = [p for p in others if p.numel() == n] or [g.packed]
    for r in range(world):
        rows[r].copy_(g.packed if r == 0 else fill[(r - 1) % len(fill)])
    return dataclasses.replace(g, gathered=rows.reshape(-1))


def _deliver(send: BucketSend, world: int, others: Sequence[torch.Tensor],
             others_quantized: Sequence[torch.Tensor] = ()) -> BucketSend:
    """The send side as the collectives would leave it for ``world`` ranks (see
    :func:`_gathered`; ``others_quantized``: the other ranks' quantized buffers)."""
    if send.allgather is not None:
        send = dataclasses.replace(send, allgather=_gathered(send.allgather, world, others))
    if send.quantized is not None:
        send = dataclasses.replace(
            send, quantized=_gathered(send.quantized, world, others_quantized))
    return send


#: gradients by tensor name, after a real forward and backward that called ``on_ready(name,
#: grad)`` for each as it became ready (``Backward(on_ready)``)
Backward = Callable[[Callable[[str, torch.Tensor], None]], Mapping[str, torch.Tensor]]


def measure_compression(
    comp: Any,
    backward: Backward,
    buckets: Sequence[Sequence[str]],
    device: str,
    rule: StopRule,
    *,
    warmup: int = 2,
    seed: int = 0,
    clock: Clock,
    say: Callable[[Any], None] = lambda _m: None,
    every_s: float = 1.0,
    name: str = "",
) -> CompressionCosts:
    """Time ``comp`` per bucket through the hook's code (see the module doc). ``backward``
    runs a real forward and backward, calling its argument with each gradient as it becomes
    ready, and returns the gradients by tensor name; ``buckets`` are the tensor names of
    each bucket, in communication order; ``rule`` says when to stop timing; ``clock``
    (seconds) times it."""
    if getattr(comp, "low_rank", False):
        raise ProfileError(
            f"{name or comp.name}: PowerSGD's phases per bucket (compress, the middle between "
            f"its two all-reduces, decompress) are measured by "
            f"rsdgc_sim.profile.powersgd_costs.measure_powersgd")
    start = steady_state_iteration(comp)
    timer = _BucketTimer(comp, buckets, device, clock, seed, start)
    if warmup:
        say(Transient(f"{name}: compress warm-up, {warmup} iterations"))
    for _ in range(warmup):
        timer.iteration(backward)
    times, reason, discarded = time_until_stable(
        lambda: timer.iteration(backward), ("compress",), rule, clock,
        lambda m: say(Transient(f"{name}: compress {m}")), every_s)

    grads = backward(lambda _n, _g: None)
    payloads = _payloads(comp, grads, buckets, timer.last, seed, start)
    weights = _weights(comp, grads, payloads, device, timer.timed, start, seed,
                       max(1, rule.min_iterations), say, every_s, name)
    costs = _split(buckets, times, payloads, weights)
    return CompressionCosts(costs, times["compress"], times["decompress"], reason, discarded)


class _BucketTimer:
    """One timed iteration of :func:`measure_compression` at a time (see the module doc):
    the send side of each bucket timed inside backward, as DDP hands it over, then the
    receive side at 1 and :data:`WORLD` ranks. Carries what iterations share: the
    compressor state (from its steady-state iteration ``start``), each bucket's last send
    and this rank's packed buffers of the last iterations (the other ranks')."""

    def __init__(self, comp: Any, buckets: Sequence[Sequence[str]], device: str, clock: Clock,
                 seed: int, start: int):
        self.comp = comp
        self.buckets = buckets
        self.device = device
        self.clock = clock
        self.state = CompressorState(seed=seed)
        self.state.iteration = start
        self.compressing = uses_compressor(comp)
        self.capacity = _capacity(comp, self.state)
        self.last: dict[int, BucketSend] = {}
        #: per bucket, this rank's packed buffers of the last iterations (the other ranks'):
        #: of (index, value) pairs, and of quantized payloads
        self.history: dict[int, list[torch.Tensor]] = {b: [] for b in range(len(buckets))}
        self.history_quantized: dict[int, list[torch.Tensor]] = {
            b: [] for b in range(len(buckets))}
        self.flip = False

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """``fn``'s seconds (the device synchronized before and after) and its result."""
        synchronize(self.device)
        t0 = self.clock()
        out = fn()
        synchronize(self.device)
        return self.clock() - t0, out

    def iteration(self, backward: Backward) -> dict[str, float]:
        """One iteration: per bucket ``b`` its send (``c:b``) and its receive at 1 and at
        :data:`WORLD` ranks (``d1:b``, ``dw:b``), and the totals ``compress`` and
        ``decompress``; the compressor state steps once."""
        out: dict[str, float] = {}
        handed = self._send(backward, out)
        worlds = (WORLD, 1) if self.flip else (1, WORLD)
        self.flip = not self.flip
        for b, (buf, send) in enumerate(handed):
            self._receive(b, buf, send, worlds, out)
        self.state.step()
        nb = len(self.buckets)
        out["compress"] = sum(out[f"c:{b}"] for b in range(nb))
        out["decompress"] = sum(out[f"d1:{b}"] for b in range(nb))
        return out

    def _send(self, backward: Backward, out: dict[str, float]
              ) -> list[tuple[torch.Tensor, BucketSend | None]]:
        """A real backward, each bucket's send side timed as soon as it is complete and
        every bucket ahead of it has been handed over; per bucket its buffer and send (None
        on DDP's dense path)."""
        buckets, comp, state = self.buckets, self.comp, self.state
        ready: dict[str, torch.Tensor] = {}
        handed: list[tuple[torch.Tensor, BucketSend | None]] = []

        def on_ready(n: str, g: torch.Tensor) -> None:
            ready[n] = g
            # DDP hands buckets over in order, each once it is complete
            while len(handed) < len(buckets) and all(m in ready for m in buckets[len(handed)]):
                b = len(handed)
                buf, views = _bucket_buffer(ready, buckets[b])
                if self.compressing:
                    out[f"c:{b}"], send = self.timed(lambda b=b, views=views: prepare_send(
                        comp, state, buckets[b], views, WORLD, self.capacity))
                else:
                    out[f"c:{b}"], send = self.timed(lambda buf=buf: dense_send(buf, WORLD))[0], None
                handed.append((buf, send))

        backward(on_ready)
        if len(handed) < len(buckets):
            missing = [n for b in buckets for n in b if n not in ready]
            raise ProfileError(f"no gradient for {missing[:3]} in backward: cannot measure "
                               f"compression per bucket")
        return handed

    def _receive(self, b: int, buf: torch.Tensor, send: BucketSend | None,
                 worlds: tuple[int, int], out: dict[str, float]) -> None:
        """Bucket ``b``'s receive side timed at each rank count of ``worlds``, in that
        order, on the other ranks' buffers as the collectives would leave them."""
        if send is None:
            out[f"d1:{b}"] = out[f"dw:{b}"] = 0.0
            return
        for world in worlds:
            got = _deliver(send, world, self.history[b], self.history_quantized[b])
            dt, _ = self.timed(lambda got=got, world=world, buf=buf: finish_receive(
                got, self.comp, world, buf))
            out[f"{'d1' if world == 1 else 'dw'}:{b}"] = dt
        if send.allgather is not None:
            self.history[b] = [send.allgather.packed, *self.history[b]][: WORLD - 1]
        if send.quantized is not None:
            q = self.history_quantized[b]
            self.history_quantized[b] = [send.quantized.packed, *q][: WORLD - 1]
        self.last[b] = send


def _payloads(comp: Compressor, grads, buckets, last: Mapping[int, BucketSend], seed: int,
              start: int) -> dict[str, Any]:
    """Each tensor's steady-state payload: the last timed iteration's, or, for a compressor
    that does not compress in the hook, ``compress_many``'s (its wire size and kind)."""
    if last:
        return {n: p for b in range(len(buckets)) for n, (_, p) in
                zip(buckets[b], last[b].parts, strict=True)}

    state = CompressorState(seed=seed)
    state.iteration = start
    return dict(comp.compress_many({n: grads[n] for b in buckets for n in b}, state))


def _weights(comp: Compressor, grads, payloads, device, timed, start, seed, rounds, say, every_s,
             name) -> dict[str, dict[str, float]]:
    """Each tensor's own compress, decompress and accumulate time (medians of ``rounds``),
    the shares a bucket's measured time is split by."""
    state = CompressorState(seed=seed)
    state.iteration = start
    sums = {n: torch.zeros_like(g) for n, g in grads.items()}
    got: dict[str, dict[str, list[float]]] = {k: {n: [] for n in payloads} for k in ("c", "d", "a")}
    eta = Eta(rounds, every_s=every_s)
    for r in range(rounds):
        for n in payloads:
            got["c"][n].append(timed(lambda n=n: comp.compress(n, grads[n], state))[0])
            got["d"][n].append(timed(lambda n=n: comp.decompress(payloads[n]))[0])
            got["a"][n].append(timed(lambda n=n: comp.accumulate(sums[n], payloads[n]))[0])
        state.step()
        if r + 1 < rounds and eta.due():
            say(Transient(f"{name}: per-tensor shares {eta.update(r + 1)}"))
    return {k: {n: median(v) for n, v in per.items()} for k, per in got.items()}


def needs_allgather(payload: Any) -> bool:
    """Whether a payload is all-gathered (its own indices) rather than allreduced."""
    return bool(getattr(payload, "needs_allgather", payload.indices is not None))


def _shares(names: Sequence[str], weight: Mapping[str, float], total: float) -> dict[str, float]:
    """``total`` split over ``names`` in proportion to ``weight`` (evenly when all are 0)."""
    w = sum(weight[n] for n in names)
    if w <= 0:
        return {n: total / len(names) for n in names}
    return {n: total * weight[n] / w for n in names}


def _split(buckets, times: Mapping[str, list[float]], payloads: Mapping[str, Any],
           weights: Mapping[str, Mapping[str, float]]) -> dict[str, TensorCost]:
    """Per-tensor costs from the per-bucket medians: compress and ``D(1)`` by the tensors'
    own times; the slope ``(D(WORLD) - D(1)) / (WORLD - 1)`` (at least 0) over the bucket's
    all-gathered tensors by their accumulate times. Each per-bucket median is scaled so that
    the buckets add up to the median of the per-iteration totals (the quantity whose spread
    the profile records)."""
    nb = len(buckets)
    med = {k: [median(times[f"{k}:{b}"]) for b in range(nb)] for k in ("c", "d1", "dw")}
    scale = {}
    for k, total in (("c", "compress"), ("d1", "decompress")):
        s = sum(med[k])
        scale[k] = median(times[total]) / s if s > 0 else 0.0
    comp: dict[str, float] = {}
    dec: dict[str, float] = {}
    acc: dict[str, float] = {}
    for b, names in enumerate(buckets):
        comp.update(_shares(names, weights["c"], med["c"][b] * scale["c"]))
        dec.update(_shares(names, weights["d"], med["d1"][b] * scale["d1"]))
        gathered = [n for n in names if needs_allgather(payloads[n])]
        slope = max(0.0, (med["dw"][b] - med["d1"][b]) / (WORLD - 1)) * scale["d1"]
        acc.update({n: 0.0 for n in names})
        if gathered:
            acc.update(_shares(gathered, weights["a"], slope))
    return {
        n: TensorCost(compress_s=comp[n], decompress_s=dec[n], accumulate_s=acc[n],
                      wire_bytes=int(payloads[n].wire_bytes), sparse=needs_allgather(payloads[n]))
        for b in buckets for n in b
    }
