"""``fashion_mnist``: Zalando's Fashion-MNIST (MIT licence), read from the gzip idx files
Debian's ``dataset-fashion-mnist`` package installs (or the same four files in a folder of
the user's). Nothing is downloaded.

60,000 training and 10,000 test images, 28 x 28 grey, 10 classes. They stay in memory as
uint8 (70,000 x 784 bytes); a batch is converted on demand: grey to 3 channels, bilinear
resize to ``input_size``, normalised with the training set's mean and std. Indices
0..59,999 are the training images, 60,000..69,999 the official test set
(``test_indices``).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
FILES = {  # split: (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
TRAIN_SIZE, TEST_SIZE, SIDE = 60_000, 10_000, 28
#: mean and std of the training images' pixels in [0, 1]
MEAN, STD = 0.2860, 0.3530

_UBYTE = 0x08  # the idx element type of unsigned bytes


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """The uint8 array of a gzip-compressed idx file (``0x0000 08 <ndim>``, then ``ndim``
    big-endian uint32 sizes, then the bytes); ConfigError naming ``path`` when the file is not
    gzip, not idx of unsigned bytes with ``ndim`` dimensions, or shorter or longer than its
    header says."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ConfigError(f"train.dataset fashion_mnist: cannot read {str(path)!r}: {e}") from None
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ConfigError(f"train.dataset fashion_mnist: {str(path)!r} is truncated: "
                          f"{len(raw)} bytes, shorter than an idx header")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or dims != ndim:
        raise ConfigError(
            f"train.dataset fashion_mnist: {str(path)!r} is not an idx file of unsigned bytes "
            f"with {ndim} dimension(s) (magic 0x{raw[:4].hex()}, expected "
            f"0x0000{_UBYTE:02x}{ndim:02x})")
    shape = struct.unpack(f">{ndim}I", raw[4:head])
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - head != size:
        raise ConfigError(
            f"train.dataset fashion_mnist: {str(path)!r} holds {len(raw) - head} data bytes, "
            f"its header says {' x '.join(map(str, shape))} = {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def missing_message(folder: Path, missing: list[str]) -> str:
    where = (f"install Debian's package (as root: apt-get install dataset-fashion-mnist), "
             f"which puts them in {DEFAULT_DIR}" if folder == DEFAULT_DIR else
             f"put them there, or set no train.data_dir to use Debian's dataset-fashion-mnist "
             f"package ({DEFAULT_DIR})")
    return (f"train.dataset fashion_mnist: {', '.join(missing)} not found in {str(folder)!r}; "
            f"{where}")


def load_split(folder: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images [size, 28, 28], labels [size]) of ``split`` (``train`` or ``t10k``)."""
    images_file, labels_file = (folder / name for name in FILES[split])
    images, labels = read_idx(images_file, 3), read_idx(labels_file, 1)
    if images.shape != (size, SIDE, SIDE):
        raise ConfigError(f"train.dataset fashion_mnist: {str(images_file)!r} holds images "
                          f"{' x '.join(map(str, images.shape))}, expected {size} x {SIDE} x {SIDE}")
    if labels.shape != (size,):
        raise ConfigError(f"train.dataset fashion_mnist: {str(labels_file)!r} holds "
                          f"{labels.shape[0]} labels, expected {size}")
    if labels.max() >= len(CLASSES):
        raise ConfigError(f"train.dataset fashion_mnist: {str(labels_file)!r} has label "
                          f"{int(labels.max())}, expected 0..{len(CLASSES) - 1}")
    return images, labels


class FashionMNISTData:
    """The 70,000 images of ``folder`` (default :data:`DEFAULT_DIR`) at ``input_size``.

    ``sizes`` (train, test) is what the files must hold: the real data set's by default,
    smaller in tests that write their own files."""

    def __init__(self, input_size: int, folder: str | Path | None = None,
                 sizes: tuple[int, int] = (TRAIN_SIZE, TEST_SIZE)):
        folder = DEFAULT_DIR if folder is None else Path(folder)
        missing = [n for pair in FILES.values() for n in pair if not (folder / n).is_file()]
        if missing:
            raise ConfigError(missing_message(folder, missing))
        train_x, train_y = load_split(folder, "train", sizes[0])
        test_x, test_y = load_split(folder, "t10k", sizes[1])
        self.folder, self.input_size = folder, input_size
        self.classes = list(CLASSES)
        self._x = torch.from_numpy(np.concatenate([train_x, test_x]))  # uint8 [n, 28, 28]
        self._y = torch.from_numpy(np.concatenate([train_y, test_y]).astype(np.int64))
        self.test_indices: torch.Tensor | None = torch.arange(sizes[0], sizes[0] + sizes[1])

    def __len__(self) -> int:
        return len(self._y)

    @property
    def labels(self) -> torch.Tensor:
        return self._y

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._x[indices].unsqueeze(1).float() / 255.0
        if self.input_size != SIDE:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False)
        x = ((x - MEAN) / STD).expand(-1, 3, -1, -1).contiguous()
        return x, self._y[indices]
