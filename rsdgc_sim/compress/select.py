"""Choosing which elements to send, given a score per element (|value| for top-k and DGC,
the NSI score for RS-DGC).

* :func:`exact_topk`: the k largest scores (``torch.topk``).
* :func:`sampled_topk`: DGC's sampled threshold estimation (Lin et al. 2018): the k-th
  largest score is estimated from a uniform random sample, every element at or above it is
  a candidate, and when there are more than k candidates the k largest of them are kept, so
  that the payload never exceeds k (it may fall a little short of k).
"""

from __future__ import annotations

import math

import torch

from .params import SELECTORS

__all__ = ["SELECTORS", "exact_topk", "k_for", "sampled_topk", "select"]

#: the sampled selector draws at least this many samples (fewer make a poor estimate)
MIN_SAMPLES = 4096

#: the sampled selector draws enough samples for this many to exceed the threshold
MIN_SAMPLE_HITS = 64

#: the sampled selector aims at this many times k candidates, then keeps the k largest
SAMPLED_MARGIN = 1.2

#: tensors at least this large take the candidate-filter path of :func:`exact_topk` (CPU)
FILTER_MIN_NUMEL = 1 << 16


def k_for(numel: int, density: float) -> int:
    """Elements to send from a tensor of ``numel`` at ``density``: ``round(density*numel)``,
    at least 1 (for a non-empty tensor and a positive density) and at most ``numel``."""
    if numel <= 0 or density <= 0:
        return 0
    return min(numel, max(1, int(round(density * numel))))


def _all(score: torch.Tensor) -> torch.Tensor:
    return torch.arange(score.numel(), device=score.device)


def exact_topk(score: torch.Tensor, k: int, generator: torch.Generator | None = None):
    """Flat int64 indices of the ``k`` largest entries of the 1-D ``score`` (no order).

    The same set as ``torch.topk`` (up to ties), found faster on large CPU tensors: a
    threshold safely below the k-th largest value is taken from a strided sample, every
    entry at or above it is a candidate, and ``torch.topk`` runs on the candidates only. The
    threshold is checked (at least k candidates, which proves it is not above the k-th
    largest value); if the check fails, plain ``torch.topk`` of the whole tensor is used."""
    n = score.numel()
    if k >= n:
        return _all(score)
    if k <= 0:
        return torch.empty(0, dtype=torch.long, device=score.device)
    if score.device.type == "cpu" and n >= FILTER_MIN_NUMEL and k * 8 <= n:
        step = max(1, n // max(MIN_SAMPLES, n // 100))
        sample = score[::step]
        ns = sample.numel()
        ks = min(ns, math.ceil(1.25 * k * ns / n) + 16)
        thr = torch.topk(sample, ks, sorted=False).values.min()
        cand = torch.nonzero(score >= thr).view(-1)
        if k <= cand.numel() <= 8 * k:
            return cand[torch.topk(score[cand], k, sorted=False).indices]
    return torch.topk(score, k, sorted=False).indices


def sampled_topk(
    score: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    sample_ratio: float = 0.01,
) -> torch.Tensor:
    """Flat int64 indices of at most ``k`` large entries of the 1-D ``score``, found with a
    threshold estimated on a uniform random sample of ``sample_ratio * numel`` entries (at
    least :data:`MIN_SAMPLES`, and enough that :data:`MIN_SAMPLE_HITS` samples are expected
    above the k-th largest value). The threshold aims at :data:`SAMPLED_MARGIN` times k
    candidates, of which the k largest are kept, so the payload is k unless the estimate
    falls short. Falls back to :func:`exact_topk` when the sample would be more than half
    the tensor."""
    n = score.numel()
    if k >= n or k <= 0:
        return exact_topk(score, k)
    # enough samples that about MIN_SAMPLE_HITS of them lie above the k-th largest value
    ns = max(MIN_SAMPLES, math.ceil(n * sample_ratio), math.ceil(MIN_SAMPLE_HITS * n / k))
    if 2 * ns >= n:
        return exact_topk(score, k)
    sidx = torch.randint(0, n, (ns,), generator=generator, device=score.device)
    sample = score[sidx]
    # aim a little above k (then cut down to k) rather than fall short of it
    ks = min(ns, math.ceil(SAMPLED_MARGIN * k * ns / n))
    thr = torch.topk(sample, ks, sorted=False).values.min()
    idx = torch.nonzero(score >= thr).view(-1)
    if idx.numel() > k:
        keep = torch.topk(score[idx], k, sorted=False).indices
        idx = idx[keep]
    return idx


def select(
    selector: str,
    score: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    sample_ratio: float = 0.01,
) -> torch.Tensor:
    """Dispatch on the selector name (``exact`` or ``sampled``)."""
    if selector == "exact":
        return exact_topk(score, k)
    return sampled_topk(score, k, generator, sample_ratio)
