"""The profiler measures compression through the DDP hook's own per-bucket code: real DDP on
2 gloo ranks with the top-k hook, and the profiler on rank 0, both with every call of the
shared send and receive functions (:mod:`rsdgc_sim.ddp.bucket_work`) recorded. They must
call the same functions, on the same buckets (DDP's rebuilt ones), in the same order, with
the same payload bytes: a profiler (or hook) with a code path of its own fails here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import launch_ranks

pytestmark = pytest.mark.slow  # real DDP ranks

WORLD = 2
#: one bucket cap (bytes) for DDP and the profiler: cnn_small's 97 KiB of gradients make
#: several buckets (DDP with ``bucket_cap_mb`` caps its first bucket at the same size)
CAP = 16 * 1024
SPEC = {"name": "topk", "density": 0.05}


def _spy(module, calls: list, tag: str) -> None:
    """Record every prepare_send (its tensor names and payload bytes) and finish_receive
    (its world size) called from ``module``."""
    send, receive = module.prepare_send, module.finish_receive

    def prepare_send(comp, state, names, grads, world, capacity):
        out = send(comp, state, names, grads, world, capacity)
        calls.append((tag, "send", list(names), out.payload_bytes))
        return out

    def finish_receive(got, comp, world, out):
        calls.append((tag, "receive", world))
        return receive(got, comp, world, out)

    module.prepare_send, module.finish_receive = prepare_send, finish_receive


def _rank_main() -> None:
    """One rank (run in a subprocess by the fixture)."""
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rsdgc_sim.ddp import hook as hook_module
    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.emulate.launcher import write_result
    from rsdgc_sim.models import create
    from rsdgc_sim.profile import bucket_costs
    from rsdgc_sim.profile.measure import measure_profile

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    calls: list = []
    _spy(hook_module, calls, "hook")
    ddp = DDP(create("cnn_small", num_classes=10, input_size=32, seed=0),
              bucket_cap_mb=CAP / 2**20)
    state, hook = make_comm_hook(SPEC["name"], model=ddp, density=SPEC["density"])
    ddp.register_comm_hook(state, hook)
    g = torch.Generator().manual_seed(rank)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    for _ in range(4):  # 0: DDP rebuilds its buckets; 1: dense warm-up; 2, 3: compressed
        ddp.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
    dist.destroy_process_group()
    if rank == 0:
        _spy(bucket_costs, calls, "profile")
        measure_profile("cnn_small", 10, 32, 8, "cpu", {"topk": SPEC}, warmup=0,
                        min_iterations=2, max_iterations=2, budget_s=0.0, buckets=(CAP, CAP))
    torch.save(calls, Path(os.environ["RSDGC_TEST_OUT"]) / f"rank{rank}.pt")
    write_result({"rank": rank})


@pytest.fixture(scope="module")
def calls(tmp_path_factory):
    saved, _ = launch_ranks(__file__, WORLD, tmp_path_factory.mktemp("bucket_path"))
    return saved[0]


def _sends(calls, tag):
    return [c[2:] for c in calls if c[0] == tag and c[1] == "send"]


def test_profiler_and_hook_compress_the_same_buckets_in_the_same_order(calls):
    """One compressed iteration's prepare_send calls of the hook (its last iteration) equal
    one timed iteration's of the profiler: the same tensor names per bucket, in DDP's
    rebuilt (gradient-ready) order, with the same payload bytes; there are several buckets."""
    hook, prof = _sends(calls, "hook"), _sends(calls, "profile")
    assert len(hook) % 2 == 0 and len(hook) >= 4  # two compressed iterations, 2+ buckets
    per_iteration = len(hook) // 2
    assert len(prof) == 2 * per_iteration
    assert prof[:per_iteration] == hook[per_iteration:]
    names = [n for names, _ in hook[:per_iteration] for n in names]
    assert len(names) == len(set(names)) == 12  # every cnn_small parameter, once


def test_profiler_times_the_receive_side_at_one_and_at_more_ranks(calls):
    """The hook's callbacks write every bucket at its world size (2); the profiler runs the
    same receive function for every bucket at 1 and at WORLD ranks."""
    from rsdgc_sim.profile.bucket_costs import WORLD as PROFILE_WORLD

    per_iteration = len(_sends(calls, "hook")) // 2
    hook = [c[2] for c in calls if c[0] == "hook" and c[1] == "receive"]
    prof = [c[2] for c in calls if c[0] == "profile" and c[1] == "receive"]
    assert hook == [WORLD] * (2 * per_iteration)
    assert sorted(prof) == sorted([1, PROFILE_WORLD] * (2 * per_iteration))
