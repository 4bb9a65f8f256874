"""Synchronous data-parallel training with N virtual workers on one device.

Per step, every worker takes the next batch of its own shard, computes its gradient on the
shared model (all replicas are identical in synchronous data parallelism), and compresses
it with its own :class:`~rsdgc_sim.compress.CompressorState`. The update is the mean over
workers of the decompressed payloads: what an allreduce (dense) or an all-gather followed by
a sum (sparse) delivers to every rank. SGD then steps; when the compressor applies momentum
itself (``dgc`` with momentum correction) the optimizer runs without momentum, as DGC's
reference code does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..progress import Eta, Transient


@dataclass
class TrainResult:
    compressor: str
    workers: int
    steps: int
    batch_size: int
    final_accuracy: float
    final_loss: float
    #: mean bytes one worker put on the wire per step
    bytes_sent_per_worker: float
    wall_s: float
    #: evaluations during training: {"step", "loss", "accuracy"}
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, indices: torch.Tensor, device: str, batch: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``data[indices]``."""
    was = model.training
    model.eval()
    loss, correct = 0.0, 0
    for s in range(0, len(indices), batch):
        x, y = data.batch(indices[s:s + batch])
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    model.train(was)
    n = max(1, len(indices))
    return loss / n, correct / n


def split(n: int, workers: int, test_fraction: float, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A seeded permutation: the first ``test_fraction`` is held out, the rest dealt to the
    workers round-robin (disjoint shards)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_fraction))
    train = perm[n_test:]
    if len(train) < workers:
        raise ConfigError(f"train: {len(train)} training samples cannot feed {workers} workers")
    return [train[w::workers] for w in range(workers)], perm[:n_test]


def train_virtual(
    model: str,
    num_classes: int,
    input_size: int,
    compressor: Mapping[str, Any],
    workers: int,
    batch_size: int,
    steps: int,
    data,
    *,
    lr: float = 0.05,
    momentum: float = 0.9,
    test_fraction: float = 0.2,
    eval_every: int = 0,
    seed: int = 0,
    device: str = "cpu",
    label: str | None = None,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 1.0,
) -> TrainResult:
    """Train ``model`` from seed ``seed`` with ``workers`` virtual workers for ``steps``
    steps of ``batch_size`` samples per worker; ``compressor`` is ``{"name": ..., **params}``
    (``label`` names it in the result, by default the compressor's own label).

    ``progress`` gets, at most once per ``progress_every_s`` seconds, ``topk, 4 workers:
    step 120/1000, loss 0.43, ~35 s left`` (a :class:`~rsdgc_sim.progress.Transient`; the
    loss is the mean training loss over workers and steps since the last such message),
    and the test accuracy at every ``eval_every`` steps."""
    from ..compress import CompressorState, create, decompress_sum
    from ..models import create as create_model

    if workers < 1 or steps < 1 or batch_size < 1:
        raise ConfigError(f"train: workers, steps and batch_size must be >= 1 (got {workers}, {steps}, {batch_size})")
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    comp = create(compressor["name"], **{k: v for k, v in compressor.items() if k != "name"})
    label = label or comp.label
    net = create_model(model, num_classes=num_classes, input_size=input_size, seed=seed).to(device)
    net.train()
    params = dict(net.named_parameters())
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=comp.optimizer_momentum(momentum))
    states = [CompressorState(seed=seed * 7919 + w) for w in range(workers)]
    shards, test = split(len(data), workers, test_fraction, seed)
    history: list[dict[str, float]] = []
    sent = 0.0
    eta = Eta(steps, every_s=progress_every_s)
    loss_sum, loss_n = torch.zeros((), device=device), 0  # training loss since the last message
    for step in range(steps):
        payloads = []
        for w in range(workers):
            shard = shards[w]
            pos = (step * batch_size + torch.arange(batch_size)) % len(shard)
            x, y = data.batch(shard[pos])
            net.zero_grad(set_to_none=True)
            train_loss = F.cross_entropy(net(x.to(device)), y.to(device))
            train_loss.backward()
            loss_sum += train_loss.detach()
            loss_n += 1
            out = comp.compress_many({n: p.grad for n, p in params.items()}, states[w])
            states[w].step()
            sent += sum(pl.wire_bytes for pl in out.values())
            payloads.append(out)
        for n, p in params.items():
            p.grad = decompress_sum([pw[n] for pw in payloads], average=True)
        opt.step()
        if progress is not None and eta.due():  # float(): a device sync, only when said
            mean_loss, loss_sum, loss_n = float(loss_sum) / loss_n, torch.zeros_like(loss_sum), 0
            say(Transient(f"{label}, {workers} workers: step "
                          f"{eta.update(step + 1, f'loss {mean_loss:.3g}')}"))
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            loss, acc = evaluate(net, data, test, device)
            history.append({"step": step + 1, "loss": loss, "accuracy": acc})
            say(f"{label}, {workers} workers: step {step + 1}/{steps}, test accuracy {acc:.3f}")
    loss, acc = evaluate(net, data, test, device)
    history.append({"step": steps, "loss": loss, "accuracy": acc})
    return TrainResult(
        compressor=label, workers=workers, steps=steps, batch_size=batch_size,
        final_accuracy=acc, final_loss=loss, bytes_sent_per_worker=sent / (steps * workers),
        wall_s=time.perf_counter() - t0, history=history,
    )
