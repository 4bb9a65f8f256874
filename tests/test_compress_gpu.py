"""The same compressors on CUDA tensors (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from rsdgc_sim.compress import COMPRESSORS, CompressorState, create, decompress_sum

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _grads(device):
    g = torch.Generator().manual_seed(0)
    cpu = {
        "conv.weight": torch.randn(32, 16, 3, 3, generator=g),
        "fc.weight": torch.randn(10, 2000, generator=g),
        "fc.bias": torch.randn(10, generator=g),
    }
    return {n: t.to(device) for n, t in cpu.items()}


@pytest.mark.parametrize("name", COMPRESSORS.names())
def test_runs_on_cuda_with_error_feedback_identity(name):
    """Every compressor runs on CUDA tensors; payloads stay on the GPU, decompress keeps
    shape/dtype/device, and what is sent plus what is kept is grad + old residual."""
    comp = create(name, **({"threshold": 0.5} if name == "threshold" else {}))
    st = CompressorState(seed=1)
    for _it in range(2):
        gs = _grads("cuda")
        before = {n: st.residual(n).clone() if st.residual(n) is not None else None for n in gs}
        ps = comp.compress_many(gs, st)
        for n, p in ps.items():
            out = comp.decompress(p)
            assert out.device.type == "cuda" and out.shape == gs[n].shape
            if p.indices is not None:
                assert p.indices.dtype == torch.int32 and p.indices.device.type == "cuda"
            if name in ("topk", "randomk", "threshold", "nsi"):
                r = st.residual(n)
                lhs = out + (0 if r is None else r)
                rhs = gs[n] + (0 if before[n] is None else before[n])
                assert torch.equal(lhs, rhs), n
        st.step()


@pytest.mark.parametrize("params", [{"dynamic": False}, {}])
def test_nsi_cuda_matches_cpu(params):
    """nsi (exact selector) selects the same elements on CUDA as on the CPU."""
    comp = create("nsi", density=0.01, **params)
    cpu = comp.compress_many(_grads("cpu"), CompressorState())
    gpu = comp.compress_many(_grads("cuda"), CompressorState())
    for n in cpu:
        if cpu[n].indices is None:
            assert gpu[n].indices is None
            continue
        assert set(cpu[n].indices.tolist()) == set(gpu[n].indices.cpu().tolist()), n


def test_topk_cuda_matches_cpu_and_aggregates():
    """topk on CUDA selects the CPU's set; decompress_sum aggregates on the GPU."""
    comp = create("topk", density=0.05)
    g = _grads("cuda")["fc.weight"]
    pg = comp.compress("w", g, CompressorState())
    pc = comp.compress("w", g.cpu(), CompressorState())
    assert set(pg.indices.cpu().tolist()) == set(pc.indices.tolist())
    s = decompress_sum([pg, pg])
    assert s.device.type == "cuda" and torch.equal(s, 2 * comp.decompress(pg))
