"""The profile cache: profiles on disk, keyed by a content hash of everything they depend on.

The cache folder is ``$RSDGC_SIM_CACHE`` if set, else ``$XDG_CACHE_HOME/rsdgc-sim`` (by
default ``~/.cache/rsdgc-sim``); profiles live under ``profiles/<key>.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import __version__
from ..errors import ProfileError, first_validation_error
from ..report.files import write_json_atomic
from .schema import PROFILE_VERSION, Profile


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


def load_profile(path: str | Path) -> Profile:
    """Read a saved profile; a profile of another format version is an error, not a guess."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{p}: no such profile") from None
    except (OSError, ValueError) as e:
        raise ProfileError(f"{p}: cannot read profile: {e}") from None
    if not isinstance(data, dict) or data.get("version") != PROFILE_VERSION:
        got = data.get("version") if isinstance(data, dict) else None
        raise ProfileError(f"{p}: profile format version {got!r}, this rsdgc-sim reads {PROFILE_VERSION}")
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise ProfileError(f"{p}: not a valid profile: {first_validation_error(e)}") from None


def save_profile(profile: Profile, path: str | Path) -> Path:
    return write_json_atomic(path, profile.model_dump(mode="json"))


class ProfileStore:
    """Profiles cached on disk under ``root/profiles``."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / "profiles" / f"{key}.json"

    def get(self, key: str) -> Profile | None:
        """The cached profile, or None (a damaged entry counts as absent)."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return load_profile(p)
        except ProfileError:
            return None

    def put(self, profile: Profile) -> Path:
        if not profile.key:
            raise ProfileError("cannot cache a profile without a key")
        return save_profile(profile, self.path(profile.key))
