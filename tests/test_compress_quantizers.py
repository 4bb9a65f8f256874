"""The quantizers ``qsgd``, ``terngrad`` and ``efsignsgd``: bit packing, the values against
reference implementations written here (GRACE's algorithms, given the same random numbers),
unbiasedness, error feedback, wire bytes, parameters, and the exchange of their payloads.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from rsdgc_sim.compress import CompressorState, check_compressor, create
from rsdgc_sim.compress.bitpack import MAX_BITS, pack, packed_bytes, unpack
from rsdgc_sim.compress.payload import QuantizedPayload
from rsdgc_sim.errors import ConfigError, GradientError

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
ODD_SIZES = (0, 1, 2, 7, 9, 63, 1023, 1025)
QUANTIZERS = (("qsgd", {}), ("qsgd", {"levels": 3}), ("qsgd", {"levels": 127}),
              ("qsgd", {"levels": 300}), ("terngrad", {}), ("terngrad", {"clip": 2.5}),
              ("efsignsgd", {}))


# -- bit packing ---------------------------------------------------------------------


def _reference_pack(codes: list[int], bits: int) -> list[int]:
    """The stream bit by bit: code i at bits [i * bits, (i + 1) * bits), LSB first."""
    out = [0] * math.ceil(len(codes) * bits / 8)
    for i, c in enumerate(codes):
        for j in range(bits):
            if (c >> j) & 1:
                pos = i * bits + j
                out[pos // 8] |= 1 << (pos % 8)
    return out


@pytest.mark.parametrize("bits", range(1, MAX_BITS + 1))
def test_pack_is_the_reference_stream_and_round_trips(bits):
    """For every code width and odd sizes (0, 1, 7, 9, 1023...), ``pack`` gives exactly the
    bit-by-bit stream (least significant bit first, zero tail bits), in
    ``ceil(numel * bits / 8)`` bytes, and ``unpack`` gives the codes back."""
    rng = random.Random(bits)
    for n in (*ODD_SIZES, rng.randrange(2, 3000)):
        codes = [rng.randrange(1 << bits) for _ in range(n)]
        if n:
            codes[-1] = (1 << bits) - 1  # all ones at the end: the tail must stay zero
        t = torch.tensor(codes, dtype=torch.uint8 if bits <= 8 else torch.int32)
        data = pack(t, bits)
        assert data.dtype == torch.uint8
        assert data.numel() == packed_bytes(n, bits) == math.ceil(n * bits / 8)
        assert data.tolist() == _reference_pack(codes, bits)
        assert unpack(data, n, bits).tolist() == codes


def test_unpack_rejects_short_buffers_and_pack_wide_codes():
    """Too few bytes, or codes wider than 16 bits, are errors, not garbage."""
    with pytest.raises(ConfigError, match="3 bytes needed"):
        unpack(torch.zeros(2, dtype=torch.uint8), 9, 2)
    with pytest.raises(ConfigError, match="17 bits"):
        pack(torch.zeros(3, dtype=torch.int32), 17)


# -- references (GRACE's algorithms, the same random numbers) ------------------------


def _compute_dtype(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _draws(n: int, seed: int, dtype) -> torch.Tensor:
    """The numbers the compressor draws: one uniform per element from a generator seeded
    like ``CompressorState(seed)``'s, in the compute dtype."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _sent(scale: torch.Tensor, dtype) -> torch.Tensor:
    """The scale as it travels: float32, back in the compute dtype."""
    return scale.to(torch.float32).to(dtype)


def ref_qsgd(grad: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    """GRACE's QSGDCompressor.compress + decompress, with the norm sent as float32 and the
    level kept at most s."""
    f = _compute_dtype(grad.dtype)
    t = grad.flatten().to(f)
    if not t.numel():
        return grad.clone()
    norm = _sent(t.norm(), f)
    level_float = (s / norm if norm > 0 else torch.zeros((), dtype=f)) * t.abs()
    previous = level_float.floor()
    prob = _draws(t.numel(), seed, f)
    new_level = torch.clamp(previous + (prob < level_float - previous).to(f), max=s)
    decoded = norm / s * (new_level * t.sign())
    return decoded.to(grad.dtype).view(grad.shape)


def ref_terngrad(grad: torch.Tensor, seed: int, clip: float | None = None) -> torch.Tensor:
    """GRACE's TernGradCompressor (clipping optional), the scale sent as float32."""
    f = _compute_dtype(grad.dtype)
    t = grad.flatten().to(f)
    if not t.numel():
        return grad.clone()
    if clip is not None:
        std = torch.sqrt(torch.mean((t - torch.mean(t)) ** 2))
        c = clip * std
        t = torch.clamp(t, -c, c)
    scalar = _sent(t.abs().max(), f)
    sign_gradient = t.sign() * scalar
    rnd_sample = _draws(t.numel(), seed, f) * scalar
    sign_gradient[rnd_sample >= t.abs()] = 0
    decoded = sign_gradient.sign() * scalar
    return decoded.to(grad.dtype).view(grad.shape)


def ref_efsignsgd(a: torch.Tensor, dtype) -> torch.Tensor:
    """GRACE's EFSignSGDCompressor on the compensated ``a`` (the compute dtype): mean |a|
    times the sign, 0 counted as +."""
    mean = _sent(a.abs().mean(), a.dtype) if a.numel() else torch.zeros((), dtype=a.dtype)
    sign_decode = (a >= 0).to(a.dtype) * 2 - 1
    return (mean * sign_decode).to(dtype)


def _grad(shape, dtype, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 0.01
    if x.numel() > 3:
        x.view(-1)[:3] = torch.tensor([0.0, -0.0, 0.05])  # zeros and a large element
    return x.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 3), (31, 33), (4, 3, 5, 5)], ids=str)
def test_qsgd_and_terngrad_equal_the_references(shape, dtype):
    """Given the same random numbers, the decompressed values of qsgd (several level counts,
    wide codes included) and terngrad (with and without clipping) equal the references,
    exactly, for every dtype, odd sizes and 1-D tensors."""
    grad = _grad(shape, dtype)
    for levels in (1, 3, 16, 300):
        out = create("qsgd", levels=levels).compress("w", grad, CompressorState(seed=3))
        got = create("qsgd").decompress(out)
        assert got.dtype == dtype and got.shape == grad.shape
        assert torch.equal(got, ref_qsgd(grad, levels, 3)), levels
        # a zero level never carries the sign bit: no -0.0 comes out (one code per value)
        assert not bool(torch.signbit(got[got == 0]).any()), levels
    for clip in (None, 1.0):
        comp = create("terngrad", clip=clip)
        got = comp.decompress(comp.compress("w", grad, CompressorState(seed=4)))
        assert torch.equal(got, ref_terngrad(grad, 4, clip)), clip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_efsignsgd_equals_the_reference_with_error_feedback(dtype):
    """Over several steps, efsignsgd sends mean|a| * sign(a) of the compensated gradient
    ``a = grad + residual`` (GRACE's compressor and memory), the residual in float32 for
    half-precision gradients."""
    comp, state = create("efsignsgd"), CompressorState(seed=0)
    f = _compute_dtype(dtype)
    residual = torch.zeros(7, 5, dtype=f)
    for step in range(4):
        grad = _grad((7, 5), dtype, seed=step)
        a = residual + grad.to(f)
        want = ref_efsignsgd(a, dtype)
        got = comp.decompress(comp.compress("w", grad, state))
        assert torch.equal(got, want), step
        residual = a - want.to(f)
        assert torch.equal(state.residual("w"), residual)


def test_quantizers_draw_from_the_state_generator():
    """Two states of the same seed give the same payload; another seed other draws; the
    draws advance (the next call differs); no draw touches the global generator."""
    grad = _grad((50, 40), torch.float32)
    for name in ("qsgd", "terngrad"):
        comp = create(name)
        a, b = CompressorState(seed=1), CompressorState(seed=1)
        torch.manual_seed(0)
        before = torch.random.get_rng_state()
        p1, p2 = comp.compress("w", grad, a), comp.compress("w", grad, b)
        assert torch.equal(torch.random.get_rng_state(), before)
        assert torch.equal(p1.values, p2.values)
        assert not torch.equal(p1.values, comp.compress("w", grad, CompressorState(seed=2)).values)
        assert not torch.equal(p1.values, comp.compress("w", grad, a).values)


# -- unbiasedness --------------------------------------------------------------------


def _check_unbiased(mean: torch.Tensor, x: torch.Tensor, var: torch.Tensor, draws: int) -> None:
    """Every element's mean over ``draws`` within 5 standard errors of ``x`` (plus float
    rounding)."""
    tol = 5 * (var / draws).sqrt() + 1e-12
    bad = (mean - x).abs() > tol
    assert not bool(bad.any()), (
        f"{int(bad.sum())} biased elements, worst {(mean - x).abs().max():.3g} "
        f"(tolerance there {tol[(mean - x).abs().argmax()]:.3g})")


X = torch.tensor([0.0, 1e-3, -0.02, 0.05, -0.13, 0.2, 0.3125, -0.4, 0.55, 0.75, -0.9, 1.0],
                 dtype=torch.float64)


def test_qsgd_is_unbiased():
    """The mean of qsgd's decompressed values over 4,096 draws is the gradient, within 5
    standard errors per element (the variance of stochastic rounding: ``(norm / s)^2 p (1 -
    p)``, p the fractional level). The draws are 64 x 64 copies of the vector in one
    tensor, quantized with 64 times the levels (the norm is 64 times larger, so each copy's
    levels are those of the vector alone at 1, 4 and 16 levels; 256 and 1,024 levels take
    the wide codes)."""
    copies = 64 * 64
    tiled = X.repeat(copies)
    norm = float(tiled.norm().to(torch.float32))  # the scale as sent
    for s in (1, 4, 16):
        levels = 64 * s
        comp = create("qsgd", levels=levels)
        out = comp.decompress(comp.compress("w", tiled, CompressorState(seed=s)))
        level = levels * X.abs() / norm
        p = level - level.floor()
        assert float(p.max()) > 0.1  # elements between levels (the test can see a bias)
        var = (norm / levels) ** 2 * p * (1 - p)
        _check_unbiased(out.view(copies, -1).mean(0), X, var, copies)


def test_terngrad_is_unbiased():
    """The mean of terngrad's values over many draws is the gradient (variance ``|a| (max|a|
    - |a|)``): 4,000 independent copies of the vector in one tensor (its max is the same)."""
    copies = 4000
    comp = create("terngrad")
    out = comp.decompress(comp.compress("w", X.repeat(copies), CompressorState(seed=0)))
    scale = X.abs().max()
    var = X.abs() * (scale - X.abs())
    _check_unbiased(out.view(copies, -1).mean(0), X, var, copies)


# -- error feedback ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name, params", [("efsignsgd", {}), ("qsgd", {"levels": 2, "error_feedback": True}),
                                          ("terngrad", {"clip": 1.0, "error_feedback": True})])
def test_error_feedback_conserves_mass(name, params, dtype):
    """``decompress(payload) + residual_after == grad + residual_before`` at every step (to
    float rounding), so over the steps what was sent plus the last residual is the sum of
    the gradients; without error feedback nothing is kept."""
    comp, state = create(name, **params), CompressorState(seed=0)
    f = _compute_dtype(dtype)
    before = torch.zeros(33, 3, dtype=f)
    sent_total = torch.zeros(33, 3, dtype=torch.float64)
    grad_total = torch.zeros(33, 3, dtype=torch.float64)
    for step in range(5):
        grad = _grad((33, 3), dtype, seed=step)
        sent = comp.decompress(comp.compress("w", grad, state))
        after = state.residual("w")
        assert after.dtype == f
        lhs, rhs = sent.to(f) + after, grad.to(f) + before
        torch.testing.assert_close(lhs, rhs, rtol=0, atol=4 * torch.finfo(f).eps * float(rhs.abs().max()))
        assert float(after.abs().max()) > 0  # something was kept
        before = after.clone()
        sent_total += sent.double()
        grad_total += grad.double()
    torch.testing.assert_close(sent_total + before.double(), grad_total, rtol=0,
                               atol=40 * torch.finfo(f).eps * float(grad_total.abs().max()))
    plain = create(name, **{**params, "error_feedback": False})
    state = CompressorState(seed=0)
    plain.compress("w", _grad((33, 3), dtype), state)
    assert state.residual("w") is None


# -- wire bytes ------------------------------------------------------------------------


def _closed_form(name: str, params: dict, n: int) -> int:
    if name == "qsgd":
        return math.ceil(n * (1 + math.ceil(math.log2(params.get("levels", 16) + 1))) / 8) + 4
    return math.ceil(n * {"terngrad": 2, "efsignsgd": 1}[name] / 8) + 4


@pytest.mark.parametrize("name, params", QUANTIZERS, ids=str)
def test_wire_bytes_are_the_closed_forms(name, params):
    """Every tensor's payload is ``ceil(numel * bits / 8) + 4`` bytes (qsgd: bits = 1 +
    ceil(log2(s + 1))), for every dtype (the scale is float32) and odd sizes, 1-D
    included; the packed codes are exactly the bytes before the scale; the estimate's
    payload is the same and all-gathered."""
    from rsdgc_sim.compress.params import COMPRESSOR_PARAMS, validate
    from rsdgc_sim.profile.cost_table import tensor_payload
    from rsdgc_sim.profile.schema import TensorInfo

    comp = create(name, **params)
    p = validate(name, COMPRESSOR_PARAMS.get(name), params)
    for dtype in DTYPES:
        for n in ODD_SIZES:
            payload = comp.compress("w", _grad((n,), dtype), CompressorState(seed=0))
            want = _closed_form(name, params, n)
            assert isinstance(payload, QuantizedPayload)
            assert payload.wire_bytes == want == payload.values.numel() + 4
            assert payload.scale.dtype == torch.float32
            assert payload.needs_allgather
            info = TensorInfo(name="w", shape=[n], numel=n, dtype_bytes=torch.empty((), dtype=dtype).element_size())
            est = tensor_payload(name, p, info)
            assert (est.wire_bytes, est.sparse, est.dense) == (want, True, False)


# -- parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("name, params, match", [
    ("qsgd", {"levels": 0}, r"compressor 'qsgd': levels: .*greater than or equal to 1.*parameters: levels, error_feedback"),
    ("qsgd", {"levels": 32768}, r"levels: .*less than or equal to 32767"),
    ("qsgd", {"levels": True}, r"levels: .*integer"),
    ("qsgd", {"levels": 2.0}, r"levels: .*integer"),
    ("qsgd", {"density": 0.1}, r"unknown parameter 'density'"),
    ("terngrad", {"clip": 0}, r"clip: .*greater than 0"),
    ("terngrad", {"levels": 3}, r"unknown parameter 'levels'; parameters: clip, error_feedback"),
    ("efsignsgd", {"error_feedback": "yes"}, r"error_feedback: .*boolean"),
])
def test_bad_parameters_are_one_line_errors(name, params, match):
    """Bad parameters fail in ``create`` and in the torch-free ``check_compressor`` with the
    same one-line message naming the field and listing the parameters."""
    with pytest.raises(ConfigError, match=match) as a:
        create(name, **params)
    with pytest.raises(ConfigError) as b:
        check_compressor(name, params)
    assert str(a.value) == str(b.value) and "\n" not in str(a.value)


def test_defaults_and_labels():
    """The defaults (qsgd 16 levels, no error feedback but for efsignsgd) and labels."""
    assert check_compressor("qsgd", {}) == {"levels": 16, "error_feedback": False}
    assert check_compressor("terngrad", {}) == {"clip": None, "error_feedback": False}
    assert check_compressor("efsignsgd", {}) == {"error_feedback": True}
    assert create("qsgd", levels=4).label == "qsgd(levels=4)"
    assert not create("efsignsgd").sparse


def test_a_scale_past_float32_is_a_gradient_error():
    """A float64 gradient whose norm overflows float32 cannot be sent (the scale is
    float32): a GradientError naming the tensor, not Inf on the wire."""
    grad = torch.full((4,), 1e300, dtype=torch.float64)
    for name in ("qsgd", "terngrad", "efsignsgd"):
        with pytest.raises(GradientError, match="'big'"):
            create(name).compress_many({"big": grad}, CompressorState(seed=0))


def test_zero_and_tiny_tensors_send_zeros():
    """A zero tensor (norm 0) and one whose norm is too small for s / norm decode to
    zeros, never NaN."""
    for g in (torch.zeros(5), torch.full((5,), 1e-45)):
        for name in ("qsgd", "terngrad"):
            out = create(name).decompress(create(name).compress("w", g, CompressorState(seed=0)))
            assert torch.isfinite(out).all()
    assert torch.equal(create("qsgd").decompress(create("qsgd").compress("w", torch.zeros(5), CompressorState(0))),
                       torch.zeros(5))


# -- the exchange ------------------------------------------------------------------------


@pytest.mark.parametrize("name, params", QUANTIZERS, ids=str)
def test_exchange_averages_every_ranks_payload(name, params):
    """Three ranks' quantized payloads of one bucket (odd sizes, so codes start at
    unaligned bytes), through the wire format and the exchange both engines use: the bucket
    is the mean of each rank's decompressed payload (summed in rank order), and a rank sends
    exactly the sum of its wire bytes."""
    from rsdgc_sim.ddp.semantics import compress_bucket, exchange_in_process

    comp = create(name, **params)
    shapes = [(7,), (3, 3), (1,), (5, 2, 3)]
    names = [f"t{i}" for i in range(len(shapes))]
    parts, want = [], []
    for r in range(3):
        grads = [_grad(s, torch.float32, seed=10 * r + i) for i, s in enumerate(shapes)]
        parts.append(compress_bucket(comp, CompressorState(seed=r), names, grads))
        want.append(torch.cat([comp.decompress(p).reshape(-1) for _, p in parts[-1]]))
    out = torch.full((sum(math.prod(s) for s in shapes),), float("nan"))
    sent = exchange_in_process(comp, parts, iteration=0, bucket=0, out=out)
    assert torch.equal(out, (want[0] + want[1] + want[2]) / 3)
    assert sent == sum(_closed_form(name, params, math.prod(s)) for s in shapes)
