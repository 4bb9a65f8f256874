"""The profile cache: profiles on disk, keyed by a content hash of everything they depend on.

The cache folder is ``$RSDGC_SIM_CACHE`` if set, else ``$XDG_CACHE_HOME/rsdgc-sim`` (by
default ``~/.cache/rsdgc-sim``); profiles live under ``profiles/<key>.json``.

* Reading: any invalid cache entry (not JSON, truncated, another format version,
  non-finite numbers, no devices, a compressor without costs, a directory or a FIFO in its
  place...) is a *miss*: :meth:`ProfileStore.get` reports it (naming the file and why) and
  returns None, so the profile is measured again and :meth:`ProfileStore.put` replaces it.
  A profile file the user gave (:func:`load_profile`) that is invalid is one
  :class:`~rsdgc_sim.errors.ProfileError` naming the file and the field.
* Concurrency: :meth:`ProfileStore.lock` holds ``profiles/<key>.lock`` (``fcntl.flock``, which
  the kernel releases when its process ends, crash included) so that two runs that miss the
  same entry measure it once: the second waits, then finds the first one's profile.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import __version__
from ..data_file import InvalidFile, read_json_data
from ..errors import OutputError, ProfileError
from ..files import check_writable_dir, write_json_atomic
from ..strict import excerpt, validation_message
from .schema import PROFILE_VERSION, Profile

#: how long :meth:`ProfileStore.lock` waits for another process's measurement by default
LOCK_TIMEOUT_S = 1800.0

#: a cache key: what :func:`profile_key` makes (never a path: no ``/`` or ``..``)
_KEY = re.compile(r"[0-9A-Za-z_-]{1,128}")


def default_cache_dir() -> Path:
    if env := os.environ.get("RSDGC_SIM_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rsdgc-sim"


#: the code a profile's numbers come from: a change in any of it measures anew
_MEASURED_CODE = ("compress", "models", "profile")


@functools.cache
def code_fingerprint() -> str:
    """A hash of the source of the measuring code (compressors, models, profiler)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for sub in _MEASURED_CODE:
        for f in sorted((root / sub).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def profile_key(inputs: dict[str, Any]) -> str:
    """A content hash of what a profile depends on: the inputs, the profile format, the
    package version and the measuring code itself."""
    blob = json.dumps(
        {"inputs": inputs, "profile_version": PROFILE_VERSION, "package": __version__,
         "code": code_fingerprint()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# --- reading JSON data files ---------------------------------------------------------------


# --- profiles ------------------------------------------------------------------------------


def _consistency_problem(profile: Profile) -> str | None:
    """What makes a schema-valid profile unusable by the simulator, or None."""
    if not profile.devices:
        return "devices: a profile needs at least one device"
    names = [t.name for t in profile.tensors]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        return f"tensors: name {dup!r} is given twice"
    labels = list(profile.devices[0].compression)
    for i, d in enumerate(profile.devices):
        where = f"devices[{i}]"
        if not d.compression:
            return f"{where}.compression: no compressor costs"
        if list(d.compression) != labels:
            return f"{where}.compression: compressors {list(d.compression)} differ from devices[0]'s {labels}"
        for name in names:
            if name not in d.grad_ready_s:
                return f"{where}.grad_ready_s: no time for tensor {name!r}"
        for label, costs in d.compression.items():
            for name in names:
                if name not in costs:
                    return f"{where}.compression.{label}: no cost for tensor {name!r}"
    return None


def parse_profile(data: Any) -> Profile:
    """A :class:`Profile` from parsed JSON, checked strictly (no strings for numbers, no
    booleans for integers, every tensor timed and costed on every device); the
    :class:`InvalidFile` raised otherwise names the field."""
    if not isinstance(data, dict):
        raise InvalidFile(f"not a profile (a JSON object is expected, got {type(data).__name__})")
    if data.get("version") != PROFILE_VERSION:
        raise InvalidFile(f"profile format version {excerpt(data.get('version'))}, "
                          f"this rsdgc-sim reads {PROFILE_VERSION}")
    try:
        profile = Profile.model_validate(data, strict=True)
    except ValidationError as e:
        raise InvalidFile(f"not a valid profile: {validation_message(e, Profile)}") from None
    if (problem := _consistency_problem(profile)) is not None:
        raise InvalidFile(f"not a valid profile: {problem}")
    return profile


def load_profile(path: str | Path) -> Profile:
    """Read a saved profile; any problem (no such file, not a regular file, not JSON, a
    non-finite number, a missing or mistyped field, another format version: not a guess)
    is one :class:`~rsdgc_sim.errors.ProfileError` naming the file and the field."""
    p = Path(path)
    try:
        return parse_profile(read_json_data(p))
    except InvalidFile as e:
        name = str(p).replace("\0", "\\0")  # a NUL byte shown, not printed
        raise ProfileError(f"{name}: {e}") from None


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write ``profile`` as JSON, atomically; a failure is an OutputError naming the file."""
    return write_json_atomic(path, profile.model_dump(mode="json"))


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ProfileError(f"profile key {excerpt(key)}: not a cache key (letters, digits, - and _)")
    return key


def _remove(path: Path) -> None:
    """Remove whatever is at ``path`` (a directory with its content, a file, a link)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class ProfileStore:
    """Profiles cached on disk under ``root/profiles``.

    Measuring a missing profile once, however many runs miss it at the same time::

        with store.lock(key, on_wait=say):
            profile = store.get(key, on_invalid=say)
            if profile is None:
                profile = measure(...)
                store.put(profile)
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    @property
    def folder(self) -> Path:
        """Where the entries (and their lock files) are: ``root/profiles``."""
        return self.root / "profiles"

    def path(self, key: str) -> Path:
        return self.folder / f"{_check_key(key)}.json"

    def lock_path(self, key: str) -> Path:
        return self.folder / f"{_check_key(key)}.lock"

    def get(self, key: str, on_invalid: Callable[[str], None] | None = None) -> Profile | None:
        """The cached profile, or None. An invalid entry (see the module doc) counts as
        absent: ``on_invalid`` (default: a :class:`RuntimeWarning`) gets one line
        ``cached profile FILE is invalid (REASON): measuring again``."""
        p = self.path(key)
        try:
            profile = parse_profile(read_json_data(p))
            if profile.key != key:
                raise InvalidFile(f"it holds profile {excerpt(profile.key)}")
        except InvalidFile as e:
            if not e.missing:
                _report(on_invalid, f"cached profile {p} is invalid ({e}): measuring again")
            return None
        return profile

    def put(self, profile: Profile) -> Path:
        """Cache ``profile`` under its key, atomically, replacing whatever was there (an
        invalid entry, a directory); a failure is an OutputError naming the path."""
        if not profile.key:
            raise ProfileError("cannot cache a profile without a key")
        p = self.path(profile.key)
        check_writable_dir(self.folder, "profile cache")
        try:
            if p.is_dir() and not p.is_symlink():
                _remove(p)
        except OSError as e:
            raise OutputError(f"profile cache entry {p}: a directory is in its place and "
                              f"cannot be removed: {e.strerror or e}") from None
        return save_profile(profile, p)

    @contextlib.contextmanager
    def lock(self, key: str, timeout_s: float | None = None,
             on_wait: Callable[[str], None] | None = None, poll_s: float = 0.2) -> Iterator[Path]:
        """Hold the entry's lock file (``profiles/KEY.lock``, ``fcntl.flock``) for the body:
        the one process (or thread, or second ``lock`` in this one) that holds it measures;
        the others wait here. The kernel releases it when the holder's process ends, even if
        it crashes, so a lock is never stale. Yields the lock file's path.

        * Waiting: ``on_wait`` (default: nothing) gets ``waiting for another process
          measuring profile KEY (lock FILE)`` once, then this polls every ``poll_s`` s.
        * After ``timeout_s`` (default :data:`LOCK_TIMEOUT_S`, 30 min) without it: a
          ProfileError naming the lock file and how to go on.
        * A cache that cannot hold the lock file: an OutputError naming it. A file system
          without ``flock`` (some network ones): ``on_wait`` is told and the body runs
          without the lock (the worst case is measuring twice, as without a lock).
        """
        limit = LOCK_TIMEOUT_S if timeout_s is None else float(timeout_s)
        lp = self.lock_path(key)
        check_writable_dir(self.folder, "profile cache")
        fd = _open_lock_file(lp)
        try:
            locked = _acquire(fd, lp, key, limit, poll_s, on_wait)
            try:
                yield lp
            finally:
                if locked:
                    with contextlib.suppress(OSError):
                        fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        # the lock file stays: removing it would let a process that opened it before the
        # removal and one that creates it anew both hold "the" lock


def _acquire(fd: int, lp: Path, key: str, limit: float, poll_s: float,
             on_wait: Callable[[str], None] | None) -> bool:
    """Take the flock on ``fd`` (see :meth:`ProfileStore.lock`); False: no locking here."""
    deadline = time.monotonic() + limit
    waited = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as e:  # ENOLCK, EOPNOTSUPP...: no locking on this file system
            _report_quietly(on_wait, f"cannot lock {lp} ({e.strerror or e}): measuring without a lock")
            return False
        if not waited:
            waited = True
            _report_quietly(on_wait, f"waiting for another process measuring profile {key} (lock {lp})")
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProfileError(
                f"profile {key}: another process has held {lp} for more than {_duration(limit)}; "
                "wait for it to end, or end it and run again")
        time.sleep(min(poll_s, left))


def _open_lock_file(lp: Path) -> int:
    """An open descriptor of lock file ``lp``, created if missing; junk in its place (a
    directory, a FIFO) is removed first. An OutputError names the file on failure."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    for _ in range(5):
        try:
            fd = os.open(lp, flags, 0o666)
        except IsADirectoryError:
            reason = "a directory is in its place"
        except OSError as e:
            raise OutputError(f"profile cache lock file {lp}: cannot open it: {e.strerror or e}") from None
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            reason = "something other than a file is in its place"
        try:
            _remove(lp)
        except FileNotFoundError:
            pass  # another process cleared it first
        except OSError as e:
            raise OutputError(f"profile cache lock file {lp}: {reason} and cannot be removed: "
                              f"{e.strerror or e}") from None
    raise OutputError(f"profile cache lock file {lp}: cannot create it (replaced while opening)")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _report(callback: Callable[[str], None] | None, message: str) -> None:
    if callback is None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        callback(message)


def _report_quietly(callback: Callable[[str], None] | None, message: str) -> None:
    if callback is not None:
        callback(message)


__all__ = [
    "LOCK_TIMEOUT_S", "InvalidFile", "ProfileStore", "code_fingerprint", "default_cache_dir",
    "load_profile", "parse_profile", "profile_key", "read_json_data", "save_profile",
]
