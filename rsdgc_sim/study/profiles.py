"""Which profile a scenario's study uses: measured here (and cached), taken from the cache,
estimated for a device model, or read from a file; an unstable cached one is measured again
unless pinned (:mod:`rsdgc_sim.profile.quality`).

Nothing here writes files except the profile cache (:class:`~rsdgc_sim.profile.store.ProfileStore`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution, version
from typing import Any

from ..compress.compile_state import compile_mode
from ..models.footprint import check_fits
from ..profile.cost_model import COST_MODEL_VERSION
from ..profile.quality import busy_warning, provenance_text, quality_text, unstable_quantities
from ..profile.schema import Profile
from ..profile.store import ProfileStore, load_profile, profile_key
from ..scenario import Scenario
from .profile_match import check_matches

Progress = Callable[[str], None]


def _profile_compressors(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The scenario's compressors plus the dense reference (speedup_vs_dense,
    scaling_efficiency), which every profile carries."""
    specs = scenario.compressor_specs()
    specs.setdefault(scenario.dense_label(), {"name": "none"})
    return specs


def torch_version() -> str:
    """``torch.__version__`` without importing torch (seconds): the installed distribution's
    version, the same string (``tests/test_study_profiles.py`` checks it); torch's own where no
    distribution is installed (a source tree on the path). The ``Version:`` line is read
    from the head of the distribution's METADATA (``version()`` parses the whole file, 38
    KB, as an e-mail: 4 ms more), else ``version()`` answers."""
    try:
        dist = distribution("torch")
    except PackageNotFoundError:
        import torch  # lazy: torch

        return torch.__version__
    for line in (dist.read_text("METADATA") or "").splitlines():
        if not line:  # the end of the headers
            break
        if line.startswith("Version: ") and line[9:].strip():
            return line[9:].strip()
    return version("torch")


def profile_inputs(scenario: Scenario, devices: list[str]) -> dict[str, Any]:
    """Everything a scenario's profile depends on (the cache key's content)."""
    from ..profile.devices import device_name  # lazy: imports torch

    return {
        "model": scenario.model.model_dump(),
        "batch_size": scenario.batch_size,
        "devices": devices,
        "device_names": [device_name(d) for d in devices],
        "compressors": _profile_compressors(scenario),
        "warmup": scenario.profile.warmup,
        "iterations": scenario.profile.iterations,
        "seed": scenario.seed,
        "torch": torch_version(),
        # torch.compile'd or eager NSI scores (after a failed compile: eager, and the reason)
        "nsi_compile": compile_mode(),
        # compression is measured per DDP bucket
        "buckets": profile_buckets(scenario),
    }


def profile_buckets(scenario: Scenario) -> tuple[int, int]:
    """DDP's first and later bucket caps in bytes, the buckets a profile is measured in."""
    return int(scenario.ddp.first_bucket), int(scenario.ddp.bucket_cap)


def estimated_profile(scenario: Scenario, store: ProfileStore | None = None,
                      refresh: bool = False, progress: Progress | None = None
                      ) -> tuple[Profile, bool]:
    """The profile of a device model (``device: {model: H100-SXM}``): times estimated by a
    roofline from the model's FLOPs and bytes (counted on the meta device: no memory, no GPU),
    cached like a measured one, and whether it came from the cache (found without importing
    torch)."""
    say = progress or (lambda _m: None)
    store = store if store is not None else ProfileStore()
    dm = scenario.device_model()
    specs = _profile_compressors(scenario)
    key = profile_key({
        "model": scenario.model.model_dump(), "batch_size": scenario.batch_size,
        "device_model": dm.model_dump(mode="json"), "compressors": specs,
        "seed": scenario.seed, "cost_model": COST_MODEL_VERSION, "torch": torch_version(),
        "nsi_compile": compile_mode()})
    if not refresh and (cached := store.get(key, on_invalid=say)) is not None:
        say(f"estimated profile {key} from the cache ({store.path(key)})")
        return cached, True
    m = scenario.model
    from ..profile.estimate import estimate_profile  # lazy: imports torch

    say(f"estimating {m.name} (batch {scenario.batch_size}) on {dm.name} (a device model)")
    prof = estimate_profile(m.name, m.num_classes, m.input_size, scenario.batch_size, specs, dm,
                            seed=scenario.seed, progress=say)
    prof = prof.model_copy(update={"key": key, "compressor_specs": specs})
    store.put(prof)
    return prof, False


#: how a user keeps an unstable profile (said wherever one is measured again)
PIN_HINT = "--pin-profile or `profile: {pin: true}` reuses it as it is"

#: (key, created) of the profiles this process measured: reused here even when unstable
#: (measured again seconds later on the same machine, it would be no steadier)
_MEASURED_HERE: set[tuple[str, str]] = set()


def _measured_here(prof: Profile) -> bool:
    return (prof.key, prof.created) in _MEASURED_HERE and prof.settings.get("pid") == os.getpid()


def _unstable_text(prof: Profile) -> str:
    return "; ".join(map(str, unstable_quantities(prof)))


def _say_reused(prof: Profile, say: Progress, where: str, why: str) -> None:
    """Say where the reused ``prof`` comes from, who measured it (host, pid, when, load,
    torch threads, discarded samples) and how stable it is, then warn about a busy machine
    and an unstable profile (``why``: why it is reused all the same)."""
    say(f"profile {prof.key or '(no key)'} {where}")
    say(f"  {provenance_text(prof)}; {quality_text(prof)}")
    if busy := busy_warning(prof):
        say(f"warning: {busy}")
    if unstable := _unstable_text(prof):
        say(f"warning: profile {prof.key or '(no key)'} is unstable ({unstable}) and {why}: "
            f"reused as it is, its times are uncertain")


def _reuse_cached(prof: Profile, say: Progress, where: str, pinned: bool) -> bool:
    """Whether the cached ``prof`` is reused, said either way: a stable one is (with who
    measured it); an unstable one only when pinned or measured by this process, else one
    line says it is measured again, what is unstable and how to pin."""
    unstable = _unstable_text(prof)
    if unstable and not pinned and not _measured_here(prof):
        say(f"note: cached profile {prof.key} is unstable ({unstable}): measuring it again "
            f"({PIN_HINT})")
        return False
    why = ("pinned (--pin-profile or profile.pin)" if pinned
           else "was measured by this process moments ago")
    _say_reused(prof, say, where, why)
    return True


def profile_from_file(scenario: Scenario, path: str, progress: Progress | None = None) -> Profile:
    """A profile measured elsewhere, checked against the scenario (model, input, batch,
    compressors and their parameters), said with who measured it and how stable it is (an
    unstable one is warned about: it cannot be measured again); torch-free."""
    prof = load_profile(path)
    check_matches(scenario, prof, _profile_compressors(scenario), str(path))
    if progress:
        where = ", ".join(sorted({d.device_name or d.device for d in prof.devices}))
        _say_reused(prof, progress, f"from {path}: {where}"
                    + (f", torch {prof.torch_version}" if prof.torch_version else ""),
                    "came from a file, so it cannot be measured again here")
    return prof


def profile_scenario(
    scenario: Scenario,
    store: ProfileStore | None = None,
    refresh: bool = False,
    progress: Progress | None = None,
    profile_file: str | None = None,
    pin: bool = False,
) -> tuple[Profile, bool]:
    """The scenario's profile and whether it was reused (from the cache or a file).

    ``profile_file`` (or the scenario's ``profile.file``): simulate that profile, measured
    elsewhere, after checking it matches. ``store=None`` uses the default cache folder;
    ``refresh`` measures again even if cached.

    A cached profile is reused, said with who measured it and its quality
    (:mod:`rsdgc_sim.profile.quality`), unless it is *unstable* (a spread above its
    target): then it is measured again, and one line says why, unless ``pin`` (or the
    scenario's ``profile.pin``) keeps it, with a warning. One this process measured is
    reused as it is; so is one another process measured while this one waited for it.
    A profile file is never measured again (only warned about); estimates have no spread.
    Pinning is not part of the cache key. The measuring process's pid is recorded in
    ``settings["pid"]``.
    """
    if (path := profile_file or scenario.profile.file) is not None:
        return profile_from_file(scenario, str(path), progress), True
    if scenario.device_model() is not None:
        return estimated_profile(scenario, store, refresh, progress)
    # lazy: imports torch
    from ..profile.devices import resolve_devices
    from ..profile.measure import measure_profile

    say = progress or (lambda _m: None)
    pinned = pin or scenario.profile.pin
    store = store if store is not None else ProfileStore()
    devices = resolve_devices(scenario.device)
    key = profile_key(profile_inputs(scenario, devices))
    seen = None if refresh else store.get(key, on_invalid=say)
    if seen is not None and _reuse_cached(seen, say, f"from the cache ({store.path(key)})",
                                          pinned):
        return seen, True
    # one run measures a key at a time: another that misses it meanwhile waits here, then
    # finds this one's profile (the lock dies with its process, crash included)
    with store.lock(key, on_wait=say):
        # measured by another run while this one waited? (an invalid entry was reported
        # above); reused even if unstable: measured just now, again it would be no steadier
        if not refresh and (cached := store.get(key, on_invalid=lambda _m: None)) is not None:
            if cached != seen:
                _say_reused(cached, say, f"from the cache ({store.path(key)}), measured by "
                            f"another run while this one waited",
                            "was measured by another run just now")
                return cached, True
        specs = _profile_compressors(scenario)
        m = scenario.model
        check_fits(m.name, m.num_classes, m.input_size, scenario.batch_size, states=2 * len(specs))
        say(f"profiling {m.name} (batch {scenario.batch_size}) on {', '.join(devices)}")
        prof = measure_profile(
            m.name, m.num_classes, m.input_size, scenario.batch_size, devices, specs,
            warmup=scenario.profile.warmup,
            min_iterations=scenario.profile.iterations,
            seed=scenario.seed,
            progress=say,
        )
        # a compile that failed while measuring made this an eager profile: file it as one
        key = profile_key(profile_inputs(scenario, devices))
        prof = prof.model_copy(update={"key": key, "compressor_specs": specs,
                                       "settings": {**prof.settings, "pid": os.getpid()}})
        store.put(prof)
        _MEASURED_HERE.add((prof.key, prof.created))
    if unstable := unstable_quantities(prof):
        said = "; ".join(map(str, unstable))
        say(f"note: profile {key} is unstable ({said}): "
            + ("pinned, so the next run reuses it" if pinned else
               f"the next run measures it again ({PIN_HINT})"))
    return prof, False
