"""Whether a profile answers a scenario: the same model, input, batch and compressors (with
the same parameters). A profile measured elsewhere (``run --profile FILE``, or
``profile: {file: ...}`` in the scenario) is checked here before it is simulated, and every
difference is named. Torch-free."""

from __future__ import annotations

from typing import Any

from ..compress.params import check_compressor
from ..errors import ProfileError
from ..profile.schema import Profile
from ..scenario import Scenario


def _resolved(spec: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in spec.items() if k != "name"}
    return {"name": spec["name"], **check_compressor(spec["name"], params)}


def differences(scenario: Scenario, profile: Profile, compressors: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between ``scenario`` (with the compressors it will simulate, label ->
    spec) and ``profile``; empty when the profile answers the scenario."""
    m = scenario.model
    out = []
    for what, want, have in (("model", m.name, profile.model),
                             ("num_classes", m.num_classes, profile.num_classes),
                             ("input_size", m.input_size, profile.input_size),
                             ("batch_size", scenario.batch_size, profile.batch_size)):
        if want != have:
            out.append(f"{what} {have!r} in the profile, {want!r} in the scenario")
    have_labels = profile.compressors()
    for label, spec in compressors.items():
        if label not in have_labels:
            out.append(f"compressor {label!r} is not in the profile (it has: "
                       f"{', '.join(have_labels) or 'none'})")
        elif label in profile.compressor_specs:
            theirs = profile.compressor_specs[label]
            try:
                same = _resolved(dict(spec)) == _resolved(dict(theirs))
            except Exception:  # a spec this version does not know: not the same
                same = False
            if not same:
                out.append(f"compressor {label!r} was profiled as {theirs}, the scenario asks "
                           f"for {spec}")
    return out


def check_matches(scenario: Scenario, profile: Profile, compressors: dict[str, dict[str, Any]],
                  source: str) -> None:
    """Raise ProfileError naming ``source`` and every difference, in one line."""
    diffs = differences(scenario, profile, compressors)
    if diffs:
        raise ProfileError(f"profile {source} does not match the scenario: {'; '.join(diffs)}")


__all__ = ["check_matches", "differences"]
