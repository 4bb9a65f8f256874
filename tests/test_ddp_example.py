"""``examples/torchrun_train.py``: the DDP hook in a user's own training loop, run as two
CPU ranks on gloo (with the environment torchrun sets), and its optimizer's momentum."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rsdgc_sim.compress import create

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torchrun_train.py"


def test_optimizer_has_no_momentum_when_the_compressor_applies_it():
    """DGC applies momentum itself, so the optimizer that trainers (the example, virtual
    workers, emulation) build gets none (it would otherwise be applied twice); every other
    compressor keeps the optimizer's momentum."""
    assert create("dgc").optimizer_momentum(0.9) == 0.0
    assert create("dgc", momentum=0.0).optimizer_momentum(0.9) == 0.9
    for name in ("none", "fp16", "topk", "nsi"):
        assert create(name).optimizer_momentum(0.9) == 0.9, name


@pytest.mark.slow
def test_example_trains_two_ranks_with_dgc(tmp_path):
    """Two gloo ranks run the example's main with dgc for a few steps (dense warm-up, then
    compressed): it finishes, reports the loss and the bytes sent, and its optimizer has no
    momentum of its own."""
    from rsdgc_sim.emulate.launcher import launch

    argv = ["torchrun_train.py", "--compressor", "dgc", "--density", "0.05", "--steps", "5",
            "--batch-size", "4", "--input-size", "16", "--num-classes", "10"]  # fmt: skip
    code = (
        f"import runpy, sys; sys.argv = {argv!r}; "
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__'); "
        "from rsdgc_sim.emulate.launcher import write_result; write_result({})"
    )
    launch([sys.executable, "-c", code], 2, timeout_s=120, workdir=tmp_path)
    out = (tmp_path / "rank0.out").read_text()
    assert "step    4  loss" in out
    assert "optimizer momentum 0.0 (the compressor applies momentum itself)" in out
    assert "2 ranks, dgc:" in out and "MB sent per rank per step" in out
