"""Model zoo: VGG-11/13/16/19 (+ batch norm), ResNet-18/34/50 and a tiny CNN, by name.

Layouts, parameter names and parameter counts match torchvision's (written for rsdgc-sim,
torchvision is not a dependency).

>>> from rsdgc_sim.models import create, count_parameters
>>> count_parameters(create("resnet18", num_classes=1000, device="meta"))
11689512

The names and minimum input sizes (:mod:`.catalog`) import without torch; everything else
is loaded on first use.
"""

from importlib import import_module
from typing import Any

from .catalog import CATALOG, ModelInfo, check_model

_ZOO = ("MODELS", "ModelFactory", "count_parameters", "create", "describe", "min_input_size")


def __getattr__(name: str) -> Any:
    if name in _ZOO:
        return getattr(import_module(".zoo", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CATALOG", "ModelInfo", "check_model", *_ZOO]
