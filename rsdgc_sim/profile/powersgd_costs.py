"""What ``powersgd`` costs per iteration, measured the way training pays for it: per DDP
bucket, in gradient-ready order, right after a real backward pass, through the per-bucket
code the virtual trainer runs (:class:`rsdgc_sim.ddp.powersgd.BucketRound`, which equals
torch's ``powerSGD_hook``: ``tests/test_train_equivalence_powersgd.py``).

PowerSGD is not "compress, one collective, decompress": torch's hook all-reduces the tensors
sent whole and every ``P`` of a bucket, works on the sum, then all-reduces every ``Q``. Its
three phases per bucket are timed apart, as the simulator runs them
(:mod:`rsdgc_sim.sim.bucket_cost`):

1. inside a real backward, as soon as a bucket is complete and every bucket ahead of it has
   been handed over (DDP's order; the flat bucket buffer is DDP's copy, untimed), the
   hook's body, timed as **compress**: the error added and the copy kept, the split into
   tensors compressed and sent whole (concatenated), ``Q`` orthogonalized (a warm start:
   the steady state), ``P = M Q``;
2. after backward, per bucket in order, the futures' callbacks, each behind its collective:
   the tensors sent whole (divided, copied back into the bucket), timed as part of
   **decompress**; ``P`` orthogonalized and ``Q = M^T P``, timed as **middle**;
   ``M = P Q^T`` into the bucket and the new error, timed as the rest of **decompress**;
3. the collectives are stood in for, untimed (the network's): every rank sent what this
   one sent, so each sum is this rank's all-reduce input times :data:`WORLD` (in place, as
   gloo leaves it), and the averages are this rank's values: the state evolves as one
   rank's PowerSGD does.

The per-iteration totals are timed until stable (:func:`~rsdgc_sim.profile.sampling.
time_until_stable`: samples of preempted iterations discarded, the interquartile range
stored by the caller), at least one untimed iteration first (``Q``'s first draw). Each
bucket's median phase is split over its tensors in proportion to each tensor's own phase
times (each tensor timed alone, through the same code, only as weights); a tensor sent
whole has no middle phase; each phase is scaled so that the buckets add up to the median of
its per-iteration totals. Wire bytes follow torch's rule, as the estimate's
(:func:`rsdgc_sim.profile.cost_table.tensor_cost`): ``wire_bytes`` ``(n + m) r'`` values of
a compressed tensor (its ``q_bytes``: ``Q``'s ``m r'``), every element of one sent whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..compress.powersgd import compressed_rank, low_rank_bytes
from ..ddp import powersgd as psgd
from ..errors import ProfileError
from ..progress import Eta, Transient
from .bucket_costs import WORLD, Backward, Clock, CompressionCosts, _bucket_buffer
from .devices import synchronize
from .sampling import StopRule, median, time_until_stable
from .schema import TensorCost

#: the phases of a bucket, in order, each a key of a timed iteration (``<phase>:<bucket>``)
PHASES = ("compress", "middle", "decompress")


def measure_powersgd(
    comp: Any,
    backward: Backward,
    buckets: Sequence[Sequence[str]],
    device: str,
    rule: StopRule,
    *,
    warmup: int = 2,
    clock: Clock,
    say: Callable[[Any], None] = lambda _m: None,
    every_s: float = 1.0,
    name: str = "",
) -> CompressionCosts:
    """Time ``comp`` (``powersgd``) per bucket and phase (see the module doc); arguments as
    :func:`rsdgc_sim.profile.bucket_costs.measure_compression`'s. The totals returned are
    ``compress`` and ``decompress`` per iteration; the middle's per-tensor shares are in
    ``middle_s``."""
    timer = _PowerSGDTimer(comp, buckets, device, clock)
    warm = max(1, warmup)  # Q's first draw is not the steady state
    say(Transient(f"{name}: compress warm-up, {warm} iterations"))
    for _ in range(warm):
        timer.iteration(backward)
    times, reason, discarded = time_until_stable(
        lambda: timer.iteration(backward), ("compress", "middle", "decompress"), rule, clock,
        lambda m: say(Transient(f"{name}: compress {m}")), every_s)
    grads = backward(lambda _n, _g: None)
    weights = _weights(comp, grads, timer.timed, max(1, rule.min_iterations), say, every_s, name)
    costs = _split(comp.p, buckets, grads, times, weights)
    say(f"{name}: middle (P orthogonalized, Q = M^T P) "
        f"{median(times['middle']) * 1e3:.2f} ms per iteration")
    return CompressionCosts(costs, times["compress"], times["decompress"], reason, discarded)


def _stand_in(t: torch.Tensor) -> torch.Tensor:
    """An all-reduce (sum) of :data:`WORLD` ranks that all sent ``t``, in place."""
    return t.mul_(WORLD)


class _PowerSGDTimer:
    """One timed iteration of :func:`measure_powersgd` at a time: this rank's PowerSGD state
    (per bucket index, as torch's) carried from one to the next."""

    def __init__(self, comp: Any, buckets: Sequence[Sequence[str]], device: str, clock: Clock):
        self.buckets = buckets
        self.device = device
        self.clock = clock
        self.state = psgd.PowerSGDRankState(comp.p)

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """``fn``'s seconds (the device synchronized before and after) and its result."""
        synchronize(self.device)
        t0 = self.clock()
        out = fn()
        synchronize(self.device)
        return self.clock() - t0, out

    def iteration(self, backward: Backward) -> dict[str, float]:
        """Per bucket ``b`` its phases (``compress:b``, ``middle:b``, ``decompress:b``) and
        their totals over the buckets."""
        out: dict[str, float] = {}
        rounds = self._compress(backward, out)
        for b, rnd in enumerate(rounds):
            _callbacks(rnd, self.timed, out, b)
        for ph in PHASES:
            out[ph] = sum(out[f"{ph}:{b}"] for b in range(len(rounds)))
        return out

    def _compress(self, backward: Backward, out: dict[str, float]) -> list[Any]:
        """A real backward, each bucket's compress phase timed as soon as DDP would hand it
        over; every bucket's :class:`~rsdgc_sim.ddp.powersgd.BucketRound`."""
        buckets, state = self.buckets, self.state
        ready: dict[str, torch.Tensor] = {}
        rounds: list[Any] = []

        def on_ready(n: str, g: torch.Tensor) -> None:
            ready[n] = g
            while len(rounds) < len(buckets) and all(m in ready for m in buckets[len(rounds)]):
                b = len(rounds)
                buf, views = _bucket_buffer(ready, buckets[b])
                shapes = [tuple(v.shape) for v in views]
                dt, rnd = self.timed(lambda b=b, buf=buf, shapes=shapes: _compressed(
                    psgd.BucketRound(state, b, buf, shapes)))
                out[f"compress:{b}"] = dt
                rounds.append(rnd)

        backward(on_ready)
        if len(rounds) < len(buckets):
            missing = [n for b in buckets for n in b if n not in ready]
            raise ProfileError(f"no gradient for {missing[:3]} in backward: cannot measure "
                               f"powersgd per bucket")
        return rounds


def _compressed(rnd: Any) -> Any:
    rnd.compress()
    return rnd


def _callbacks(rnd: Any, timed: Callable[[Callable[[], Any]], tuple[float, Any]],
                  out: dict[str, float], key: Any) -> None:
    """A compressed bucket's callbacks, each after its collective's stand-in (untimed):
    ``middle:<key>``, and ``decompress:<key>`` (the tensors sent whole copied back, then
    ``M = P Q^T`` and the error)."""
    whole = _stand_in(rnd.whole_memory)
    t_whole, _ = timed(lambda: rnd.unpack_whole(whole, WORLD))
    out[f"middle:{key}"], _ = timed(lambda: rnd.middle(_stand_in(rnd.p_memory)))
    q = _stand_in(rnd.q_memory)
    t_dec, _ = timed(lambda: rnd.decompress(q, WORLD))
    out[f"decompress:{key}"] = t_whole + t_dec


def _weights(comp: Any, grads: Mapping[str, torch.Tensor], timed, rounds: int, say, every_s,
             name) -> dict[str, dict[str, float]]:
    """Each tensor's own phase times (medians of ``rounds``, after one untimed round), each
    tensor a bucket of its own with a state of its own: the shares a bucket's measured
    phases are split by."""
    state = psgd.PowerSGDRankState(comp.p)
    names = list(grads)
    got: dict[str, dict[str, list[float]]] = {ph: {n: [] for n in names} for ph in PHASES}
    eta = Eta(rounds, every_s=every_s)
    for r in range(rounds + 1):
        for i, n in enumerate(names):
            buf = grads[n].reshape(-1).clone()
            out: dict[str, float] = {}
            out["compress"], rnd = timed(lambda i=i, buf=buf, n=n: _compressed(
                psgd.BucketRound(state, i, buf, [tuple(grads[n].shape)])))
            _callbacks(rnd, timed, out, "t")
            if r:
                for ph in PHASES:
                    got[ph][n].append(out[ph] if ph == "compress" else out[f"{ph}:t"])
        if 0 < r < rounds and eta.due():
            say(Transient(f"{name}: per-tensor shares {eta.update(r)}"))
    return {ph: {n: median(v) for n, v in per.items()} for ph, per in got.items()}


def _shares(names: Sequence[str], weight: Mapping[str, float], total: float) -> dict[str, float]:
    """``total`` split over ``names`` in proportion to ``weight`` (evenly when all are 0)."""
    w = sum(weight[n] for n in names)
    if w <= 0:
        return {n: total / len(names) for n in names}
    return {n: total * weight[n] / w for n in names}


def _split(p: Any, buckets, grads: Mapping[str, torch.Tensor], times: Mapping[str, list[float]],
           weights: Mapping[str, Mapping[str, float]]) -> dict[str, TensorCost]:
    """Per-tensor costs from the per-bucket medians (see the module doc)."""
    nb = len(buckets)
    got: dict[str, dict[str, float]] = {ph: {} for ph in PHASES}
    for ph in PHASES:
        med = [median(times[f"{ph}:{b}"]) for b in range(nb)]
        s = sum(med)
        scale = median(times[ph]) / s if s > 0 else 0.0
        for b, names in enumerate(buckets):
            if ph == "middle":  # only the compressed tensors have one
                names = [n for n in names
                         if compressed_rank(grads[n].shape, p.rank, p.min_compression_rate)]
                got[ph].update({n: 0.0 for n in buckets[b]})
                if not names:
                    continue
            got[ph].update(_shares(names, weights[ph], med[b] * scale))
    costs = {}
    for names in buckets:
        for n in names:
            g = grads[n]
            wire, q = low_rank_bytes(g.shape, p.rank, p.min_compression_rate, g.element_size())
            costs[n] = TensorCost(compress_s=got["compress"][n], decompress_s=got["decompress"][n],
                                  accumulate_s=0.0, wire_bytes=wire, sparse=False, q_bytes=q,
                                  middle_s=got["middle"][n])
    return costs


__all__ = ["PHASES", "measure_powersgd"]
