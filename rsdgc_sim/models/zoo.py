"""The model zoo: models chosen by name, built and initialised reproducibly.

``create(name, num_classes, input_size, seed=..., device=...)`` builds the network on the
``meta`` device (no memory, no RNG draws), then materialises it and initialises every
parameter as torchvision does from an explicit ``torch.Generator``: the same seed gives the
same weights, and the global RNG is neither read nor advanced. ``device="meta"`` gives a
model without storage, for counting parameters or walking layers at no cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from . import resnet as _resnet
from . import small as _small
from . import vgg as _vgg
from .catalog import CATALOG
from .init import LinearInit, init_weights

DeviceLike = str | torch.device


@dataclass(frozen=True)
class ModelFactory:
    """How to build one zoo model: ``build(num_classes, in_channels)`` gives it uninitialised."""

    name: str
    build: Callable[[int, int], nn.Module]
    min_input_size: int
    linear_init: LinearInit
    help: str

    def __call__(
        self,
        num_classes: int = 45,
        input_size: int = 64,
        *,
        in_channels: int = 3,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        device: DeviceLike | None = None,
    ) -> nn.Module:
        """Build and initialise the model; see :func:`create`."""
        _check_int("num_classes", num_classes, 1, f"model {self.name!r}")
        _check_int(
            "input_size", input_size, self.min_input_size,
            f"model {self.name!r} (its downsampling needs at least {self.min_input_size} px)",
        )  # fmt: skip
        _check_int("in_channels", in_channels, 1, f"model {self.name!r}")
        if seed is not None and generator is not None:
            raise ConfigError("give either seed or generator, not both")
        if seed is not None:
            _check_int("seed", seed, 0, "a torch.Generator seed")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        target = _device(device)

        with torch.device("meta"):
            model = self.build(num_classes, in_channels)
        if target.type == "meta":
            return model
        if seed is not None:
            generator = torch.Generator(device="cpu").manual_seed(seed)
        init_device = generator.device if generator is not None else target
        model = model.to_empty(device=init_device)
        init_weights(model, self.linear_init, generator)
        return model.to(target)


def _check_int(field: str, value: object, minimum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{field}={value} is too small for {what}: need >= {minimum}")


def _device(device: DeviceLike | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from None


MODELS: Registry[ModelFactory] = Registry("model")


def _register(factory: ModelFactory) -> None:
    MODELS.add(factory.name, factory, help=factory.help)


_BUILDERS: dict[str, Callable[[str], Callable[[int, int], nn.Module]]] = {
    "small": lambda name: _small.cnn_small,
    "vgg": lambda name: (lambda n, c, d=int(name[3:5]), b=name.endswith("_bn"):
                         _vgg.vgg(d, b, n, c)),
    "resnet": lambda name: (lambda n, c, d=int(name[6:]): _resnet.resnet(d, n, c)),
}
_LINEAR_INIT: dict[str, LinearInit] = {"small": "default", "vgg": "normal", "resnet": "default"}

for _name in CATALOG.names():
    _info = CATALOG.get(_name)
    _register(ModelFactory(_name, _BUILDERS[_info.family](_name), _info.min_input_size,
                           _LINEAR_INIT[_info.family], _info.help))


def create(
    name: str,
    num_classes: int = 45,
    input_size: int = 64,
    *,
    in_channels: int = 3,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: DeviceLike | None = None,
) -> nn.Module:
    """Build zoo model ``name`` for ``num_classes`` classes and square ``input_size`` inputs.

    Weights are initialised as torchvision does (Kaiming-normal fan-out convs, unit/zero
    batch norm; VGG linears N(0, 0.01), ResNet/cnn_small linears PyTorch's default), drawn
    from ``generator``, or from a fresh CPU generator seeded with ``seed``; with neither,
    from the default generator of the device (the global RNG, as torch does). ``device``
    defaults to CPU; ``"meta"`` returns a storage-less model (nothing initialised).

    Raises UnknownNameError for an unknown ``name`` (listing the choices) and ConfigError for
    ``num_classes < 1``, an ``input_size`` below the model's minimum, both ``seed`` and
    ``generator``, or a bad device.
    """
    return MODELS.get(name)(
        num_classes, input_size, in_channels=in_channels, seed=seed, generator=generator,
        device=device,
    )


def describe(name: str) -> str:
    """One line of help for model ``name`` (for ``rsdgc-sim list``)."""
    return MODELS.help(name)


def min_input_size(name: str) -> int:
    """The smallest square input (pixels) model ``name`` accepts."""
    return MODELS.get(name).min_input_size


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (works on ``meta`` models too)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
