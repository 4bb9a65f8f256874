"""The profile cache (rsdgc_sim.profile.store): one measurement per key however many runs
miss it at once (a per-key flock), invalid entries as reported misses, user profile files
checked to the field, and cache folders that cannot be written as OutputErrors."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import DELETE, set_at, within

from rsdgc_sim.errors import OutputError, ProfileError
from rsdgc_sim.profile.schema import PROFILE_VERSION, Profile
from rsdgc_sim.profile.store import ProfileStore, load_profile

ROOT = Path(__file__).resolve().parents[1]
KEY = "0123456789abcdef0123"


def profile_data(key: str = KEY, forward_s: float = 0.383) -> dict:
    """A small valid profile (two tensors, one device, one compressor) as JSON data."""
    sizes = {"w": 4, "b": 2}
    return {
        "version": PROFILE_VERSION, "key": key, "model": "cnn_small", "num_classes": 10,
        "input_size": 16, "batch_size": 4, "params": 6,
        "tensors": [{"name": "w", "shape": [2, 2], "numel": 4}, {"name": "b", "shape": [2], "numel": 2}],
        "devices": [{
            "device": "cpu", "forward_s": forward_s, "backward_s": 0.5, "optimizer_s": 0.01,
            "grad_ready_s": {"w": 0.4, "b": 0.1},
            "compression": {"none": {n: {"compress_s": 0.0, "decompress_s": 0.0,
                                         "wire_bytes": 4 * k, "sparse": False}
                                     for n, k in sizes.items()}},
        }],
    }


def _edit(change):
    """Content: the JSON text of the profile after ``change(data)``."""

    def make(_path: Path) -> str:
        data = copy.deepcopy(profile_data())
        change(data)
        return json.dumps(data)  # writes inf and nan as Infinity and NaN, as json can

    return make


def _set(path: str, value):
    def change(data):
        set_at(data, path, value)

    return change


def _mkdir(path: Path) -> None:
    path.mkdir()
    (path / "inside.json").write_text("{}")


#: kind -> (make the file at the path: its text, or None when the maker made it; the reason)
BAD = {
    "infinity": (_edit(_set("devices/0/forward_s", float("inf"))),
                 r"devices\[0\]\.forward_s: not a finite number \(got inf\)"),
    "minus infinity": (_edit(_set("devices/0/backward_s", float("-inf"))),
                       r"devices\[0\]\.backward_s: not a finite number \(got -inf\)"),
    "NaN": (_edit(_set("devices/0/grad_ready_s/w", float("nan"))),
            r"devices\[0\]\.grad_ready_s\.w: not a finite number \(got nan\)"),
    "1e999": (lambda _p: json.dumps(profile_data()).replace("0.383", "1e999"),
              r"devices\[0\]\.forward_s: not a finite number \(got inf\)"),
    "no devices": (_edit(_set("devices", [])), r"devices: a profile needs at least one device"),
    "empty compression table": (_edit(_set("devices/0/compression", {})),
                                r"devices\[0\]\.compression: no compressor costs"),
    "no compression table": (_edit(_set("devices/0/compression", DELETE)),
                             r"devices\[0\]\.compression: required field is missing"),
    "a tensor without cost": (_edit(_set("devices/0/compression/none/b", DELETE)),
                              r"devices\[0\]\.compression\.none: no cost for tensor 'b'"),
    "a tensor without ready time": (_edit(_set("devices/0/grad_ready_s/b", DELETE)),
                                    r"devices\[0\]\.grad_ready_s: no time for tensor 'b'"),
    "missing field": (_edit(_set("model", DELETE)), r"model: required field is missing"),
    "string for a number": (_edit(_set("devices/0/forward_s", "0.1")),
                            r"devices\[0\]\.forward_s: Input should be a valid number"),
    "boolean for an integer": (_edit(_set("batch_size", True)),
                               r"batch_size: Input should be a valid integer"),
    "negative time": (_edit(_set("devices/0/optimizer_s", -1.0)),
                      r"devices\[0\]\.optimizer_s: Input should be greater than or equal to 0"),
    "a time of 1e308 s": (_edit(_set("devices/0/forward_s", 1e308)),
                          r"devices\[0\]\.forward_s: Input should be less than or equal to 86400"),
    "10^400 wire bytes": (lambda _p: json.dumps(profile_data()).replace(
                              '"wire_bytes": 16', '"wire_bytes": 1' + "0" * 400),
                          r"devices\[0\]\.compression\.none\.w\.wire_bytes: Input should be less "
                          r"than or equal to 9007199254740992"),
    "negative ready time": (_edit(_set("devices/0/grad_ready_s/w", -0.1)),
                            r"devices\[0\]\.grad_ready_s\.w: Input should be greater than or "
                            r"equal to 0"),
    "negative numel": (_edit(_set("tensors/0/numel", -4)),
                       r"tensors\[0\]\.numel: Input should be greater than or equal to 0"),
    "dtype_bytes 0": (_edit(_set("tensors/0/dtype_bytes", 0)),
                      r"tensors\[0\]\.dtype_bytes: Input should be greater than or equal to 1"),
    "dtype_bytes -4": (_edit(_set("tensors/1/dtype_bytes", -4)),
                       r"tensors\[1\]\.dtype_bytes: Input should be greater than or equal to 1"),
    "negative shape": (_edit(_set("tensors/0/shape", [-2, 2])),
                       r"tensors\[0\]\.shape\[0\]: Input should be greater than or equal to 0"),
    "params -1": (_edit(_set("params", -1)), r"params: Input should be greater than or equal to 0"),
    "wrong version": (_edit(_set("version", 1)),
                      r"profile format version 1, this rsdgc-sim reads 2"),
    "invalid JSON": (lambda _p: "{not json",
                     r"not readable JSON: Expecting property name enclosed in double quotes "
                     r"at line 1, column 2"),
    "truncated": (lambda _p: json.dumps(profile_data())[:200], r"not readable JSON: .* at line 1"),
    "empty file": (lambda _p: "", r"not readable JSON: Expecting value at line 1, column 1"),
    "not UTF-8": (lambda _p: b"\xff\xfe{}", r"not UTF-8 text \(byte 0\)"),
    "not an object": (lambda _p: "[1, 2]", r"a JSON object is expected, got list"),
    "a directory": (lambda p: _mkdir(p), r"a directory, not a JSON file"),
    "a FIFO": (lambda p: os.mkfifo(p), r"a FIFO, not a JSON file"),
    "a broken link": (lambda p: p.symlink_to(p.with_name("gone.json")), r"a symbolic link to nothing"),
}


def _make(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = BAD[kind][0](path)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)


# --- invalid entries and files -------------------------------------------------------------


@pytest.mark.parametrize("kind", list(BAD))
def test_invalid_cache_entry_is_a_reported_miss_that_put_replaces(kind, tmp_path):
    """An invalid cache entry (non-finite numbers, no devices or compression table, a
    mistyped field, invalid or truncated JSON, another version, a directory or FIFO in its
    place) is a miss, reported in one line naming the file and why; put then replaces it and
    the next get finds the profile."""
    store = ProfileStore(tmp_path)
    entry = store.path(KEY)
    _make(entry, kind)
    said: list[str] = []
    assert within(5, lambda: store.get(KEY, on_invalid=said.append)) is None
    assert len(said) == 1 and "\n" not in said[0]
    assert re.fullmatch(rf"cached profile {re.escape(str(entry))} is invalid \(.*{BAD[kind][1]}.*\): "
                        r"measuring again", said[0]), said[0]
    prof = Profile.model_validate(profile_data())
    assert store.put(prof) == entry and entry.is_file()
    assert store.get(KEY, on_invalid=said.append) == prof and len(said) == 1


def test_entry_of_another_key_is_a_miss(tmp_path):
    """A cache file that holds another key's profile (copied or renamed by hand) is not
    taken for this key's."""
    store = ProfileStore(tmp_path)
    store.path(KEY).parent.mkdir(parents=True)
    store.path(KEY).write_text(json.dumps(profile_data(key="other")))
    said: list[str] = []
    assert store.get(KEY, on_invalid=said.append) is None
    assert said == [f"cached profile {store.path(KEY)} is invalid (it holds profile 'other'): "
                    "measuring again"]


def test_absent_entry_is_a_silent_miss(tmp_path):
    """No entry (and no cache folder at all) is a plain miss, not reported."""
    said: list[str] = []
    assert ProfileStore(tmp_path / "nothing").get(KEY, on_invalid=said.append) is None
    assert said == []


def test_invalid_entry_warns_without_a_callback(tmp_path):
    """Without on_invalid, an invalid entry is a RuntimeWarning naming the file."""
    store = ProfileStore(tmp_path)
    _make(store.path(KEY), "infinity")
    with pytest.warns(RuntimeWarning, match=rf"cached profile .*{KEY}\.json is invalid"):
        assert store.get(KEY) is None


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_profile_file_is_one_profile_error_naming_file_and_field(kind, tmp_path):
    """load_profile of a bad user file raises one line, ProfileError: FILE: REASON (the
    field where there is one), never a traceback; a FIFO is refused without blocking."""
    path = tmp_path / "given.json"
    _make(path, kind)
    with pytest.raises(ProfileError, match=rf"^{re.escape(str(path))}: .*{BAD[kind][1]}") as e:
        within(5, lambda: load_profile(path))
    assert "\n" not in str(e.value)


def test_missing_profile_file_is_named(tmp_path):
    """A profile file that does not exist: ProfileError naming it."""
    with pytest.raises(ProfileError, match=rf"^{re.escape(str(tmp_path / 'nope.json'))}: no such file$"):
        load_profile(tmp_path / "nope.json")


def test_valid_profile_file_loads(tmp_path):
    """The valid profile the bad ones are made from loads (the table's errors are theirs)."""
    (tmp_path / "ok.json").write_text(json.dumps(profile_data()))
    assert load_profile(tmp_path / "ok.json") == Profile.model_validate(profile_data())


# --- caches that cannot be written ---------------------------------------------------------


def test_cache_pointing_at_a_file_is_an_output_error(tmp_path, monkeypatch):
    """RSDGC_SIM_CACHE naming a file: get is a miss, put and lock are OutputErrors naming
    the cache's profiles folder (no traceback)."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("RSDGC_SIM_CACHE", str(tmp_path / "file"))
    store = ProfileStore()
    said: list[str] = []
    assert store.get(KEY, on_invalid=said.append) is None and said == []
    pattern = rf"profile cache {re.escape(str(tmp_path / 'file' / 'profiles'))}: cannot create it"
    with pytest.raises(OutputError, match=pattern):
        store.put(Profile.model_validate(profile_data()))
    with pytest.raises(OutputError, match=pattern), store.lock(KEY):
        pass


def test_cache_in_an_unwritable_place_is_an_output_error():
    """A cache folder that cannot be created (under /proc): put is an OutputError naming
    it."""
    root = Path("/proc/rsdgc-sim-cache-test")
    if not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    with pytest.raises(OutputError, match=rf"profile cache {re.escape(str(root / 'profiles'))}"):
        ProfileStore(root).put(Profile.model_validate(profile_data()))


def test_put_refuses_a_key_that_is_a_path(tmp_path):
    """A profile whose key is not a cache key (a path) is refused, nothing written."""
    prof = Profile.model_validate(profile_data(key="../../escape"))
    with pytest.raises(ProfileError, match="not a cache key"):
        ProfileStore(tmp_path / "c").put(prof)
    assert not (tmp_path / "escape.json").exists()


# --- one measurement per key ---------------------------------------------------------------

#: one run: wait for "go", then lock -> get -> (miss: "measure" until the other run is
#: waiting for the lock, count it, put)
_RUN = """
import json, sys, time
from pathlib import Path
from rsdgc_sim.profile.schema import Profile
from rsdgc_sim.profile.store import ProfileStore
tmp, key, who, data = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
(tmp / f"ready-{who}").touch()
while not (tmp / "go").exists():
    time.sleep(0.005)
store = ProfileStore(tmp / "cache")
waits = []

def waiting(message):
    waits.append(message)
    (tmp / "waiting").touch()

with store.lock(key, on_wait=waiting, poll_s=0.02):
    prof = store.get(key)
    if prof is None:
        deadline = time.monotonic() + 20  # measure while the other run waits for the lock
        while not (tmp / "waiting").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        with open(tmp / "measured", "a") as f:
            f.write(who + "\\n")
        prof = Profile.model_validate(json.loads(data))
        store.put(prof)
print(json.dumps({"profile": prof.model_dump(mode="json"), "waits": waits}))
"""


def _python(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_two_runs_with_an_empty_cache_measure_once(tmp_path):
    """Two processes that miss the same key at once: the first measures and puts, the
    second waits (told so), then reuses that profile: one measurement, identical profiles
    (before the lock, both measured and the last writer won: 0.383 s vs 0.435 s)."""
    procs = [_python("-c", _RUN, str(tmp_path), KEY, who, json.dumps(profile_data(forward_s=f)))
             for who, f in (("a", 0.383), ("b", 0.435))]
    try:
        for who in "ab":
            _wait_for(tmp_path / f"ready-{who}")
        (tmp_path / "go").touch()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    assert len((tmp_path / "measured").read_text().split()) == 1
    assert results[0]["profile"] == results[1]["profile"]
    cached = ProfileStore(tmp_path / "cache").get(KEY)
    assert cached is not None and cached.model_dump(mode="json") == results[0]["profile"]
    waits = [w for r in results for w in r["waits"]]
    assert waits == [f"waiting for another process measuring profile {KEY} "
                     f"(lock {tmp_path / 'cache' / 'profiles' / (KEY + '.lock')})"]


def test_lock_wait_times_out_with_a_profile_error(tmp_path):
    """A lock held longer than the timeout: a ProfileError naming the lock file and the
    time waited, after one 'waiting for another process' message."""
    store = ProfileStore(tmp_path)
    said: list[str] = []
    with store.lock(KEY):
        t0 = time.monotonic()
        with pytest.raises(ProfileError, match=rf"profile {KEY}: another process has held "
                                               rf".*{KEY}\.lock for more than 0\.3 s"), \
                store.lock(KEY, timeout_s=0.3, on_wait=said.append, poll_s=0.05):
            pass
        assert 0.3 <= time.monotonic() - t0 < 3
    assert said == [f"waiting for another process measuring profile {KEY} (lock {store.lock_path(KEY)})"]
    with store.lock(KEY, timeout_s=0):  # released on leaving the block
        pass


def test_lock_dies_with_a_killed_holder(tmp_path):
    """A process killed while it holds the lock (a crash) releases it: the next run gets
    it at once."""
    hold = ("import sys, time; from pathlib import Path; from rsdgc_sim.profile.store import ProfileStore\n"
            "with ProfileStore(sys.argv[1]).lock(sys.argv[2]):\n"
            "    Path(sys.argv[3]).touch(); time.sleep(60)\n")
    p = _python("-c", hold, str(tmp_path / "cache"), KEY, str(tmp_path / "held"))
    try:
        _wait_for(tmp_path / "held")
        store = ProfileStore(tmp_path / "cache")
        with pytest.raises(ProfileError, match="another process has held"), store.lock(KEY, timeout_s=0):
            pass
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        with store.lock(KEY, timeout_s=5):
            pass
    finally:
        p.kill()
        p.communicate()


@pytest.mark.parametrize("junk", ["a directory", "a FIFO"])
def test_lock_replaces_junk_in_its_place(junk, tmp_path):
    """A directory or FIFO where the lock file goes is replaced by a lock file (no hang)."""
    store = ProfileStore(tmp_path)
    _make(store.lock_path(KEY), junk)

    def take():
        with store.lock(KEY, timeout_s=1) as path:
            return path.is_file()

    assert within(5, take) and store.lock_path(KEY).is_file()
