"""Selectors: the fast exact top-k equals torch.topk; the sampled one is capped at k."""

from __future__ import annotations

import torch

from rsdgc_sim.compress import select as sel


def test_exact_topk_filter_path_equals_torch_topk():
    """On a large tensor (filter path) the set is torch.topk's, for several k."""
    x = torch.randn(1 << 18, generator=torch.Generator().manual_seed(0)).abs()
    for k in (1, 100, 2621, 30000):
        got = set(sel.exact_topk(x, k).tolist())
        assert got == set(torch.topk(x, k).indices.tolist()), k


def test_exact_topk_falls_back_when_the_sample_misleads():
    """If the strided sample sits on large values only (too few candidates), the result is
    still exactly torch.topk's."""
    n = 1 << 18
    x = torch.rand(n, generator=torch.Generator().manual_seed(1))
    step = max(1, n // max(sel.MIN_SAMPLES, n // 100))
    x[::step] += 10.0
    k = 5000
    assert set(sel.exact_topk(x, k).tolist()) == set(torch.topk(x, k).indices.tolist())


def test_exact_topk_small_and_edge_cases():
    """k >= n gives all indices, k = 0 none, a small tensor uses torch.topk."""
    x = torch.tensor([3.0, 1.0, 2.0])
    assert sel.exact_topk(x, 5).tolist() == [0, 1, 2]
    assert sel.exact_topk(x, 0).numel() == 0
    assert set(sel.exact_topk(x, 2).tolist()) == {0, 2}


def test_sampled_topk_never_exceeds_k_and_selects_large_values():
    """Sampled selection: at most k, at least 90 % of k on a continuous score, and each
    selected score is at least the 95th percentile."""
    x = torch.randn(500_000, generator=torch.Generator().manual_seed(2)).abs()
    gen = torch.Generator().manual_seed(0)
    k = 5000
    idx = sel.sampled_topk(x, k, gen)
    assert 0.9 * k <= idx.numel() <= k
    assert idx.unique().numel() == idx.numel()
    assert x[idx].min() >= torch.quantile(x[:100_000], 0.95)


def test_k_for():
    """k = round(d * n), at least 1 for a non-empty tensor, at most n, 0 for empty."""
    assert sel.k_for(1000, 0.01) == 10
    assert sel.k_for(10, 0.001) == 1
    assert sel.k_for(0, 0.5) == 0
    assert sel.k_for(3, 1.0) == 3
