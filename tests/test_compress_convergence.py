"""Convergence at equal bytes: cnn_small trained by 4 virtual workers (``train_virtual``) on
the synthetic task (4 classes, 12x12 px, signal 0.5; 4000 samples, 800 held out), 200 steps
of 8 samples per worker. Every sparsifier runs at density 0.01 with error feedback and the
same dense-layer rule (biases dense, as the DGC reference code does; every weight tensor
compressed, ``min_numel: 0``), so they all send the same bytes per step (2744 per worker;
DGC's sampled threshold 2739 to 2741): they differ only in *which* elements they send.

The margin separates: top-k, DGC and the default ``nsi`` end within MARGIN of dense; random-k
and an NSI that ignores its score (the same compressor with uniform random scores: the same
budget and layer-wise allocation, a random selection) do not. Both sides are asserted, so
the margin is one that tells them apart.

Held-out accuracy after 200 steps, measured here (2-core CPU, torch 2.13, under load) with
data/model seed 0 (the test) and seeds 1, 2:

=====================  =====  =====  =====  ================
                       seed0  seed1  seed2  worst vs dense
=====================  =====  =====  =====  ================
dense                  0.986  0.989  0.983
topk                   0.973  0.974  0.953  -0.030
dgc                    0.986  0.948  0.904  -0.079
nsi (abs_times_mean)   0.981  0.958  0.956  -0.031
nsi abs_plus_mean      0.973  0.983  0.964  -0.019
nsi mean_std           0.730  0.924  0.546  -0.437
nsi, random scores     0.735  0.667  0.627  best -0.251
randomk                0.711  0.625  0.480  best -0.275
=====================  =====  =====  =====  ================

The good ones lose at most 0.079, the two controls at least 0.251: MARGIN = 0.15 lies about
half-way. (The old default score, ``mean_std``, is no better than random scores on seeds 0
and 2: the reason the default changed; see ``benchmarks/nsi_ablation.py``.)
"""

from __future__ import annotations

import functools

import pytest
import torch

from rsdgc_sim.compress.nsi import NSI
from rsdgc_sim.train import SyntheticData, TrainResult, train_virtual

WORKERS = 4
CLASSES = 4
SIZE = 12
SAMPLES = 4000
STEPS = 200
BATCH = 8
#: held-out accuracy every EVAL_EVERY steps (the history; evaluation changes no training)
EVAL_EVERY = 50
#: held-out accuracy (fraction) a good sparsifier may lose against dense, and the controls do
MARGIN = 0.15
SPARSE = {"density": 0.01, "min_numel": 0, "dense_1d": True}


def _train(name: str, params: dict) -> TrainResult:
    data = SyntheticData(CLASSES, SIZE, SAMPLES, seed=0)
    return train_virtual("cnn_small", CLASSES, SIZE, {"name": name, **params}, WORKERS, BATCH,
                         STEPS, data, eval_every=EVAL_EVERY, seed=0)


@functools.cache
def result(name: str, **params) -> TrainResult:
    """Training result after STEPS steps with WORKERS virtual workers (cached per run)."""
    return _train(name, params)


def accuracy(name: str, **params) -> float:
    return result(name, **params).final_accuracy


@functools.cache
def random_score_result() -> TrainResult:
    """NSI with its score replaced by uniform random numbers (seeded): the same budget, the
    same layer-wise allocation (every layer's mean score is then ~0.5: shares by size), a
    random selection."""
    gen = torch.Generator().manual_seed(0)

    def random_score(self, a: torch.Tensor) -> torch.Tensor:
        shape = (a.shape[0], a.numel() // a.shape[0]) if a.dim() >= 2 else (1, a.numel())
        return torch.rand(shape, generator=gen)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(NSI, "score", random_score)
        return _train("nsi", SPARSE)


@pytest.mark.slow
def test_dense_learns():
    """The task is learnable: dense training ends far above chance (0.25); 0.986 measured."""
    assert accuracy("none") > 0.95


@pytest.mark.slow
def test_history_and_topk_sends_under_a_tenth_of_dense():
    """The history holds the test accuracy every EVAL_EVERY steps and at the last step, once
    (the final one); top-k at density 0.01 sends under a tenth of dense's bytes per worker
    (2744 of 95760 measured) and, with error feedback, still learns the task (0.973 > 0.8;
    chance 0.25)."""
    dense, topk = result("none"), result("topk", **SPARSE)
    assert [h["step"] for h in dense.history] == [50, 100, 150, 200]
    assert dense.history[-1]["accuracy"] == dense.final_accuracy
    assert topk.bytes_sent_per_worker < dense.bytes_sent_per_worker / 10
    assert topk.final_accuracy > 0.8


@pytest.mark.slow
@pytest.mark.parametrize("name", ["topk", "dgc", "nsi", "randomk"])
def test_sparsifiers_send_equal_bytes(name):
    """Under one dense-layer rule every sparsifier sends top-k's bytes per worker and step
    (2744 measured; DGC's sampled threshold may fall a few elements short), so the
    comparison below is at equal bytes."""
    sent = result(name, **SPARSE).bytes_sent_per_worker
    ref = result("topk", **SPARSE).bytes_sent_per_worker
    assert ref * 0.99 <= sent <= ref, (name, sent, ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["topk", "dgc", "nsi"])
def test_sparsifier_close_to_dense(name):
    """At density 0.01 with error feedback, top-k (0.973), DGC (0.986) and the default NSI
    (0.981) end within MARGIN of dense (0.986)."""
    acc = accuracy(name, **SPARSE)
    assert acc >= accuracy("none") - MARGIN, (name, acc, accuracy("none"))


@pytest.mark.slow
def test_random_k_falls_outside_the_margin():
    """Random-k at the same bytes (0.711) ends more than MARGIN below dense: the margin
    tells a sparsifier that keeps the large gradients from one that keeps random ones."""
    acc = accuracy("randomk", **SPARSE)
    assert acc < accuracy("none") - MARGIN, (acc, accuracy("none"))


@pytest.mark.slow
def test_nsi_that_ignores_its_score_falls_outside_the_margin():
    """NSI with random scores (0.735) ends more than MARGIN below dense while the default
    NSI does not: its accuracy comes from its score, not from its budget or allocation."""
    res = random_score_result()
    assert res.bytes_sent_per_worker == result("nsi", **SPARSE).bytes_sent_per_worker
    assert res.final_accuracy < accuracy("none") - MARGIN, (res.final_accuracy, accuracy("none"))
