"""Synchronous data-parallel training with N virtual workers on one device, computing what
N real DDP ranks running our communication hook compute (:mod:`rsdgc_sim.train.engine`,
rules shared with the hook in :mod:`rsdgc_sim.ddp.semantics`): the hook's dense warm-up
iterations, compression per DDP bucket with per-rank compressor states, batch-norm buffers
as DDP keeps them (rank 0's), and SGD without momentum when the compressor applies it
itself (``dgc`` with momentum correction, as DGC's reference code does).

Every worker reads its own disjoint shard of the training set; the test set is the data
set's own (``data.test_indices``, e.g. Fashion-MNIST's 10k test images) or a seeded
``test_fraction`` held out. Long runs save a checkpoint every ``checkpoint_every_s``; a run
started again with the same arguments resumes from it and ends with the same result as an
uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import __version__
from ..compress import create
from ..ddp.semantics import MIN_DENSE_ITERS
from ..errors import ConfigError, TrainingError
from ..models import create as create_model
from ..progress import Eta, Transient
from .engine import VirtualDDP


@dataclass
class TrainResult:
    compressor: str
    workers: int
    steps: int
    batch_size: int
    final_accuracy: float
    final_loss: float
    #: mean bytes of one worker's payloads (values and indices) per *compressed* step: the
    #: steady state, without the dense warm-up (dense bytes when nothing was compressed)
    bytes_sent_per_worker: float
    wall_s: float
    #: evaluations during training: {"step", "loss", "accuracy"}
    history: list[dict[str, float]] = field(default_factory=list)
    #: dense warm-up iterations before compression started
    dense_iters: int = 2
    #: DDP buckets the gradients were compressed in
    buckets: int = 0
    #: the step this run resumed from (0: started from scratch)
    resumed_from: int = 0

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


def split(n: int, workers: int, test_fraction: float, seed: int,
          test_indices: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A seeded permutation of the training samples dealt to the workers round-robin
    (disjoint shards), and the test indices: ``test_indices`` when the data set has its own
    test set, else the first ``test_fraction`` of the permutation."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if test_indices is not None:
        held = torch.zeros(n, dtype=torch.bool)
        held[test_indices] = True
        train, test = perm[~held[perm]], test_indices
    else:
        n_test = int(round(n * test_fraction))
        train, test = perm[n_test:], perm[:n_test]
    if len(train) < workers:
        raise ConfigError(f"train: {len(train)} training samples cannot feed {workers} workers")
    return [train[w::workers] for w in range(workers)], test


def worker_batch(shard: torch.Tensor, step: int, batch_size: int) -> torch.Tensor:
    """The sample indices worker reads at ``step``: the next ``batch_size`` of its shard,
    wrapping around."""
    return shard[(step * batch_size + torch.arange(batch_size)) % len(shard)]


def cross_entropy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(x), y)


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
    dense_iters: int = MIN_DENSE_ITERS,
    first_bucket_bytes: int = 2**20,
    bucket_cap_bytes: int = 25 * 2**20,
    checkpoint: str | Path | None = None,
    checkpoint_every_s: float = 60.0,
) -> TrainResult:
    """Train ``model`` from seed ``seed`` with ``workers`` virtual workers for ``steps``
    steps of ``batch_size`` samples per worker; ``compressor`` is ``{"name": ..., **params}``
    (``label`` names it in the result, by default the compressor's own label). The first
    ``dense_iters`` steps are averaged densely (the DDP hook's warm-up); DDP's buckets are
    ``first_bucket_bytes`` then ``bucket_cap_bytes``.

    ``progress`` gets, at most once per ``progress_every_s`` seconds, ``topk, 4 workers:
    step 120/1000, loss 0.43, ~35 s left`` (a :class:`~rsdgc_sim.progress.Transient`; the
    loss is the mean training loss over workers and steps since the last such message),
    and the test accuracy at every ``eval_every`` steps.

    ``checkpoint``: a file this run saves its state to (atomically) every
    ``checkpoint_every_s`` seconds and at the end; when it exists and was saved by a run with
    the same arguments, training resumes from it (a file from other arguments is replaced)."""
    if workers < 1 or steps < 1 or batch_size < 1:
        raise ConfigError(f"train: workers, steps and batch_size must be >= 1 (got {workers}, {steps}, {batch_size})")
    t0 = time.perf_counter()
    comp = create(compressor["name"], **{k: v for k, v in compressor.items() if k != "name"})
    label = label or comp.label
    net, opt, engine = _replica(model, num_classes, input_size, comp, workers, seed=seed, lr=lr,
                                momentum=momentum, dense_iters=dense_iters, device=device,
                                buckets=(first_bucket_bytes, bucket_cap_bytes))
    shards, test = split(len(data), workers, test_fraction, seed, getattr(data, "test_indices", None))
    tr = _Training(net, opt, engine, data, shards, test, _RunState(), device, workers, batch_size,
                   label, progress or (lambda _m: None))
    if checkpoint is not None:
        tr.checkpoint = Path(checkpoint)
        tr.key = _checkpoint_key(model, num_classes, input_size, dict(compressor), workers,
                                 batch_size, steps, data_fingerprint(data), lr, momentum,
                                 test_fraction, eval_every, seed, dense_iters, first_bucket_bytes,
                                 bucket_cap_bytes)
        tr.resume()
    resumed_from = tr.run.step
    _train_steps(tr, steps, eval_every, progress, progress_every_s, checkpoint_every_s)
    return _result(tr, steps, dense_iters, resumed_from, t0)


def _replica(model: str, num_classes: int, input_size: int, comp: Any, workers: int, *, seed: int,
             lr: float, momentum: float, dense_iters: int, device: str, buckets: tuple[int, int]):
    """The seeded model in training mode on ``device``, its SGD optimizer (without momentum
    when ``comp`` applies it itself) and the virtual DDP engine of ``workers`` ranks over it
    (DDP's first and later bucket caps ``buckets``)."""
    net = create_model(model, num_classes=num_classes, input_size=input_size, seed=seed).to(device)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=comp.optimizer_momentum(momentum))
    engine = VirtualDDP(net, comp, workers, seed=seed, dense_iters=dense_iters,
                        first_bucket_bytes=buckets[0], bucket_cap_bytes=buckets[1], device=device)
    return net, opt, engine


@dataclass
class _Training:
    """What the phases of one :func:`train_virtual` run share: the replica, its optimizer and
    engine, each worker's shard of ``data`` and the test indices, the counters a checkpoint
    keeps (``run``), and the checkpoint's file (None: no checkpoint) and key."""

    net: torch.nn.Module
    opt: torch.optim.Optimizer
    engine: Any
    data: Any
    shards: list[torch.Tensor]
    test: torch.Tensor
    run: _RunState
    device: str
    workers: int
    batch_size: int
    label: str
    say: Callable[[str], None]
    checkpoint: Path | None = None
    key: str = ""

    def step(self, step: int) -> torch.Tensor:
        """Train step ``step``: each worker's batch through the engine, then the optimizer;
        count the payload bytes. Returns the workers' summed training loss (a tensor: no
        device sync)."""
        batches = []
        for w in range(self.workers):
            x, y = self.data.batch(worker_batch(self.shards[w], step, self.batch_size))
            batches.append((x.to(self.device), y.to(self.device)))
        it = self.engine.iterate(batches, cross_entropy)
        self.opt.step()
        run = self.run
        if it.compressed:
            run.payload_bytes += it.payload_bytes
            run.compressed_steps += 1
        else:
            run.dense_bytes = it.payload_bytes
        run.step = step + 1
        return it.loss_sum

    def evaluate(self) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on the test indices; a non-finite loss (training
        diverged: a learning rate far too large) is one TrainingError naming the run."""
        loss, acc = evaluate(self.net, self.data, self.test, self.device)
        if not math.isfinite(loss):
            raise TrainingError(f"{self.label}, {self.workers} workers: training diverged (the "
                                f"test loss is {loss} after step {self.run.step}); lower "
                                f"train.lr, or check the data")
        return loss, acc

    def resume(self) -> None:
        """Load the checkpoint when it exists and has this run's key."""
        _resume(self.checkpoint, self.key, self.net, self.opt, self.engine, self.run, self.say,
                self.label, self.workers)

    def save(self) -> None:
        """Save the checkpoint (atomically)."""
        _save(self.checkpoint, self.key, self.net, self.opt, self.engine, self.run)


def _train_steps(tr: _Training, steps: int, eval_every: int, progress: Callable[[str], None] | None,
                 progress_every_s: float, checkpoint_every_s: float) -> None:
    """Train from the run's step up to ``steps``: progress at most every
    ``progress_every_s`` (with the mean training loss since the last message), the test
    accuracy every ``eval_every`` steps, a checkpoint every ``checkpoint_every_s``."""
    run, say, workers = tr.run, tr.say, tr.workers
    resumed_from = run.step
    eta = Eta(steps - run.step, every_s=progress_every_s)
    last_save = time.monotonic()
    loss_sum, loss_n = torch.zeros((), device=tr.device), 0  # training loss since the last message
    for step in range(run.step, steps):
        loss_sum += tr.step(step)
        loss_n += workers
        if progress is not None and eta.due():  # float(): a device sync, only when said
            mean_loss, loss_sum, loss_n = float(loss_sum) / loss_n, torch.zeros_like(loss_sum), 0
            say(Transient(f"{tr.label}, {workers} workers: step "
                          f"{eta.update(run.step - resumed_from, f'loss {mean_loss:.3g}')}"))
        if eval_every and run.step % eval_every == 0 and run.step < steps:
            loss, acc = tr.evaluate()
            run.history.append({"step": run.step, "loss": loss, "accuracy": acc})
            say(f"{tr.label}, {workers} workers: step {run.step}/{steps}, test accuracy {acc:.3f}")
        if tr.checkpoint is not None and time.monotonic() - last_save >= checkpoint_every_s:
            tr.save()
            last_save = time.monotonic()


def _result(tr: _Training, steps: int, dense_iters: int, resumed_from: int, t0: float) -> TrainResult:
    """The final evaluation, the last checkpoint, and the run's :class:`TrainResult`."""
    run = tr.run
    loss, acc = tr.evaluate()
    history = [*run.history, {"step": steps, "loss": loss, "accuracy": acc}]
    if tr.checkpoint is not None:
        tr.save()
    sent = run.payload_bytes / run.compressed_steps if run.compressed_steps else run.dense_bytes
    return TrainResult(
        compressor=tr.label, workers=tr.workers, steps=steps, batch_size=tr.batch_size,
        final_accuracy=acc, final_loss=loss, bytes_sent_per_worker=sent,
        wall_s=time.perf_counter() - t0, history=history, dense_iters=dense_iters,
        buckets=len(tr.engine.buckets or []), resumed_from=resumed_from,
    )


@dataclass
class _RunState:
    """What a checkpoint keeps besides the model, optimizer and engine."""

    step: int = 0
    payload_bytes: float = 0.0
    compressed_steps: int = 0
    dense_bytes: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


#: bump when the checkpoint's content changes
CHECKPOINT_VERSION = 1


def data_fingerprint(data) -> str:
    """A hash of what the data set is: its size, classes, test split and four samples spread
    over it (so another difficulty, seed or folder of the same size differs)."""
    n = len(data)
    h = hashlib.sha256(json.dumps([n, list(data.classes)]).encode())
    test = getattr(data, "test_indices", None)
    if test is not None:
        h.update(test.numpy().tobytes())
    x, y = data.batch(torch.tensor(sorted({0, n // 3, 2 * n // 3, n - 1})))
    h.update(x.contiguous().numpy().tobytes())
    h.update(y.numpy().tobytes())
    return h.hexdigest()


def _checkpoint_key(*args: Any) -> str:
    text = json.dumps([CHECKPOINT_VERSION, __version__, *args], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _save(path: Path, key: str, net: torch.nn.Module, opt: torch.optim.Optimizer,
          engine: VirtualDDP, run: _RunState) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"key": key, "model": net.state_dict(), "optimizer": opt.state_dict(),
                "engine": engine.state_dict(), "run": asdict(run)}, tmp)
    os.replace(tmp, path)


def _resume(path: Path, key: str, net: torch.nn.Module, opt: torch.optim.Optimizer,
            engine: VirtualDDP, run: _RunState, say: Callable[[str], None], label: str,
            workers: int) -> None:
    if not path.exists():
        return
    try:
        sd = torch.load(path, map_location=engine.device, weights_only=False)
    except Exception as e:  # a damaged checkpoint is replaced, not trusted
        say(f"{label}, {workers} workers: checkpoint {str(path)!r} unreadable ({e}); starting over")
        return
    if not isinstance(sd, dict) or sd.get("key") != key:
        say(f"{label}, {workers} workers: checkpoint {str(path)!r} is from other settings; starting over")
        return
    net.load_state_dict(sd["model"])
    opt.load_state_dict(sd["optimizer"])
    engine.load_state_dict(sd["engine"])
    for k, v in sd["run"].items():
        setattr(run, k, v)
    say(f"{label}, {workers} workers: resuming at step {run.step}")
