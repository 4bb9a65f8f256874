"""Layer-wise dynamic density of ``nsi``: budget shared by importance, bounds, EMA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsdgc_sim.compress import CompressorState, create
from rsdgc_sim.compress.layerwise import allocate, allocate_densities, round_counts


def test_unclipped_shares_follow_closed_form():
    """Without clipping, k_l = K * n_l * I_l / sum(n_j * I_j)."""
    ks = allocate([1000, 3000, 6000], [2.0, 1.0, 0.5], density=0.1, d_min=0.0, d_max=1.0)
    # sum(n*I) = 2000 + 3000 + 3000 = 8000; K = 1000
    assert ks == [250, 375, 375]


def test_clipped_layer_gives_its_excess_to_the_others():
    """A layer clipped at d_max keeps d_max; the rest of the budget goes to the others:
    n = [100, 100], I = [1, 9], density 0.1, bounds [0.02, 0.15] -> 5 and 15 elements."""
    d = allocate_densities([100, 100], [1.0, 9.0], 0.1, 0.02, 0.15)
    assert d.tolist() == pytest.approx([0.05, 0.15])
    assert allocate([100, 100], [1.0, 9.0], 0.1, 0.02, 0.15) == [5, 15]


def test_infeasible_bounds_win():
    """When the bounds cannot hold the budget, every layer sits at the bound."""
    d = allocate_densities([100, 100], [1.0, 1.0], 0.5, 0.0, 0.2)
    assert d.tolist() == [0.2, 0.2]


def test_zero_importance_everywhere_gives_uniform_density():
    """All-zero (or NaN) importance: every layer gets the global density."""
    assert allocate([100, 200], [0.0, float("nan")], 0.1, 0.01, 0.5) == [10, 20]


def test_round_counts_hits_rounded_budget():
    """Largest-remainder rounding: counts add up to round(K), each within 1 of d*n."""
    n = [7, 13, 29, 101]
    d = np.array([0.31, 0.27, 0.11, 0.05])
    k = round_counts(n, d, float((d * n).sum()))
    assert sum(k) == round(float((d * n).sum()))
    assert all(abs(ki - di * ni) < 1 for ki, di, ni in zip(k, d, n, strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_totals_equal_budget_and_densities_in_bounds(seed):
    """Over random layers and gradient scales: total sent equals the budget (within one
    element per layer) and every layer's density stays in [d_min, d_max] (within one element)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(64, 3, 3, 3), (128, 64, 3, 3), (256, 1152), (10, 256), (32, 800)]
    scales = torch.rand(len(shapes), generator=gen) * 10
    density, d_min, d_max = 0.01, 0.002, 0.05
    comp = create("nsi", density=density, d_min=d_min, d_max=d_max, ema=0.0)
    st = CompressorState()
    for it in range(3):
        gs = {f"l{i}": torch.randn(s, generator=gen) * float(scales[i]) ** (it + 1)
              for i, s in enumerate(shapes)}
        ps = comp.compress_many(gs, st)
        total = sum(g.numel() for g in gs.values())
        sent = sum(p.nnz for p in ps.values())
        assert abs(sent - density * total) <= len(shapes)
        for name, p in ps.items():
            assert d_min - 1 / p.numel <= p.nnz / p.numel <= d_max + 1 / p.numel, name
        st.step()


def test_growing_layer_gets_a_larger_share():
    """A layer whose gradient grows (x10) gets more of the budget the next iteration; the
    EMA (0.5) moves its importance half way."""
    comp = create("nsi", density=0.01, d_min=0.001, d_max=0.1, ema=0.5)
    st = CompressorState()
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(100, 500, generator=gen), torch.randn(100, 500, generator=gen)
    first = comp.compress_many({"a": a, "b": b}, st)
    ia = st.importance("a")
    st.step()
    second = comp.compress_many({"a": a * 10, "b": b}, st)
    assert second["a"].nnz > first["a"].nnz
    assert second["b"].nnz < first["b"].nnz
    assert st.densities["a"] > st.densities["b"]
    # the EMA: new importance = 0.5 * old + 0.5 * current, current ~ 10x plus the residual
    assert ia < st.importance("a") < 10 * ia


def test_single_tensor_gets_exactly_the_density():
    """compress() of one tensor alone: the layer-wise budget is that tensor's, k = d * n."""
    p = create("nsi", density=0.02).compress("w", torch.randn(50, 100), CompressorState())
    assert p.nnz == 100


def test_warmup_scales_bounds():
    """During warm-up the per-layer bounds scale with the scheduled density, so the budget
    (0.25 of all elements at the first stage) is met."""
    comp = create("nsi", density=0.01, warmup_iters=4)
    st = CompressorState()
    gs = {"a": torch.randn(40, 100), "b": torch.randn(40, 100) * 5}
    ps = comp.compress_many(gs, st)
    assert abs(sum(p.nnz for p in ps.values()) - 0.25 * 8000) <= 2


def test_round_counts_gives_every_layer_at_least_one():
    """Densities that round to zero elements still give one per non-empty layer, taken back
    from the largest layer so that the total stays round(K); an empty layer gets none."""
    k = round_counts([500, 10**6, 0], np.array([0.0001, 0.01, 0.01]), 10000.05)
    assert k == [1, 9999, 0]


def test_round_counts_floor_when_budget_is_below_the_layer_count():
    """With fewer elements in the budget than layers, every layer still sends one."""
    assert round_counts([10, 10, 10], np.array([0.0, 0.0, 0.0]), 1.0) == [1, 1, 1]


def test_tiny_tensor_beside_a_huge_one_never_starves():
    """Layer-wise NSI: a 3x3 kernel (9 elements) of small gradients beside a 200x200 one of
    large gradients sends at least one element at every one of 300 iterations (its share by
    importance, about 400 * 9e-3 / 40000, rounds to zero), and the total stays the budget
    round(0.01 * 40009) = 400."""
    comp = create("nsi", density=0.01, min_numel=0, d_min=0.0)
    state = CompressorState(seed=0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        grads = {"tiny": torch.randn(1, 9, generator=gen) * 1e-3,
                 "huge": torch.randn(200, 200, generator=gen)}
        ps = comp.compress_many(grads, state)
        assert ps["tiny"].indices.numel() >= 1
        assert ps["tiny"].indices.numel() + ps["huge"].indices.numel() == 400
        state.step()
