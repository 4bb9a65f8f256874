"""The DDP hook over several buckets and iterations (rsdgc_sim.ddp): 2 ranks on gloo.

Every rank trains a model whose gradient is injected (``loss = sum(w * x)``, so each
parameter's gradient is exactly ``x``, drawn from the rank and the iteration), split by a
small ``bucket_cap_mb`` into several DDP buckets, for :data:`ITERS` iterations: DDP's bucket
rebuild and the dense warm-up (:data:`DENSE`), then compressed ones. The ranks save the
gradient DDP left after every iteration and the tensors of every bucket; the tests compare
them with a single-process reference of what the hook must produce: per bucket
``compress_many`` with each rank's own state (kept across iterations), ``state.step()`` once
per iteration, the mean of the decompressed payloads. Cases cover error feedback, DGC's
momentum and warm-up schedule, per-rank and shared random-k, layer-wise NSI, the count
exchange of ``threshold``, float64/float16/bfloat16 models, and fp16 beside PyTorch's own
``fp16_compress_hook``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import launch_ranks
from torch import nn

from rsdgc_sim.compress import CompressorState, create
from rsdgc_sim.compress.select import k_for

WORLD = 2
SEED = 5
DENSE = 2
ITERS = 7  # > DENSE + 3: several compressed iterations carry error feedback and schedules
#: parameter -> shape (216 + 1152 + 960 + 10 elements)
SHAPES = {"conv1": (8, 3, 3, 3), "conv2": (16, 8, 3, 3), "fc": (10, 96), "bias": (10,)}
BUCKET_CAP_MB = 3000 / 2**20  # ~3 KB: the 9 KB of fp32 gradients make several buckets

#: label -> (compressor name, params, dtype, gradient scale); None as name: no hook
CASES: dict[str, tuple[str | None, dict, torch.dtype, float]] = {
    "topk": ("topk", {"density": 0.05}, torch.float32, 1.0),
    "dgc_warmup": ("dgc", {"density": 0.05, "warmup_iters": 4}, torch.float32, 1.0),
    "randomk": ("randomk", {"density": 0.05}, torch.float32, 1.0),
    "randomk_shared": ("randomk", {"density": 0.05, "shared_indices": True}, torch.float32, 1.0),
    "nsi": ("nsi", {"density": 0.05, "min_numel": 100}, torch.float32, 1.0),
    "threshold": ("threshold", {"threshold": 1.8}, torch.float32, 1.0),
    "topk_f64": ("topk", {"density": 0.05}, torch.float64, 1.0),
    "topk_f16": ("topk", {"density": 0.05}, torch.float16, 1.0),
    "dgc_bf16": ("dgc", {"density": 0.05}, torch.bfloat16, 1.0),
    "fp16_big": ("fp16", {}, torch.float32, 40000.0),
    "torch_fp16_big": ("torch_fp16", {}, torch.float32, 40000.0),
}
#: cases compared with the reference computation
REFERENCE = [
    "topk", "dgc_warmup", "randomk", "randomk_shared", "nsi", "threshold", "topk_f64",
    "topk_f16", "dgc_bf16",
]  # fmt: skip


class Injected(nn.Module):
    """Parameters of :data:`SHAPES`; ``forward(xs)`` is ``sum(w * x)``, so grad(w) = x."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        for name, shape in SHAPES.items():
            setattr(self, name, nn.Parameter(torch.zeros(shape, dtype=dtype)))

    def forward(self, xs: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum((getattr(self, n) * x).sum() for n, x in xs.items())


def gradient(label: str, rank: int, it: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s gradient at iteration ``it`` (keyed as DDP names the parameters)."""
    _, _, dtype, scale = CASES[label]
    g = torch.Generator().manual_seed(1000 * rank + it)
    out = {}
    for name, shape in SHAPES.items():
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        # large cases: values near `scale`, never cancelling (40000 per rank: 80000 summed)
        x = scale + x if scale != 1.0 else x
        out[f"module.{name}"] = x.to(dtype)
    return out


def _rank_main() -> None:
    """One rank (run in a subprocess by the fixture)."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.emulate.launcher import write_result

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    grads: dict[str, list[dict[str, torch.Tensor]]] = {}
    result: dict[str, dict] = {}
    for label, (name, params, dtype, _) in CASES.items():
        ddp = DDP(Injected(dtype), bucket_cap_mb=BUCKET_CAP_MB)
        buckets: list[tuple[int, list[str]]] = []
        state = None
        if name == "torch_fp16":
            ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
        else:
            state, hook = make_comm_hook(name, model=ddp, seed=SEED, dense_iters=DENSE, **params)

            def recording(st, bucket, hook=hook, buckets=buckets):
                names = ["module." + st.param_names[p.data_ptr()] for p in bucket.parameters()]
                buckets.append((st.iteration, names))
                return hook(st, bucket)

            recording.__annotations__.update(hook.__annotations__)
            ddp.register_comm_hook(state, recording)
        grads[label] = []
        for it in range(ITERS):
            ddp.zero_grad(set_to_none=True)
            xs = {n.removeprefix("module."): x for n, x in gradient(label, rank, it).items()}
            ddp(xs).backward()
            grads[label].append({n: p.grad.detach().clone() for n, p in ddp.named_parameters()})
        if state is not None:
            s = state.stats
            result[label] = {
                "buckets": buckets,
                "iteration": state.iteration,
                "compressor_iteration": state.compressor_state.iteration,
                "compressed": s.compressed_iterations,
                "bucket_calls": s.buckets,
                "sent_bytes": s.sent_bytes,
                "payload_bytes": s.payload_bytes,
            }
    torch.save(grads, Path(os.environ["RSDGC_TEST_OUT"]) / f"rank{rank}.pt")
    write_result(result)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return launch_ranks(__file__, WORLD, tmp_path_factory.mktemp("ddp_buckets"))


def reference(label: str, buckets: list[tuple[int, list[str]]]) -> list[dict[str, torch.Tensor]]:
    """What the hook must leave in the gradients at every iteration, computed here: the mean
    of the ranks' gradients in the dense iterations; after them, per bucket (as DDP formed
    it), each rank's payloads from ``compress_many`` with its own state (seeded as the hook
    seeds it, kept across iterations, stepped once per iteration), decompressed and averaged."""
    name, params, _, _ = CASES[label]
    comp = create(name, **params)
    states = [CompressorState(seed=SEED + r) for r in range(WORLD)]
    out = []
    for it in range(ITERS):
        local = [gradient(label, r, it) for r in range(WORLD)]
        if it < DENSE:
            out.append({n: sum(g[n] for g in local) / WORLD for n in local[0]})
            continue
        mean = {}
        for names in (ns for i, ns in buckets if i == it):
            for r in range(WORLD):
                # the hook keys tensors by the unwrapped model's names
                key = {n: n.removeprefix("module.") for n in names}
                payloads = comp.compress_many({key[n]: local[r][n] for n in names}, states[r])
                for n in names:
                    mean[n] = mean.get(n, 0) + comp.decompress(payloads[key[n]]) / WORLD
        for s in states:
            s.step()
        out.append(mean)
    return out


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def test_model_has_several_buckets(ranks):
    """The harness is what it claims: after DDP's rebuild every iteration has at least two
    buckets, each parameter in exactly one."""
    _, results = ranks
    for label in REFERENCE:
        buckets = results[0][label]["buckets"]
        for it in range(1, ITERS):
            names = [ns for i, ns in buckets if i == it]
            assert len(names) >= 2, (label, it, names)
            assert sorted(n for ns in names for n in ns) == sorted(f"module.{s}" for s in SHAPES)


@pytest.mark.parametrize("label", REFERENCE)
def test_every_iteration_equals_single_process_reference(ranks, label):
    """At every iteration (dense warm-up, then compressed ones with error feedback, momenta,
    warm-up schedules and shared draws carried across iterations) both ranks hold exactly
    the reference gradient; compression changed something (the test can fail)."""
    grads, results = ranks
    tol = 1e-12 if CASES[label][2] == torch.float64 else 1e-6
    expected = reference(label, results[0][label]["buckets"])
    for it in range(ITERS):
        assert _max_diff(grads[0][label][it], grads[1][label][it]) == 0.0, it
        assert _max_diff(grads[0][label][it], expected[it]) <= tol, (label, it)
    dense = {n: sum(gradient(label, r, ITERS - 1)[n] for r in range(WORLD)) / WORLD
             for n in expected[-1]}  # fmt: skip
    assert _max_diff(grads[0][label][-1], dense) > 1e-3


def test_hook_counts_iterations_buckets_and_steps_once_per_iteration(ranks):
    """The state counts every iteration once (not every bucket), compresses all but the
    dense ones, steps the compressor state once per compressed iteration, and sees every
    bucket."""
    _, results = ranks
    for res in results:
        for label in REFERENCE:
            s = res[label]
            assert s["iteration"] == ITERS and s["compressed"] == ITERS - DENSE, label
            assert s["compressor_iteration"] == ITERS - DENSE, label
            assert s["bucket_calls"] == len(s["buckets"]), label


def test_shared_randomk_sends_values_only_by_allreduce(ranks):
    """Shared random-k: both ranks draw the same indices (from the seed, the iteration and
    the name, not the rank), so only the values travel, by allreduce: each compressed
    iteration puts exactly 4 bytes per sent element on the wire (no index, no padding);
    the dense iterations send the whole bucket."""
    _, results = ranks
    comp = create("randomk", density=0.05, shared_indices=True)
    k = sum(k_for(int(torch.Size(s).numel()), 0.05) for s in SHAPES.values())
    numel = sum(int(torch.Size(s).numel()) for s in SHAPES.values())
    for res in results:
        s = res["randomk_shared"]
        assert s["sent_bytes"] == DENSE * 4 * numel + (ITERS - DENSE) * 4 * k
        assert s["payload_bytes"] == DENSE * 4 * numel + (ITERS - DENSE) * 4 * k
    grads = gradient("randomk_shared", 0, DENSE)
    ps = [comp.compress_many(grads, CompressorState(seed=SEED + r)) for r in range(WORLD)]
    for n in grads:
        assert torch.equal(ps[0][n].indices, ps[1][n].indices)
        assert not ps[0][n].needs_allgather and ps[0][n].wire_bytes == 4 * ps[0][n].nnz


def test_fp16_hook_equals_pytorch_fp16_compress_hook(ranks):
    """fp16 divides by the world size before the half-precision allreduce, as PyTorch's
    ``fp16_compress_hook`` does: gradients of about 40000 on two ranks (an fp16 sum of
    80000 overflows) average to about 40000, bit for bit PyTorch's result, never Inf."""
    grads, _ = ranks
    for it in range(DENSE, ITERS):
        ours, theirs = grads[0]["fp16_big"][it], grads[0]["torch_fp16_big"][it]
        for n in ours:
            assert bool(torch.isfinite(ours[n]).all()), (it, n)
            assert torch.equal(ours[n], theirs[n]), (it, n)
            assert float(ours[n].min()) > 39000.0
