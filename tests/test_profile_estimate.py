"""Estimated profiles (rsdgc_sim.profile.estimate) and device models
(rsdgc_sim.profile.device_models): FLOP counts against published figures, the roofline
formula on hand-computed ops, payloads equal to the real compressors', the device table,
bad device specs, and an estimate that never touches real memory."""

from __future__ import annotations

import math
import resource
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from rsdgc_sim.compress import CompressorState, create
from rsdgc_sim.compress.params import COMPRESSOR_PARAMS, validate
from rsdgc_sim.errors import ConfigError, UnitError, UnknownNameError
from rsdgc_sim.profile.device_models import (
    DEVICE_MODELS,
    DeviceModel,
    device_model,
    device_table,
    parse_flops,
)
from rsdgc_sim.profile.estimate import (
    COST_TABLE,
    FRESH_MIN_BYTES,
    RANDOM_ACCESS_BYTES,
    compressor_payloads,
    count_training_step,
    estimate_compression,
    estimate_profile,
    op_count,
    op_seconds,
)
from rsdgc_sim.profile.measure import steady_state_iteration
from rsdgc_sim.profile.schema import Profile, TensorInfo

aten = torch.ops.aten

#: a made-up device with round numbers, so that expected times are exact
TOY = DeviceModel(name="toy", kind="gpu", peak_flops=1e9, conv_peak_flops=2e9, memory_bandwidth=1e6,
                  efficiency=0.5, op_overhead=1e-6)


# -- FLOPs -------------------------------------------------------------------------------


def test_resnet50_forward_flops_match_the_published_figure():
    """ResNet-50 at 224 px, one image: 8,178,368,512 FLOPs forward (4,089,184,256
    multiply-accumulates: the published "4.1 GFLOPs", which counts MACs; torchvision lists
    4.09), the same count as torch's FlopCounterMode; backward is about twice that (no
    input gradient for the first convolution)."""
    from torch.utils.flop_counter import FlopCounterMode

    from rsdgc_sim.models import create as create_model

    step = count_training_step("resnet50", 1000, 224, 1)
    fwd = step.flops("forward")
    assert fwd == 8_178_368_512
    assert abs(fwd / 2 - 4.1e9) / 4.1e9 < 0.01
    net = create_model("resnet50", num_classes=1000, input_size=224, device="meta")
    with FlopCounterMode(display=False) as counter:
        net(torch.empty(1, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() == fwd
    assert 1.95 < step.flops("backward") / fwd < 2.0


def test_flops_scale_with_the_batch():
    """Every FLOP of a convolutional network scales with the batch (a per-sample count)."""
    one = count_training_step("cnn_small", 10, 16, 1)
    four = count_training_step("cnn_small", 10, 16, 4)
    assert four.flops("forward") == 4 * one.flops("forward") > 0
    assert four.flops("backward") == 4 * one.flops("backward") > 0


# -- the roofline ------------------------------------------------------------------------


def _conv_op():
    """aten.convolution of a 3->16, 3x3, padding-1 conv with bias on one 3x8x8 image."""
    x = torch.empty(1, 3, 8, 8, device="meta")
    w = torch.empty(16, 3, 3, 3, device="meta")
    b = torch.empty(16, device="meta")
    args = (x, w, b, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    return op_count(aten.convolution.default, args, {}, aten.convolution.default(*args))


def test_convolution_counts_by_hand():
    """FLOPs 2 * 16 * 8 * 8 * (3 * 3 * 3) = 55,296 (bias adds not counted, as torch does);
    bytes = (input 192 + weight 432 + bias 16 + output 1024 elements) * 4 = 6,656."""
    op = _conv_op()
    assert (op.flops, op.bytes, op.conv, op.launched, op.fresh) == (55_296, 6_656, True, True, 0)


def test_roofline_memory_bound_and_compute_bound():
    """t = max(flops / (P e), bytes / (W e)) + overhead, P the convolution peak: on TOY the
    conv is memory-bound, 6656 / (1e6 * 0.5) + 1e-6 s; with 1e12 bytes/s it is
    compute-bound at the conv peak 2e9 (not the plain 1e9): 55296 / (2e9 * 0.5) + 1e-6."""
    op = _conv_op()
    assert op_seconds(op, TOY) == pytest.approx(6656 / 5e5 + 1e-6, rel=1e-12)
    fast = TOY.model_copy(update={"memory_bandwidth": 1e12})
    assert op_seconds(op, fast) == pytest.approx(55296 / 1e9 + 1e-6, rel=1e-12)


def test_matmul_runs_at_the_plain_peak_and_views_cost_nothing():
    """addmm (nn.Linear) takes peak_flops, not the convolution peak: 2*4*64*10 = 5120 FLOPs
    at 1e9 * 0.5; a view launches nothing and costs 0."""
    x = torch.empty(4, 64, device="meta")
    w = torch.empty(64, 10, device="meta")
    b = torch.empty(10, device="meta")
    op = op_count(aten.addmm.default, (b, x, w), {}, aten.addmm.default(b, x, w))
    assert (op.flops, op.conv) == (5120, False)
    fast = TOY.model_copy(update={"memory_bandwidth": 1e15})
    assert op_seconds(op, fast) == pytest.approx(5120 / 5e8 + 1e-6, rel=1e-9)
    view = op_count(aten.view.default, (x, [256]), {}, aten.view.default(x, [256]))
    assert (view.launched, view.bytes, op_seconds(view, TOY)) == (False, 0, 0.0)


def test_in_place_and_broadcast_bytes():
    """add_(a, b) reads a and b and writes a: 12 bytes per element; a broadcast input
    (stride 0) counts its distinct elements once; copy_ does not read its destination."""
    a = torch.empty(100, 10, device="meta")
    b = torch.empty(10, device="meta").expand(100, 10)
    op = op_count(aten.add_.Tensor, (a, a), {}, a)
    assert op.bytes == 2 * 4000  # a read once (the same tensor twice), written once
    op = op_count(aten.add.Tensor, (a, b), {}, aten.add.Tensor(a, b))
    assert op.bytes == 4000 + 40 + 4000
    c = torch.empty(100, 10, device="meta")
    assert op_count(aten.copy_.default, (c, a), {}, c).bytes == 8000


def test_large_new_tensors_cost_page_faults_on_cpus():
    """A new output of at least FRESH_MIN_BYTES is charged at page_fault_bandwidth; an
    in-place op on the same tensor is not; a device without the rate ignores it."""
    n = FRESH_MIN_BYTES // 4
    x = torch.empty(n, device="meta")
    op = op_count(aten.abs.default, (x,), {}, aten.abs.default(x))
    assert op.fresh == FRESH_MIN_BYTES
    assert op_count(aten.abs_.default, (x,), {}, x).fresh == 0
    cpu = TOY.model_copy(update={"kind": "cpu", "page_fault_bandwidth": 2e6})
    assert op_seconds(op, cpu) - op_seconds(op, TOY) == pytest.approx(FRESH_MIN_BYTES / 2e6, rel=1e-12)


def test_sgd_momentum_step_moves_32_bytes_per_parameter():
    """The SGD-with-momentum step reads and writes 32 bytes per fp32 parameter (buf *= m:
    8, buf += g: 12, p -= lr buf: 12), as a loop of 3 ops per tensor (CPUs) or 3 foreach
    ops (GPUs)."""
    loop = count_training_step("cnn_small", 10, 16, 2, foreach=False)
    multi = count_training_step("cnn_small", 10, 16, 2, foreach=True)
    params = sum(t.numel for t in loop.tensors)
    for step, launches in ((loop, 3 * len(loop.tensors)), (multi, 3)):
        ops = [o for o in step.optimizer if o.launched]
        assert len(ops) == launches
        assert sum(o.bytes for o in ops) == 32 * params


def test_optimizer_time_uses_the_default_kernels_of_the_device_kind():
    """A GPU's step is 3 foreach launches, a CPU's 3 per tensor, both 32 bytes per
    parameter: optimizer_s = 32 * params / (W e) + launches * op_overhead."""
    for kind in ("gpu", "cpu"):
        dev = TOY.model_copy(update={"kind": kind})
        prof = estimate_profile("cnn_small", 10, 16, 2, {}, dev)
        launches = 3 if kind == "gpu" else 3 * len(prof.tensors)
        want = 32 * prof.params / (1e6 * 0.5) + launches * 1e-6
        assert prof.devices[0].optimizer_s == pytest.approx(want, rel=1e-12)


def test_gradient_ready_order_is_autograd_order_on_resnet():
    """The estimate's gradient-ready order (by backward op index) is the order in which
    real CPU backward fires the post-accumulate hooks, shortcut branches included."""
    from rsdgc_sim.models import create as create_model

    step = count_training_step("resnet18", 10, 32, 2)
    est = sorted(step.ready, key=lambda n: (step.ready[n], list(step.ready).index(n)))
    net = create_model("resnet18", num_classes=10, input_size=32, seed=0)
    order: list[str] = []
    for n, p in net.named_parameters():
        p.register_post_accumulate_grad_hook(lambda _p, n=n: order.append(n))
    F.cross_entropy(net(torch.randn(2, 3, 32, 32)), torch.tensor([1, 2])).backward()
    assert est == order
    assert order[0].startswith("fc.") and order[-1] == "conv1.weight"
    dev = estimate_profile("resnet18", 10, 32, 2, {}, TOY).devices[0]
    times = [dev.grad_ready_s[n] for n in order]
    assert times == sorted(times) and 0 < times[-1] <= dev.backward_s


# -- compression -------------------------------------------------------------------------

#: every compressor, with parameters that reach each rule (dense small tensors, 1-D
#: tensors, shared indices, fp16, threshold 0, layer-wise and static NSI)
EXACT = {
    "none": {"name": "none"},
    "fp16": {"name": "fp16"},
    "fp16 ef": {"name": "fp16", "error_feedback": True},
    "topk": {"name": "topk", "density": 0.1},
    "topk small dense": {"name": "topk", "density": 0.05, "min_numel": 1000, "dense_1d": True},
    "topk no ef": {"name": "topk", "density": 0.1, "error_feedback": False},
    "randomk": {"name": "randomk", "density": 0.1},
    "randomk shared": {"name": "randomk", "density": 0.1, "shared_indices": True},
    "threshold 0 capped": {"name": "threshold", "threshold": 0.0, "density": 0.1},
    "threshold 0": {"name": "threshold", "threshold": 0.0},
    "dgc exact": {"name": "dgc", "density": 0.1, "selector": "exact", "warmup_iters": 3},
    "dgc 1d dense": {"name": "dgc", "density": 0.1, "selector": "exact", "dense_1d": True},
    "nsi static": {"name": "nsi", "density": 0.1, "dynamic": False},
    "nsi static sampled small": {"name": "nsi", "density": 0.3, "dynamic": False,
                                 "selector": "sampled"},
}


@pytest.fixture(scope="module")
def real():
    """Real cnn_small gradients (CPU, one backward pass) and the estimated step's tensors."""
    from rsdgc_sim.models import create as create_model

    net = create_model("cnn_small", num_classes=10, input_size=16, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 16, 16, generator=gen)
    F.cross_entropy(net(x), torch.randint(0, 10, (4,), generator=gen)).backward()
    grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
    return grads, count_training_step("cnn_small", 10, 16, 4).tensors


def _real_payloads(spec, grads):
    comp = create(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
    state = CompressorState(seed=0)
    state.iteration = steady_state_iteration(comp)
    return comp.compress_many(grads, state)


def _estimate(spec, tensors):
    params = {k: v for k, v in spec.items() if k != "name"}
    return compressor_payloads(spec["name"], validate(spec["name"], COMPRESSOR_PARAMS.get(spec["name"]),
                                                      params), tensors)


@pytest.mark.parametrize("label", list(EXACT))
def test_wire_bytes_equal_the_real_payloads(real, label):
    """Per tensor, the estimate's wire_bytes and all-gather flag are the real compressor's
    (cnn_small's gradients, steady state)."""
    grads, tensors = real
    payloads = _real_payloads(EXACT[label], grads)
    est = _estimate(EXACT[label], tensors)
    assert {n: (p.wire_bytes, p.needs_allgather) for n, p in payloads.items()} == {
        n: (e.wire_bytes, e.sparse) for n, e in est.items()}
    costs = estimate_compression(EXACT[label], tensors, TOY)
    assert {n: c.wire_bytes for n, c in costs.items()} == {n: p.wire_bytes for n, p in payloads.items()}


def test_layerwise_nsi_sends_the_same_total(real):
    """Layer-wise NSI shares round(density * sum(numel)) among its layers by importance:
    the estimate's total equals the real one (shares differ), dense tensors exactly."""
    grads, tensors = real
    spec = {"name": "nsi", "density": 0.1, "min_numel": 100}
    payloads = _real_payloads(spec, grads)
    est = _estimate(spec, tensors)
    assert sum(e.wire_bytes for e in est.values()) == sum(p.wire_bytes for p in payloads.values())
    for n, p in payloads.items():
        assert p.needs_allgather == est[n].sparse
        if not p.needs_allgather:
            assert p.wire_bytes == est[n].wire_bytes


def test_sampled_selection_is_capped_at_k(real):
    """DGC's sampled threshold sends at most k per tensor: the estimate (k) is an upper
    bound, exact where the tensor is small enough for the exact fallback."""
    grads, tensors = real
    spec = {"name": "dgc", "density": 0.1}
    payloads = _real_payloads(spec, grads)
    est = _estimate(spec, tensors)
    assert all(p.wire_bytes <= est[n].wire_bytes for n, p in payloads.items())
    big = [n for n, g in grads.items() if g.numel() > 2 * 4096]
    assert big and all(payloads[n].wire_bytes == est[n].wire_bytes for n in grads if n not in big)


def test_threshold_without_density_needs_one():
    """How many elements pass a nonzero threshold depends on the gradients: refused."""
    info = [TensorInfo(name="w", shape=[10, 10], numel=100)]
    with pytest.raises(ConfigError, match="threshold.*density"):
        estimate_compression({"name": "threshold", "threshold": 0.01}, info, TOY)
    with pytest.raises(UnknownNameError, match="choose one of"):
        estimate_compression({"name": "nope"}, info, TOY)


def test_compression_time_follows_the_cost_table():
    """topk on a GPU, n = 10**6, k = 10**4: bytes (check 4 + compensate 12 + abs 8 + radix
    select 20) n + (select 12 + send 36) k, 2 random accesses per sent element at 32
    bytes, 15 launches; 'none' is one pass (the NaN check) and one launch."""
    n, k = 10**6, 10**4
    info = [TensorInfo(name="w", shape=[1000, 1000], numel=n)]
    dev = TOY.model_copy(update={"memory_bandwidth": 1e11})
    rows = ("check", "compensate", "abs", "topk_gpu", "send_sparse")
    assert sum(COST_TABLE[r].get("n", 0) for r in rows) == 44
    cost = estimate_compression({"name": "topk", "density": 0.01}, info, dev)["w"]
    want = (44 * n + 48 * k + 2 * k * RANDOM_ACCESS_BYTES["gpu"]) / (1e11 * 0.5) + 15 * 1e-6
    assert cost.compress_s == pytest.approx(want, rel=1e-12)
    none = estimate_compression({"name": "none"}, info, dev)["w"]
    assert none.compress_s == pytest.approx(4 * n / 5e10 + 1e-6, rel=1e-12)
    assert none.accumulate_s == pytest.approx(12 * n / 5e10 + 1e-6, rel=1e-12)
    assert none.decompress_s == pytest.approx(1e-6, rel=1e-12)  # a view: one dispatch


# -- the device table and specs ----------------------------------------------------------


def test_device_table_loads_with_a_source_for_every_entry():
    """Every entry has a datasheet source naming where its numbers come from, positive
    peaks, a TF32 rate above the FP32 one where it has one, and an efficiency in (0, 1]."""
    table = device_table()
    assert set(DEVICE_MODELS) == set(table.devices) >= {
        "H100-SXM", "H100-PCIe", "A100-SXM-80GB", "A100-PCIe-40GB", "V100-SXM2", "L4"}
    for name, entry in table.devices.items():
        assert "datasheet" in entry.source.lower(), name
        assert entry.fp32 > 0 and entry.memory_bandwidth > 0 and 0 < entry.efficiency <= 1
        assert entry.tf32 is None or entry.tf32 > entry.fp32
    h100 = device_model({"model": "H100-SXM"})
    assert (h100.peak_flops, h100.conv_flops, h100.memory_bandwidth) == pytest.approx(
        (66.9e12, 494.7e12, 3.35e12))
    assert device_model({"model": "V100-SXM2"}).conv_flops == pytest.approx(15.7e12)


def test_names_aliases_and_overrides():
    """Names match without regard to case, aliases too; efficiency and op_overhead can be
    overridden; a plain string is a name."""
    assert device_model({"model": "h100"}).name == "H100-SXM"
    assert device_model("a100").name == "A100-SXM-80GB"
    d = device_model({"model": "L4", "efficiency": 0.25, "op_overhead": "2us"})
    assert (d.efficiency, d.op_overhead) == (0.25, 2e-6)


def test_cpu_and_custom_forms():
    """{cpu: ...}: peak = cores * gflops_per_core * 1e9; custom: the numbers as given."""
    cpu = device_model({"cpu": {"cores": 16, "gflops_per_core": 50, "memory_bandwidth": "100GB/s"}})
    assert (cpu.kind, cpu.peak_flops, cpu.memory_bandwidth) == ("cpu", 8e11, 1e11)
    assert cpu.page_fault_bandwidth == pytest.approx(3e9)
    custom = device_model({"peak_flops": "989TFLOP/s", "memory_bandwidth": "3.35TB/s", "efficiency": 0.7,
                           "name": "mine"})
    assert (custom.name, custom.peak_flops, custom.memory_bandwidth, custom.efficiency) == (
        "mine", 989e12, 3.35e12, 0.7)


@pytest.mark.parametrize("text, value", [
    ("989TFLOP/s", 989e12), ("67 TFLOPS", 67e12), ("1.5e3 GFLOP/s", 1.5e12), ("2.5e9", 2.5e9),
    (5, 5.0), ("10 kflops", 1e4),
])
def test_parse_flops(text, value):
    """FLOP/s strings with decimal prefixes; plain numbers as they are."""
    assert parse_flops(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("bad", [True, "fast", "10 TB/s", "inf TFLOP/s", float("nan"), None, "1e400"])
def test_parse_flops_rejects(bad):
    with pytest.raises(UnitError, match="peak_flops: cannot read"):
        parse_flops(bad, "peak_flops")


@pytest.mark.parametrize("spec, pattern", [
    ({"model": "B200"}, r"device\.model: unknown device model 'B200'; choose one of: A100-PCIe-40GB, "
                        r"A100-SXM-80GB, H100-PCIe, H100-SXM, L4, V100-SXM2"),
    ({"model": "H100", "efficiency": True}, r"device\.efficiency: .*valid number"),
    ({"model": "H100", "efficiency": -0.5}, r"device\.efficiency: .*greater than 0"),
    ({"model": "H100", "efficiency": 1.5}, r"device\.efficiency: .*less than or equal to 1"),
    ({"model": "H100", "efficiency": float("inf")}, r"device\.efficiency"),
    ({"model": "H100", "watts": 700}, r"device\.watts: unknown key; allowed: model, efficiency"),
    ({"peak_flops": float("inf"), "memory_bandwidth": "1TB/s"}, r"device\.peak_flops: cannot read inf"),
    ({"peak_flops": -1, "memory_bandwidth": "1TB/s"}, r"device\.peak_flops: .*greater than or equal to 1000000"),
    ({"peak_flops": True, "memory_bandwidth": "1TB/s"}, r"device\.peak_flops: cannot read True"),
    ({"peak_flops": "1TFLOP/s", "memory_bandwidth": True}, r"device\.memory_bandwidth: cannot read True"),
    ({"peak_flops": "1TFLOP/s", "memory_bandwidth": "-1GB/s"}, r"device\.memory_bandwidth: .*greater than or equal to 1000000"),
    ({"peak_flops": "1TFLOP/s"}, r"device\.memory_bandwidth: required field is missing"),
    ({"cpu": {"cores": True, "gflops_per_core": 50, "memory_bandwidth": "1GB/s"}}, r"device\.cpu\.cores: "),
    ({"cpu": {"cores": 0, "gflops_per_core": 50, "memory_bandwidth": "1GB/s"}}, r"device\.cpu\.cores: .*>= 1|"
                                                                             r"device\.cpu\.cores: .*greater"),
    ({"cpu": {"cores": 4, "gflops_per_core": float("nan"), "memory_bandwidth": "1GB/s"}},
     r"device\.cpu\.gflops_per_core"),
    ({"model": "H100", "cpu": {}}, r"device: give one of model, cpu or peak_flops"),
    (["H100"], r"device: expected a mapping, got list"),
])
def test_bad_specs_name_the_field(spec, pattern):
    """Bad device specs raise ConfigError naming the field (and the choices or keys)."""
    with pytest.raises(ConfigError, match=pattern):
        device_model(spec)


def test_device_models_module_does_not_import_torch():
    """Scenario loading can parse device specs without torch."""
    import subprocess

    code = ("import sys; from rsdgc_sim.profile.device_models import device_model; "
            "device_model({'model': 'A100'}); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the profile -------------------------------------------------------------------------


def test_estimated_profile_is_marked_and_valid():
    """An estimated profile says so (estimated, source), carries every compressor label and
    tensor, its compressor specs and settings, and round-trips through JSON as a Profile."""
    specs = {"none": {"name": "none"}, "topk(density=0.01)": {"name": "topk", "density": 0.01}}
    dev = device_model({"model": "H100-SXM"})
    prof = estimate_profile("cnn_small", 10, 16, 4, specs, dev)
    (d,) = prof.devices
    assert d.estimated is True and d.source == "estimated: H100-SXM (roofline, efficiency 0.5)"
    assert d.forward_s > 0 and d.backward_s > 0 and d.optimizer_s > 0
    assert set(d.compression) == set(specs)
    assert all(set(c) == {t.name for t in prof.tensors} for c in d.compression.values())
    assert set(d.grad_ready_s) == {t.name for t in prof.tensors}
    assert prof.compressor_specs == specs and prof.settings["method"] == "roofline"
    assert prof.params == sum(t.numel for t in prof.tensors) == 24_330
    again = Profile.model_validate_json(prof.model_dump_json())
    assert again == prof


def _rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024)


def test_estimating_resnet50_at_224_px_takes_no_real_memory():
    """ResNet-50, 224 px, batch 256 (real activations would take tens of GiB): counted on
    meta, the process's peak memory grows by less than 1 GiB, in seconds; FLOPs are 256
    times one image's."""
    before = _rss_bytes()
    t0 = time.perf_counter()
    prof = estimate_profile("resnet50", 1000, 224, 256, {"topk": {"name": "topk", "density": 0.01}},
                            device_model("H100-SXM"))
    elapsed = time.perf_counter() - t0
    assert _rss_bytes() - before < 1 << 30
    assert elapsed < 60
    assert prof.params == 25_557_032
    # forward is compute-bound at this size: at least its FLOPs at the TF32 conv peak
    assert prof.devices[0].forward_s > 256 * 8.17e9 / (494.7e12 * 0.5)
    assert math.isfinite(prof.devices[0].backward_s)
