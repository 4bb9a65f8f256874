"""Model zoo: VGG-11/13/16/19 (+ batch norm), ResNet-18/34/50 and a tiny CNN, by name.

Layouts, parameter names and parameter counts match torchvision's (written for rsdgc-sim,
torchvision is not a dependency).

>>> from rsdgc_sim.models import create, count_parameters
>>> count_parameters(create("resnet18", num_classes=1000, device="meta"))
11689512
"""

from .zoo import MODELS, ModelFactory, count_parameters, create, describe, min_input_size

__all__ = ["MODELS", "ModelFactory", "count_parameters", "create", "describe", "min_input_size"]
