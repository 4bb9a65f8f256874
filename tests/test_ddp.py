"""DDP communication hooks (rsdgc_sim.ddp): 2 ranks on gloo over loopback.

All ranks' work happens in one launch (module fixture): each rank trains a tiny conv net
with DDP, once per case, three iterations without optimizer steps (iterations 0 and 1 are
DDP's bucket rebuild and the hook's dense warm-up, iteration 2 is compressed), and saves the
gradients DDP left in the parameters plus its own local (un-averaged) gradients. The tests
then check them against DDP without a hook and against payloads computed here, independently.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import launch_ranks
from torch import nn

from rsdgc_sim.compress import CompressorState, create
from rsdgc_sim.errors import ConfigError

WORLD = 2
SEED = 3
#: label -> (compressor name, params); None: DDP without a hook
CASES: dict[str, tuple[str, dict] | None] = {
    "plain": None,
    "none": ("none", {}),
    "topk_1": ("topk", {"density": 1.0}),
    "topk_001": ("topk", {"density": 0.01}),
    "nsi_001": ("nsi", {"density": 0.01}),
    "nsi_static": ("nsi", {"density": 0.05, "dynamic": False}),
    "randomk": ("randomk", {"density": 0.02}),
    "dgc": ("dgc", {"density": 0.02}),
    "threshold": ("threshold", {"threshold": 0.02}),
    "fp16": ("fp16", {}),
}


def _net() -> nn.Module:
    g = torch.Generator().manual_seed(SEED)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net


def _data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)


def _rank_main() -> None:
    """One rank (run in a subprocess by the fixture)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.emulate.launcher import write_result

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    x, y = _data(rank)
    out: dict[str, dict[str, torch.Tensor]] = {}
    stats = {}
    order: list[str] = []
    for label, spec in CASES.items():
        ddp = DDP(_net())
        if spec is not None:
            state, hook = make_comm_hook(spec[0], model=ddp, seed=SEED, **spec[1])

            def recording(st, bucket, hook=hook):
                order[:] = ["module." + st.param_names[p.data_ptr()] for p in bucket.parameters()]
                return hook(st, bucket)

            recording.__annotations__.update(hook.__annotations__)
            ddp.register_comm_hook(state, recording)
        for _ in range(3):
            ddp.zero_grad(set_to_none=True)
            F.cross_entropy(ddp(x), y).backward()
        out[label] = {n: p.grad.detach().clone() for n, p in ddp.named_parameters()}
        if spec is not None:
            stats[label] = {
                "iteration": state.iteration,
                "compressed": state.stats.compressed_iterations,
                "buckets": state.stats.buckets,
            }
    local = _net()
    F.cross_entropy(local(x), y).backward()
    out["local"] = {f"module.{n}": p.grad.detach().clone() for n, p in local.named_parameters()}
    torch.save(out, Path(os.environ["RSDGC_TEST_OUT"]) / f"rank{rank}.pt")
    write_result({"rank": rank, "stats": stats, "bucket_order": order})
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return launch_ranks(__file__, WORLD, tmp_path_factory.mktemp("ddp"))


def _expected(label: str, grads, order: list[str]) -> dict[str, torch.Tensor]:
    """Average over ranks of each rank's decompressed payloads, computed here from the
    ranks' local gradients with fresh compressor states seeded as the hook seeds them, in
    the order of DDP's rebuilt bucket (random-k draws from the generator in that order)."""
    name, params = CASES[label]
    comp = create(name, **params)
    names = list(order)
    assert sorted(names) == sorted(grads[0]["local"])
    total = {n: torch.zeros_like(grads[0]["local"][n]) for n in names}
    for r in range(WORLD):
        local = {n: grads[r]["local"][n] for n in names}
        payloads = comp.compress_many(local, CompressorState(seed=SEED + r))
        for n in names:
            total[n] += comp.decompress(payloads[n])
    return {n: t / WORLD for n, t in total.items()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def test_none_hook_equals_ddp_without_hook(ranks):
    """The `none` hook gives the same gradients as DDP's own averaging (within 1e-6)."""
    grads, _ = ranks
    for r in range(WORLD):
        assert _max_diff(grads[r]["none"], grads[r]["plain"]) <= 1e-6


def test_plain_ddp_is_the_average_of_local_gradients(ranks):
    """Sanity of the harness: DDP's gradient is the mean of the ranks' local gradients, and
    the ranks' local gradients differ (else the tests below could not fail)."""
    grads, _ = ranks
    mean = {n: (grads[0]["local"][n] + grads[1]["local"][n]) / 2 for n in grads[0]["local"]}
    assert _max_diff(grads[0]["plain"], mean) <= 1e-6
    assert _max_diff(grads[0]["local"], grads[1]["local"]) > 1e-3


def test_topk_density_one_equals_dense(ranks):
    """`topk` at density 1.0 sends everything: the result equals DDP without a hook."""
    grads, _ = ranks
    for r in range(WORLD):
        assert _max_diff(grads[r]["topk_1"], grads[r]["plain"]) <= 1e-6


@pytest.mark.parametrize(
    "label", ["topk_001", "nsi_001", "nsi_static", "randomk", "dgc", "threshold", "fp16"]
)
def test_every_rank_gets_the_average_of_decompressed_payloads(ranks, label):
    """Every rank ends with the same gradient, equal to the mean of the ranks' decompressed
    payloads computed independently; sparse cases differ from dense (something was dropped)."""
    grads, results = ranks
    assert _max_diff(grads[0][label], grads[1][label]) == 0.0
    expected = _expected(label, grads, results[0]["bucket_order"])
    tol = 2e-3 if label == "fp16" else 1e-6  # fp16 sums (halves) in half precision
    assert _max_diff(grads[0][label], expected) <= tol
    if label != "fp16":
        assert _max_diff(grads[0][label], grads[0]["plain"]) > 1e-3


def test_hook_counts_iterations_and_compresses_after_rebuild(ranks):
    """Three iterations: the state counts 3, of which only the last was compressed (the
    first two are DDP's bucket rebuild and the dense warm-up); one bucket per iteration."""
    _, results = ranks
    for res in results:
        for label, s in res["stats"].items():
            assert s["iteration"] == 3, label
            assert s["compressed"] == 1, label
            assert s["buckets"] == 3, label


def test_make_comm_hook_rejects_early_compression():
    """Compression cannot start before DDP rebuilt its buckets (dense_iters >= 2)."""
    from rsdgc_sim.ddp import make_comm_hook

    with pytest.raises(ConfigError, match="dense_iters=1"):
        make_comm_hook("topk", dense_iters=1)


def test_make_comm_hook_needs_process_group():
    """Without init_process_group the hook cannot be made, and says so."""
    from rsdgc_sim.ddp import make_comm_hook

    with pytest.raises(ConfigError, match="init_process_group"):
        make_comm_hook("topk")


def test_public_api_and_hook_state_slots():
    """The hook's public names import from rsdgc_sim.ddp; its state is a class with
    ``__slots__`` (as PyTorch's PowerSGDState): a misspelt attribute is an error, not a new
    field silently ignored by the hook."""
    from rsdgc_sim.ddp import (
        MIN_DENSE_ITERS,
        CompressionHookState,
        HookStats,
        compression_hook,
        make_comm_hook,
    )

    assert callable(compression_hook) and callable(make_comm_hook) and MIN_DENSE_ITERS == 2
    state = CompressionHookState(create("topk"), CompressorState(seed=1), dense_iters=3)
    assert not hasattr(state, "__dict__")
    assert state.iteration == 0 and not state.compressing and isinstance(state.stats, HookStats)
    with pytest.raises(AttributeError):
        state.dense_iter = 5  # type: ignore[attr-defined]


def _cuda_rank_main() -> None:
    """One NCCL rank on cuda:0 (a single GPU holds one NCCL rank): topk through the hook."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.emulate.launcher import write_result

    dist.init_process_group("nccl")
    dev = torch.device("cuda", 0)
    x, y = (t.to(dev) for t in _data(0))
    ddp = DDP(_net().to(dev), device_ids=[0])
    state, hook = make_comm_hook("topk", model=ddp, seed=SEED, density=0.05)
    ddp.register_comm_hook(state, hook)
    for _ in range(3):
        ddp.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
    local = _net().to(dev)
    F.cross_entropy(local(x), y).backward()
    grads = {f"module.{n}": p.grad for n, p in local.named_parameters()}
    comp = create("topk", density=0.05)
    payloads = comp.compress_many(grads, CompressorState(seed=SEED))
    diff = max(
        float((p.grad - comp.decompress(payloads[n])).abs().max())
        for n, p in ddp.named_parameters()
    )
    write_result({"diff": diff, "compressed": state.stats.compressed_iterations})
    dist.destroy_process_group()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hook_on_nccl_with_cuda_tensors(tmp_path):
    """On NCCL with CUDA tensors (one rank per GPU; one GPU here), the hook's compressed
    iteration leaves exactly the rank's decompressed top-k payload in the gradients."""
    from rsdgc_sim.emulate.launcher import launch

    here = str(Path(__file__).resolve().parent)
    code = f"import sys; sys.path.insert(0, {here!r}); import test_ddp; test_ddp._cuda_rank_main()"
    (res,) = launch([sys.executable, "-c", code], 1, timeout_s=180, workdir=tmp_path)
    assert res["compressed"] == 1
    assert res["diff"] <= 1e-6
