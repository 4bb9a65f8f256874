"""One training semantics, two engines: the virtual-worker trainer equals real DDP ranks
running our communication hook.

Real gloo DDP (2 and 4 ranks, buckets small enough that every model has at least two) with
``make_comm_hook`` trains for :data:`STEPS` SGD steps, per compressor and model, saving the
parameters and buffers after every step; :class:`rsdgc_sim.train.engine.VirtualDDP` trains
the same model from the same seed on the same shards here, in one process. After every step
the parameters and the batch-norm buffers (DDP keeps rank 0's) must agree to :data:`TOL`.
The steps cover the hook's dense warm-up (iterations 0 and 1), DDP's bucket rebuild (the
virtual engine's buckets must be the ones DDP handed to the hook), compression per bucket
with per-rank states and random streams, DGC's momentum correction (SGD without momentum),
and dropout with per-rank random streams (the second model).

Before the shared rules (:mod:`rsdgc_sim.ddp.semantics`), the trainer compressed the whole
model at once from step 0 and let every worker update the buffers: top-k differed by 8e-3
after one step and 0.29 after 20.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import ranks_fixture
from torch import nn

pytestmark = pytest.mark.slow  # real DDP ranks train every case

SEED = 5
#: enough for every phase: 2 dense warm-up steps, the 6-step density warm-ups, then at
#: least 4 at the target density (bit-exact, so a difference shows at the step it starts)
STEPS = 12
BATCH = 8
CLASSES = 10
SIZE = 12
LR = 0.05
MOMENTUM = 0.9
#: DDP(bucket_cap_mb=...): ~40 KB, so cnn_small (~110 KB of gradients) has 3 buckets
BUCKET_CAP_MB = 0.04
#: the engines are exact: the same operations in the same order (any difference, such as
#: summing the ranks' payloads in another order, changes bits)
TOL = 0.0
CASES: dict[str, tuple[str, dict]] = {
    "none": ("none", {}),
    "fp16": ("fp16", {}),
    "topk": ("topk", {"density": 0.05}),
    "randomk": ("randomk", {"density": 0.05}),
    "threshold": ("threshold", {"threshold": 0.005}),
    "dgc": ("dgc", {"density": 0.05}),
    "nsi": ("nsi", {"density": 0.05, "selector": "exact"}),
    # density warm-ups: dense-ish first iterations, then the target, inside the STEPS steps
    "dgc_warmup": ("dgc", {"density": 0.05, "warmup_iters": 6}),
    "nsi_warmup": ("nsi", {"density": 0.05, "selector": "exact", "warmup_iters": 6}),
}
#: ``two_mib``: over 1 MiB of gradients under DDP's default buckets (the first capped at
#: 1 MiB, the others at 25 MiB): two buckets of different caps, so swapping the caps
#: changes the buckets
MODELS = ("cnn_small", "bn_dropout", "two_mib")
#: the models trained with DDP's default bucket caps (no bucket_cap_mb)
DEFAULT_BUCKETS = {"two_mib"}
DDP_FIRST_BUCKET = 1 << 20
DDP_BUCKET_CAP = 25 << 20
#: the cases each model trains (all for the small models; the bucket-cap case needs fewer)
#: (the warm-ups on one small model; the bucket caps need one sparse and one warm-up case:
#: DGC's, because NSI on two_mib's 516k-element layer takes the compiled score, a ~20 s
#: compilation in every rank and here; compiled vs eager is tested in test_compress_nsi)
WARMUPS = ("dgc_warmup", "nsi_warmup")
MODEL_CASES = {"cnn_small": list(CASES),
               "bn_dropout": [c for c in CASES if c not in WARMUPS],
               "two_mib": ["topk", "dgc_warmup"]}
#: the cases 4 ranks train, where the order of summation shows (2 ranks add a + b = b + a):
#: the dense ring sum in fp32 (``none``) and fp16, the all-gathered pairs of every kind of
#: selection (with and without momentum, random draws per rank), a warm-up, dropout and
#: batch norm over 4 ranks, and the default bucket caps
FOUR_RANK_CASES = {"cnn_small": ["none", "fp16", "topk", "randomk", "dgc", "nsi_warmup"],
                   "bn_dropout": ["topk"],
                   "two_mib": ["topk"]}
WORLDS = {2: MODEL_CASES, 4: FOUR_RANK_CASES}


class BNDropout(nn.Module):
    """A small model with batch norm on a linear layer and dropout (per-rank random)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 6 * 6, 32)  # 74 KB: a bucket of its own
        self.bn1 = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(32, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2).flatten(1)
        return self.fc2(self.drop(F.relu(self.bn1(self.fc1(x)))))


class TwoMiB(nn.Module):
    """About 2.1 MiB of gradients: a 2 MiB linear layer (a bucket of its own under DDP's
    default caps) and small layers before and after it (the 1 MiB first bucket)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1 = nn.Linear(8 * 6 * 6, 1792)  # 288 x 1792 x 4 B = 2.0 MiB
        self.fc2 = nn.Linear(1792, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


def _model(name: str) -> nn.Module:
    if name == "two_mib":
        torch.manual_seed(SEED)
        return TwoMiB()
    if name == "cnn_small":
        from rsdgc_sim.models import create

        return create("cnn_small", num_classes=CLASSES, input_size=SIZE, seed=SEED)
    torch.manual_seed(SEED)  # the same initial weights on every rank and here
    return BNDropout()


def _data():
    from rsdgc_sim.train import SyntheticData

    return SyntheticData(CLASSES, SIZE, 600, seed=SEED)


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"param:{n}": p.detach().clone() for n, p in net.named_parameters()}
    state.update({f"buffer:{n}": b.detach().clone() for n, b in net.named_buffers()})
    return state


def _rank_main() -> None:
    """One DDP rank (a subprocess of :func:`launch_ranks`)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.compress import create
    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.ddp.semantics import rank_seed
    from rsdgc_sim.emulate.launcher import write_result
    from rsdgc_sim.train.virtual import split, worker_batch

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    data = _data()
    shards, _ = split(len(data), world, 0.2, SEED)
    out: dict = {}
    buckets: dict = {}
    for model in MODELS:
        for label in WORLDS[world][model]:
            name, params = CASES[label]
            net = _model(model)
            ddp = DDP(net) if model in DEFAULT_BUCKETS else DDP(net, bucket_cap_mb=BUCKET_CAP_MB)
            state, hook = make_comm_hook(name, model=ddp, seed=SEED, **params)
            seen: list[list[str]] = []

            def recording(st, bucket, hook=hook, seen=seen):
                if st.iteration == STEPS - 1:
                    seen.append([st.param_names[p.data_ptr()] for p in bucket.parameters()])
                return hook(st, bucket)

            recording.__annotations__.update(hook.__annotations__)
            ddp.register_comm_hook(state, recording)
            comp = create(name, **params)
            opt = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=comp.optimizer_momentum(MOMENTUM))
            torch.manual_seed(rank_seed(SEED, rank))  # this rank's dropout stream
            steps = []
            for step in range(STEPS):
                x, y = data.batch(worker_batch(shards[rank], step, BATCH))
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(ddp(x), y).backward()
                opt.step()
                if rank == 0 or step == STEPS - 1:
                    steps.append(_snapshot(net))
            out[(model, label)] = steps
            buckets[f"{model}/{label}"] = seen
    torch.save(out, Path(os.environ["RSDGC_TEST_OUT"]) / f"rank{rank}.pt")
    write_result({"rank": rank, "buckets": buckets})
    dist.destroy_process_group()


def _virtual(model: str, label: str, world: int) -> tuple[list[dict[str, torch.Tensor]], list[list[str]]]:
    """The same training with the virtual engine: snapshots after every step, buckets."""
    from rsdgc_sim.compress import create
    from rsdgc_sim.train.engine import VirtualDDP
    from rsdgc_sim.train.virtual import cross_entropy, split, worker_batch

    name, params = CASES[label]
    data = _data()
    shards, _ = split(len(data), world, 0.2, SEED)
    net = _model(model)
    comp = create(name, **params)
    if model in DEFAULT_BUCKETS:
        first, cap = DDP_FIRST_BUCKET, DDP_BUCKET_CAP
    else:  # DDP: an explicit bucket_cap_mb caps the first bucket too
        first = cap = int(BUCKET_CAP_MB * 2**20)
    engine = VirtualDDP(net, comp, world, seed=SEED, first_bucket_bytes=first, bucket_cap_bytes=cap)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=comp.optimizer_momentum(MOMENTUM))
    steps = []
    for step in range(STEPS):
        batches = [data.batch(worker_batch(shards[w], step, BATCH)) for w in range(world)]
        engine.iterate(batches, cross_entropy)
        opt.step()
        steps.append(_snapshot(net))
    names = engine.names
    return steps, [[names[i] for i in b] for b in engine.buckets]


#: one launch of the real ranks per world size, for the whole module
ranks = ranks_fixture(__file__, "equiv")


@pytest.mark.parametrize(
    "world, model, label", [(w, m, c) for w, table in WORLDS.items() for m in MODELS for c in table[m]],
    ids=lambda v: f"{v}_ranks" if isinstance(v, int) else v)
def test_virtual_workers_equal_real_ddp_after_every_step(ranks, model, label):
    """Parameters and buffers of the virtual trainer equal rank 0's after each of the
    STEPS steps, bit for bit, every rank ends equal to rank 0, and the virtual engine
    compressed in the buckets DDP handed to the hook."""
    world, saved, results = ranks
    real = saved[0][(model, label)]
    virtual, buckets = _virtual(model, label, world)
    assert len(real) == len(virtual) == STEPS
    for step, (a, b) in enumerate(zip(real, virtual, strict=True)):
        assert a.keys() == b.keys()
        worst = max((float((a[k].float() - b[k].float()).abs().max()), k) for k in a)
        assert worst[0] <= TOL, f"step {step}: {worst[1]} differs by {worst[0]:.3g}"
    for r in range(1, world):
        last = saved[r][(model, label)][-1]
        assert all(torch.equal(last[k], real[-1][k]) for k in last if k.startswith("param:"))
    assert len(buckets) >= 2
    assert results[0]["buckets"][f"{model}/{label}"] == buckets
    if model in DEFAULT_BUCKETS:  # the 1 MiB first bucket closes after fc1.weight (2 MiB);
        # with the caps swapped (25 MiB first) everything would be one bucket
        assert buckets == [["fc2.bias", "fc2.weight", "fc1.bias", "fc1.weight"],
                           ["conv.weight", "conv.bias"]]


@pytest.mark.parametrize("world", list(WORLDS), ids=lambda w: f"{w}_ranks")
def test_compression_changes_the_trajectory(ranks):
    """Sanity of the harness: the compressed runs really differ from dense ones (else the
    equality above could not tell a compressor that does nothing)."""
    world, saved, _ = ranks
    dense = saved[0][("cnn_small", "none")][-1]
    for label in {"topk", "randomk", "dgc", "nsi", "nsi_warmup"} & set(WORLDS[world]["cnn_small"]):
        other = saved[0][("cnn_small", label)][-1]
        assert max(float((dense[k] - other[k]).abs().max()) for k in dense if k.startswith("param:")) > 1e-3
