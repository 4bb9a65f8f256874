"""RS-DGC (``nsi``): the NSI score against a float64 loop reference, selection, the
small-inside-a-strong-neighborhood case, dense small tensors, warm-up."""

from __future__ import annotations

import math

import pytest
import torch

from rsdgc_sim.compress import CompressorState, create, nsi_score
from rsdgc_sim.compress import neighborhood as nb
from rsdgc_sim.compress.select import k_for


def reference_score(a2d: torch.Tensor, p: int, statistic: str, lam: float, eps: float = 1e-12):
    """Direct float64 loop over every element's clipped p x p window."""
    x = a2d.double().tolist()
    h, w = len(x), len(x[0])
    r = p // 2
    tensor_mean_abs = sum(abs(v) for row in x for v in row) / (h * w)
    out = torch.zeros(h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            vals = [
                x[u][v]
                for u in range(max(0, i - r), min(h, i + r + 1))
                for v in range(max(0, j - r), min(w, j + r + 1))
            ]
            n = len(vals)
            mean = sum(vals) / n
            mean_abs = sum(abs(v) for v in vals) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / n)
            if statistic == "mean_std":
                out[i, j] = mean_abs + lam * std
            elif statistic == "mean_abs":
                out[i, j] = mean_abs
            elif statistic == "abs_plus_mean":
                out[i, j] = abs(x[i][j]) + lam * mean_abs
            elif statistic == "abs_times_mean":
                out[i, j] = abs(x[i][j]) * (1 + lam * mean_abs / (tensor_mean_abs + eps))
            else:
                out[i, j] = abs(mean) / (std + eps)
    return out


SHAPES = [(1, 1), (1, 7), (6, 1), (2, 2), (5, 9), (8, 3, 3, 3), (4, 2, 1, 5), (13, 17)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("statistic, lam", [
    ("mean_std", 1.0), ("mean_std", 0.3), ("mean_abs", 0.0), ("snr", 1.0),
    ("abs_plus_mean", 1.0), ("abs_plus_mean", 0.3), ("abs_times_mean", 1.0), ("abs_times_mean", 2.5),
])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_score_matches_float64_loop_reference(shape, statistic, lam, kernel):
    """The NSI score equals a direct float64 loop over clipped windows (border windows are
    averaged over in-bounds elements only), for several shapes, statistics and kernels."""
    g = torch.Generator().manual_seed(hash((shape, kernel)) % 1000)
    a = torch.randn(shape, generator=g)
    comp = create("nsi", kernel=kernel, statistic=statistic, lam=lam)
    got = comp.score(a)
    ref = reference_score(a.reshape(shape[0], -1), kernel, statistic, lam)
    assert got.shape == ref.shape
    if statistic == "snr":  # a ratio: compare where the std is not ~0
        assert torch.allclose(got.double(), ref, rtol=1e-3, atol=1e-4)
    else:
        assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-6)


def test_score_float64_input_is_exact_to_1e12():
    """On float64 input the score is computed in float64 and agrees to 1e-12."""
    a = torch.randn(9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = nsi_score(a, 3, "mean_std", 1.0)
    assert got.dtype == torch.float64
    assert torch.allclose(got, reference_score(a, 3, "mean_std", 1.0), rtol=1e-12, atol=1e-12)


def test_border_window_is_mean_of_in_bounds_elements():
    """A corner's 3x3 window holds 4 in-bounds elements: mean_abs there is their mean."""
    a = torch.tensor([[4.0, -2.0, 100.0], [1.0, 1.0, 100.0], [100.0, 100.0, 100.0]])
    s = nsi_score(a, 3, "mean_abs", 0.0)
    assert s[0, 0].item() == pytest.approx((4 + 2 + 1 + 1) / 4)
    assert s[1, 1].item() == pytest.approx((4 + 2 + 100 + 1 + 1 + 100 + 300) / 9)


@pytest.mark.parametrize("shape", [(32, 3, 3, 3), (20, 70), (64, 200)])
@pytest.mark.parametrize("density", [0.01, 0.1])
@pytest.mark.parametrize("statistic", ["mean_std", "abs_times_mean"])
def test_static_exact_selects_reference_topk_of_scores(shape, density, statistic):
    """With dynamic off and the exact selector, the sent index set is the top-k of the
    float64 reference scores and the values sent are the gradient's values there."""
    g = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    comp = create("nsi", density=density, dynamic=False, selector="exact", min_numel=0,
                  statistic=statistic)
    p = comp.compress("w", g, CompressorState())
    ref = reference_score(g.reshape(shape[0], -1), 3, statistic, 1.0).reshape(-1)
    k = k_for(g.numel(), density)
    order = torch.argsort(ref, descending=True)
    # the test is only meaningful if the k-th and (k+1)-th reference scores are apart
    assert ref[order[k - 1]] - ref[order[k]] > 1e-5
    assert set(p.indices.tolist()) == set(order[:k].tolist())
    assert torch.equal(p.values, g.reshape(-1)[p.indices.long()])


def test_small_element_in_strong_neighborhood_is_sent_by_nsi_not_topk():
    """A small element at the centre of a block of large ones is sent by nsi (its window is
    strong) and not by topk (its own magnitude is small); an isolated spike is sent by topk
    and not by nsi."""
    g = torch.full((12, 12), 0.01)
    g[3:6, 3:6] = 1.0
    centre = 4 * 12 + 4
    g[4, 4] = 0.05
    for (i, j), v in {(9, 9): 0.95, (1, 10): 0.9, (10, 1): 0.85}.items():
        g[i, j] = v
    k = 9
    density = k / g.numel()
    nsi = create("nsi", density=density, dynamic=False, min_numel=0, lam=0.0,
                 statistic="mean_std")
    topk = create("topk", density=density)
    sent_nsi = set(nsi.compress("w", g, CompressorState()).indices.tolist())
    sent_topk = set(topk.compress("w", g, CompressorState()).indices.tolist())
    assert centre in sent_nsi and centre not in sent_topk
    assert 9 * 12 + 9 in sent_topk and 9 * 12 + 9 not in sent_nsi


def test_one_d_and_small_tensors_are_dense():
    """1-D tensors and tensors under min_numel go dense (indices None), residual cleared."""
    comp = create("nsi", min_numel=500)
    st = CompressorState()
    gs = {"b": torch.randn(4000), "small": torch.randn(10, 20), "big": torch.randn(50, 50)}
    ps = comp.compress_many(gs, st)
    assert ps["b"].indices is None and ps["small"].indices is None
    assert ps["big"].indices is not None
    assert torch.equal(ps["b"].values, gs["b"]) and st.residual("b") is None


def test_sampled_selector_close_to_k():
    """The sampled selector sends at most k and, on a smooth score, nearly k (>= 90 %)."""
    g = torch.randn(300, 400, generator=torch.Generator().manual_seed(0))
    comp = create("nsi", density=0.01, selector="sampled", dynamic=False)
    p = comp.compress("w", g, CompressorState())
    k = k_for(g.numel(), 0.01)
    assert 0.9 * k <= p.nnz <= k


def test_warmup_schedule_drives_nsi_density():
    """nsi with warm-up sends 0.25, 0.0625, 0.015625 of the elements, then density."""
    comp = create("nsi", density=0.01, warmup_iters=3, dynamic=False)
    st = CompressorState()
    sent = []
    for _ in range(5):
        sent.append(comp.compress("w", torch.randn(64, 1000), st).nnz)
        st.step()
    assert sent == [16000, 4000, 1000, 640, 640]


@pytest.mark.slow
def test_compiled_score_matches_eager():
    """The torch.compile path gives the eager scores (to float32 rounding), all statistics,
    several shapes through one dynamic compilation."""
    shapes = [(7, 9), (64, 27), (3, 1), (128, 300)]
    stats = [("mean_std", 1.0), ("mean_abs", 0.0), ("snr", 1.0), ("abs_plus_mean", 0.7),
             ("abs_times_mean", 1.3)]
    eager = {(s, st): nsi_score(torch.randn(s, generator=torch.Generator().manual_seed(1)), 3, st, lam)
             for s in shapes for st, lam in stats}
    nb.set_compiled(True)
    try:
        for (s, st), ref in eager.items():
            lam = dict(stats)[st]
            got = nsi_score(torch.randn(s, generator=torch.Generator().manual_seed(1)), 3, st, lam)
            assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5), (s, st)
        assert nb.compile_mode() == "on", "compilation failed and fell back to eager"
    finally:
        nb.set_compiled("auto")


def test_one_d_scored_as_a_row_when_asked():
    """With dense_1d=False a 1-D tensor is scored as one row (windows 1 x p) and sparsified."""
    g = torch.tensor([0.0, 0.0, 1.0, 0.1, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    comp = create("nsi", density=0.1, dense_1d=False, min_numel=0, lam=0.0, dynamic=False,
                  statistic="mean_std")
    p = comp.compress("b", g, CompressorState())
    assert p.indices.tolist() == [3]  # |mean| of (1, .1, 1) beats every other window


def test_set_compiled_rejects_unknown_mode():
    """set_compiled takes True/False/'on'/'off'/'auto' only."""
    with pytest.raises(ValueError, match="compile mode must be"):
        nb.set_compiled("sometimes")
    nb.set_compiled("auto")
    assert nb.compile_mode() in ("auto", "off")
    assert not nb.compiled_enabled(10) and not nb.compiled_enabled(1 << 20, torch.device("meta"))


@pytest.mark.slow
@pytest.mark.parametrize("params", [{}, {"selector": "sampled"}, {"dynamic": False, "kernel": 5}])
def test_compiled_path_keeps_error_feedback_exact(params):
    """On the compiled path (residual kept inside a zero-bordered buffer) the identity
    decompress + residual_after == grad + residual_before still holds exactly, over
    iterations, for 4-D, 3-D, [1, N] and 1-D tensors, and the same elements are chosen as on
    the eager path."""
    shapes = {"conv": (32, 16, 3, 3), "three": (6, 50, 7), "row": (1, 999), "vec": (700,)}
    comp = create("nsi", density=0.05, min_numel=0, dense_1d=False, **params)
    results = {}
    for mode in ("on", "off"):
        nb.set_compiled(mode)
        try:
            st = CompressorState(seed=0)
            sent = []
            for it in range(3):
                gen = torch.Generator().manual_seed(it)
                gs = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
                before = {n: torch.zeros(s) if st.residual(n) is None else st.residual(n).clone()
                          for n, s in shapes.items()}
                ps = comp.compress_many(gs, st)
                for n, g in gs.items():
                    after = st.residual(n)
                    assert after.shape == g.shape
                    assert torch.equal(comp.decompress(ps[n]) + after, g + before[n]), (mode, n)
                sent.append({n: sorted(p.indices.tolist()) for n, p in ps.items()})
                st.step()
            if mode == "on":
                assert nb.compile_mode() == "on"
                assert not st.residual("conv").is_contiguous()  # the padded layout was used
            results[mode] = sent
        finally:
            nb.set_compiled("auto")
    if params.get("selector") != "sampled":
        assert results["on"] == results["off"]


def test_layerwise_overflow_raises_instead_of_starving_the_layer():
    """Layer-wise NSI: values near the float32 limit (3e38, whose window sums and
    error-feedback sums overflow) give their layer an infinite importance, which the
    allocation would turn into no budget at all (nothing sent, no error). It is a
    GradientError naming the tensor instead."""
    from rsdgc_sim.errors import GradientError

    comp = create("nsi", density=0.5, dynamic=True, min_numel=0)
    state = CompressorState()
    g = torch.full((8, 8), 3.0e38)
    small = torch.ones(8, 8)
    with pytest.raises(GradientError, match="gradient 'big': its NSI score is not finite"):
        for _ in range(3):
            comp.compress_many({"small": small, "big": g}, state)


@pytest.mark.parametrize("statistic", ["abs_plus_mean", "abs_times_mean"])
def test_magnitude_keeping_scores_with_lam_zero_are_topk(statistic):
    """With ``lam = 0`` the scores that keep the element's own magnitude are ``|a|``: static
    NSI then sends exactly top-k's elements."""
    a = torch.randn(40, 30, generator=torch.Generator().manual_seed(3))
    nsi = create("nsi", statistic=statistic, lam=0.0, density=0.05, dynamic=False, min_numel=0)
    topk = create("topk", density=0.05)
    assert torch.equal(nsi.score(a), a.abs())
    got = nsi.compress("w", a, CompressorState()).indices
    want = topk.compress("w", a, CompressorState()).indices
    assert sorted(got.tolist()) == sorted(want.tolist())


@pytest.mark.parametrize("statistic", ["abs_plus_mean", "abs_times_mean"])
def test_magnitude_keeping_scores_keep_a_lone_large_element(statistic):
    """A large element in a quiet window outranks a small one beside a cluster of medium ones
    under the magnitude-keeping scores (own value 10 against 1, windows of 3x3): the
    window-only ``mean_abs`` ranks them the other way round."""
    a = torch.zeros(9, 9)
    a[1, 1] = 10.0                         # alone: window mean |a| = 10 / 9
    a[5:8, 5:8] = 4.0                      # a cluster of 9 medium elements
    a[6, 6] = 1.0                          # small, in the cluster: window mean = 33 / 9
    keep = create("nsi", statistic=statistic, lam=1.0, min_numel=0).score(a)
    window = create("nsi", statistic="mean_abs", min_numel=0).score(a)
    assert keep[1, 1] > keep[6, 6]
    assert window[1, 1] < window[6, 6]


def test_defaults_are_the_ablation_winner_at_top_k_bytes():
    """The default score is ``abs_times_mean`` (best in benchmarks/nsi_ablation.py) and every
    tensor of 2 or more dimensions is compressed (``min_numel`` 0), biases dense: a 432-element
    convolution kernel is sparsified, not sent whole."""
    comp = create("nsi", density=0.01)
    assert comp.p.statistic == "abs_times_mean" and comp.p.min_numel == 0 and comp.p.dense_1d
    p = comp.compress("conv1", torch.randn(16, 3, 3, 3), CompressorState())
    assert p.indices is not None and p.indices.numel() == 4
