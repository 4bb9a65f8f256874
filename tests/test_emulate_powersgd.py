"""``emulate`` with ``powersgd``: real gloo DDP ranks run torch's PowerSGD hook (in bucket
order, several buckets), and emulate.json reports what can be measured around it: the bytes
torch counts as sent (the closed form, to the byte), the hook body's time; decompression is
not measurable there (``None``, the composition uses the profile's, and a note says so).
Loopback links (no namespaces are made)."""

from __future__ import annotations

import math

import pytest
import yaml

SCENARIO = """
schema_version: 1
name: emu-powersgd
model: {name: cnn_small, num_classes: 10, input_size: 32}
batch_size: 8
device: cpu
ddp: {bucket_cap: 16KiB, first_bucket: 16KiB}
compressors:
  - {name: powersgd, rank: 2}
cluster:
  workers: 2
  bandwidth: 100Mbit/s
  latency: 0us
"""


def _closed_form() -> int:
    """torch's rule over cnn_small's tensors at rank 2, float32 values."""
    from rsdgc_sim.models import create

    total = 0
    for p in create("cnn_small", num_classes=10, input_size=32).parameters():
        n, m = p.shape[0], math.prod(p.shape[1:])
        r = min(n, m, 2)
        total += 4 * ((n + m) * r if (n + m) * r * 2 < n * m else n * m)
    return total


@pytest.mark.slow
def test_emulate_powersgd_reports_torch_bytes_and_hook_time(tmp_path, monkeypatch):
    """One case: every rank sent torch's count (6,032 bytes per iteration), the hook body
    took time, decompression is None with a note, and the composition is made."""
    from rsdgc_sim.calibration import Calibration, LinkFit
    from rsdgc_sim.emulate import orchestrate
    from rsdgc_sim.emulate.netns import Capabilities
    from rsdgc_sim.profile.device_models import device_model
    from rsdgc_sim.profile.estimate import estimate_profile
    from rsdgc_sim.scenario import scenario_from_dict

    monkeypatch.setattr(orchestrate, "capabilities",
                        lambda: Capabilities(False, False, False, "test: loopback"))
    sc = scenario_from_dict(yaml.safe_load(SCENARIO), source="test")
    label = "powersgd(rank=2)"
    prof = estimate_profile("cnn_small", 10, 32, 8, {label: {"name": "powersgd", "rank": 2}},
                            device_model({"model": "V100"}))
    cal = Calibration(source="loopback", links=[LinkFit(alpha_s=5e-5, beta_s_per_byte=1e-9)])
    rep = orchestrate.emulate_scenario(sc, iterations=2, warmup=1, calibration=cal,
                                       profile=prof, timeout_s=120, out_dir=tmp_path / "out")
    assert rep.mode == "loopback"
    (case,) = rep.cases
    assert case.compressor == label and case.workers == 2
    assert case.sent_bytes == _closed_form() == 6032
    assert case.compress_s > 0 and case.compress_cpu_s > 0
    assert case.decompress_s is None and case.decompress_cpu_s is None
    assert any("decompression is not measurable" in n for n in rep.notes)
    assert case.composed_iteration_s is not None and case.composed_iteration_s > 0
    assert case.measured_iteration_s > 0 and len(case.iteration_s) == 2
    assert (tmp_path / "out" / "emulate.json").exists()


@pytest.mark.parametrize("backend, ordered", [("gloo", True), ("nccl", False)])
def test_hook_is_ordered_on_gloo_and_torchs_own_on_nccl(monkeypatch, backend, ordered):
    """``make_comm_hook("powersgd")`` returns torch's state, and on gloo a hook that calls
    torch's ``powerSGD_hook`` in bucket order; on NCCL torch's hook itself."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import (
        PowerSGDState,
        powerSGD_hook,
    )

    from rsdgc_sim.ddp import make_comm_hook
    from rsdgc_sim.ddp.powersgd_hook import PowerSGDHook

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        monkeypatch.setattr(dist, "get_backend", lambda group=None: backend)
        state, hook = make_comm_hook("powersgd", rank=3, start_iter=7)
    finally:
        monkeypatch.undo()
        dist.destroy_process_group()
    assert type(state) is PowerSGDState
    assert (state.matrix_approximation_rank, state.start_powerSGD_iter) == (3, 7)
    if ordered:
        assert isinstance(hook, PowerSGDHook) and hook.in_order and hook.hook is powerSGD_hook
    else:
        assert hook is powerSGD_hook
