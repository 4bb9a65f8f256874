"""Train with gradient compression in your own DDP loop, on one machine or a real cluster.

One process per GPU (NCCL) or per CPU worker (gloo); the rsdgc-sim hook compresses every
DDP bucket (here RS-DGC, ``nsi`` at 1 % density, with error feedback) and averages the
ranks' sparse payloads with one all-gather per bucket.

Two nodes with 4 GPUs each (run on every node; node 0's address as rendezvous):

    torchrun --nnodes 2 --nproc-per-node 4 --node-rank $NODE_RANK \\
        --rdzv-backend c10d --rdzv-endpoint $MASTER_HOST:29500 \\
        examples/torchrun_train.py --compressor nsi --density 0.01

On this machine, two CPU workers over loopback:

    torchrun --standalone --nproc-per-node 2 examples/torchrun_train.py --steps 20

Replace the synthetic batches with your DataLoader (with a DistributedSampler).

A compressor that applies momentum itself (``dgc``'s momentum correction:
``compressor.applies_momentum``) gets an optimizer without momentum, else momentum would be
applied twice.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from rsdgc_sim.ddp import make_comm_hook
from rsdgc_sim.models import create as create_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn_small")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--num-classes", type=int, default=45)
    ap.add_argument("--batch-size", type=int, default=32, help="per rank")
    ap.add_argument("--compressor", default="nsi", help="none, fp16, topk, randomk, dgc, nsi ...")
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--dense-iters", type=int, default=2, help="dense warm-up iterations (>= 2)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9,
                    help="SGD momentum (0 when the compressor applies momentum itself)")  # fmt: skip
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))

    # same initial weights on every rank (DDP also broadcasts rank 0's at construction)
    model = create_model(args.model, num_classes=args.num_classes, input_size=args.input_size,
                         seed=0).to(device)  # fmt: skip
    ddp = DDP(model, device_ids=[local] if cuda else None)

    params = {} if args.compressor in ("none", "fp16") else {"density": args.density}
    state, hook = make_comm_hook(args.compressor, dense_iters=args.dense_iters, seed=0, **params)
    ddp.register_comm_hook(state, hook)

    momentum = state.compressor.optimizer_momentum(args.momentum)  # 0 for dgc
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=momentum)
    gen = torch.Generator().manual_seed(1000 + rank)  # each rank its own data shard
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size, generator=gen).to(device)
    y = torch.randint(0, args.num_classes, (args.batch_size,), generator=gen).to(device)

    t0 = time.perf_counter()
    for step in range(args.steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ddp(x), y)
        loss.backward()  # the hook compresses and communicates each bucket here
        opt.step()
        if rank == 0 and (step % 10 == 0 or step == args.steps - 1):
            print(f"step {step:4d}  loss {loss.item():.4f}", flush=True)
    if cuda:
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / args.steps
    s = state.stats
    if rank == 0:
        own = " (the compressor applies momentum itself)" if momentum != args.momentum else ""
        print(f"optimizer momentum {momentum}{own}")
        sent = s.sent_bytes / max(1, s.iterations)
        dense = s.dense_bytes / max(1, s.iterations)
        print(
            f"{world} ranks, {args.compressor}: {dt * 1e3:.1f} ms/step, "
            f"{sent / 1e6:.3f} MB sent per rank per step (dense gradient {dense / 1e6:.3f} MB)"
        )
    # every rank done with its last collective before any tears the group down: a rank that
    # exits while its peer still talks to it aborts gloo's threads ("terminate called
    # without an active exception", exit 1)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
