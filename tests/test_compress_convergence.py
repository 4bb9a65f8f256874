"""Convergence sanity: cnn_small trained by 4 virtual workers on data the test makes, each
sparsifier at density 0.01 with error feedback on every weight matrix (biases and batch-norm
parameters dense, as the DGC reference code does), ends within a stated margin of dense.

Measured on this setup (300 steps, CPU, torch 2.13): dense 0.998; topk 0.996, dgc 0.995,
threshold 0.996; nsi 0.936 (sampled selector 0.927); randomk 0.879. Random-k and RS-DGC
need more steps than top-k here: at density 0.01 a 432-element first layer sends 4 values
per step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsdgc_sim.compress import CompressorState, create, decompress_sum
from rsdgc_sim.models import create as create_model

WORKERS = 4
CLASSES = 4
SIZE = 12
STEPS = 300
BATCH = 16
LR = 0.05
#: template amplitude against unit noise (sets how hard the task is)
SIGNAL = 0.5
#: accuracy (held-out, fraction) a sparsifier may lose against dense
MARGIN = 0.2


def make_data(n: int, seed: int):
    """Class c = a fixed random 3x12x12 template of class c plus unit Gaussian noise."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.randn(CLASSES, 3, SIZE, SIZE, generator=g)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = templates[y] * SIGNAL + torch.randn(n, 3, SIZE, SIZE, generator=g)
    return x, y


def train(name: str, params: dict) -> float:
    """Train with WORKERS virtual workers (own shard, own compressor state), aggregate the
    payloads as the collective would (mean), SGD; return held-out accuracy."""
    model = create_model("cnn_small", num_classes=CLASSES, input_size=SIZE, seed=0)
    comp = create(name, **params)
    states = [CompressorState(seed=w) for w in range(WORKERS)]
    shards = [make_data(BATCH * STEPS, seed=100 + w) for w in range(WORKERS)]
    # DGC applies momentum itself (momentum correction): plain SGD on the receiving side
    momentum = 0.0 if name == "dgc" else 0.9
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=momentum)
    params_ = dict(model.named_parameters())
    model.train()
    for step in range(STEPS):
        per_worker = []
        for w in range(WORKERS):
            x, y = shards[w]
            xb, yb = x[step * BATCH : (step + 1) * BATCH], y[step * BATCH : (step + 1) * BATCH]
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            grads = {n: p.grad.detach().clone() for n, p in params_.items()}
            per_worker.append(comp.compress_many(grads, states[w]))
            states[w].step()
        for n, p in params_.items():
            p.grad = decompress_sum([pw[n] for pw in per_worker], average=True)
        opt.step()
    xt, yt = make_data(1000, seed=999)
    model.eval()
    with torch.no_grad():
        return float((model(xt).argmax(1) == yt).float().mean())


@pytest.fixture(scope="module")
def dense_accuracy() -> float:
    return train("none", {})


@pytest.mark.slow
def test_dense_learns(dense_accuracy):
    """The task is learnable: dense training is far above chance (0.25)."""
    assert dense_accuracy > 0.9


SPARSE = {"density": 0.01, "min_numel": 0, "dense_1d": True}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params",
    [
        ("topk", {}),
        ("randomk", {}),
        ("dgc", {}),
        ("nsi", {}),
        ("nsi", {"selector": "sampled"}),
        ("threshold", {"threshold": 0.01}),
    ],
)
def test_sparsifier_close_to_dense(name, params, dense_accuracy):
    """At density 0.01 with error feedback, held-out accuracy is within MARGIN of dense."""
    acc = train(name, {**SPARSE, **params})
    assert acc >= dense_accuracy - MARGIN, (name, acc, dense_accuracy)
