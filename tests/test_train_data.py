"""Data sets for virtual-worker training: Fashion-MNIST's idx files, the synthetic
remote-sensing scenes, image folders, and their scenario fields."""

from __future__ import annotations

import gzip
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import one_line_error

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.scenario.load import scenario_from_dict
from rsdgc_sim.train import fashion_mnist as fm
from rsdgc_sim.train import load_dataset
from rsdgc_sim.train.image_folder import find_corrupt
from rsdgc_sim.train.synthetic_rs import CLASSES as RS_CLASSES
from rsdgc_sim.train.synthetic_rs import DEFAULT_DIFFICULTY, SyntheticRSData, render

HAVE_FASHION_MNIST = all((fm.DEFAULT_DIR / n).is_file() for pair in fm.FILES.values() for n in pair)
needs_fashion_mnist = pytest.mark.skipif(
    not HAVE_FASHION_MNIST,
    reason=f"Fashion-MNIST is not in {fm.DEFAULT_DIR} (as root: apt-get install dataset-fashion-mnist)")


# ---------------------------------------------------------------- Fashion-MNIST idx files

def _idx(path: Path, array: np.ndarray, magic: bytes | None = None, cut: int = 0) -> Path:
    """Write ``array`` (uint8) as a gzip idx file; ``magic`` replaces the first 4 bytes,
    ``cut`` drops that many bytes from the end."""
    head = magic or bytes([0, 0, 0x08, array.ndim])
    raw = head + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw[:len(raw) - cut]))
    return path


def _tiny_fashion(folder: Path, train: int = 4, test: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Four idx files of ``train`` + ``test`` 28x28 images; returns (images, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = train + test
    images = (np.arange(n * 28 * 28) * 7 % 256).astype(np.uint8).reshape(n, 28, 28)
    labels = np.array([9, 0, 3, 7, 1, 2][:n], dtype=np.uint8)
    _idx(folder / "train-images-idx3-ubyte.gz", images[:train])
    _idx(folder / "train-labels-idx1-ubyte.gz", labels[:train])
    _idx(folder / "t10k-images-idx3-ubyte.gz", images[train:])
    _idx(folder / "t10k-labels-idx1-ubyte.gz", labels[train:])
    return images, labels


def test_idx_files_parse_exactly(tmp_path):
    """The idx reader returns the bytes after the header, in the header's shape; the data set
    puts the t10k images after the training ones, as its test split, and normalises each
    pixel v to (v / 255 - 0.2860) / 0.3530 in all three channels at 28 px."""
    images, labels = _tiny_fashion(tmp_path)
    assert np.array_equal(fm.read_idx(tmp_path / "train-images-idx3-ubyte.gz", 3), images[:4])
    assert fm.read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 1).tolist() == [1, 2]
    d = fm.FashionMNISTData(28, tmp_path, sizes=(4, 2))
    assert len(d) == 6 and d.test_indices.tolist() == [4, 5]
    assert d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot"
    x, y = d.batch(torch.tensor([5, 0]))
    assert x.dtype == torch.float32 and x.shape == (2, 3, 28, 28) and y.tolist() == [2, 9]
    want = (torch.from_numpy(images[[5, 0]]).float() / 255 - 0.2860) / 0.3530
    assert torch.equal(x[:, 0], want) and torch.equal(x[:, 1], want) and torch.equal(x[:, 2], want)
    x32, _ = d.batch(torch.tensor([1]))
    d32 = fm.FashionMNISTData(32, tmp_path, sizes=(4, 2))
    assert d32.batch(torch.tensor([1]))[0].shape == (1, 3, 32, 32) and x32.shape == (1, 3, 28, 28)


@pytest.mark.parametrize("damage, message", [
    (dict(magic=b"\x00\x00\x08\x01"), "not an idx file of unsigned bytes with 3 dimension"),
    (dict(magic=b"\x00\x00\x0d\x03"), "not an idx file"),   # float elements
    (dict(cut=5), "holds 3131 data bytes, its header says 4 x 28 x 28 = 3136"),
    (dict(cut=3140), "truncated"),
])
def test_corrupt_idx_is_an_error_naming_the_file(tmp_path, damage, message):
    """A wrong magic, a wrong element type, or data shorter than the header says is a
    ConfigError that names the file."""
    images, _ = _tiny_fashion(tmp_path)
    bad = _idx(tmp_path / "train-images-idx3-ubyte.gz", images[:4], **damage)
    with pytest.raises(ConfigError, match=message) as e:
        fm.FashionMNISTData(28, tmp_path, sizes=(4, 2))
    assert str(bad) in str(e.value)


def test_not_gzip_and_wrong_count_are_errors(tmp_path):
    """A file that is not gzip, or a split of the wrong size, is an error naming the file."""
    _tiny_fashion(tmp_path)
    with pytest.raises(ConfigError, match="holds images 4 x 28 x 28, expected 60000"):
        fm.FashionMNISTData(28, tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"plain bytes")
    with pytest.raises(ConfigError, match="cannot read .*t10k-labels-idx1-ubyte.gz"):
        fm.FashionMNISTData(28, tmp_path, sizes=(4, 2))


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    """Missing files name themselves and the folder; the default folder's message says
    which Debian package installs them."""
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte.gz, .* not found in .*; put them there"):
        load_dataset("fashion_mnist", 10, 28, 0, 0, data_dir=tmp_path)
    monkeypatch.setattr(fm, "DEFAULT_DIR", tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", 10, 28, 0, 0)


def test_fashion_mnist_needs_ten_classes(tmp_path):
    with pytest.raises(ConfigError, match="fashion_mnist has 10 classes, model.num_classes is 45"):
        load_dataset("fashion_mnist", 45, 28, 0, 0, data_dir=tmp_path)


@needs_fashion_mnist
def test_real_fashion_mnist_loads():
    """The package's files: 60,000 + 10,000 images, 6,000 / 1,000 per class, the official
    test set at 60000..69999, and the data set's first labels (9 Ankle boot, 0 T-shirt/top,
    ...)."""
    d = load_dataset("fashion_mnist", 10, 32, 0, 0)
    assert len(d) == 70_000 and torch.equal(d.test_indices, torch.arange(60_000, 70_000))
    assert torch.bincount(d.labels[:60_000]).tolist() == [6000] * 10
    assert torch.bincount(d.labels[60_000:]).tolist() == [1000] * 10
    assert d.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert d.labels[60_000:60_010].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    x, y = d.batch(torch.tensor([0, 60_000]))
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32 and y.tolist() == [9, 9]
    # normalised with the training set's statistics: mean ~0, std ~1 over many images
    many, _ = d.batch(torch.arange(0, 60_000, 60))
    assert abs(float(many.mean())) < 0.05 and abs(float(many.std()) - 1) < 0.05


# ---------------------------------------------------------------- synthetic_rs

def test_synthetic_rs_is_a_function_of_seed_and_index():
    """The same (seed, index) gives the same image in any batch, cached or not; another
    seed gives other images."""
    a = SyntheticRSData(8, 16, 1200, seed=3)
    x1, y1 = a.batch(torch.tensor([1100, 7, 600]))
    x2, y2 = a.batch(torch.tensor([7]))
    assert torch.equal(x1[1], x2[0]) and y1[1] == y2[0] == 7
    direct = render(3, torch.tensor([600, 1100]), 8, 16, DEFAULT_DIFFICULTY)
    assert torch.equal(a.images(torch.tensor([600, 1100])), direct)
    b = SyntheticRSData(8, 16, 1200, seed=3)
    b._cache = None  # rendered per batch
    assert torch.equal(b.batch(torch.tensor([1100, 7, 600]))[0], x1)
    other = SyntheticRSData(8, 16, 1200, seed=4).batch(torch.tensor([1100, 7, 600]))[0]
    assert all(not torch.equal(other[i], x1[i]) for i in range(3))
    assert not torch.equal(x1[0], a.batch(torch.tensor([1108]))[0][0])  # same class, other scene


def test_synthetic_rs_classes_are_balanced():
    """Labels are index mod num_classes: every class exactly as often; the classes are the
    first num_classes names."""
    d = SyntheticRSData(6, 16, 600, seed=0)
    y = d.batch(torch.arange(600))[1]
    assert y.dtype == torch.int64 and torch.bincount(y).tolist() == [100] * 6
    assert d.batch(torch.tensor([599, 13, 6]))[1].tolist() == [5, 1, 0]
    assert d.classes == RS_CLASSES[:6] and d.test_indices is None and len(d) == 600


def _nearest_mean_accuracy(difficulty: float) -> float:
    d = SyntheticRSData(8, 16, 1600, seed=0, difficulty=difficulty)
    x, y = d.batch(torch.arange(1600))
    x = x.flatten(1)
    train, test = slice(0, 800), slice(800, 1600)
    means = torch.stack([x[train][y[train] == c].mean(0) for c in range(8)])
    return float((torch.cdist(x[test], means).argmin(1) == y[test]).float().mean())


def test_difficulty_makes_classes_harder_to_tell_apart():
    """A nearest-class-mean classifier on the raw pixels does worse as difficulty grows
    (measured: 0.918 at 0, 0.463 at 0.5, 0.243 at 1; chance is 0.125). Class overlap is part
    of it: without the blend with another class's scene it would be 0.349 at 1."""
    easy, mid, hard = (_nearest_mean_accuracy(d) for d in (0.0, 0.5, 1.0))
    assert easy > 0.85 and easy > mid + 0.2 and mid > hard + 0.1 and 0.125 < hard < 0.3


def test_synthetic_rs_class_count_and_difficulty_are_checked():
    with pytest.raises(ConfigError, match=r"synthetic_rs has 8 classes \(farmland, .*\); "
                                          r"model.num_classes must be 2..8, not 10"):
        load_dataset("synthetic_rs", 10, 16, 100, 0)
    with pytest.raises(ConfigError, match=r"train.difficulty must be in \[0, 1\]"):
        load_dataset("synthetic_rs", 8, 16, 100, 0, difficulty=1.5)
    with pytest.raises(ConfigError, match="difficulty applies to dataset synthetic_rs only"):
        load_dataset("synthetic", 8, 16, 100, 0, difficulty=0.3)
    d = load_dataset("synthetic_rs", 8, 16, 100, 0)
    assert isinstance(d, SyntheticRSData) and d.difficulty == DEFAULT_DIFFICULTY


# ---------------------------------------------------------------- image folders

def _images(root: Path, classes, per_class: int = 2, size: int = 12) -> None:
    from PIL import Image

    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (size, size), color=(60 * c, 20 * i, 100)).save(folder / f"{i}.png")


def test_hidden_folders_and_files_are_not_data(tmp_path):
    """`.git`, `.ipynb_checkpoints` and other dot-folders are not classes; dot-files (and
    files without an image suffix) are not images."""
    _images(tmp_path, ["beach", "forest", ".git", ".ipynb_checkpoints"])
    (tmp_path / "beach" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (tmp_path / "beach" / "._0.png").write_bytes(b"AppleDouble junk")
    (tmp_path / "forest" / "README.txt").write_text("notes")
    d = load_dataset(str(tmp_path), 2, 8, 0, 0)
    assert d.classes == ["beach", "forest"] and len(d) == 4 and d.test_indices is None
    assert [f.name for f in d.files] == ["0.png", "1.png", "0.png", "1.png"]


def test_folder_errors_are_one_clear_message_each(tmp_path):
    """A missing folder, an empty one, a single class, and a class folder without images
    are each a ConfigError that says what is wrong."""
    with pytest.raises(ConfigError, match="is not a folder"):
        load_dataset(str(tmp_path / "missing"), 2, 8, 0, 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"needs one sub-folder per class .*; found none"):
        load_dataset(str(tmp_path / "empty"), 2, 8, 0, 0)
    _images(tmp_path / "one", ["only", ".git"])
    with pytest.raises(ConfigError, match=r"needs one sub-folder per class .*; found only 'only'"):
        load_dataset(str(tmp_path / "one"), 2, 8, 0, 0)
    _images(tmp_path / "hollow", ["a", "b"])
    (tmp_path / "hollow" / "c").mkdir()
    (tmp_path / "hollow" / "c" / ".hidden.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"class folder '.*hollow/c' holds no images"):
        load_dataset(str(tmp_path / "hollow"), 3, 8, 0, 0)


def test_corrupt_images_are_reported_with_their_paths(tmp_path):
    """Every unreadable image is found before any batch is read: the error names the first
    five paths and counts the rest."""
    _images(tmp_path, ["a", "b"], per_class=3)
    broken = tmp_path / "b" / "1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated: header only
    with pytest.raises(ConfigError, match=r"1 of 6 images cannot be read: '.*b/1.png'") as e:
        load_dataset(str(tmp_path), 2, 8, 0, 0)
    assert str(broken) in str(e.value)
    for i in range(7):
        (tmp_path / "a" / f"junk{i}.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ConfigError, match=r"8 of 13 images cannot be read: .*; and 3 more$"):
        load_dataset(str(tmp_path), 2, 8, 0, 0)


def test_an_image_with_a_good_header_but_bad_data_is_found(tmp_path):
    """A PNG whose header opens but whose pixel data is damaged (a byte of its IDAT chunk
    flipped, so its CRC fails) is found by verify()."""
    _images(tmp_path, ["a", "b"], per_class=1)
    png = tmp_path / "a" / "0.png"
    raw = bytearray(png.read_bytes())
    at = raw.index(b"IDAT") + 6
    raw[at] ^= 0xFF
    png.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match=r"1 of 2 images cannot be read: '.*a/0.png'"):
        load_dataset(str(tmp_path), 2, 8, 0, 0)


def test_image_check_reports_progress(tmp_path):
    """The check says how far it is (throttled; every file here with a zero interval)."""
    _images(tmp_path, ["a", "b"], per_class=2)
    said: list[str] = []
    files = sorted(tmp_path.glob("*/*.png"))
    assert find_corrupt(files, said.append, progress_every_s=0.0) == []
    assert said and said[-1].startswith("checking images: 4/4")


def test_cli_train_reports_a_corrupt_image_before_training(tiny, write_scenario, tmp_path, monkeypatch):
    """`rsdgc-sim train` on a folder with a corrupt image: one line naming it, exit 2, and
    no training step was run."""
    import rsdgc_sim.train as train_pkg

    _images(tmp_path / "data", ["a", "b"])
    bad = tmp_path / "data" / "a" / "0.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    monkeypatch.setattr(train_pkg, "train_virtual", lambda *a, **k: pytest.fail("training ran"))
    tiny["model"]["num_classes"] = 2
    tiny["train"] = {"dataset": str(tmp_path / "data"), "workers": 1, "steps": 1}
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["train", str(write_scenario(tiny)), "--out", str(tmp_path / "out")])
    line = one_line_error(r, r"error: train.dataset: 1 of 4 images cannot be read", t0, limit_s=60)
    assert str(bad) in line and not (tmp_path / "out" / "train.json").exists()


# ---------------------------------------------------------------- scenario fields

@pytest.mark.parametrize("train, message", [
    ({"dataset": "synthetic", "difficulty": 0.3}, "difficulty applies to dataset synthetic_rs only"),
    ({"dataset": "synthetic_rs", "difficulty": 1.5}, "difficulty"),
    ({"dataset": "synthetic_rs", "data_dir": "/tmp"}, "data_dir applies to dataset fashion_mnist only"),
    ({"dataset": ""}, "dataset"),
])
def test_scenario_rejects_misplaced_dataset_options(tiny, train, message):
    tiny["train"] = train
    with pytest.raises(ConfigError, match=message):
        scenario_from_dict(tiny)


def test_scenario_accepts_dataset_options(tiny):
    tiny["train"] = {"dataset": "synthetic_rs", "difficulty": 0.25}
    assert scenario_from_dict(tiny).train.difficulty == 0.25
    tiny["train"] = {"dataset": "fashion_mnist", "data_dir": "/data/fmnist"}
    assert scenario_from_dict(tiny).train.data_dir == "/data/fmnist"


def test_cli_train_on_synthetic_rs(tiny, write_scenario, tmp_path):
    """`rsdgc-sim train` with `dataset: synthetic_rs` and a difficulty trains and writes
    train.json."""
    tiny["model"]["num_classes"] = 8
    tiny["train"] = {"dataset": "synthetic_rs", "difficulty": 0.2, "samples": 64, "workers": 2, "steps": 2}
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["train", str(write_scenario(tiny)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    runs = json.loads((out / "train.json").read_text())["runs"]
    assert [x["compressor"] for x in runs] == ["none", "topk(density=0.1)"]


def test_schema_states_the_default_difficulty():
    """The scenario field's description gives the default the data set really uses."""
    from rsdgc_sim.scenario.model import TrainSpec

    assert TrainSpec.model_fields["difficulty"].description.endswith(f"default {DEFAULT_DIFFICULTY}")


@needs_fashion_mnist
def test_cli_train_on_fashion_mnist(tiny, write_scenario, tmp_path):
    """`rsdgc-sim train` with `dataset: fashion_mnist` evaluates on the 10,000 official test
    images."""
    tiny["compressors"] = [{"name": "none"}]
    tiny["train"] = {"dataset": "fashion_mnist", "workers": 1, "steps": 1}
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["train", str(write_scenario(tiny)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    run = json.loads((out / "train.json").read_text())["runs"][0]
    assert run["compressor"] == "none" and 0 <= run["final_accuracy"] <= 1
