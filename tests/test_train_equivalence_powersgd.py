"""``powersgd``: the virtual-worker trainer equals real DDP ranks running torch's own
``powerSGD_hook`` (``make_comm_hook("powersgd")`` returns torch's state and hook).

Real gloo DDP (2 and 3 ranks, buckets of ~40 KB so that both models have several) trains
:data:`STEPS` SGD steps per case and model, saving the parameters and buffers after every
step; :class:`rsdgc_sim.train.engine.VirtualDDP` trains the same model from the same seed
on the same shards here, through :mod:`rsdgc_sim.ddp.powersgd`. After every step they must
agree to :data:`TOL`. The cases cover rank 1 and 2 (Gram-Schmidt) and 4 (QR), warm start
on and off (Q drawn from torch's seed stream once per bucket, or every iteration), error
feedback on and off, a later ``start_iter``, ``orthogonalization_epsilon``,
``min_compression_rate``, a 2-D tensor torch sends whole (``fc2.weight`` at rank 4), the
1-D tensors, batch norm and dropout. Torch's own compression statistics give the values
sent per iteration, which must equal the virtual engine's bytes (and the bytes the hook's
statistics count, which ``emulate`` reports). The ranks register the hook
``make_comm_hook`` returns: on gloo torch's ``powerSGD_hook`` called in bucket order
(:mod:`rsdgc_sim.ddp.powersgd_hook`), without which several buckets abort gloo.
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
#: enough for every phase: DDP's dense steps, compression from start_iter (2, or 5 for
#: rank4_qr), then at least 7 compressed steps (a difference shows at the step it starts)
STEPS = 12
BATCH = 8
CLASSES = 10
SIZE = 12
LR = 0.05
MOMENTUM = 0.9
#: DDP(bucket_cap_mb=...): ~40 KB, so both models have several buckets
BUCKET_CAP_MB = 0.04
#: the brief's bound; the engines run the same operations in the same order
TOL = 1e-6
CASES: dict[str, dict] = {
    "default": {},
    "rank2_cold": {"rank": 2, "warm_start": False, "random_seed": 3},
    "rank4_qr": {"rank": 4, "start_iter": 5},
    "rank2_no_ef": {"rank": 2, "error_feedback": False},
    "eps_rate1": {"orthogonalization_epsilon": 1e-8, "min_compression_rate": 1.0, "random_seed": 11},
}
MODELS = ("cnn_small", "bn_dropout")
#: per world, per model, the cases trained: every case on cnn_small at 2 ranks; batch norm,
#: dropout and the tensor sent whole (rank 4) on bn_dropout; 3 ranks (a sum of three, where
#: the order shows) with Gram-Schmidt and QR, warm and cold
WORLDS = {2: {"cnn_small": list(CASES), "bn_dropout": ["default", "rank4_qr"]},
          3: {"cnn_small": ["default", "rank2_cold"], "bn_dropout": ["rank4_qr"]}}


class BNDropout(nn.Module):
    """Batch norm, dropout (per-rank random), and ``fc2.weight`` (10 x 32), which torch
    compresses at rank 2 ((10 + 32) 2 x 2 < 320) but sends whole at rank 4."""

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


def _model(name: str) -> nn.Module:
    if name == "cnn_small":
        from rsdgc_sim.models import create

        return create("cnn_small", num_classes=CLASSES, input_size=SIZE, seed=SEED)
    torch.manual_seed(SEED)
    return BNDropout()


def _data():
    from rsdgc_sim.train import SyntheticData

    return SyntheticData(CLASSES, SIZE, 600, seed=SEED)


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"param:{n}": p.detach().clone() for n, p in net.named_parameters()}
    state.update({f"buffer:{n}": b.detach().clone() for n, b in net.named_buffers()})
    return state


def _rank_main() -> None:
    """One DDP rank running torch's PowerSGD hook (a subprocess of :func:`launch_ranks`)."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import (
        PowerSGDState,
        powerSGD_hook,
    )
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.ddp.powersgd_hook import PowerSGDHook
    from rsdgc_sim.ddp.semantics import rank_seed
    from rsdgc_sim.emulate.launcher import write_result
    from rsdgc_sim.train.virtual import split, worker_batch

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    data = _data()
    shards, _ = split(len(data), world, 0.2, SEED)
    out: dict = {}
    info: dict = {}
    for model in MODELS:
        for label in WORLDS[world][model]:
            net = _model(model)
            ddp = DDP(net, bucket_cap_mb=BUCKET_CAP_MB)
            state, hook = make_comm_hook("powersgd", model=ddp, seed=SEED, **CASES[label])
            # torch's own state, and torch's own hook computes every value: on gloo
            # make_comm_hook's hook only calls it in bucket order (ddp/powersgd_hook.py)
            assert type(state) is PowerSGDState and type(hook) is PowerSGDHook
            assert hook.hook is powerSGD_hook and hook.in_order
            ddp.register_comm_hook(state, hook)
            opt = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=MOMENTUM)
            torch.manual_seed(rank_seed(SEED, rank))  # this rank's dropout stream
            steps = []
            for step in range(STEPS):
                # after the loop: the last step's buckets and bytes, as the hook counts them
                counted, sent = hook.stats.buckets, hook.stats.sent_bytes
                x, y = data.batch(worker_batch(shards[rank], step, BATCH))
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(ddp(x), y).backward()
                opt.step()
                if rank == 0 or step == STEPS - 1:
                    steps.append(_snapshot(net))
            out[(model, label)] = steps
            info[f"{model}/{label}"] = {
                "buckets": hook.stats.buckets - counted, "start": state.start_powerSGD_iter,
                "after": state.total_numel_after_compression,
                "sent_last": hook.stats.sent_bytes - sent}
    torch.save(out, Path(os.environ["RSDGC_TEST_OUT"]) / f"rank{rank}.pt")
    write_result({"rank": rank, "info": info})
    dist.destroy_process_group()


def _virtual(model: str, label: str, world: int):
    """The same training with the virtual engine: snapshots after every step, the engine,
    and the bytes it all-reduced per compressed step."""
    from rsdgc_sim.compress import create
    from rsdgc_sim.train.engine import VirtualDDP
    from rsdgc_sim.train.virtual import cross_entropy, split, worker_batch

    data = _data()
    shards, _ = split(len(data), world, 0.2, SEED)
    net = _model(model)
    comp = create("powersgd", **CASES[label])
    cap = int(BUCKET_CAP_MB * 2**20)  # DDP: an explicit bucket_cap_mb caps the first too
    engine = VirtualDDP(net, comp, world, seed=SEED, first_bucket_bytes=cap, bucket_cap_bytes=cap)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    steps, sent = [], []
    for step in range(STEPS):
        batches = [data.batch(worker_batch(shards[w], step, BATCH)) for w in range(world)]
        st = engine.iterate(batches, cross_entropy)
        opt.step()
        steps.append(_snapshot(net))
        if st.compressed:
            sent.append(st.collective_bytes)
    return steps, engine, sent


#: one launch of the real ranks per world size, for the whole module
ranks = ranks_fixture(__file__, "psgd")


@pytest.mark.parametrize(
    "world, model, label",
    [(w, m, c) for w, table in WORLDS.items() for m in MODELS for c in table[m]],
    ids=lambda v: f"{v}_ranks" if isinstance(v, int) else v)
def test_virtual_workers_equal_torch_powersgd_after_every_step(ranks, model, label):
    """Parameters and buffers of the virtual trainer equal rank 0's (torch's hook) to 1e-6
    after each of the STEPS steps, every rank ends equal to rank 0, DDP had several buckets,
    and the values all-reduced per compressed iteration are torch's own count."""
    world, saved, results = ranks
    real = saved[0][(model, label)]
    virtual, engine, sent = _virtual(model, label, world)
    assert len(real) == len(virtual) == STEPS
    for step, (a, b) in enumerate(zip(real, virtual, strict=True)):
        assert a.keys() == b.keys()
        worst = max((float((a[k].float() - b[k].float()).abs().max()), k) for k in a)
        assert worst[0] <= TOL, f"step {step}: {worst[1]} differs by {worst[0]:.3g}"
    for r in range(1, world):
        last = saved[r][(model, label)][-1]
        assert all(torch.equal(last[k], real[-1][k]) for k in last if k.startswith("param:"))
    info = results[0]["info"][f"{model}/{label}"]
    assert info["buckets"] == len(engine.buckets) >= 2
    assert engine.dense_iters == info["start"]
    assert len(sent) == STEPS - info["start"]
    assert set(sent) == {info["after"] * 4 // len(sent)}  # float32 values
    assert info["sent_last"] == sent[-1]  # the hook's stats (emulate reports them)


@pytest.mark.parametrize("world", list(WORLDS), ids=lambda w: f"{w}_ranks")
def test_powersgd_changes_the_trajectory(ranks):
    """Sanity of the harness: the cases differ from each other (a compressor that did
    nothing, or ignored its parameters, could not pass the equality above unnoticed)."""
    world, saved, _ = ranks
    finals = [saved[0][("cnn_small", label)][-1] for label in WORLDS[world]["cnn_small"]]
    for i in range(len(finals)):
        for j in range(i):
            assert max(float((finals[i][k] - finals[j][k]).abs().max())
                       for k in finals[i] if k.startswith("param:")) > 1e-4
