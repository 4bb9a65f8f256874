"""Data for virtual-worker training, chosen by name in :func:`load_dataset`:

* ``synthetic``: a learnable task made from a seed (class templates plus noise);
* ``synthetic_rs``: remote-sensing-like scenes made from a seed, of settable difficulty
  (:mod:`rsdgc_sim.train.synthetic_rs`);
* ``fashion_mnist``: Fashion-MNIST from Debian's package files
  (:mod:`rsdgc_sim.train.fashion_mnist`);
* a folder path: one sub-folder of images per class, as NWPU-RESISC45, UC Merced or AID
  unpack (:mod:`rsdgc_sim.train.image_folder`).

Nothing is downloaded. Every data set has ``len(data)``, ``data.batch(indices)`` -> ``(x
float32 [n, 3, s, s], y int64 [n])``, ``data.classes`` and ``data.test_indices`` (its own
test split, or None: the trainer then holds out ``train.test_fraction``), so shards and
splits are index lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from ..scenario.validate import BUILTIN_DATASETS
from .fashion_mnist import CLASSES, FashionMNISTData
from .image_folder import IMAGE_SUFFIXES, ImageFolderData
from .synthetic_rs import DEFAULT_DIFFICULTY, SyntheticRSData

__all__ = ["DATASETS", "IMAGE_SUFFIXES", "ImageFolderData", "SyntheticData", "load_dataset"]

#: the data sets known by name; any other ``train.dataset`` is a folder path
DATASETS = BUILTIN_DATASETS  # one list, torch-free (loading a scenario resolves folders)


@dataclass
class SyntheticData:
    """Class ``c`` is a fixed random ``3 x s x s`` template times ``signal`` plus unit
    Gaussian noise; every sample is a function of (seed, index), so shards never overlap."""

    num_classes: int
    input_size: int
    samples: int
    seed: int = 0
    signal: float = 0.5
    classes: list[str] = field(init=False)
    test_indices: torch.Tensor | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self._templates = torch.randn(self.num_classes, 3, self.input_size, self.input_size, generator=g)
        self._y = torch.randint(0, self.num_classes, (self.samples,), generator=g)
        self.classes = [f"class{c}" for c in range(self.num_classes)]

    def __len__(self) -> int:
        return self.samples

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self._y[indices]
        noise = torch.stack([
            torch.randn(3, self.input_size, self.input_size,
                        generator=torch.Generator().manual_seed(self.seed * 1_000_003 + int(i) + 1))
            for i in indices
        ])
        return self._templates[y] * self.signal + noise, y


def load_dataset(spec: str, num_classes: int, input_size: int, samples: int, seed: int, *,
                 difficulty: float | None = None, data_dir: str | Path | None = None,
                 progress: Callable[[str], None] | None = None):
    """The data set ``spec`` names (one of :data:`DATASETS`, else a folder path) for a model
    of ``num_classes`` classes at ``input_size``. ``samples`` and ``seed`` make the synthetic
    ones; ``difficulty`` (synthetic_rs only) defaults to
    :data:`~rsdgc_sim.train.synthetic_rs.DEFAULT_DIFFICULTY`; ``data_dir`` (fashion_mnist
    only) is the folder of its files; ``progress`` hears about long checks (a folder's
    images)."""
    if difficulty is not None and spec != "synthetic_rs":
        raise ConfigError(f"train.difficulty applies to dataset synthetic_rs only, not {spec!r}")
    if data_dir is not None and spec != "fashion_mnist":
        raise ConfigError(f"train.data_dir applies to dataset fashion_mnist only, not {spec!r}")
    if spec == "synthetic":
        return SyntheticData(num_classes, input_size, samples, seed=seed)
    if spec == "synthetic_rs":
        return SyntheticRSData(num_classes, input_size, samples, seed=seed,
                               difficulty=DEFAULT_DIFFICULTY if difficulty is None else difficulty)
    if spec == "fashion_mnist":
        if num_classes != len(CLASSES):
            raise ConfigError(f"train.dataset fashion_mnist has {len(CLASSES)} classes, "
                              f"model.num_classes is {num_classes}")
        return FashionMNISTData(input_size, data_dir)
    data = ImageFolderData(spec, input_size, progress=progress)
    if len(data.classes) != num_classes:
        raise ConfigError(
            f"train.dataset: {spec!r} has {len(data.classes)} classes, model.num_classes is {num_classes}")
    return data
