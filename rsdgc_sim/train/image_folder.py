"""A data set in the user's folder: ``root/<class name>/<image>``, as NWPU-RESISC45, UC
Merced or AID unpack. Hidden entries (names starting with ``.``: ``.git``,
``.ipynb_checkpoints``, ``.DS_Store``) are neither classes nor images; files without an image
suffix are left out. Every image is checked (Pillow opens its header and ``verify()``s it)
before training starts, and the corrupt ones are reported together with their paths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import ConfigError
from ..progress import Eta, Transient

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
#: corrupt images named in the error (the rest are counted)
SHOW_CORRUPT = 5


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def scan_folder(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """(class names, image files, labels) of ``root``; ConfigError for a missing folder, no
    class folders, a single class, or a class folder without images."""
    if not root.is_dir():
        raise ConfigError(f"train.dataset: {str(root)!r} is not a folder (a folder path, or "
                          f"one of synthetic, synthetic_rs, fashion_mnist)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and _visible(d))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ConfigError(f"train.dataset: {str(root)!r} needs one sub-folder per class (at "
                          f"least 2) holding images ({', '.join(IMAGE_SUFFIXES)}); found {found}")
    files: list[Path] = []
    labels: list[int] = []
    for c, name in enumerate(classes):
        found_files = sorted(f for f in (root / name).iterdir()
                             if _visible(f) and f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not found_files:
            raise ConfigError(f"train.dataset: class folder {str(root / name)!r} holds no images "
                              f"({', '.join(IMAGE_SUFFIXES)})")
        files += found_files
        labels += [c] * len(found_files)
    return classes, files, labels


def find_corrupt(files: list[Path], progress: Callable[[str], None] | None = None,
                 progress_every_s: float = 2.0) -> list[tuple[Path, str]]:
    """(path, reason) of every file Pillow cannot open or ``verify()``; says how far it is
    (a :class:`~rsdgc_sim.progress.Transient`) every ``progress_every_s`` seconds."""
    from PIL import Image  # lazy: PIL

    bad: list[tuple[Path, str]] = []
    eta = Eta(len(files), every_s=progress_every_s)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception as e:  # Pillow raises many types for broken files
            bad.append((path, f"{type(e).__name__}: {e}"))
        if progress is not None and eta.due():
            progress(Transient(f"checking images: {eta.update(i + 1)}"))
    return bad


class ImageFolderData:
    """``root/<class name>/<image>`` files, decoded with Pillow, resized to
    ``input_size x input_size``, scaled to [0, 1] and normalised per channel with the
    ImageNet mean and std. Images are checked at construction and read when a batch asks
    for them."""

    MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def __init__(self, root: str | Path, input_size: int,
                 progress: Callable[[str], None] | None = None, check: bool = True):
        self.root = Path(root)
        self.input_size = input_size
        self.classes, self.files, labels = scan_folder(self.root)
        self._y = torch.tensor(labels)
        self.test_indices: torch.Tensor | None = None
        if check:
            bad = find_corrupt(self.files, progress)
            if bad:
                shown = "; ".join(f"{str(p)!r} ({why})" for p, why in bad[:SHOW_CORRUPT])
                more = f"; and {len(bad) - SHOW_CORRUPT} more" if len(bad) > SHOW_CORRUPT else ""
                raise ConfigError(f"train.dataset: {len(bad)} of {len(self.files)} images "
                                  f"cannot be read: {shown}{more}")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labels(self) -> torch.Tensor:
        return self._y

    def _load(self, path: Path) -> torch.Tensor:
        from PIL import Image  # lazy: PIL

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
