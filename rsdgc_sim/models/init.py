"""Weight initialisation as torchvision does it, drawn from an explicit ``torch.Generator``.

Every module is built on the ``meta`` device first (so that building never draws from, or
advances, the global RNG), materialised with ``Module.to_empty`` and then initialised here:

- ``Conv2d``: Kaiming normal, ``mode="fan_out"``, ReLU gain; bias zero.
- ``BatchNorm2d``: weight one, bias zero, running statistics reset.
- ``Linear``: either ``"normal"`` (N(0, 0.01), bias zero: torchvision's VGG) or
  ``"default"`` (PyTorch's own ``Linear.reset_parameters``: U(+-1/sqrt(fan_in)) for weight
  and bias: torchvision's ResNet).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

LinearInit = Literal["normal", "default"]


@torch.no_grad()
def init_weights(
    model: nn.Module, linear: LinearInit, generator: torch.Generator | None
) -> nn.Module:
    """Initialise every parameter and buffer of ``model`` in place; return ``model``.

    ``generator=None`` draws from the default generator of the tensors' device (the global
    RNG), as torch itself does.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(
                m.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            if m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear == "normal":
                nn.init.normal_(m.weight, 0.0, 0.01, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    bound = 1.0 / math.sqrt(m.in_features)
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
    return model
