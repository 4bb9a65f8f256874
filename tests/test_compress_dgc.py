"""``dgc``: warm-up schedule, momentum correction by hand, masking, clipping, capping."""

from __future__ import annotations

import pytest
import torch

from rsdgc_sim.compress import DGC_WARMUP, CompressorState, create
from rsdgc_sim.compress.schedule import density_at, warmup_stages
from rsdgc_sim.compress.select import k_for
from rsdgc_sim.errors import GradientError


def test_published_warmup_schedule():
    """warmup='dgc' over 5 iterations gives the published densities, then the target."""
    comp = create("dgc", density=0.001, warmup="dgc", warmup_iters=5)
    assert [comp.density_at(i) for i in range(7)] == [
        0.25, 0.0625, 0.015625, 0.004, 0.001, 0.001, 0.001,
    ]  # fmt: skip
    assert list(DGC_WARMUP) == [0.25, 0.0625, 0.015625, 0.004, 0.001]


def test_exponential_warmup_is_powers_of_a_quarter():
    """The exponential schedule for 0.001 is 0.25**1..4 then 0.001 (sparsity 75 %, 93.75 %,
    98.4375 %, 99.6 %, 99.9 %: DGC's, whose table rounds 0.0039 to 0.004)."""
    assert warmup_stages("exponential", 0.001) == [0.25, 0.0625, 0.015625, 0.00390625, 0.001]
    assert [round(100 * (1 - d), 1) for d in warmup_stages("exponential", 0.001)] == [
        75.0, 93.8, 98.4, 99.6, 99.9,
    ]  # fmt: skip
    assert warmup_stages("exponential", 0.5) == [0.5]
    # 10 iterations, 5 stages: 2 iterations each
    assert [density_at(i, 0.001, "exponential", 10) for i in range(0, 10, 2)] == [
        0.25, 0.0625, 0.015625, 0.00390625, 0.001,
    ]  # fmt: skip


def test_warmup_drives_payload_size():
    """The payload follows the schedule: 64000 elements -> 16000, 4000, 1000, 256, 64."""
    comp = create("dgc", density=0.001, warmup="dgc", warmup_iters=5, selector="exact")
    st = CompressorState()
    sizes = []
    for i in range(6):
        g = torch.randn(64, 1000, generator=torch.Generator().manual_seed(i))
        sizes.append(comp.compress("w", g, st).nnz)
        st.step()
    assert sizes == [16000, 4000, 1000, 256, 64, 64]


def _two_iterations(masking: bool, dtype=torch.float64):
    comp = create("dgc", density=0.25, momentum=0.9, selector="exact", momentum_masking=masking)
    st = CompressorState()
    g1 = torch.tensor([1.0, -2.0, 0.5, 4.0], dtype=dtype)
    g2 = torch.tensor([0.5, 1.0, -3.0, 1.0], dtype=dtype)
    p1 = comp.compress("w", g1, st)
    st.step()
    p2 = comp.compress("w", g2, st)
    return p1, p2, st


def test_momentum_correction_by_hand_with_masking():
    """m = 0.9, k = 1. It 1: u = v = g1 = [1,-2,.5,4], send v[3] = 4, v = u = [1,-2,.5,0].
    It 2: u = .9u + g2 = [1.4,-.8,-2.55,1], v += u -> [2.4,-2.8,-2.05,1], send v[1] = -2.8;
    residual [2.4,0,-2.05,1], momentum [1.4,0,-2.55,1]."""
    p1, p2, st = _two_iterations(masking=True)
    assert p1.indices.tolist() == [3] and p1.values.tolist() == [4.0]
    assert p2.indices.tolist() == [1] and p2.values.tolist() == pytest.approx([-2.8], abs=1e-12)
    assert st.residual("w").tolist() == pytest.approx([2.4, 0.0, -2.05, 1.0], abs=1e-12)
    assert st.momentum("w").tolist() == pytest.approx([1.4, 0.0, -2.55, 1.0], abs=1e-12)


def test_momentum_correction_by_hand_without_masking():
    """Without masking u keeps its sent entry: u2 = [1.4,-.8,-2.55,4.6], v2 = [2.4,-2.8,
    -2.05,4.6], so the second iteration sends v[3] = 4.6."""
    p1, p2, st = _two_iterations(masking=False)
    assert p2.indices.tolist() == [3] and p2.values.tolist() == pytest.approx([4.6], abs=1e-12)
    assert st.momentum("w").tolist() == pytest.approx([1.4, -0.8, -2.55, 4.6], abs=1e-12)


def test_nesterov_by_hand():
    """Nesterov: u = m(u + g), v += u + g. One iteration from zero: u = .9g, v = 1.9g."""
    comp = create("dgc", density=1.0, momentum=0.9, nesterov=True)
    st = CompressorState()
    g = torch.tensor([1.0, -2.0], dtype=torch.float64)
    p = comp.compress("w", g, st)
    assert comp.decompress(p).tolist() == pytest.approx([1.9, -3.8], abs=1e-12)


def test_local_gradient_clipping():
    """clip_norm scales a gradient whose L2 norm exceeds it down to that norm."""
    comp = create("dgc", density=1.0, momentum=0.0, clip_norm=1.0)
    g = torch.tensor([3.0, 4.0])
    out = comp.decompress(comp.compress("w", g, CompressorState()))
    assert out.tolist() == pytest.approx([0.6, 0.8])
    small = torch.tensor([0.3, 0.4])
    out = comp.decompress(comp.compress("w", small, CompressorState()))
    assert out.tolist() == pytest.approx([0.3, 0.4])


def test_identity_with_momentum():
    """What is sent plus what is kept equals the old residual plus the new momentum u."""
    comp = create("dgc", density=0.05, momentum=0.9)
    st = CompressorState()
    for it in range(3):
        g = torch.randn(100, 100, generator=torch.Generator().manual_seed(it))
        before = torch.zeros_like(g) if st.residual("w") is None else st.residual("w").clone()
        u_before = torch.zeros_like(g) if st.momentum("w") is None else st.momentum("w").clone()
        p = comp.compress("w", g, st)
        u = u_before * 0.9 + g
        assert torch.allclose(comp.decompress(p) + st.residual("w"), before + u, atol=1e-6)
        assert p.nnz <= k_for(g.numel(), 0.05)
        st.step()


def test_sampled_payload_capped_at_k():
    """The sampled threshold never sends more than k, on large tensors, over iterations."""
    comp = create("dgc", density=0.001)
    st = CompressorState()
    for it in range(3):
        g = torch.randn(1000, 1000, generator=torch.Generator().manual_seed(it))
        p = comp.compress("w", g, st)
        assert 0.8 * 1000 <= p.nnz <= 1000
        st.step()


def test_dense_small_tensors_still_get_momentum():
    """A tensor sent dense (dense_1d) gets the momentum applied here (plain SGD receives
    it): first g1, then 0.9 * g1 + g2."""
    comp = create("dgc", density=0.01, momentum=0.9, dense_1d=True)
    st = CompressorState()
    g1 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    g2 = torch.tensor([0.5, 0.5], dtype=torch.float64)
    p1 = comp.compress("b", g1, st)
    st.step()
    p2 = comp.compress("b", g2, st)
    assert p1.indices is None and p2.indices is None
    assert comp.decompress(p1).tolist() == [1.0, -2.0]
    assert comp.decompress(p2).tolist() == pytest.approx([1.4, -1.3], abs=1e-12)
    assert st.residual("b") is None


def test_momentum_overflow_raises_naming_the_tensor():
    """Finite gradients whose momentum overflows (u = 0.9 u + g with g = 3e38: 5.7e38 at
    the second iteration) are not sent as Inf: a GradientError names the tensor."""
    comp = create("dgc", density=0.5, selector="exact")
    state = CompressorState()
    g = torch.full((4, 4), 3.0e38)
    assert torch.isfinite(comp.compress("layer.w", g, state).values).all()
    with pytest.raises(GradientError, match="tensor 'layer.w': .* values to send are NaN/Inf"):
        comp.compress("layer.w", g, state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_gradients_keep_momentum_and_residual_in_float32(dtype):
    """DGC on half-precision gradients: momentum and residual in float32 (by hand:
    u = 0.9 u + g, v = v + u), the values sent in the gradient's dtype."""
    comp = create("dgc", density=0.25, selector="exact", momentum_masking=False)
    state = CompressorState()
    g = torch.tensor([[1.0, -2.0], [0.5, 4.0]], dtype=dtype)
    p = comp.compress("w", g, state)
    assert p.values.dtype == dtype and p.values.float().tolist() == [4.0]
    p = comp.compress("w", g, state)
    u, v = state.momentum("w"), state.residual("w")
    assert u.dtype == v.dtype == torch.float32
    assert u.flatten().tolist() == pytest.approx([1.9, -3.8, 0.95, 7.6])
    assert p.values.float().tolist() == [pytest.approx(7.6, rel=1e-2)]
    assert v.flatten().tolist() == pytest.approx([2.9, -5.8, 1.45, 0.0], abs=3e-2)


def test_applies_momentum_only_with_momentum_correction():
    """DGC applies momentum itself (the optimizer must not add it again) unless momentum=0;
    no other compressor does."""
    assert create("dgc").applies_momentum is True
    assert create("dgc", momentum=0.0).applies_momentum is False
    for name in ("none", "fp16", "topk", "randomk", "threshold", "nsi"):
        assert create(name).applies_momentum is False, name
