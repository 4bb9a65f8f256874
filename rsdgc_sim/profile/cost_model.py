"""The version of the cost model behind estimated profiles, torch-free: an estimated
profile's cache key includes it (:func:`rsdgc_sim.study.profiles.estimated_profile`), and
the key is computed without importing torch, the estimate itself
(:mod:`rsdgc_sim.profile.estimate`) with it."""

#: version of the cost model (part of an estimated profile's settings and cache key): bump
#: when the counting, the roofline or the cost table changes what an estimate gives
COST_MODEL_VERSION = 2

__all__ = ["COST_MODEL_VERSION"]
