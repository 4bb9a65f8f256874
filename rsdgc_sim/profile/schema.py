"""The Profile: everything the simulator needs to know about one model on one set of devices.

Plain data (pydantic), JSON in and out, no torch: a saved profile is enough to simulate
anywhere. Times are seconds, sizes bytes. ``PROFILE_VERSION`` changes whenever the meaning
of a field changes; loading a profile of another version is an error, not a guess.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..strict import Strict as _Strict

#: 2: payloads measured after the compressors' density warm-up (``wire_bytes`` is the steady
#: state's, 1 kept the warm-up's); ``DeviceProfile.nsi_compile``, ``estimated``, ``source``,
#: ``spread``, ``samples`` and ``Profile.compressor_specs``, ``settings``, ``machine`` added
PROFILE_VERSION = 2


class TensorInfo(_Strict):
    """One trainable parameter, in the model's registration order."""

    name: str
    shape: list[int]
    numel: int
    dtype_bytes: int = 4

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype_bytes


class TensorCost(_Strict):
    """What compressing one gradient tensor costs on one device."""

    compress_s: float = Field(ge=0)
    #: one payload -> a new dense tensor (allocation + scatter)
    decompress_s: float = Field(ge=0)
    #: adding one more payload into an existing dense buffer (scatter-add): aggregating the
    #: p payloads of a sparse all-gather costs decompress_s + (p - 1) * accumulate_s
    accumulate_s: float = Field(default=0.0, ge=0)
    #: bytes a collective moves for this tensor's payload (the values, plus int32 indices when
    #: all-gathered), at the compressor's steady-state density (after any warm-up)
    wire_bytes: int = Field(ge=0)
    #: True when the payload is sent by all-gather ((index, value) pairs of its own);
    #: False when it is allreduced: a dense tensor (possibly of another dtype), or values at
    #: indices every rank shares (the payload's ``needs_allgather``).
    sparse: bool


class DeviceProfile(_Strict):
    """Measured times of one device (one simulated worker takes one device's times)."""

    device: str
    device_name: str = ""
    forward_s: float = Field(ge=0)
    backward_s: float = Field(ge=0)
    optimizer_s: float = Field(ge=0)
    #: per parameter name: seconds from the start of backward until its gradient is ready
    grad_ready_s: dict[str, float]
    #: per compressor label, per parameter name: the compression cost
    compression: dict[str, dict[str, TensorCost]]
    #: the NSI score's torch.compile mode while compression was measured, as
    #: ``rsdgc_sim.compress.neighborhood.compile_mode()`` reports it (``on``, ``off``,
    #: ``auto``, or ``eager (compile failed: ...)``); empty when not measured
    nsi_compile: str = ""
    #: True when the times are estimated from a device model (roofline), not measured
    estimated: bool = False
    #: how the times were obtained, e.g. ``measured`` or ``estimated: H100-SXM (roofline,
    #: efficiency 0.5)``
    source: str = "measured"
    #: spread of each measured quantity: interquartile range in seconds, keyed
    #: ``forward_s``, ``backward_s``, ``optimizer_s`` and ``compress:<label>`` (one
    #: iteration's compression of all tensors); empty for estimates
    spread: dict[str, float] = Field(default_factory=dict)
    #: timed iterations behind each quantity of ``spread``
    samples: dict[str, int] = Field(default_factory=dict)
    #: timed iterations discarded as preempted (a thread of the profiler waited for a CPU,
    #: :mod:`rsdgc_sim.profile.sampling`), keyed as ``spread``; not among ``samples``
    discarded: dict[str, int] = Field(default_factory=dict)


class Profile(_Strict):
    version: int = PROFILE_VERSION
    key: str = ""
    model: str
    num_classes: int
    input_size: int
    batch_size: int
    params: int
    tensors: list[TensorInfo]
    devices: list[DeviceProfile]
    torch_version: str = ""
    host: str = ""
    created: str = ""
    #: per compressor label: ``{"name": ..., **params}`` as profiled (what a scenario that
    #: reuses this profile must ask for)
    compressor_specs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: how it was measured (warm-up, iterations, time budget, threads, seed) or estimated
    settings: dict[str, Any] = Field(default_factory=dict)
    #: the machine it was measured on (CPU model, cores, OS)
    machine: str = ""

    @property
    def dense_bytes(self) -> int:
        """Bytes of the full fp32 gradient."""
        return sum(t.nbytes for t in self.tensors)

    def compressors(self) -> list[str]:
        return list(self.devices[0].compression) if self.devices else []
