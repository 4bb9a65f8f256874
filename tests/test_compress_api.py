"""The shared compressor API: create/params/errors, payloads, decompression and aggregation,
error feedback, k bounds, bad gradients, tiny tensors."""

from __future__ import annotations

import pytest
import torch

from rsdgc_sim.compress import (
    COMPRESSORS,
    CompressorState,
    Payload,
    accumulate,
    create,
    decompress,
    decompress_sum,
)
from rsdgc_sim.compress.select import k_for
from rsdgc_sim.errors import ConfigError, GradientError, UnknownNameError

SPARSIFIERS = {
    "topk": {},
    "randomk": {},
    "threshold": {"threshold": 0.5, "density": 0.05},
    "nsi": {"min_numel": 0},
    "nsi-sampled": {"min_numel": 0, "selector": "sampled"},
    "nsi-static": {"min_numel": 0, "dynamic": False},
}


def make(key: str, **extra):
    name = key.split("-")[0]
    return create(name, **{**SPARSIFIERS.get(key, {}), **extra})


def grads(seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "conv.weight": torch.randn(16, 8, 3, 3, generator=g) * scale,
        "fc.weight": torch.randn(10, 300, generator=g) * scale,
        "fc.bias": torch.randn(10, generator=g) * scale,
    }


def residual_or_zero(state, name, like):
    r = state.residual(name)
    return torch.zeros_like(like) if r is None else r.clone()


def test_registry_lists_every_compressor():
    """The registry holds exactly the issue's compressors."""
    assert COMPRESSORS.names() == [
        "dgc", "efsignsgd", "fp16", "none", "nsi", "powersgd", "qsgd", "randomk", "terngrad",
        "threshold", "topk",
    ]  # fmt: skip


def test_unknown_name_lists_choices():
    """An unknown compressor name is an UnknownNameError that lists the choices."""
    with pytest.raises(UnknownNameError, match="unknown compressor 'nsx'; choose one of: dgc, efsignsgd, fp16"):
        create("nsx")


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("topk", {"density": 0.0}, "density: Input should be greater than 0"),
        ("topk", {"density": 1.5}, "density: Input should be less than or equal to 1"),
        ("nsi", {"density": -0.1}, "density: Input should be greater than 0"),
        ("randomk", {"density": float("nan")}, "density"),
        ("nsi", {"kernel": 4}, "kernel must be odd \\(got 4\\)"),
        ("nsi", {"kernel": 0}, "kernel: Input should be greater than or equal to 1"),
        ("nsi", {"kernel": -3}, "kernel: Input should be greater than or equal to 1"),
        ("nsi", {"statistic": "max"}, "unknown statistic 'max'; choose one of: mean_std, mean_abs, snr"),
        ("nsi", {"selector": "fast"}, "unknown selector 'fast'; choose one of: exact, sampled"),
        ("nsi", {"d_min": 0.05, "d_max": 0.02}, "d_min > d_max \\(0.05 > 0.02\\)"),
        ("nsi", {"density": 0.5, "d_max": 0.1}, "density 0.5 must lie in \\[d_min, d_max\\]"),
        ("nsi", {"ema": 1.0}, "ema: Input should be less than 1"),
        ("nsi", {"warmup": "linear"}, "warmup"),
        ("nsi", {"warmup": [0.5, 0.0]}, "warm-up densities must be in \\(0, 1\\]"),
        ("dgc", {"selector": "x"}, "unknown selector 'x'"),
        ("dgc", {"momentum": 1.0}, "momentum: Input should be less than 1"),
        ("dgc", {"clip_norm": 0}, "clip_norm: Input should be greater than 0"),
        ("threshold", {"threshold": -1}, "threshold: Input should be greater than or equal to 0"),
        ("topk", {"kernel": 3}, "unknown parameter 'kernel'; parameters: density, error_feedback"),
        ("none", {"density": 0.1}, "unknown parameter 'density'; parameters: \\(none\\)"),
    ],
)
def test_bad_parameters_fail_at_create(name, params, match):
    """Every bad parameter is a ConfigError at create, naming the field and the bad value."""
    with pytest.raises(ConfigError, match=match):
        create(name, **params)


def test_params_name_sparse_label():
    """Compressors expose name, sparse and their resolved parameters (defaults filled in)."""
    c = create("nsi", density=0.02, kernel=5)
    assert c.name == "nsi" and c.sparse is True
    assert c.params["kernel"] == 5 and c.params["density"] == 0.02
    assert c.params["d_min"] == pytest.approx(0.002) and c.params["d_max"] == pytest.approx(0.2)
    assert c.label.startswith("nsi(") and "kernel=5" in c.label
    assert create("none").sparse is False and create("fp16").sparse is False
    assert create("topk").label == "topk"
    assert create("topk", {"density": 0.1}).params["density"] == 0.1


def test_payload_wire_bytes_sparse_and_dense():
    """wire_bytes = values in their dtype + 4 bytes per int32 index, or the dense values."""
    state = CompressorState()
    g = torch.randn(100, 50)
    p = create("topk", density=0.1).compress("w", g, state)
    assert p.indices is not None and p.indices.dtype == torch.int32
    assert p.nnz == 500 and p.wire_bytes == 500 * 4 + 500 * 4
    d = create("none").compress("w", g, state)
    assert d.indices is None and d.wire_bytes == 5000 * 4
    h = create("fp16").compress("w", g, state)
    assert h.indices is None and h.values.dtype == torch.float16 and h.wire_bytes == 5000 * 2
    assert p.numel == 5000 and tuple(p.shape) == (100, 50) and p.dtype == torch.float32


def test_none_is_identity_and_fp16_rounds():
    """`none` returns the gradient unchanged; `fp16` returns it rounded to half precision,
    clamped to +-65504 instead of overflowing to Inf."""
    state = CompressorState()
    g = torch.tensor([[1.0, 1e-3, 1e5], [-2.5, 3.14159, -7e4]])
    comp = create("none")
    assert torch.equal(comp.decompress(comp.compress("w", g, state)), g)
    comp = create("fp16")
    out = comp.decompress(comp.compress("w", g, state))
    assert out.dtype == torch.float32 and out.shape == g.shape
    expected = g.clamp(-65504, 65504).half().float()
    assert torch.equal(out, expected)
    assert torch.isfinite(out).all()


def test_fp16_error_feedback_identity():
    """fp16 with error feedback: decompressed + residual == grad + previous residual."""
    state = CompressorState()
    comp = create("fp16", error_feedback=True)
    for it in range(3):
        g = torch.randn(50, generator=torch.Generator().manual_seed(it)) * 1e3
        before = residual_or_zero(state, "w", g)
        out = comp.decompress(comp.compress("w", g, state))
        assert torch.equal(out + state.residual("w"), g + before)


@pytest.mark.parametrize("key", list(SPARSIFIERS))
def test_error_feedback_identity_exact(key):
    """decompress(payload) + residual_after == grad + residual_before exactly (fp32), over
    several iterations and several tensors at once."""
    comp = make(key)
    state = CompressorState(seed=3)
    for it in range(4):
        gs = grads(it)
        before = {n: residual_or_zero(state, n, g) for n, g in gs.items()}
        payloads = comp.compress_many(gs, state)
        assert list(payloads) == list(gs)
        for n, g in gs.items():
            after = residual_or_zero(state, n, g)
            assert torch.equal(comp.decompress(payloads[n]) + after, g + before[n]), n
        state.step()


@pytest.mark.parametrize("key", ["topk", "randomk", "nsi-static", "nsi-sampled"])
@pytest.mark.parametrize("density", [0.001, 0.01, 0.3])
def test_sent_elements_never_exceed_k(key, density):
    """A static sparsifier sends at most k = round(density * numel) elements (at least 1)."""
    comp = make(key, density=density) if key != "nsi-sampled" else make(key, density=density, dynamic=False)
    state = CompressorState()
    for it in range(3):
        for n, p in comp.compress_many(grads(it), state).items():
            if p.indices is not None:
                assert p.nnz <= k_for(p.numel, density), n
        state.step()


def test_threshold_respects_threshold_and_cap():
    """threshold sends exactly the elements with |a| >= threshold; with density, at most k
    of them, the largest."""
    state = CompressorState()
    g = torch.tensor([0.1, -0.6, 0.5, 2.0, -0.49, 1.0])
    p = create("threshold", threshold=0.5).compress("w", g, state)
    assert sorted(p.indices.tolist()) == [1, 2, 3, 5]
    p = create("threshold", threshold=0.5, density=0.34, error_feedback=False).compress("w", g, state)
    assert sorted(p.indices.tolist()) == [3, 5]


@pytest.mark.parametrize(
    "name, params",
    [
        ("topk", {"density": 1.0}),
        ("randomk", {"density": 1.0}),
        ("threshold", {"threshold": 0.0}),
        ("threshold", {"threshold": 0.0, "density": 1.0}),
        ("nsi", {"density": 1.0, "min_numel": 0}),
        ("nsi", {"density": 1.0, "selector": "sampled", "min_numel": 0}),
        ("nsi", {"density": 1.0, "dynamic": False}),
        ("dgc", {"density": 1.0, "momentum": 0.0}),
    ],
)
def test_density_one_sends_everything(name, params):
    """Density 1.0 (or threshold 0) sends every element and leaves a zero residual."""
    comp = create(name, **params)
    state = CompressorState()
    for it in range(2):
        gs = grads(it)
        before = {n: residual_or_zero(state, n, g) for n, g in gs.items()}
        for n, p in comp.compress_many(gs, state).items():
            assert p.nnz == p.numel
            assert torch.equal(comp.decompress(p), gs[n] + before[n])
            assert not residual_or_zero(state, n, gs[n]).any()
        state.step()


@pytest.mark.parametrize("name", COMPRESSORS.names())
def test_nan_and_inf_raise_naming_the_tensor(name):
    """NaN or Inf in a gradient raises GradientError naming the tensor; no state changes."""
    comp = create(name)
    state = CompressorState()
    gs = grads(0)
    comp.compress_many(gs, state)
    kept = {n: None if state.residual(n) is None else state.residual(n).clone() for n in gs}
    bad = grads(1)
    bad["fc.weight"][3, 7] = float("nan")
    with pytest.raises(GradientError, match="gradient 'fc.weight' has 1 NaN/Inf value"):
        comp.compress_many(bad, state)
    for n in gs:
        r = state.residual(n)
        assert (r is None and kept[n] is None) or torch.equal(r, kept[n])
    inf = torch.ones(5, 5)
    inf[0, 0] = float("-inf")
    with pytest.raises(GradientError, match="'x'"):
        comp.compress("x", inf, state)


@pytest.mark.parametrize("name", COMPRESSORS.names())
@pytest.mark.parametrize("shape", [(0,), (0, 5), (1,), (1, 1), (), (1, 1, 1, 1)])
def test_empty_and_one_element_tensors(name, shape):
    """Empty and 1-element tensors compress and decompress to their own shape; what is sent
    plus what is kept is the gradient (0.75 is exact in fp16 too)."""
    params = {"min_numel": 0} if name == "nsi" else {}
    comp = create(name, **params)
    state = CompressorState()
    g = torch.full(shape, 0.75)
    p = comp.compress("t", g, state)
    out = comp.decompress(p)
    assert out.shape == g.shape and out.dtype == g.dtype and p.numel == g.numel()
    assert torch.equal(out + residual_or_zero(state, "t", g), g)
    state.step()
    out = comp.decompress(comp.compress("t", g, state))
    assert out.shape == g.shape


def test_decompress_sum_and_accumulate_match_dense_sum():
    """decompress_sum of several ranks' payloads equals the sum of their decompressions,
    duplicates across ranks adding up; accumulate adds one payload in place."""
    g = [torch.randn(40, 30, generator=torch.Generator().manual_seed(s)) for s in range(4)]
    comp = create("topk", density=0.1)
    states = [CompressorState(seed=s) for s in range(4)]
    ps = [comp.compress("w", gi, st) for gi, st in zip(g, states, strict=True)]
    expected = sum(comp.decompress(p) for p in ps)
    assert torch.allclose(comp.decompress_sum(ps), expected, atol=1e-6, rtol=0)
    assert torch.allclose(decompress_sum(ps, average=True), expected / 4, atol=1e-6, rtol=0)
    out = torch.zeros(40, 30)
    for p in ps:
        accumulate(out, p)
    assert torch.allclose(out, expected, atol=1e-6, rtol=0)
    mixed = [ps[0], create("none").compress("w", g[1], states[1])]
    assert torch.allclose(decompress_sum(mixed), comp.decompress(ps[0]) + g[1], atol=1e-6)
    with pytest.raises(ConfigError, match="has shape \\(3,\\), expected \\(40, 30\\)"):
        decompress_sum([ps[0], create("none").compress("v", torch.ones(3), states[0])])
    with pytest.raises(ConfigError, match="at least one payload"):
        decompress_sum([])


def test_decompress_sparse_values_in_place():
    """decompress puts each value at its flat index and zeros elsewhere."""
    p = Payload(
        values=torch.tensor([5.0, -1.0]),
        indices=torch.tensor([3, 0], dtype=torch.int32),
        numel=6,
        shape=torch.Size([2, 3]),
        dtype=torch.float32,
    )
    assert decompress(p).tolist() == [[-1.0, 0.0, 0.0], [5.0, 0.0, 0.0]]
    assert p.wire_bytes == 16 and p.sparse


def test_state_residual_step_and_seeds():
    """State: residual None before use, the iteration advances with step(), and randomk
    draws the same indices for the same seed and different ones for another seed."""
    st = CompressorState(seed=7)
    assert st.residual("w") is None and st.iteration == 0
    st.step()
    assert st.iteration == 1
    g = torch.randn(1000)
    comp = create("randomk", density=0.05)
    a = comp.compress("w", g, CompressorState(seed=1)).indices
    b = comp.compress("w", g, CompressorState(seed=1)).indices
    c = comp.compress("w", g, CompressorState(seed=2)).indices
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.unique().numel() == a.numel() == 50
    st.reset()
    assert st.iteration == 0


def test_randomk_large_tensor_distinct_indices():
    """randomk on a large tensor (oversampling path) returns k distinct in-range indices."""
    g = torch.randn(200_000)
    p = create("randomk", density=0.01).compress("w", g, CompressorState())
    assert p.nnz == 2000 and p.indices.unique().numel() == 2000
    assert int(p.indices.min()) >= 0 and int(p.indices.max()) < 200_000


def test_error_feedback_off_keeps_no_residual():
    """With error_feedback=False nothing is kept and the gradient is not modified."""
    g = torch.randn(30, 30)
    g0 = g.clone()
    for name in ("topk", "randomk", "nsi"):
        st = CompressorState()
        p = create(name, error_feedback=False, min_numel=0).compress("w", g, st)
        assert st.residual("w") is None and torch.equal(g, g0)
        assert torch.equal(create(name).decompress(p).reshape(-1)[p.indices.long()], g.reshape(-1)[p.indices.long()])


def test_changed_shape_is_an_error():
    """A tensor that changes shape under the same name is a ConfigError, not a crash."""
    st = CompressorState()
    comp = create("topk")
    comp.compress("w", torch.randn(10, 10), st)
    with pytest.raises(ConfigError, match="tensor 'w' changed from \\(10, 10\\)"):
        comp.compress("w", torch.randn(5, 10), st)


def test_dense_for_small_tensors():
    """Tensors under min_numel are sent dense (indices None) and leave no residual."""
    st = CompressorState()
    p = create("topk", min_numel=100).compress("w", torch.randn(9, 9), st)
    assert p.indices is None and st.residual("w") is None


def test_state_dict_round_trip_resumes_identically():
    """A state restored from state_dict continues exactly as the original (residuals,
    iteration, importances and the generator's position)."""
    comp = create("randomk", density=0.1)
    a = CompressorState(seed=4)
    comp.compress_many(grads(0), a)
    a.step()
    b = CompressorState()
    b.load_state_dict({**a.state_dict(), "residuals": {k: v.clone() for k, v in a.state_dict()["residuals"].items()}})
    assert b.iteration == 1 and b.seed == 4
    pa = comp.compress_many(grads(1), a)
    pb = comp.compress_many(grads(1), b)
    for n in pa:
        assert torch.equal(pa[n].indices, pb[n].indices) and torch.equal(pa[n].values, pb[n].values)
    assert a.memory_bytes() == b.memory_bytes() > 0


HALF_CASES = {
    "topk": {"density": 0.2},
    "randomk": {"density": 0.2},
    "randomk-shared": {"density": 0.2, "shared_indices": True},
    "threshold": {"threshold": 0.5},
    "nsi": {"density": 0.2, "min_numel": 0},
    "dgc": {"density": 0.2, "momentum": 0.0},
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("key", list(HALF_CASES))
def test_half_precision_gradients_keep_float32_state(key, dtype):
    """Half-precision gradients keep their residual (and momentum) in float32 while the
    payload values travel in the gradient's dtype; the rounding of that cast stays in the
    residual, so decompress(payload) + residual_after == grad + residual_before in float32."""
    comp = create(key.split("-")[0], **HALF_CASES[key])
    state = CompressorState(seed=1)
    for it in range(3):
        gs = {n: g.to(dtype) for n, g in grads(it, scale=100.0).items()}
        before = {n: residual_or_zero(state, n, g.float()) for n, g in gs.items()}
        payloads = comp.compress_many(gs, state)
        for n, g in gs.items():
            p = payloads[n]
            assert p.values.dtype == dtype and p.dtype == dtype
            r = state.residual(n)
            assert r is not None and r.dtype == torch.float32, n
            sent = comp.decompress(p).float()
            assert torch.equal(sent + r, g.float() + before[n]), (n, it)
        state.step()
    u = state.momentum("fc.weight")
    assert u is None or u.dtype == torch.float32


@pytest.mark.parametrize(
    "name, params",
    [
        ("topk", {"density": 0.5}),
        ("randomk", {"density": 0.5}),
        ("threshold", {"threshold": 3.1e38}),
        ("nsi", {"density": 0.5, "min_numel": 0, "kernel": 1, "dynamic": False}),
    ],
)
def test_overflowing_residual_raises_naming_the_tensor(name, params):
    """Finite fp32 gradients whose error-feedback sum overflows (3e38 kept, 3e38 added) are
    never sent as Inf: as soon as an overflowed element would be sent (the next iteration
    for the magnitude-based ones, within a few for random-k), a GradientError names the
    tensor."""
    comp = create(name, **params)
    state = CompressorState()
    g = torch.tensor([[3.0e38, 3.2e38]])
    first = comp.compress("big", g, state)
    assert torch.isfinite(first.values).all()
    with pytest.raises(GradientError, match="tensor 'big': 1 of the .* values to send are NaN/Inf"):
        for _ in range(1 if name != "randomk" else 20):
            comp.compress_many({"small": torch.ones(2, 2), "big": g}, state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_gradient_overflow_in_cast_raises(dtype):
    """A half-precision gradient's residual in fp32 does not overflow (36864 + 36864 in
    fp16 would be Inf), but sending 73728 (above fp16's 65504) would: a GradientError names
    the tensor instead. bfloat16 holds 73728: it is sent."""
    comp = create("topk", density=0.5)
    state = CompressorState()
    g = torch.tensor([36864.0, 49152.0], dtype=dtype)  # exact in both dtypes
    assert comp.compress("w", g, state).values.tolist() == [49152.0]
    assert state.residual("w").tolist() == [36864.0, 0.0]
    if dtype == torch.float16:
        with pytest.raises(GradientError, match="tensor 'w': 1 of the 1 values to send"):
            comp.compress("w", g, state)
    else:
        assert comp.compress("w", g, state).values.float().tolist() == [73728.0]


def test_payload_needs_allgather():
    """Per-rank (index, value) payloads need an all-gather; dense payloads and shared-index
    ones are aggregated by allreduce and their wire bytes are the values alone."""
    g = torch.randn(20, 50)
    st = CompressorState()
    assert create("topk").compress("a", g, st).needs_allgather
    assert create("randomk").compress("b", g, st).needs_allgather
    assert not create("none").compress("c", g, st).needs_allgather
    assert not create("fp16").compress("d", g, st).needs_allgather
    shared = create("randomk", density=0.1, shared_indices=True).compress("e", g, st)
    assert shared.sparse and shared.shared_indices and not shared.needs_allgather
    assert shared.nnz == 100 and shared.wire_bytes == 4 * 100


def test_randomk_shared_indices_depend_on_seed_iteration_and_name_only():
    """Shared random-k draws the same indices on every rank (states seeded differently)
    for the same (index_seed, iteration, name), and other ones when any of them changes;
    per-rank random-k draws differ between ranks."""
    comp = create("randomk", density=0.05, shared_indices=True)
    g = torch.randn(40, 25)

    def idx(comp, name="w", seed=0, iteration=0):
        st = CompressorState(seed=seed)
        st.iteration = iteration
        return comp.compress(name, g, st).indices

    assert torch.equal(idx(comp, seed=0), idx(comp, seed=1))
    assert torch.equal(idx(comp, iteration=3), idx(comp, seed=9, iteration=3))
    assert not torch.equal(idx(comp), idx(comp, iteration=1))
    assert not torch.equal(idx(comp), idx(comp, name="v"))
    other = create("randomk", density=0.05, shared_indices=True, index_seed=1)
    assert not torch.equal(idx(comp), idx(other))
    per_rank = create("randomk", density=0.05)
    assert not torch.equal(idx(per_rank, seed=0), idx(per_rank, seed=1))


def test_max_sent_is_the_compressors_bound():
    """Each compressor knows the most elements it sends as (index, value) pairs: k per
    tensor for exact-k sparsifiers (also during a warm-up, at the scheduled density), the
    shared budget plus one for layer-wise nsi, the cap of a capped threshold, and no bound
    for a plain threshold or dense compressors."""
    assert create("topk", density=0.01).max_sent([1000, 50], 0) == 10 + 1
    assert create("randomk", density=0.01).max_sent([1000, 50], 7) == 10 + 1
    assert create("nsi", density=0.01).max_sent([1000, 500], 5) == 15 + 1
    assert create("nsi", density=0.01, dynamic=False).max_sent([1000, 500], 0) == 15
    dgc = create("dgc", density=0.01, warmup_iters=4)
    assert dgc.max_sent([1000], 0) == 250 and dgc.max_sent([1000], 4) == 10
    assert create("threshold").max_sent([1000], 0) is None
    assert create("threshold", density=0.1).max_sent([1000, 10], 0) == 100 + 1
    assert create("none").max_sent([1000], 0) is None
    assert create("fp16").max_sent([1000], 0) is None


def test_layerwise_bound_holds_when_every_tensor_needs_its_one_element():
    """Layer-wise nsi gives every non-empty tensor at least one element: five 10x10 tensors
    in one bucket at density 0.001 send 5 (the budget rounds to 0), and the bound the DDP
    hook sizes its all-gather by says 5, not round(0.001 x 500) + 1 = 1; the exchange the
    hook and the trainer share then runs instead of refusing the bucket."""
    from rsdgc_sim.compress import CompressorState
    from rsdgc_sim.ddp.semantics import compress_bucket, exchange_in_process

    comp = create("nsi", density=0.001)
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(10, 10, generator=gen) for _ in range(5)]
    names = [f"t{i}" for i in range(5)]
    parts = compress_bucket(comp, CompressorState(seed=0), names, grads)
    assert sum(p.nnz for _, p in parts) == 5
    assert comp.max_sent([100] * 5, 0) == 5
    assert comp.max_sent([100, 0], 0) == 1
    out = torch.zeros(500)
    exchange_in_process(comp, [parts, parts], 0, 0, out)
    assert int((out != 0).sum()) == 5
