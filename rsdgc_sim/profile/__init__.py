"""Profiling: real forward/backward and compression timings on the devices at hand.

``rsdgc_sim.profile.schema`` (the data) never imports torch; the measuring code does, and is
imported lazily so that the simulator can load a saved profile without torch.
"""

from .schema import PROFILE_VERSION, DeviceProfile, Profile, TensorCost, TensorInfo

__all__ = ["PROFILE_VERSION", "DeviceProfile", "Profile", "TensorCost", "TensorInfo"]
