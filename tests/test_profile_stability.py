"""Profiles you can trust: timing until stable, the spread stored and shown, warnings for a
noisy or busy machine, progress with an ETA (rsdgc_sim.progress), the profile tables.

The stopping rule is tested exactly on synthetic timing sequences and with a fake clock
injected into measure_profile (the model still runs; only the times are made up)."""

from __future__ import annotations

import os
import platform
import random
import re

import numpy as np
import pytest
from rich.console import Console

from rsdgc_sim.profile.measure import (
    StopRule,
    UnstableProfileWarning,
    iqr,
    measure_profile,
    relative_spread,
    time_until_stable,
)
from rsdgc_sim.profile.quality import profile_warnings
from rsdgc_sim.profile.sampling import MEASURE_NICE
from rsdgc_sim.profile.schema import DeviceProfile, Profile, TensorCost, TensorInfo
from rsdgc_sim.progress import Eta, Transient, format_left
from rsdgc_sim.report.profile_table import profile_tables

COMPRESSORS = {"none": {"name": "none"}, "topk": {"name": "topk", "density": 0.1}}
LEFT = r"(~\d+ s|<1 s) left"
#: a clock tick a float adds exactly (about 1 ms)
TICK = 2.0**-10


def noisy_tick(rng: random.Random) -> float:
    """0.1 to 5 ms, log-uniform: sums of a few such ticks still spread far above 10%."""
    return 10 ** rng.uniform(-4, -2.3)


class FakeClock:
    """Seconds that pass only when told: ``advance`` moves it; each call, if ``tick`` is
    given, first advances it by ``tick()`` (so every measured interval is made up)."""

    def __init__(self, tick=None):
        self.now = 0.0
        self.tick = tick

    def advance(self, dt: float) -> None:
        self.now += dt

    def __call__(self) -> float:
        if self.tick is not None:
            self.now += self.tick()
        return self.now


@pytest.fixture
def idle(monkeypatch):
    """An idle 2-CPU machine, whatever the real load is."""
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


def _steps(seq, clock: FakeClock | None = None, dt: float = 1.0):
    """A step function yielding ``seq``'s values as ``{"t": value}``, advancing ``clock``."""
    it = iter(seq)

    def step():
        if clock is not None:
            clock.advance(dt)
        return {"t": next(it)}

    return step


# --- the rule on synthetic sequences ------------------------------------------------------


def test_iqr_and_relative_spread_are_numpys_quartiles():
    """IQR = 75th - 25th percentile with linear interpolation (numpy's default); one value
    has no spread."""
    xs = [0.3, 0.1, 0.9, 0.4, 0.2, 0.7]
    assert iqr(xs) == pytest.approx(np.percentile(xs, 75) - np.percentile(xs, 25))
    assert iqr([1, 2, 3, 4, 5]) == 2.0 and relative_spread([1, 2, 3, 4, 5]) == pytest.approx(2 / 3)
    assert iqr([5.0]) == 0.0 and relative_spread([0.0, 0.0]) == 0.0


@pytest.mark.parametrize("seq", [[0.010] * 50, [0.0100, 0.0102, 0.0099, 0.0101, 0.0100] * 10])
def test_steady_sequence_stops_at_min_iterations(seq):
    """A steady timing (spread 0, or 2% < 10%) stops after exactly min_iterations."""
    clock = FakeClock()
    samples, reason, _ = time_until_stable(_steps(seq, clock), ["t"], StopRule(min_iterations=5), clock)
    assert (len(samples["t"]), reason) == (5, "stable")


def test_noisy_sequence_runs_to_the_cap():
    """Alternating 5 ms / 15 ms (spread 100%) never settles: it stops at max_iterations."""
    clock = FakeClock()
    rule = StopRule(min_iterations=5, max_iterations=40, budget_s=1e9)
    samples, reason, _ = time_until_stable(_steps([0.005, 0.015] * 100, clock), ["t"], rule, clock)
    assert (len(samples["t"]), reason) == (40, "cap")


def test_noisy_sequence_runs_to_the_budget():
    """With 1 s per iteration and a 7 s budget it stops after the 7th iteration."""
    clock = FakeClock()
    rule = StopRule(min_iterations=3, max_iterations=1000, budget_s=7.0)
    samples, reason, _ = time_until_stable(_steps([0.005, 0.015] * 100, clock), ["t"], rule, clock)
    assert (len(samples["t"]), reason) == (7, "budget")


def test_min_iterations_come_before_the_budget():
    """A budget spent early still leaves min_iterations timed."""
    clock = FakeClock()
    rule = StopRule(min_iterations=6, budget_s=0.5)
    samples, reason, _ = time_until_stable(_steps([0.005, 0.015] * 100, clock), ["t"], rule, clock)
    assert (len(samples["t"]), reason) == (6, "budget")


def test_noisy_then_steady_stops_when_the_spread_first_falls_under_target():
    """It stops at the first prefix whose IQR/median (numpy's quartiles) is <= 10%."""
    seq = [0.005, 0.015, 0.005, 0.015, 0.005] + [0.010] * 60
    expected = next(n for n in range(5, len(seq) + 1)
                    if np.subtract(*np.percentile(seq[:n], [75, 25])) <= 0.1 * np.median(seq[:n]))
    clock = FakeClock()
    rule = StopRule(min_iterations=5, max_iterations=1000, budget_s=1e9)
    samples, reason, _ = time_until_stable(_steps(seq, clock), ["t"], rule, clock)
    assert (len(samples["t"]), reason) == (expected, "stable") and expected > 5


def test_every_watched_quantity_must_be_stable():
    """Forward steady but backward noisy: it goes on to the cap."""
    it = iter(range(1000))

    def step():
        i = next(it)
        return {"forward_s": 0.01, "backward_s": 0.005 if i % 2 else 0.015}

    rule = StopRule(min_iterations=3, max_iterations=9, budget_s=1e9)
    samples, reason, _ = time_until_stable(step, ["forward_s", "backward_s"], rule, FakeClock())
    assert (len(samples["backward_s"]), reason) == (9, "cap")


def test_tiny_times_under_the_floor_count_as_stable():
    """1 us +- 50% is noise nobody can see: under spread_floor_s (100 us) it is stable."""
    rule = StopRule(min_iterations=4, spread_floor_s=1e-4)
    samples, reason, _ = time_until_stable(_steps([1e-6, 2e-6] * 50), ["t"], rule, FakeClock())
    assert (len(samples["t"]), reason) == (4, "stable")
    rule = StopRule(min_iterations=4, max_iterations=10, spread_floor_s=0.0)
    assert time_until_stable(_steps([1e-6, 2e-6] * 50), ["t"], rule, FakeClock())[1] == "cap"


def test_rule_progress_has_counts_spread_eta_and_is_throttled():
    """Progress of a stage: `4/≤20, spread 100%, ~8 s left`, at most once per every_s."""
    clock = FakeClock()
    got: list[tuple[float, str]] = []
    rule = StopRule(min_iterations=3, max_iterations=20, budget_s=1e9)
    time_until_stable(_steps([0.005, 0.015] * 100, clock, dt=0.5), ["t"], rule, clock,
                      on_progress=lambda m: got.append((clock.now, m)), every_s=1.0)
    # 0.5 s per iteration, a message once >= 1 s passed: after iterations 2, 4, ..., 18 (at
    # 20 it stops); the ETA is 0.5 s x the iterations left to the cap
    assert [m for _, m in got][:2] == ["2/≤20, spread 50%, ~9 s left", "4/≤20, spread 100%, ~8 s left"]
    assert [t for t, _ in got] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


# --- Eta -----------------------------------------------------------------------------------


def test_eta_counts_and_rate():
    """The ETA is elapsed / done x what is left; no ETA before anything is done."""
    clock = FakeClock()
    eta = Eta(40, clock=clock)
    assert eta.update(0) == "0/40"
    clock.advance(10.0)
    assert eta.update(10) == "10/40, ~30 s left"
    assert eta.update(10, "loss 0.43") == "10/40, loss 0.43, ~30 s left"


def test_eta_is_bounded_by_the_budget_but_not_below_at_least():
    """With a budget the ETA is what is left of it, except that at_least units still need
    their time at the current rate."""
    clock = FakeClock()
    eta = Eta(40, budget_s=20.0, at_least=5, at_most=True, clock=clock)
    clock.advance(7.0)
    assert eta.update(7, "spread 12%") == "7/≤40, spread 12%, ~13 s left"
    clock.advance(11.0)  # 18 s for 2 units: 3 more take 27 s, beyond the budget
    assert eta.left_s(2) == pytest.approx(27.0)
    clock.advance(10.0)
    assert eta.left_s(30) == 0.0


def test_eta_throttle():
    """due() is True at most once per every_s, counted from the start."""
    clock = FakeClock()
    eta = Eta(10, every_s=1.0, clock=clock)
    seen = []
    for _ in range(8):
        clock.advance(0.5)
        seen.append(eta.due())
    assert seen == [False, True, False, True, False, True, False, True]


@pytest.mark.parametrize("s, text", [(0.4, "<1 s left"), (18.2, "~18 s left"), (180, "~3 min left"),
                                     (9000, "~2.5 h left")])
def test_format_left(s, text):
    assert format_left(s) == text


# --- measure_profile with a fake clock -----------------------------------------------------


def test_steady_device_stops_at_min_iterations_and_stores_spread(idle):
    """With every measured interval 1 ms exactly, every stage stops at min_iterations:
    samples == 4 and spread (IQR) == 0 for forward, backward, optimizer and each
    compressor; no warning."""
    said: list[str] = []
    with _no_warnings():
        p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], COMPRESSORS, warmup=1, min_iterations=4,
                            progress=said.append, clock=FakeClock(tick=lambda: TICK))
    (dev,) = p.devices
    keys = {"forward_s", "backward_s", "optimizer_s", "compress:none", "compress:topk",
            "decompress:none", "decompress:topk"}
    assert dev.samples == dict.fromkeys(keys, 4) and dev.spread == dict.fromkeys(keys, 0.0)
    assert dev.forward_s == TICK
    assert not [m for m in said if m.startswith("warning")] and profile_warnings(p) == []
    assert "worker 0 (cpu): forward 1.0 ms ±0.0, backward" in said[1]
    assert said[1].endswith("(4 iterations, stable)")


def test_noisy_device_runs_to_the_cap_and_warns(idle):
    """Random intervals (0.1 to 5 ms) never settle: every stage runs to max_iterations, and each
    unstable quantity is warned about, live and from the profile alike."""
    rng = random.Random(0)
    said: list[str] = []
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], COMPRESSORS, warmup=0, min_iterations=3,
                        max_iterations=12, budget_s=1e9, progress=said.append,
                        clock=FakeClock(tick=lambda: noisy_tick(rng)))
    dev = p.devices[0]
    assert set(dev.samples.values()) == {12}
    # every time the fake clock measures is noisy; `none` decompresses nothing (0 every time)
    assert dev.spread["decompress:none"] == 0.0
    assert all(v > 0 for k, v in dev.spread.items() if k != "decompress:none")
    live = [m.removeprefix("warning: ") for m in said if m.startswith("warning: ")]
    assert [re.match(r"worker 0 \(cpu\): (\w+)", w)[1] for w in live] == ["forward", "backward", "none", "topk"]
    assert all("above the 10% target" in w for w in live)
    assert live == profile_warnings(p)
    assert any(m.endswith("(12 iterations, cap)") for m in said)


def test_budget_ends_a_noisy_stage(idle):
    """A per-stage budget of 50 ms (of the fake clock) stops each stage long before the cap."""
    rng = random.Random(1)
    said: list[str] = []
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                        min_iterations=3, max_iterations=1000, budget_s=0.05, progress=said.append,
                        clock=FakeClock(tick=lambda: noisy_tick(rng)))
    n = p.devices[0].samples["forward_s"]
    assert 3 <= n < 1000 and any(m.endswith(f"({n} iterations, budget)") for m in said)


def test_profile_progress_messages_are_counted_timed_and_throttled(idle):
    """`worker 0 (cpu): forward/backward 7/≤30, spread 12%, ~1 s left`, as Transient
    messages at least progress_every_s (50 ms of the fake clock) apart."""
    rng = random.Random(2)
    clock = FakeClock(tick=lambda: noisy_tick(rng))
    got: list[tuple[float, str]] = []
    measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                    min_iterations=3, max_iterations=30, budget_s=1e9, progress_every_s=0.05,
                    progress=lambda m: got.append((clock.now, m)), clock=clock)
    fb = [(t, m) for t, m in got if "forward/backward" in m]
    pattern = rf"worker 0 \(cpu\): forward/backward (\d+)/≤30, spread \d+%, {LEFT}"
    assert len(fb) >= 2 and all(re.fullmatch(pattern, m) and isinstance(m, Transient) for _, m in fb)
    counts = [int(re.fullmatch(pattern, m)[1]) for _, m in fb]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    times = [t for t, _ in fb]  # read one clock tick (<= 5 ms) after the throttle's
    assert all(b - a >= 0.05 - 0.005 for a, b in zip(times, times[1:], strict=False))
    assert any(re.fullmatch(rf"worker 0 \(cpu\): none: compress \d+/≤30, spread \d+%, {LEFT}", m)
               for _, m in got)


def test_busy_machine_is_said_before_measuring(monkeypatch):
    """A load average above the CPU count is a warning before anything is measured, and is
    kept in the profile (settings), so a cached profile warns again."""
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 4.0, 3.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    said: list[str] = []
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                        min_iterations=2, progress=said.append, clock=FakeClock(tick=lambda: TICK))
    assert said[0] == ("warning: load average 5.0 on 2 CPUs before measuring: the machine looked "
                       "busy, so the times measured may be too long; measure again when it is idle")
    assert (p.settings["load_average"], p.settings["cpus"]) == (5.0, 2)
    assert profile_warnings(p) == [said[0].removeprefix("warning: ")]


def test_load_at_the_cpu_count_is_not_busy(monkeypatch):
    """Load 2.0 on 2 CPUs: no warning."""
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    said: list[str] = []
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                        min_iterations=2, progress=said.append, clock=FakeClock(tick=lambda: TICK))
    assert not [m for m in said if "warning" in m] and profile_warnings(p) == []


def test_without_a_callback_warnings_are_python_warnings(monkeypatch):
    """No progress callback: the busy machine is an UnstableProfileWarning."""
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    with pytest.warns(UnstableProfileWarning, match="load average 9.0 on"):
        measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                        min_iterations=2, clock=FakeClock(tick=lambda: TICK))


def test_settings_machine_and_compressor_specs_are_filled(idle):
    """settings say how it was measured, machine where, compressor_specs with what (a copy of
    the specs given)."""
    import torch

    specs = {"topk": {"name": "topk", "density": 0.1}}
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], specs, warmup=1, min_iterations=2, seed=3,
                        max_iterations=50, spread_target=0.2, spread_floor_s=1e-5, budget_s=7.0,
                        clock=FakeClock(tick=lambda: TICK))
    nice = p.settings.get("nice")
    assert p.settings == {
        "warmup": 1, "min_iterations": 2, "max_iterations": 50, "spread_target": 0.2,
        "spread_floor_s": 1e-5, "budget_s": 7.0, "torch_threads": torch.get_num_threads(),
        "seed": 3, "buckets": [2**20, 25 * 2**20], "cpus": 2, "load_average": 0.5,
        "preemption": "none", "nice": nice,
    }
    # raised to MEASURE_NICE while measuring where permitted (root, CAP_SYS_NICE), else kept
    assert nice in (MEASURE_NICE, os.getpriority(os.PRIO_PROCESS, 0))
    specs["topk"]["density"] = 0.5
    assert p.compressor_specs == {"topk": {"name": "topk", "density": 0.1}}
    assert f"{os.cpu_count()} cores" in p.machine and platform.system() in p.machine
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), None)
    assert cpu is None or p.machine.startswith(cpu)


def test_iterations_is_the_former_name_of_min_iterations(idle):
    """iterations= still works (the callers' former keyword); contradicting values are refused."""
    from rsdgc_sim.errors import ConfigError

    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                        iterations=3, clock=FakeClock(tick=lambda: TICK))
    assert p.settings["min_iterations"] == 3 and p.devices[0].samples["forward_s"] == 3
    with pytest.raises(ConfigError, match="iterations=3 and min_iterations=4 disagree"):
        measure_profile("cnn_small", 10, 16, 4, ["cpu"], {}, iterations=3, min_iterations=4)


@pytest.mark.filterwarnings("ignore::rsdgc_sim.profile.measure.UnstableProfileWarning")
def test_real_clock_profile_is_saved_with_its_spread(idle, tmp_path):
    """A real measurement (cnn_small, 16 px, batch 4): spread and samples for every quantity,
    at least min_iterations each, and a saved profile loads back equal."""
    from rsdgc_sim.profile.store import load_profile, save_profile

    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], COMPRESSORS, warmup=1, min_iterations=3,
                        budget_s=1.0)
    dev = p.devices[0]
    keys = {"forward_s", "backward_s", "optimizer_s", "compress:none", "compress:topk",
            "decompress:none", "decompress:topk"}
    assert set(dev.spread) == set(dev.samples) == keys
    assert all(3 <= n <= 100 for n in dev.samples.values()) and all(v >= 0 for v in dev.spread.values())
    assert load_profile(save_profile(p, tmp_path / "p.json")) == p


# --- profile_warnings and the tables on hand-made profiles ---------------------------------


def _profile(spread_fwd=0.0014, estimated_second=True, nsi="on", settings=None) -> Profile:
    tensors = [TensorInfo(name="w", shape=[10, 10], numel=100)]
    cost = {"w": TensorCost(compress_s=0.002, decompress_s=0.001, wire_bytes=80, sparse=True)}
    dense = {"w": TensorCost(compress_s=0.0001, decompress_s=0.0, wire_bytes=400, sparse=False)}
    devs = [DeviceProfile(
        device="cpu", device_name="[bold]Some CPU[/bold] (2 threads)", forward_s=0.0144, backward_s=0.0264,
        optimizer_s=0.001, grad_ready_s={"w": 0.01}, compression={"none": dense, "topk(density=0.2)": cost},
        nsi_compile=nsi, spread={"forward_s": spread_fwd, "backward_s": 0.001, "optimizer_s": 0.0005,
                                 "compress:none": 0.0, "compress:topk(density=0.2)": 0.00016},
        samples={"forward_s": 40, "backward_s": 40, "optimizer_s": 40, "compress:none": 5,
                 "compress:topk(density=0.2)": 9})]
    if estimated_second:
        devs.append(DeviceProfile(
            device="cuda:0", device_name="H100-SXM", forward_s=0.001, backward_s=0.002, optimizer_s=0.0,
            grad_ready_s={"w": 0.001}, compression={"none": dense, "topk(density=0.2)": cost},
            estimated=True, source="estimated: H100-SXM (roofline, efficiency 0.5)"))
    return Profile(key="abc123", model="cnn_small", num_classes=10, input_size=16, batch_size=4,
                   params=100, tensors=tensors, devices=devs,
                   settings=settings if settings is not None else {"spread_target": 0.1, "spread_floor_s": 1e-4})


def _render(table, width=100) -> str:
    con = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    con.print(table)
    return con.export_text()


def test_profile_tables_show_spread_estimates_and_nsi_in_100_columns():
    """Medians with ±IQR/2 and the iterations behind them, estimated workers marked with *
    and their source in the caption, the NSI compile mode; nothing wider than 100 columns,
    device names shown as they are (no rich markup)."""
    dev_t, comp_t = profile_tables(_profile())
    dev_text, comp_text = _render(dev_t), _render(comp_t)
    assert all(len(line) <= 100 for line in (dev_text + comp_text).splitlines())
    row0 = next(line for line in dev_text.splitlines() if "Some CPU" in line)
    assert re.search(r"^\s*0\s+\[bold\]Some CPU\[/bold\].*14\.4 ±0\.7\s+26\.4 ±0\.5\s+1\.0 ±0\.2\s+40\s+on", row0)
    row1 = next(line for line in dev_text.splitlines() if "H100-SXM" in line and "roofline" not in line)
    assert re.search(r"^\s*1\*\s+H100-SXM\s+1\.0\s+2\.0\s+0\.0\s+-\s+-", row1)
    assert "* estimated, not measured: worker 1: estimated: H100-SXM (roofline, efficiency 0.5)" in dev_text
    assert re.search(r"topk\(density=0\.2\)\s+0\s+2\.00 ±0\.08\s+9\s+1\.00\s+80B\s+5\.0x", comp_text)
    assert re.search(r"topk\(density=0\.2\)\s+1\*\s+2\.00\s+-", comp_text)
    assert "NSI score" in dev_text and "iters" in comp_text


def test_profile_tables_without_nsi_or_estimates():
    """No NSI column when no device recorded a mode, no caption without estimates."""
    dev_t, comp_t = profile_tables(_profile(estimated_second=False, nsi=""))
    text = _render(dev_t) + _render(comp_t)
    assert "NSI score" not in text and "estimated" not in text


def test_profile_warnings_from_a_saved_profile():
    """Spread above target x median (and above the floor) is a warning for forward,
    backward and compression, never for estimates or the optimizer step."""
    assert profile_warnings(_profile()) == []  # IQR 1.4 ms of 14.4 ms: 9.7%
    noisy = _profile(spread_fwd=0.005)
    assert profile_warnings(noisy) == [
        "worker 0 (cpu): forward spread 35% (IQR 5.0 ms of 14.4 ms, 40 iterations), above the 10% "
        "target: its time is uncertain (a busy machine?); measure again when the machine is idle"]
    strict = _profile(settings={"spread_target": 0.01, "spread_floor_s": 1e-4})
    assert [w.split(" spread")[0] for w in profile_warnings(strict)] == [
        "worker 0 (cpu): forward", "worker 0 (cpu): backward", "worker 0 (cpu): topk(density=0.2) compression"]
    assert profile_warnings(_profile(spread_fwd=0.005, settings={})) == []  # no target recorded
    floor = _profile(settings={"spread_target": 0.01, "spread_floor_s": 0.002})
    assert profile_warnings(floor) == []  # every IQR under 2 ms
    est = _profile(spread_fwd=0.0)
    est.devices[1].spread = {"forward_s": 0.001}  # 50% of 2 ms, but an estimate
    assert profile_warnings(est) == []


class _no_warnings:
    """Fail on any UnstableProfileWarning inside the block."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", UnstableProfileWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)
