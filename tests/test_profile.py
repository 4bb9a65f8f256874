"""Profiling on the CPU: structure of a measured profile, the cache, saved files."""

import json

import pytest

from rsdgc_sim.errors import ConfigError, ProfileError
from rsdgc_sim.profile.devices import resolve_devices
from rsdgc_sim.profile.measure import measure_profile
from rsdgc_sim.profile.schema import PROFILE_VERSION
from rsdgc_sim.profile.store import ProfileStore, load_profile, save_profile
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study.profiles import profile_scenario

COMPRESSORS = {"none": {"name": "none"}, "topk": {"name": "topk", "density": 0.1}}


@pytest.fixture(scope="module")
def prof():
    return measure_profile("cnn_small", 10, 16, 4, ["cpu"], COMPRESSORS, warmup=1, min_iterations=3, seed=0)


def test_profile_lists_every_parameter_in_registration_order(prof):
    """tensors are the model's trainable parameters in order; params is their total."""
    from rsdgc_sim.models import create

    net = create("cnn_small", num_classes=10, input_size=16, seed=0)
    assert [t.name for t in prof.tensors] == [n for n, _ in net.named_parameters()]
    assert [t.shape for t in prof.tensors] == [list(p.shape) for p in net.parameters()]
    assert prof.params == sum(p.numel() for p in net.parameters())
    assert prof.dense_bytes == 4 * prof.params


def test_times_are_positive_and_ready_times_lie_within_backward(prof):
    """Forward/backward/step are measured; every gradient is ready during backward."""
    (dev,) = prof.devices
    assert dev.device == "cpu" and dev.forward_s > 0 and dev.backward_s > 0 and dev.optimizer_s > 0
    assert set(dev.grad_ready_s) == {t.name for t in prof.tensors}
    assert all(0 <= r <= dev.backward_s for r in dev.grad_ready_s.values())


def test_gradients_are_ready_in_reverse_layer_order(prof):
    """Backward produces the classifier's gradient before the first convolution's."""
    ready = prof.devices[0].grad_ready_s
    first, last = prof.tensors[0].name, prof.tensors[-1].name
    assert ready[last] < ready[first]


def test_compression_costs_per_tensor(prof):
    """Each compressor has a cost per tensor; dense payloads are the fp32 tensor, top-k's are
    sparse (value + int32 index per kept element) and smaller."""
    comp = prof.devices[0].compression
    assert list(comp) == ["none", "topk"]
    for t in prof.tensors:
        none, topk = comp["none"][t.name], comp["topk"][t.name]
        assert none.wire_bytes == 4 * t.numel and not none.sparse
        assert none.compress_s >= 0 and topk.compress_s >= 0 and topk.decompress_s >= 0
        if topk.sparse:
            assert topk.wire_bytes % 8 == 0 and 0 < topk.wire_bytes <= 8 * t.numel
    big = max(prof.tensors, key=lambda t: t.numel)
    assert comp["topk"][big.name].sparse
    assert comp["topk"][big.name].wire_bytes < comp["none"][big.name].wire_bytes


def test_two_devices_profile_at_once():
    """`device: [cpu, cpu]` profiles one worker per entry, each with its own times."""
    p = measure_profile("cnn_small", 10, 16, 2, ["cpu", "cpu"], {"none": {"name": "none"}}, warmup=0, min_iterations=1)
    assert [d.device for d in p.devices] == ["cpu", "cpu"]
    assert all(d.backward_s > 0 for d in p.devices)


def test_save_and_load_round_trip(prof, tmp_path):
    """A saved profile loads back equal."""
    path = save_profile(prof, tmp_path / "p.json")
    assert load_profile(path) == prof


def test_other_profile_version_is_refused(prof, tmp_path):
    """A profile of another format version is an error, not a guess."""
    data = prof.model_dump(mode="json")
    data["version"] = PROFILE_VERSION + 1
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="format version"):
        load_profile(tmp_path / "p.json")


def test_scenario_profile_is_cached_by_content(tiny, tmp_path):
    """The second profile of the same scenario comes from the cache; a change in what the
    profile depends on (batch size) measures a new one under another key."""
    store = ProfileStore(tmp_path)
    sc = scenario_from_dict(tiny)
    p1, cached1 = profile_scenario(sc, store=store)
    p2, cached2 = profile_scenario(sc, store=store)
    assert (cached1, cached2) == (False, True) and p1 == p2 and store.path(p1.key).exists()
    tiny["batch_size"] = 2
    p3, cached3 = profile_scenario(scenario_from_dict(tiny), store=store)
    assert not cached3 and p3.key != p1.key


def test_damaged_cache_entry_is_measured_again(tiny, tmp_path):
    """A damaged cache file is ignored and replaced."""
    store = ProfileStore(tmp_path)
    sc = scenario_from_dict(tiny)
    p1, _ = profile_scenario(sc, store=store)
    store.path(p1.key).write_text("{not json")
    p2, cached = profile_scenario(sc, store=store)
    assert not cached and load_profile(store.path(p1.key)).key == p1.key


@pytest.mark.parametrize("bad, pattern", [("tpu", "unknown device 'tpu'"), ("cuda:7", "asked for, but this machine has")])
def test_bad_devices(bad, pattern):
    """Unknown or absent devices are a ConfigError naming the entry."""
    import torch

    if bad.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(ConfigError, match=pattern):
        resolve_devices(bad)


def test_auto_device_is_cpu_without_cuda():
    """`auto` is the first GPU when there is one, else the CPU."""
    import torch

    assert resolve_devices("auto") == (["cuda:0"] if torch.cuda.is_available() else ["cpu"])


def test_key_depends_on_inputs_and_measuring_code(monkeypatch):
    """The cache key changes with any input and with the measuring code's fingerprint."""
    from rsdgc_sim.profile import store

    base = store.profile_key({"model": "m", "batch_size": 4})
    assert base == store.profile_key({"batch_size": 4, "model": "m"})  # order does not matter
    assert base != store.profile_key({"model": "m", "batch_size": 8})
    monkeypatch.setattr(store, "code_fingerprint", lambda: "changed")
    assert base != store.profile_key({"model": "m", "batch_size": 4})


@pytest.mark.parametrize(
    "name, params",
    [("dgc", {"selector": "exact"}), ("nsi", {"dynamic": False, "min_numel": 0, "dense_1d": False})],
)
def test_compression_is_profiled_after_the_warm_up(name, params):
    """A compressor with a 1000-iteration density warm-up is profiled at its steady state:
    every tensor's payload holds k = round(0.01 * numel) (at least 1) value + index pairs,
    8 * k bytes (1,984 B for this cnn_small, not the 48,656 B of the warm-up's first stage,
    density 0.25)."""
    from rsdgc_sim.compress.select import k_for

    spec = {"name": name, "density": 0.01, "warmup_iters": 1000, **params}
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"c": spec}, warmup=1, min_iterations=2, seed=0)
    costs = p.devices[0].compression["c"]
    assert {t.name: costs[t.name].wire_bytes for t in p.tensors} == {
        t.name: 8 * k_for(t.numel, 0.01) for t in p.tensors
    }
    assert sum(c.wire_bytes for c in costs.values()) == 1984


def test_steady_state_iteration_is_the_end_of_the_warm_up():
    """The profiler starts compressing at the iteration where the warm-up schedule has
    ended: warmup_iters for dgc and nsi, 0 for compressors without a warm-up."""
    from rsdgc_sim.compress import create
    from rsdgc_sim.profile.measure import steady_state_iteration

    assert steady_state_iteration(create("dgc", warmup_iters=1000)) == 1000
    assert steady_state_iteration(create("nsi", warmup_iters=7)) == 7
    assert steady_state_iteration(create("dgc")) == 0
    assert steady_state_iteration(create("topk")) == 0
    comp = create("dgc", density=0.01, warmup_iters=1000)
    n = steady_state_iteration(comp)
    assert comp.density_at(0) == 0.25
    assert [comp.density_at(n + i) for i in range(3)] == [0.01] * 3


def test_profile_records_the_nsi_compile_mode(prof):
    """Each device's profile says which NSI score path was in effect while measuring."""
    from rsdgc_sim.compress.neighborhood import compile_mode

    assert prof.devices[0].nsi_compile == compile_mode() != ""


def test_version_1_profiles_are_refused(prof, tmp_path):
    """Format 1 kept the payloads of the warm-up and had no nsi_compile: a saved version-1
    profile is refused by name, not read as a version-2 one."""
    data = prof.model_dump(mode="json")
    data["version"] = 1
    for dev in data["devices"]:
        del dev["nsi_compile"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="old.json: profile format version 1, this rsdgc-sim reads 2"):
        load_profile(tmp_path / "old.json")
