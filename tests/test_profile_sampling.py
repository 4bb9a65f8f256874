"""Timing samples until stable, on the clean ones (rsdgc_sim.profile.sampling): preempted
samples discarded and counted, the least preempted kept when too few are clean, the
schedstat reader, the fallback without /proc, and the raised priority while measuring.

Nothing is timed: a fake clock and a fake run-queue-wait source make up every interval."""

from __future__ import annotations

import os
import re
import time

import pytest

from rsdgc_sim.profile import sampling
from rsdgc_sim.profile.measure import measure_profile
from rsdgc_sim.profile.sampling import (
    MAX_WAIT,
    MEASURE_NICE,
    StopRule,
    default_waits,
    median,
    parse_schedstat,
    preemption_method,
    raised_priority,
    schedstat_waits,
    time_until_stable,
    waited_s,
)

#: a clock tick a float adds exactly (about 1 ms)
TICK = 2.0**-10


class FakeClock:
    """Seconds that pass only when told (``advance``), or by ``tick`` at each call."""

    def __init__(self, tick: float = 0.0):
        self.now = 0.0
        self.tick = tick

    def advance(self, dt: float) -> None:
        self.now += dt

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


class FakeWaits:
    """Per-thread cumulative run-queue wait (seconds), moved by ``wait``; a snapshot per call."""

    def __init__(self):
        self.total: dict[int, float] = {1: 0.0}

    def wait(self, tid: int, s: float) -> None:
        self.total[tid] = self.total.get(tid, 0.0) + s

    def __call__(self) -> dict[int, float]:
        return dict(self.total)


def stream(values, waited, clock: FakeClock, waits: FakeWaits, wall: float = 1.0, tid: int = 1):
    """A step yielding ``{"t": values[i]}``; each step lasts ``wall`` seconds of ``clock`` and
    thread ``tid`` waits ``waited[i]`` seconds on the run queue during it."""
    it = iter(zip(values, waited, strict=True))

    def step():
        v, w = next(it)
        clock.advance(wall)
        waits.wait(tid, w)
        return {"t": v}

    return step


# --- preempted samples in a synthetic stream ------------------------------------------------


def test_preempted_samples_are_discarded_and_the_rule_runs_on_the_clean_ones():
    """10 ms samples, two of them preempted (40 ms and 60 ms, their thread waited 40% of the
    step): the rule stops at the 5th clean sample, stable; 2 discarded, the median is the
    clean median, and the preempted values are nowhere in what is kept."""
    values = [0.010, 0.040, 0.0101, 0.060, 0.0099, 0.010, 0.0102, 0.010]
    waited = [0.0, 0.4, 0.0, 0.4, 0.0, 0.0, 0.0, 0.0]
    clock, waits = FakeClock(), FakeWaits()
    rule = StopRule(min_iterations=5, budget_s=1e9)
    samples, reason, discarded = time_until_stable(stream(values, waited, clock, waits), ["t"], rule,
                                                   clock, waits=waits)
    assert samples == {"t": [0.010, 0.0101, 0.0099, 0.010, 0.0102]}
    assert (reason, discarded) == ("stable", 2)
    assert median(samples["t"]) == 0.010


def test_without_detection_the_preempted_samples_spoil_the_median():
    """The same stream with no wait source (``lambda: None``): all 5 first samples kept, the
    spread is above target, so it goes on and the median is not the clean one."""
    values = [0.010, 0.040, 0.0101, 0.060, 0.0099, 0.010, 0.0102, 0.010] + [0.060] * 10
    clock = FakeClock()
    rule = StopRule(min_iterations=5, max_iterations=8, budget_s=1e9)
    samples, reason, discarded = time_until_stable(
        stream(values, [0.0] * len(values), clock, FakeWaits()), ["t"], rule, clock, waits=lambda: None)
    assert (len(samples["t"]), reason, discarded) == (8, "cap", 0)
    assert median(samples["t"]) != 0.010


@pytest.mark.parametrize("wait, kept", [(MAX_WAIT, True), (MAX_WAIT + 2.0**-20, False)])
def test_preempted_means_a_wait_above_max_wait_of_the_wall_time(wait, kept):
    """A step of 1 s whose thread waited exactly MAX_WAIT (5%) s is clean; a hair more is not."""
    clock, waits = FakeClock(), FakeWaits()
    rule = StopRule(min_iterations=1, max_iterations=1, budget_s=1e9)
    _, reason, discarded = time_until_stable(stream([0.5], [wait], clock, waits), ["t"], rule,
                                             clock, waits=waits)
    assert (reason, discarded) == (("stable", 0) if kept else ("preempted", 0))


def test_the_most_delayed_thread_counts_not_the_sum():
    """Two threads waiting 3% each (6% together) leave a sample clean; one thread waiting 6%
    does not; a thread that starts during the step counts from 0."""
    assert waited_s({1: 0.5, 2: 0.25}, {1: 0.53, 2: 0.28}) == pytest.approx(0.03)
    assert waited_s({1: 0.5}, {1: 0.5, 7: 0.06}) == 0.06
    assert waited_s(None, {1: 1.0}) == 0.0 and waited_s({1: 0.0}, None) == 0.0
    clock, waits = FakeClock(), FakeWaits()
    values = [0.01, 0.01, 0.01]

    def step():
        i = len(clock_log)
        clock_log.append(i)
        clock.advance(1.0)
        if i == 0:
            waits.wait(1, 0.03)
            waits.wait(2, 0.03)
        elif i == 1:
            waits.wait(2, 0.06)
        return {"t": values[i]}

    clock_log: list[int] = []
    rule = StopRule(min_iterations=2, budget_s=1e9)
    samples, reason, discarded = time_until_stable(step, ["t"], rule, clock, waits=waits)
    assert (len(samples["t"]), reason, discarded, len(clock_log)) == (2, "stable", 1, 3)


def test_too_few_clean_samples_within_the_budget_keeps_the_least_preempted():
    """Every step preempted (wait fractions 50, 20, 90, 10, 30 %), 1 s per step, budget 5 s,
    min_iterations 3: it stops after 5 steps with reason ``preempted`` and keeps the 3 least
    preempted (the 2nd, 4th and 5th, in order); 2 discarded."""
    values = [0.5, 0.2, 0.9, 0.1, 0.3, 0.0]
    clock, waits = FakeClock(), FakeWaits()
    rule = StopRule(min_iterations=3, max_iterations=100, budget_s=5.0)
    samples, reason, discarded = time_until_stable(stream(values, values, clock, waits), ["t"], rule,
                                                   clock, waits=waits)
    assert (samples, reason, discarded) == ({"t": [0.2, 0.1, 0.3]}, "preempted", 2)


def test_clean_samples_come_first_then_the_least_preempted():
    """One clean sample among preempted ones at the cap (4): the clean one and the least
    preempted one are kept (min_iterations 2), 2 discarded."""
    values = [0.5, 0.0, 0.9, 0.3]
    clock, waits = FakeClock(), FakeWaits()
    rule = StopRule(min_iterations=2, max_iterations=4, budget_s=1e9)
    samples, reason, discarded = time_until_stable(stream(values, values, clock, waits), ["t"], rule,
                                                   clock, waits=waits)
    assert (samples, reason, discarded) == ({"t": [0.0, 0.3]}, "preempted", 2)


def test_a_fixed_count_times_exactly_that_many_iterations_even_when_preempted():
    """budget_s=0 with min = max = 3 (a fixed count): 3 steps, preempted or not, all kept."""
    values = [0.5, 0.0, 0.9, 0.1]
    clock, waits = FakeClock(), FakeWaits()
    rule = StopRule(min_iterations=3, max_iterations=3, budget_s=0.0)
    samples, reason, discarded = time_until_stable(stream(values, values, clock, waits), ["t"], rule,
                                                   clock, waits=waits)
    assert (samples, reason, discarded) == ({"t": [0.5, 0.0, 0.9]}, "preempted", 0)


def test_the_cap_counts_discarded_iterations_too():
    """Clean samples alternate 5/15 ms (never stable) with preempted ones: the cap of 6
    iterations is reached after 3 clean and 3 discarded."""
    values = [0.005, 0.5, 0.015, 0.5, 0.005, 0.5, 0.015, 0.5]
    waited = [0.0, 0.5] * 4
    clock, waits = FakeClock(), FakeWaits()
    rule = StopRule(min_iterations=3, max_iterations=6, budget_s=1e9)
    samples, reason, discarded = time_until_stable(stream(values, waited, clock, waits), ["t"], rule,
                                                   clock, waits=waits)
    assert (samples, reason, discarded) == ({"t": [0.005, 0.015, 0.005]}, "cap", 3)


def test_progress_counts_clean_samples_and_says_how_many_were_preempted():
    """``2/≤20, spread 33%, 2 preempted, ~18 s left``: the count is of clean samples."""
    values = [0.01, 0.5, 0.02, 0.5, 0.01, 0.02] * 5
    waited = [0.0, 0.5, 0.0, 0.5, 0.0, 0.0] * 5
    clock, waits = FakeClock(), FakeWaits()
    got: list[str] = []
    rule = StopRule(min_iterations=3, max_iterations=20, budget_s=1e9)
    time_until_stable(stream(values, waited, clock, waits, wall=0.5), ["t"], rule, clock,
                      on_progress=got.append, every_s=1.0, waits=waits)
    # 0.5 s per step, a message once >= 1 s passed (after steps 2, 4, ...): 1 then 2 clean of
    # 2 then 4 steps; the ETA is 1 s per clean sample x the samples left to the cap
    assert got[:2] == ["1/≤20, spread 0%, 1 preempted, ~19 s left",
                       "2/≤20, spread 33%, 2 preempted, ~18 s left"]


# --- /proc: the reader and the fallback -----------------------------------------------------


def test_parse_schedstat():
    """Three integers: ns on the CPU, ns waiting on the run queue, timeslices."""
    assert parse_schedstat("233598 15960 2\n") == (233598, 15960, 2)
    with pytest.raises(ValueError, match="expected 3 fields, got '1 2'"):
        parse_schedstat("1 2\n")
    with pytest.raises(ValueError, match="invalid literal"):
        parse_schedstat("1 x 2\n")


def _task_dir(root, waits_ns: dict[str, str | None]):
    """A fake /proc/self/task: one folder per thread id, with ``schedstat`` unless None."""
    root.mkdir()
    for tid, text in waits_ns.items():
        (root / tid).mkdir()
        if text is not None:
            (root / tid / "schedstat").write_text(text)
    return root


def test_schedstat_waits_reads_every_thread(tmp_path):
    """Each thread's run-queue wait in seconds; a thread whose file is gone (it ended) is
    left out; a malformed file or no directory at all is None (no detection)."""
    root = _task_dir(tmp_path / "task", {"101": "5 1500000000 3\n", "102": "7 250000000 1\n",
                                         "103": None})
    assert schedstat_waits(root) == {101: 1.5, 102: 0.25}
    (root / "104").mkdir()
    (root / "104" / "schedstat").write_text("garbage\n")
    assert schedstat_waits(root) is None
    assert schedstat_waits(tmp_path / "missing") is None


@pytest.mark.skipif(not os.path.exists("/proc/thread-self/schedstat"), reason="no schedstat")
def test_schedstat_waits_of_this_process():
    """Here: one entry per thread of the process, this thread's among them."""
    import threading

    got = schedstat_waits()
    assert got is not None and threading.get_native_id() in got and all(w >= 0 for w in got.values())
    assert default_waits(time.perf_counter) is schedstat_waits
    assert preemption_method(time.perf_counter) == "schedstat"
    assert default_waits(FakeClock()) is None and preemption_method(FakeClock()) == "none"


def test_without_proc_nothing_is_detected_and_every_sample_kept(monkeypatch, tmp_path):
    """No /proc/self/task: no wait source even with the real clock (settings say ``none``),
    and time_until_stable keeps every sample (plain wall time); a fake clock never gets the
    kernel's waits."""
    monkeypatch.setattr(sampling, "TASK_DIR", str(tmp_path / "missing"))
    assert default_waits(time.perf_counter) is None and preemption_method(time.perf_counter) == "none"
    values = iter([0.01, 0.03, 0.01, 0.01])
    samples, reason, discarded = time_until_stable(lambda: {"t": next(values)}, ["t"],
                                                   StopRule(min_iterations=4, budget_s=0.0),
                                                   time.perf_counter)
    assert (samples, reason, discarded) == ({"t": [0.01, 0.03, 0.01, 0.01]}, "budget", 0)


# --- raised priority ------------------------------------------------------------------------


class FakeNice:
    """os.getpriority / os.setpriority over a table of thread nice values (0: the caller)."""

    def __init__(self, table: dict[int, int], caller: int, permitted: bool):
        self.table, self.caller, self.permitted = table, caller, permitted

    def get(self, _which, who):
        return self.table[who or self.caller]

    def set(self, _which, who, value):
        who = who or self.caller
        if value < self.table[who] and not self.permitted:
            raise PermissionError("not permitted")
        self.table[who] = value


@pytest.mark.parametrize("permitted", [True, False])
def test_raised_priority_raises_every_thread_then_gives_the_values_back(monkeypatch, tmp_path,
                                                                        permitted):
    """Permitted: every thread at nice -20 inside (the value yielded), its own value back
    after; a thread started inside gets the caller's former value. Not permitted: nothing
    changes and the caller's value is yielded."""
    root = _task_dir(tmp_path / "task", {"11": None, "12": None})
    fake = FakeNice({11: 0, 12: 5}, caller=11, permitted=permitted)
    monkeypatch.setattr(os, "getpriority", fake.get)
    monkeypatch.setattr(os, "setpriority", fake.set)
    with raised_priority(task_dir=root) as nice:
        assert nice == (MEASURE_NICE if permitted else 0)
        assert fake.table == ({11: -20, 12: -20} if permitted else {11: 0, 12: 5})
        (root / "13").mkdir()
        fake.table[13] = fake.table[11]  # inherits from the thread that starts it
    assert fake.table == {11: 0, 12: 5, 13: 0}


def test_raised_priority_gives_the_values_back_after_an_error(monkeypatch, tmp_path):
    """An exception inside the block still restores every thread."""
    root = _task_dir(tmp_path / "task", {"11": None})
    fake = FakeNice({11: 3}, caller=11, permitted=True)
    monkeypatch.setattr(os, "getpriority", fake.get)
    monkeypatch.setattr(os, "setpriority", fake.set)
    with pytest.raises(RuntimeError, match="boom"), raised_priority(task_dir=root):
        raise RuntimeError("boom")
    assert fake.table == {11: 3}


# --- measure_profile: discarded counts, settings, warnings ----------------------------------


class EveryOther:
    """A wait source under which every 2nd timed step is preempted (1 s of wait; called
    twice per step, before and after); ``always``: every step."""

    def __init__(self, always: bool = False):
        self.calls, self.total, self.always = 0, 0.0, always

    def __call__(self):
        c = self.calls
        self.calls += 1
        if c % 2 == 1 and (self.always or (c // 2) % 2 == 1):
            self.total += 1.0
        return {1: self.total}


def test_profile_records_discarded_samples_and_the_method(monkeypatch):
    """Every 2nd forward/backward iteration preempted, steady fake times: 4 clean samples
    after 7 iterations, 3 discarded for forward, backward and the optimizer step, said in the
    progress line; the settings name the detection; the nice value is given back."""
    src = EveryOther()
    monkeypatch.setattr(sampling, "default_waits", lambda clock: src)
    nice_before = os.getpriority(os.PRIO_PROCESS, 0)
    said: list[str] = []
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                        min_iterations=4, progress=said.append, clock=FakeClock(tick=TICK))
    dev = p.devices[0]
    assert {k: dev.discarded[k] for k in ("forward_s", "backward_s", "optimizer_s")} == dict.fromkeys(
        ("forward_s", "backward_s", "optimizer_s"), 3)
    assert dev.samples["forward_s"] == 4
    assert any(m.endswith("(4 iterations, stable, 3 discarded as preempted)") for m in said)
    assert p.settings["preemption"] == "schedstat"
    assert os.getpriority(os.PRIO_PROCESS, 0) == nice_before


def test_profile_warns_when_too_few_clean_samples(monkeypatch):
    """Every iteration preempted, cap 3, min_iterations 2: forward/backward and the
    compression keep the 2 least preempted, 1 discarded, and each warns."""
    monkeypatch.setattr(sampling, "default_waits", lambda clock: EveryOther(always=True))
    said: list[str] = []
    p = measure_profile("cnn_small", 10, 16, 4, ["cpu"], {"none": {"name": "none"}}, warmup=0,
                        min_iterations=2, max_iterations=3, progress=said.append,
                        clock=FakeClock(tick=TICK))
    dev = p.devices[0]
    for key in ("forward_s", "compress:none", "decompress:none"):
        assert (dev.samples[key], dev.discarded[key]) == (2, 1)
    warned = [m for m in said if m.startswith("warning: ") and "unpreempted" in m]
    assert warned == [
        f"warning: worker 0 (cpu): {what}: fewer than 2 of 3 iterations ran unpreempted "
        "(other processes held the CPU) within the budget; its times are the 2 least preempted "
        "and may be too long; measure again when the machine is idle"
        for what in ("forward/backward", "none compression")]
    assert any(re.search(r"\(2 iterations, preempted, 1 discarded as preempted\)$", m) for m in said)
