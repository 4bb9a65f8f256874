"""Profile quality travels with the profile (rsdgc_sim.profile.quality, run.profile_scenario):
an unstable cached profile (a spread still above its target) is measured again and said so
in one line, unless pinned (--pin-profile or ``profile: {pin: true}``); a reused profile
always says who measured it and how stable it is; a profile file is only warned about;
estimates are never unstable. Nothing is really measured here: ``measure_profile`` is a fake
that counts its calls."""

from __future__ import annotations

import os
import sys
import types
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.profile.quality import (
    discarded_samples,
    profile_warnings,
    provenance_text,
    quality_text,
    unstable_quantities,
)
from rsdgc_sim.profile.schema import DeviceProfile, Profile, TensorCost, TensorInfo
from rsdgc_sim.profile.store import ProfileStore, profile_key, save_profile
from rsdgc_sim.report.profile_table import profile_quality_lines
from rsdgc_sim.scenario import scenario_from_dict
from rsdgc_sim.study import profiles as run_module
from rsdgc_sim.study.profiles import PIN_HINT, profile_inputs, profile_scenario

TOPK = "topk(density=0.1)"
SETTINGS = {"spread_target": 0.1, "spread_floor_s": 1e-4, "load_average": 0.5, "cpus": 2,
            "torch_threads": 1, "pid": 4242}
UNSTABLE = "worker 0 (cpu) forward spread 30% > 10% target"


def _profile(forward_iqr: float = 0.001, key: str = "", settings: dict | None = None,
             host: str = "lab-7", created: str = "2025-01-02T03:04:05+00:00",
             **extra) -> Profile:
    """One CPU worker of the tiny scenario: forward 10 ms (IQR ``forward_iqr``), backward
    20 ms (IQR 1 ms), top-k compression 2 ms (IQR 0.1 ms), optimizer 1 ms (IQR 0.9 ms,
    never held to the target)."""
    tensors = [TensorInfo(name="w", shape=[10, 10], numel=100)]
    costs = {"none": {"w": TensorCost(compress_s=0.0, decompress_s=0.0, wire_bytes=400,
                                      sparse=False)},
             TOPK: {"w": TensorCost(compress_s=0.002, decompress_s=0.001, wire_bytes=80,
                                    sparse=True)}}
    dev = DeviceProfile(device="cpu", forward_s=0.010, backward_s=0.020, optimizer_s=0.001,
                 grad_ready_s={"w": 0.01}, compression=costs,
                 spread={"forward_s": forward_iqr, "backward_s": 0.001, "optimizer_s": 0.0009,
                         "compress:none": 0.0, f"compress:{TOPK}": 0.0001},
                 samples={"forward_s": 40, "backward_s": 40, "optimizer_s": 40,
                          "compress:none": 5, f"compress:{TOPK}": 9}, **extra)
    return Profile(key=key, model="cnn_small", num_classes=10, input_size=16, batch_size=4,
                   params=100, tensors=tensors, devices=[dev], host=host, created=created,
                   compressor_specs={"none": {"name": "none"},
                                     TOPK: {"name": "topk", "density": 0.1}},
                   settings=SETTINGS if settings is None else settings)


@pytest.fixture
def measured(monkeypatch):
    """A fake ``rsdgc_sim.profile.measure`` whose ``measure_profile`` returns the next
    profile of ``measured.queue`` (a stable one when empty) and records its calls."""
    fake = types.ModuleType("rsdgc_sim.profile.measure")
    fake.calls = []
    fake.queue = []

    def measure_profile(model, *args, **kwargs):
        fake.calls.append(model)
        return fake.queue.pop(0) if fake.queue else _profile(settings={**SETTINGS, "pid": 7},
                                                             created="2030-01-01T00:00:00+00:00")

    fake.measure_profile = measure_profile
    monkeypatch.setitem(sys.modules, "rsdgc_sim.profile.measure", fake)
    monkeypatch.setattr(run_module, "_MEASURED_HERE", set())  # a fresh process
    return fake


def _scenario(tiny, **profile):
    tiny["profile"].update(profile)
    return scenario_from_dict(tiny)


def _cached(store: ProfileStore, sc, prof: Profile) -> Profile:
    """``prof`` put in ``store`` under ``sc``'s key."""
    prof = prof.model_copy(update={"key": profile_key(profile_inputs(sc, ["cpu"]))})
    store.put(prof)
    return prof


# --- quality, read off the profile ---------------------------------------------------------


def test_unstable_quantities_are_the_spreads_above_target_and_floor():
    """IQR 3 ms of a 10 ms forward is 30% > 10%: unstable; 1 ms of 10 ms is exactly the
    target: stable; the optimizer (90%) is never held to it; a floor above the IQR or no
    recorded target makes nothing unstable."""
    assert unstable_quantities(_profile(forward_iqr=0.001)) == []
    (q,) = unstable_quantities(_profile(forward_iqr=0.003))
    assert (q.worker, q.device, q.key, q.iqr_s, q.median_s, q.samples, q.target) == (
        0, "cpu", "forward_s", 0.003, 0.010, 40, 0.1)
    assert str(q) == UNSTABLE
    assert q.warning() == profile_warnings(_profile(forward_iqr=0.003))[0]
    strict = _profile(settings={"spread_target": 0.01, "spread_floor_s": 1e-5})
    assert [str(u) for u in unstable_quantities(strict)] == [
        "worker 0 (cpu) forward spread 10% > 1% target",
        "worker 0 (cpu) backward spread 5% > 1% target",
        f"worker 0 (cpu) {TOPK} compression spread 5% > 1% target"]
    assert unstable_quantities(_profile(0.003, settings={**SETTINGS, "spread_floor_s": 0.003})) == []
    assert unstable_quantities(_profile(0.003, settings={})) == []


def test_estimates_are_never_unstable():
    """An estimated worker has no measured spread: even a spread stored on it is ignored,
    and the quality says it is estimated."""
    est = _profile(forward_iqr=0.009)
    est.devices[0].estimated = True
    assert unstable_quantities(est) == [] and profile_warnings(est) == []
    assert quality_text(est) == "estimated (no spread)"


def test_quality_and_provenance_texts():
    """Stable / unstable (which) / unknown, and who measured the profile, each part only
    where recorded; the discarded samples where the device recorded them."""
    assert quality_text(_profile()) == "stable (every spread within its 10% target)"
    assert quality_text(_profile(0.003)) == f"unstable: {UNSTABLE}"
    assert quality_text(_profile(settings={})) == "unknown (no spread target recorded)"
    assert provenance_text(_profile()) == (
        "measured on lab-7 by pid 4242 at 2025-01-02T03:04:05+00:00, load 0.5 on 2 CPUs "
        "before measuring, 1 torch thread")
    assert provenance_text(_profile(settings={}, host="", created="")) == (
        "measured (no host or time recorded)")
    assert discarded_samples(_profile()) == [{}]
    counted = _profile(discarded={"forward_s": 3, f"compress:{TOPK}": 1})
    assert discarded_samples(counted) == [{"forward_s": 3, f"compress:{TOPK}": 1}]
    assert provenance_text(counted).endswith(", 1 torch thread, 4 samples discarded")


def test_profile_command_lines_show_quality_and_discarded_counts():
    """Under `rsdgc-sim profile`'s tables: who measured it, its quality, and per worker the
    samples discarded by quantity (only where recorded)."""
    counted = _profile(0.003, discarded={"forward_s": 3, "backward_s": 0,
                                         f"decompress:{TOPK}": 2})
    assert profile_quality_lines(counted) == [
        provenance_text(counted), f"quality: unstable: {UNSTABLE}",
        f"discarded samples, worker 0 (cpu): forward 3, {TOPK} decompression 2"]
    clean = _profile(discarded={"forward_s": 0, "backward_s": 0})
    assert profile_quality_lines(clean)[2:] == ["discarded samples, worker 0 (cpu): none"]
    assert profile_quality_lines(_profile())[1:] == [
        "quality: stable (every spread within its 10% target)"]


# --- profile_scenario: measure again, pin, say who measured -------------------------------


def test_unstable_cached_profile_is_measured_again_and_said_in_one_line(tiny, tmp_path, measured):
    """A cached profile with forward spread 30% > 10%: measured again (once), replaced in
    the cache, with the measuring pid recorded; one line says which quantity, its spread
    against the target, and how to pin."""
    store = ProfileStore(tmp_path)
    sc = _scenario(tiny)
    old = _cached(store, sc, _profile(0.003))
    said: list[str] = []
    prof, cached = profile_scenario(sc, store=store, progress=said.append)
    assert measured.calls == ["cnn_small"] and not cached
    assert prof.settings["pid"] == os.getpid() and prof.key == old.key
    assert store.get(old.key) == prof != old
    assert said[0] == (f"note: cached profile {old.key} is unstable ({UNSTABLE}): measuring "
                       f"it again ({PIN_HINT})")
    assert [m for m in said if "unstable" in m] == [said[0]]


@pytest.mark.parametrize("how", ["flag", "scenario"])
def test_pinned_unstable_profile_is_reused_with_a_warning(tiny, tmp_path, measured, how):
    """Pinned by the flag (``pin=True``, `--pin-profile`) or the scenario (``profile:
    {pin: true}``), the unstable cached profile is reused as it is, with a warning that
    says it is pinned; pinning does not change the cache key."""
    store = ProfileStore(tmp_path)
    sc = _scenario(tiny, pin=True) if how == "scenario" else _scenario(tiny)
    old = _cached(store, sc, _profile(0.003))
    assert old.key == profile_key(profile_inputs(_scenario(tiny, pin=False), ["cpu"]))
    said: list[str] = []
    prof, cached = profile_scenario(sc, store=store, progress=said.append, pin=how == "flag")
    assert measured.calls == [] and cached and prof == old
    assert said[-1] == (f"warning: profile {old.key} is unstable ({UNSTABLE}) and pinned "
                        f"(--pin-profile or profile.pin): reused as it is, its times are "
                        f"uncertain")


def test_stable_cached_profile_is_reused_and_says_who_measured_it(tiny, tmp_path, measured):
    """A stable cached profile measured by another process is reused, never silently: the
    host, pid, time, load before measuring, torch threads, and its quality."""
    store = ProfileStore(tmp_path)
    sc = _scenario(tiny)
    old = _cached(store, sc, _profile())
    said: list[str] = []
    prof, cached = profile_scenario(sc, store=store, progress=said.append)
    assert measured.calls == [] and cached and prof == old
    assert said == [
        f"profile {old.key} from the cache ({store.path(old.key)})",
        "  measured on lab-7 by pid 4242 at 2025-01-02T03:04:05+00:00, load 0.5 on 2 CPUs "
        "before measuring, 1 torch thread; stable (every spread within its 10% target)"]


def test_busy_machine_of_a_cached_profile_is_warned(tiny, tmp_path, measured):
    """A stable profile measured at load 5 on 2 CPUs is reused with the load warning."""
    store = ProfileStore(tmp_path)
    sc = _scenario(tiny)
    _cached(store, sc, _profile(settings={**SETTINGS, "load_average": 5.0}))
    said: list[str] = []
    profile_scenario(sc, store=store, progress=said.append)
    assert said[-1].startswith("warning: load average 5.0 on 2 CPUs before measuring")


def test_profile_measured_while_waiting_is_reused_even_unstable(tiny, tmp_path, measured,
                                                                monkeypatch):
    """A run that found an unstable profile waits for the lock while another run measures
    it again: it reuses that new profile (unstable too: measured just now, it would be no
    steadier), names who measured it, and measures nothing."""
    store = ProfileStore(tmp_path)
    sc = _scenario(tiny)
    old = _cached(store, sc, _profile(0.003))
    new = old.model_copy(update={"created": "2025-01-02T03:09:00+00:00",
                                 "settings": {**SETTINGS, "pid": 99}})
    real_lock = store.lock

    @contextmanager
    def lock(key, **kw):
        with real_lock(key, **kw):
            store.put(new)  # the other run's profile, put while this one waited
            yield

    monkeypatch.setattr(store, "lock", lock)
    said: list[str] = []
    prof, cached = profile_scenario(sc, store=store, progress=said.append)
    assert measured.calls == [] and cached and prof == new
    assert said[1] == (f"profile {old.key} from the cache ({store.path(old.key)}), measured "
                       f"by another run while this one waited")
    assert said[2].startswith("  measured on lab-7 by pid 99 at 2025-01-02T03:09:00+00:00")
    assert said[-1].startswith(f"warning: profile {old.key} is unstable ({UNSTABLE}) and was "
                               f"measured by another run just now")


def test_unstable_profile_this_process_measured_is_reused_here_only(tiny, tmp_path, measured,
                                                                    monkeypatch):
    """An unstable profile just measured says the next run measures it again; this process
    reuses it (with a warning), a new process measures it again."""
    store = ProfileStore(tmp_path)
    sc = _scenario(tiny)
    measured.queue = [_profile(0.003, settings={**SETTINGS, "pid": 1}) for _ in range(2)]
    said: list[str] = []
    first, _ = profile_scenario(sc, store=store, progress=said.append)
    assert said[-1] == (f"note: profile {first.key} is unstable ({UNSTABLE}): the next run "
                        f"measures it again ({PIN_HINT})")
    again, cached = profile_scenario(sc, store=store, progress=said.append)
    assert cached and again == first and measured.calls == ["cnn_small"]
    assert "measured by this process moments ago" in said[-1]
    monkeypatch.setattr(run_module, "_MEASURED_HERE", set())  # another process
    _, cached = profile_scenario(sc, store=store)
    assert not cached and measured.calls == ["cnn_small"] * 2


def test_unstable_profile_file_is_warned_never_measured(tiny, tmp_path, measured):
    """A profile from a file is never measured again: an unstable one is warned about,
    saying it cannot be measured again since it came from a file."""
    path = tmp_path / "p.json"
    save_profile(_profile(0.003, key="abc"), path)
    said: list[str] = []
    prof, reused = profile_scenario(_scenario(tiny), store=ProfileStore(tmp_path / "c"),
                                    progress=said.append, profile_file=str(path))
    assert reused and measured.calls == [] and prof.key == "abc"
    assert said[0] == f"profile abc from {path}: cpu"
    assert said[-1] == (f"warning: profile abc is unstable ({UNSTABLE}) and came from a file, "
                        f"so it cannot be measured again here: reused as it is, its times are "
                        f"uncertain")


def test_cli_pin_profile_flag(tiny, write_scenario, tmp_path, measured):
    """`profile --pin-profile` reuses the unstable cached profile and shows its quality;
    without the flag the profile is measured again (the fake's stable one)."""
    store = ProfileStore(tmp_path / "cache")
    scen = write_scenario(tiny)
    _cached(store, scenario_from_dict(tiny), _profile(0.003))
    args = ["profile", str(scen), "--cache", str(tmp_path / "cache")]
    pinned = CliRunner().invoke(cli, [*args, "--pin-profile"])
    assert pinned.exit_code == 0, pinned.output
    assert measured.calls == [] and f"quality: unstable: {UNSTABLE}" in pinned.stdout
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert measured.calls == ["cnn_small"]
    assert "quality: stable (every spread within its 10% target)" in again.stdout


def test_cli_run_pin_profile_flag(tiny, write_scenario, tmp_path, measured):
    """`run --pin-profile` simulates the unstable cached profile as it is, saying so."""
    store = ProfileStore(tmp_path / "cache")
    old = _cached(store, scenario_from_dict(tiny), _profile(0.003))
    r = CliRunner().invoke(cli, ["run", str(write_scenario(tiny)), "--cache",
                                 str(tmp_path / "cache"), "--out", str(tmp_path / "o"),
                                 "--no-plot", "--no-trace", "--pin-profile"])
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())  # rich wraps the log at the terminal's width
    assert measured.calls == [] and f"profile {old.key} is unstable" in said
    assert "and pinned (--pin-profile or profile.pin)" in said


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_profile_pin_of_a_wrong_type_is_rejected_with_its_path(tiny, bad):
    """``profile.pin`` is a boolean: a string, a number or null is a ConfigError naming
    the field."""
    tiny["profile"]["pin"] = bad
    with pytest.raises(ConfigError, match=r"profile\.pin"):
        scenario_from_dict(tiny)
