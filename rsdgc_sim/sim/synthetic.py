"""Synthetic profiles: model-shaped Profiles with made-up, documented times.

For benchmarks, tests and what-if studies without a measured profile. Shapes are written
from the architectures (no torch): :func:`vgg19_tensors` gives torchvision's ``vgg19``
parameters (143,667,240 with 1000 classes). Times are synthetic: backward takes
``backward_s``, and a tensor's gradient is ready after the backward share of all tensors
behind it in reverse order (proportional to parameter count); top-k compression costs
``compress_s_per_element`` per element and sends ``density`` of the elements as fp32 values
plus int32 indices (1-D tensors stay dense, as the compressors do).
"""

from __future__ import annotations

import math

from ..profile.schema import DeviceProfile, Profile, TensorCost, TensorInfo

_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"]


def vgg19_tensors(num_classes: int = 1000) -> list[TensorInfo]:
    """torchvision ``vgg19`` parameters in registration order."""
    out: list[TensorInfo] = []
    cin, idx = 3, 0
    for v in _VGG19:
        if v == "M":
            idx += 1
            continue
        out.append(TensorInfo(name=f"features.{idx}.weight", shape=[v, cin, 3, 3],
                              numel=v * cin * 9))
        out.append(TensorInfo(name=f"features.{idx}.bias", shape=[v], numel=v))
        cin, idx = v, idx + 2
    for k, (i, o) in zip((0, 3, 6), ((512 * 7 * 7, 4096), (4096, 4096), (4096, num_classes)), strict=True):
        out.append(TensorInfo(name=f"classifier.{k}.weight", shape=[o, i], numel=o * i))
        out.append(TensorInfo(name=f"classifier.{k}.bias", shape=[o], numel=o))
    return out


def synthetic_profile(tensors: list[TensorInfo], *, model: str = "synthetic",
                      forward_s: float = 0.05, backward_s: float = 0.1,
                      optimizer_s: float = 0.01, density: float = 0.01,
                      compress_s_per_element: float = 1e-10,
                      decompress_s_per_element: float = 1e-10,
                      devices: int = 1, slowdown: float = 1.0) -> Profile:
    """A Profile with compressors ``none`` and ``topk`` (``density``). With ``devices > 1``
    device ``k`` is ``slowdown**k`` times slower than device 0."""
    total = sum(t.numel for t in tensors)
    devs = []
    for k in range(devices):
        s = slowdown**k
        ready, acc = {}, 0
        for t in reversed(tensors):
            acc += t.numel
            ready[t.name] = s * backward_s * acc / total
        none = {t.name: TensorCost(compress_s=0.0, decompress_s=0.0, wire_bytes=t.nbytes,
                                   sparse=False) for t in tensors}
        topk = {}
        for t in tensors:
            if len(t.shape) <= 1:
                topk[t.name] = TensorCost(compress_s=0.0, decompress_s=0.0,
                                          wire_bytes=t.nbytes, sparse=False)
            else:
                kk = max(1, math.ceil(density * t.numel))
                topk[t.name] = TensorCost(
                    compress_s=s * compress_s_per_element * t.numel,
                    decompress_s=s * decompress_s_per_element * kk,
                    accumulate_s=s * decompress_s_per_element * kk,
                    wire_bytes=8 * kk, sparse=True)
        devs.append(DeviceProfile(device=f"synthetic:{k}", forward_s=s * forward_s,
                                  backward_s=s * backward_s, optimizer_s=s * optimizer_s,
                                  grad_ready_s=ready,
                                  compression={"none": none, "topk": topk}))
    return Profile(model=model, num_classes=0, input_size=0, batch_size=1,
                   params=total, tensors=tensors, devices=devs)
