"""The quantizers in both engines: the virtual-worker trainer equals real DDP ranks running
our communication hook, bit for bit, for ``qsgd``, ``terngrad`` and ``efsignsgd``.

Real gloo DDP (2 and 3 ranks, buckets small enough that the model has three) with
``make_comm_hook`` trains :data:`STEPS` SGD steps per case, saving the parameters after every
step; :class:`rsdgc_sim.train.engine.VirtualDDP` trains the same model from the same seed on
the same shards in one process. The cases cover per-rank stochastic rounding (each rank's
generator draws its own numbers in bucket order), the one-bit sign codes with error
feedback, qsgd with few levels and error feedback, TernGrad's clipping, and codes of more
than 8 bits (qsgd with 300 levels: the wide packing path). Each bucket's quantized payloads
travel in one fixed-size all-gather of every rank's scales and packed codes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import ranks_fixture

pytestmark = pytest.mark.slow  # real DDP ranks train every case

SEED = 7
STEPS = 8
BATCH = 8
CLASSES = 10
SIZE = 12
LR = 0.05
MOMENTUM = 0.9
#: ~40 KB per bucket: cnn_small (~110 KB of gradients) has three
BUCKET_CAP_MB = 0.04
CASES: dict[str, tuple[str, dict]] = {
    "qsgd": ("qsgd", {}),
    "qsgd_ef": ("qsgd", {"levels": 3, "error_feedback": True}),
    "qsgd_wide": ("qsgd", {"levels": 300}),
    "terngrad": ("terngrad", {}),
    "terngrad_clip_ef": ("terngrad", {"clip": 2.5, "error_feedback": True}),
    "efsignsgd": ("efsignsgd", {}),
}
#: the cases 3 ranks train (where the order of the ranks' sum shows)
WORLDS = {2: list(CASES), 3: ["qsgd", "terngrad", "efsignsgd"]}


def _model():
    from rsdgc_sim.models import create

    return create("cnn_small", num_classes=CLASSES, input_size=SIZE, seed=SEED)


def _data():
    from rsdgc_sim.train import SyntheticData

    return SyntheticData(CLASSES, SIZE, 400, seed=SEED)


def _params(net) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def _rank_main() -> None:
    """One DDP rank (a subprocess of :func:`launch_ranks`)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.emulate.launcher import write_result
    from rsdgc_sim.train.virtual import split, worker_batch

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    data = _data()
    shards, _ = split(len(data), world, 0.2, SEED)
    out: dict = {}
    stats: dict = {}
    for label in WORLDS[world]:
        name, params = CASES[label]
        net = _model()
        ddp = DDP(net, bucket_cap_mb=BUCKET_CAP_MB)
        state, hook = make_comm_hook(name, model=ddp, seed=SEED, **params)
        ddp.register_comm_hook(state, hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=MOMENTUM)
        steps = []
        for step in range(STEPS):
            x, y = data.batch(worker_batch(shards[rank], step, BATCH))
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(ddp(x), y).backward()
            opt.step()
            steps.append(_params(net))
        out[label] = steps
        stats[label] = {"sent": state.stats.sent_bytes, "payload": state.stats.payload_bytes}
    torch.save(out, Path(os.environ["RSDGC_TEST_OUT"]) / f"rank{rank}.pt")
    write_result({"rank": rank, "stats": stats})
    dist.destroy_process_group()


def _virtual(label: str, world: int):
    """The same training with the virtual engine: parameters after every step, the bytes
    one rank sent in the compressed steps, and the engine."""
    from rsdgc_sim.compress import create
    from rsdgc_sim.train.engine import VirtualDDP
    from rsdgc_sim.train.virtual import cross_entropy, split, worker_batch

    name, params = CASES[label] if label in CASES else (label, {})
    data = _data()
    shards, _ = split(len(data), world, 0.2, SEED)
    net = _model()
    cap = int(BUCKET_CAP_MB * 2**20)
    engine = VirtualDDP(net, create(name, **params), world, seed=SEED, first_bucket_bytes=cap,
                        bucket_cap_bytes=cap)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    steps, sent = [], 0
    for step in range(STEPS):
        batches = [data.batch(worker_batch(shards[w], step, BATCH)) for w in range(world)]
        it = engine.iterate(batches, cross_entropy)
        if it.compressed:
            sent += it.collective_bytes
        opt.step()
        steps.append(_params(net))
    return steps, sent, engine


#: one launch of the real ranks per world size, for the whole module
ranks = ranks_fixture(__file__, "quant")


def _closed_form(name: str, params: dict, numel: int) -> int:
    """The issue's payload of one tensor, computed here from the formula."""
    if name == "qsgd":
        bits = 1 + math.ceil(math.log2(params.get("levels", 16) + 1))
    else:
        bits = {"terngrad": 2, "efsignsgd": 1}[name]
    return math.ceil(numel * bits / 8) + 4


@pytest.mark.parametrize("world, label", [(w, c) for w, labels in WORLDS.items() for c in labels],
                         ids=lambda v: f"{v}_ranks" if isinstance(v, int) else v)
def test_virtual_workers_equal_real_ddp_after_every_step(ranks, label):
    """Parameters of the virtual trainer equal rank 0's after each step, bit for bit, every
    rank ends equal to rank 0, and the bytes each rank put into the collectives in the
    compressed steps are the closed forms of the model's tensors, in both engines."""
    world, saved, results = ranks
    real = saved[0][label]
    virtual, sent, engine = _virtual(label, world)
    assert len(engine.buckets) >= 2
    for step, (a, b) in enumerate(zip(real, virtual, strict=True)):
        bad = [k for k in a if not torch.equal(a[k], b[k])]
        assert not bad, f"step {step}: {bad[0]} differs by {(a[bad[0]] - b[bad[0]]).abs().max():.3g}"
    for r in range(1, world):
        assert all(torch.equal(saved[r][label][-1][k], real[-1][k]) for k in real[-1])
    name, params = CASES[label]
    per_step = sum(_closed_form(name, params, p.numel()) for p in _model().parameters())
    compressed = STEPS - 2  # the hook's dense warm-up: iterations 0 and 1
    assert sent == compressed * per_step
    hook_stats = results[0]["stats"][label]
    dense = 2 * sum(p.numel() * 4 for p in _model().parameters())
    assert hook_stats["sent"] == dense + compressed * per_step
    assert hook_stats["payload"] == hook_stats["sent"]


@pytest.mark.parametrize("world", list(WORLDS), ids=lambda w: f"{w}_ranks")
def test_quantizers_change_the_trajectory(ranks):
    """Sanity of the harness: every quantizer's real run ends away from dense training (the
    equality above could not tell a quantizer that sends the gradient unchanged)."""
    world, saved, _ = ranks
    dense = _virtual("none", world)[0][-1]
    for label in WORLDS[world]:
        other = saved[0][label][-1]
        assert max(float((dense[k] - other[k]).abs().max()) for k in dense) > 1e-3, label
