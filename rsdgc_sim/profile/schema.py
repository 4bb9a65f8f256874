"""The Profile: everything the simulator needs to know about one model on one set of devices.

Plain data (pydantic), JSON in and out, no torch: a saved profile is enough to simulate
anywhere. Times are seconds, sizes bytes. ``PROFILE_VERSION`` changes whenever the meaning
of a field changes; loading a profile of another version is an error, not a guess.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PROFILE_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    #: bytes a collective moves for this tensor's payload (values + int32 indices, or dense)
    wire_bytes: int = Field(ge=0)
    #: True when the payload is (index, value) pairs, sent by all-gather;
    #: False when it is a dense tensor (possibly of another dtype), sent by allreduce.
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

    @property
    def dense_bytes(self) -> int:
        """Bytes of the full fp32 gradient."""
        return sum(t.nbytes for t in self.tensors)

    def compressors(self) -> list[str]:
        return list(self.devices[0].compression) if self.devices else []
