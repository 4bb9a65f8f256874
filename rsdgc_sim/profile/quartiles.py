"""A profile at its lower and upper quartile: every measured time moved by half its spread.

A measured :class:`~rsdgc_sim.profile.schema.DeviceProfile` keeps each quantity's median and
its interquartile range (``spread``). :func:`quartile_profile` moves each quantity from its
median ``m`` to ``max(0, m - iqr/2)`` (``side=-1``) or ``m + iqr/2`` (``side=+1``): median
-/+ half the IQR, which are the quartiles when the spread is symmetric about the median.

* ``forward_s``, ``optimizer_s``: moved themselves;
* ``backward_s``: moved, and every ``grad_ready_s`` scaled with it (a gradient is ready
  after the same share of backward);
* ``compress:<label>`` (one iteration's compression of all tensors, whose median is the
  sum of the tensors' ``compress_s``): every tensor's ``compress_s`` of that label scaled
  by ``max(0, m -/+ iqr/2) / m``;
* ``decompress:<label>`` (one iteration's receive side at one rank, whose median is the
  sum of the tensors' ``decompress_s``, :mod:`rsdgc_sim.profile.bucket_costs`): every
  tensor's ``decompress_s`` and ``accumulate_s`` of that label scaled the same way (the
  accumulation of more ranks' payloads is taken to scatter as the receive side does).

Quantities without a spread (an estimated profile has none; a key this module does not
know) stay at their median, and so does a compression total whose median is 0. Simulating
the two profiles carries the profile's interquartile box through the simulator: it says how
much an answer moves with the measurement's scatter, not how wrong the model is.
Torch-free.
"""

from __future__ import annotations

import math

from ..errors import ProfileError
from .schema import DeviceProfile, Profile

#: spread keys of one device time each
TIME_KEYS = ("forward_s", "backward_s", "optimizer_s")


def has_spread(profile: Profile) -> bool:
    """Whether any device of ``profile`` has a non-zero spread (else both quartile
    profiles equal it)."""
    return any(v != 0 for d in profile.devices for v in d.spread.values())


def _moved(m: float, iqr: float, side: int) -> float:
    return max(0.0, m + side * iqr / 2)


def _factor(m: float, iqr: float | None, side: int) -> float:
    """What scales the parts of a total with median ``m`` to that total's quartile."""
    if iqr is None or m <= 0:
        return 1.0
    return _moved(m, iqr, side) / m


def _device_at(dev: DeviceProfile, side: int) -> DeviceProfile:
    for key, iqr in dev.spread.items():
        if not (math.isfinite(iqr) and iqr >= 0):
            raise ProfileError(f"profile device {dev.device}: spread {key!r} is {iqr!r}; an "
                               f"interquartile range is a finite number >= 0")
    update: dict = {k: _moved(getattr(dev, k), dev.spread[k], side)
                    for k in TIME_KEYS if k in dev.spread}
    if "backward_s" in update and dev.backward_s > 0:
        f = update["backward_s"] / dev.backward_s
        update["grad_ready_s"] = {n: f * t for n, t in dev.grad_ready_s.items()}
    compression = {}
    for label, costs in dev.compression.items():
        fc = _factor(sum(c.compress_s for c in costs.values()),
                     dev.spread.get(f"compress:{label}"), side)
        fd = _factor(sum(c.decompress_s for c in costs.values()),
                     dev.spread.get(f"decompress:{label}"), side)
        compression[label] = costs if fc == fd == 1.0 else {
            n: c.model_copy(update={"compress_s": fc * c.compress_s,
                                    "decompress_s": fd * c.decompress_s,
                                    "accumulate_s": fd * c.accumulate_s})
            for n, c in costs.items()}
    update["compression"] = compression
    return dev.model_copy(update=update)


def quartile_profile(profile: Profile, side: int) -> Profile:
    """``profile`` at its lower (``side=-1``) or upper (``side=+1``) quartile (see the
    module doc); a new profile, ``profile`` is left as it is. Raises ProfileError for a
    spread that is negative or not finite."""
    if side not in (-1, 1):
        raise ValueError(f"side is -1 (lower quartile) or +1 (upper), got {side!r}")
    return profile.model_copy(update={"devices": [_device_at(d, side) for d in profile.devices]})


def quartile_profiles(profile: Profile) -> tuple[Profile, Profile]:
    """``profile`` at its lower and at its upper quartile."""
    return quartile_profile(profile, -1), quartile_profile(profile, +1)


__all__ = ["TIME_KEYS", "has_spread", "quartile_profile", "quartile_profiles"]
