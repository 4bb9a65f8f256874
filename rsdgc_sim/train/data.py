"""Data for virtual-worker training: a learnable synthetic task made from a seed, or a real
remote-sensing data set read from the user's folder (one sub-folder per class, as
NWPU-RESISC45, UC Merced or AID unpack). Nothing is downloaded.

Both give ``(x, y)`` batches by index, so shards and splits are index lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


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


class ImageFolderData:
    """``root/<class name>/<image>`` files, decoded with Pillow, resized to
    ``input_size x input_size``, scaled to [0, 1] and normalised per channel with the
    ImageNet mean and std. Images are read when a batch asks for them."""

    MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def __init__(self, root: str | Path, input_size: int):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(f"train.dataset: {str(self.root)!r} is not a folder")
        self.input_size = input_size
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        self.files: list[Path] = []
        labels: list[int] = []
        for c, name in enumerate(self.classes):
            files = sorted(f for f in (self.root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            self.files += files
            labels += [c] * len(files)
        if len(self.classes) < 2 or not self.files:
            raise ConfigError(
                f"train.dataset: {str(self.root)!r} needs one sub-folder per class (at least 2) "
                f"holding images ({', '.join(IMAGE_SUFFIXES)}); found {len(self.classes)} "
                f"folder(s) and {len(self.files)} image(s)")
        self._y = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as im:
                im = im.convert("RGB").resize((self.input_size, self.input_size), Image.BILINEAR)
                data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        except OSError as e:
            raise ConfigError(f"train.dataset: cannot read image {str(path)!r}: {e}") from None
        x = data.view(self.input_size, self.input_size, 3).permute(2, 0, 1).float() / 255.0
        return (x - self.MEAN) / self.STD

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([self._load(self.files[int(i)]) for i in indices]), self._y[indices]


def load_dataset(spec: str, num_classes: int, input_size: int, samples: int, seed: int):
    """``synthetic`` or a folder path."""
    if spec == "synthetic":
        return SyntheticData(num_classes, input_size, samples, seed=seed)
    data = ImageFolderData(spec, input_size)
    if len(data.classes) != num_classes:
        raise ConfigError(
            f"train.dataset: {spec!r} has {len(data.classes)} classes, model.num_classes is {num_classes}")
    return data
