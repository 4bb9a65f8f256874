"""The Profile: everything the simulator needs to know about one model on one set of devices.

Plain data (pydantic), JSON in and out, no torch: a saved profile is enough to simulate
anywhere. Times are seconds, sizes bytes. ``PROFILE_VERSION`` changes whenever the meaning
of a field changes; loading a profile of another version is an error, not a guess.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..strict import Strict as _Strict

#: 2: payloads measured after the compressors' density warm-up (``wire_bytes`` is the steady
#: state's, 1 kept the warm-up's); ``DeviceProfile.nsi_compile``, ``estimated``, ``source``,
#: ``spread``, ``samples`` and ``Profile.compressor_specs``, ``settings``, ``machine`` added
PROFILE_VERSION = 2

#: the longest time a profile may hold, in seconds (a day: no training step or compression
#: measured or estimated takes longer; 1e308 would overflow the simulator's sums)
MAX_TIME_S = 86_400.0
#: the most elements (or bytes) a profile may count: 2^53, past which float64 sums lose
#: whole units (10^400 bytes overflowed the simulator)
MAX_COUNT = 2**53

Seconds = Annotated[float, Field(ge=0, le=MAX_TIME_S)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class TensorInfo(_Strict):
    """One trainable parameter, in the model's registration order."""

    name: str
    shape: list[Count]
    numel: Count
    #: bytes per element: 1 to 16 (complex128)
    dtype_bytes: int = Field(default=4, ge=1, le=16)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype_bytes


class TensorCost(_Strict):
    """What compressing one gradient tensor costs on one device."""

    compress_s: Seconds
    #: one payload -> a new dense tensor (allocation + scatter)
    decompress_s: Seconds
    #: adding one more payload into an existing dense buffer (scatter-add): aggregating the
    #: p payloads of a sparse all-gather costs decompress_s + (p - 1) * accumulate_s
    accumulate_s: Seconds = 0.0
    #: bytes a collective moves for this tensor's payload (the values, plus int32 indices when
    #: all-gathered), at the compressor's steady-state density (after any warm-up)
    wire_bytes: Count
    #: True when the payload is sent by all-gather ((index, value) pairs of its own);
    #: False when it is allreduced: a dense tensor (possibly of another dtype), or values at
    #: indices every rank shares (the payload's ``needs_allgather``).
    sparse: bool
    #: a low-rank tensor (``powersgd``): the bytes of ``wire_bytes`` all-reduced in the second
    #: round (Q, m x r values), after the first round (P, n x r) and ``middle_s``; 0 for
    #: every other tensor (one round)
    q_bytes: Count = 0
    #: a low-rank tensor's work between its two rounds, on each worker (orthogonalize P,
    #: ``Q = M^T P``); 0 for every other tensor
    middle_s: Seconds = 0.0


class DeviceProfile(_Strict):
    """Measured times of one device (one simulated worker takes one device's times)."""

    device: str
    device_name: str = ""
    forward_s: Seconds
    backward_s: Seconds
    optimizer_s: Seconds
    #: per parameter name: seconds from the start of backward until its gradient is ready
    grad_ready_s: dict[str, Seconds]
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
    spread: dict[str, Seconds] = Field(default_factory=dict)
    #: timed iterations behind each quantity of ``spread``
    samples: dict[str, Count] = Field(default_factory=dict)
    #: timed iterations discarded as preempted (a thread of the profiler waited for a CPU,
    #: :mod:`rsdgc_sim.profile.sampling`), keyed as ``spread``; not among ``samples``
    discarded: dict[str, Count] = Field(default_factory=dict)


class Profile(_Strict):
    version: int = PROFILE_VERSION
    key: str = ""
    model: str
    #: 0 where a profile is not of a zoo model (synthetic profiles)
    num_classes: Count
    input_size: Count
    batch_size: Count
    params: Count
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
