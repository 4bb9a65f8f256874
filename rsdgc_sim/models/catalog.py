"""The zoo's names and what a scenario may ask of each model, without torch.

Scenario loading checks model names and input sizes here, so that simulating from a saved
profile never imports torch; :mod:`.zoo` builds the networks these entries describe.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..registry import Registry

#: smallest square input of each family (their downsampling needs at least this)
CNN_SMALL_MIN_INPUT = 8
VGG_MIN_INPUT = 32
RESNET_MIN_INPUT = 32


@dataclass(frozen=True)
class ModelInfo:
    """One zoo model: its name, family, smallest input and one line of help."""

    name: str
    family: str
    min_input_size: int
    help: str


CATALOG: Registry[ModelInfo] = Registry("model")


def _add(info: ModelInfo) -> None:
    CATALOG.add(info.name, info, help=info.help)


_add(ModelInfo("cnn_small", "small", CNN_SMALL_MIN_INPUT,
               "tiny 3-conv CNN (~27k params) for tests and quick runs; "
               f"input >= {CNN_SMALL_MIN_INPUT} px"))
for _depth in (11, 13, 16, 19):
    for _bn in (False, True):
        _add(ModelInfo(f"vgg{_depth}" + ("_bn" if _bn else ""), "vgg", VGG_MIN_INPUT,
                       f"VGG-{_depth}{' with batch norm' if _bn else ''} (torchvision layout); "
                       f"input >= {VGG_MIN_INPUT} px"))
for _depth in (18, 34, 50):
    _add(ModelInfo(f"resnet{_depth}", "resnet", RESNET_MIN_INPUT,
                   f"ResNet-{_depth} (torchvision layout, "
                   f"{'Bottleneck' if _depth >= 50 else 'BasicBlock'}); "
                   f"input >= {RESNET_MIN_INPUT} px"))


def check_model(name: str, input_size: int) -> ModelInfo:
    """The catalogue entry of ``name``; UnknownNameError (listing the choices) for an unknown
    name, ConfigError for an input below the model's minimum."""
    info = CATALOG.get(name)
    if input_size < info.min_input_size:
        raise ConfigError(
            f"input_size={input_size} is too small for model {name!r} (its downsampling "
            f"needs at least {info.min_input_size} px)")
    return info


__all__ = ["CATALOG", "ModelInfo", "check_model"]
