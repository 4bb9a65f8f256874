"""Convergence: cnn_small trained by 4 virtual workers (``train_virtual``) on the synthetic
task (4 classes, 12x12 px, signal 0.5, seed 0; 4000 samples, 800 held out), 200 steps of 8
samples per worker, each sparsifier at density 0.01 with error feedback on every weight
tensor (biases and batch-norm parameters dense, as the DGC reference code does).

The margin separates: top-k, DGC and threshold end within MARGIN of dense, random-k at the
same density does not (that it fails is asserted, so the margin is one that tells them apart).

Held-out accuracy after 200 steps, measured here (CPU, torch 2.13) with data/model seed 0
(the test) and seeds 1, 2, 3 (how far the margin is from either side):

=========  =====  =====  =====  =====
           seed0  seed1  seed2  seed3
=========  =====  =====  =====  =====
dense      0.981  0.995  0.975  0.980
topk       0.989  0.961  0.892  0.979
dgc        0.980  0.976  0.897  0.958
threshold  0.986  0.996  0.995  0.996
nsi        0.850  0.894  0.752  0.820
randomk    0.655  0.704  0.609  0.682
=========  =====  =====  =====  =====

Top-k and DGC lose at most 0.083 against dense, random-k at least 0.291: MARGIN = 0.18 lies
about half-way. RS-DGC (``nsi``; 0.840, 0.830, 0.809, 0.858 with the sampled selector) lies
between: above random-k on every seed but not reliably within the margin (a known gap to
top-k in this setting, tracked apart), so only that it beats random-k is asserted.
"""

from __future__ import annotations

import functools

import pytest

from rsdgc_sim.train import SyntheticData, train_virtual

WORKERS = 4
CLASSES = 4
SIZE = 12
SAMPLES = 4000
STEPS = 200
BATCH = 8
#: held-out accuracy (fraction) a good sparsifier may lose against dense, and random-k does
MARGIN = 0.18
SPARSE = {"density": 0.01, "min_numel": 0, "dense_1d": True}


@functools.cache
def accuracy(name: str, **params) -> float:
    """Held-out accuracy after STEPS steps with WORKERS virtual workers (cached per run)."""
    data = SyntheticData(CLASSES, SIZE, SAMPLES, seed=0)
    res = train_virtual("cnn_small", CLASSES, SIZE, {"name": name, **params}, WORKERS, BATCH,
                        STEPS, data, seed=0)
    return res.final_accuracy


@pytest.mark.slow
def test_dense_learns():
    """The task is learnable: dense training ends far above chance (0.25); 0.981 measured."""
    assert accuracy("none") > 0.95


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params",
    [("topk", SPARSE), ("dgc", SPARSE), ("threshold", {"threshold": 0.01, "min_numel": 0, "dense_1d": True})],
)
def test_sparsifier_close_to_dense(name, params):
    """At density 0.01 with error feedback, top-k (0.989), DGC (0.980) and threshold (0.986)
    end within MARGIN of dense (0.981)."""
    acc = accuracy(name, **params)
    assert acc >= accuracy("none") - MARGIN, (name, acc, accuracy("none"))


@pytest.mark.slow
def test_random_k_falls_outside_the_margin():
    """Random-k at the same density (0.655) ends more than MARGIN below dense: the margin
    tells a sparsifier that keeps the large gradients from one that keeps random ones."""
    acc = accuracy("randomk", **SPARSE)
    assert acc < accuracy("none") - MARGIN, (acc, accuracy("none"))


@pytest.mark.slow
def test_nsi_beats_random_k():
    """RS-DGC (0.850) ends above random-k (0.655) at the same density; it does not yet reach
    top-k's accuracy here (see the module docstring)."""
    assert accuracy("nsi", **SPARSE) > accuracy("randomk", **SPARSE)
