"""Virtual-worker training: data, shards, determinism, and the `train` command (learning, and
top-k's bytes against dense: tests/test_compress_convergence.py, on its runs)."""

import json
import re

import pytest
import torch
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.errors import ConfigError
from rsdgc_sim.train import ImageFolderData, SyntheticData, load_dataset, train_virtual
from rsdgc_sim.train.virtual import split


def test_shards_are_disjoint_and_exclude_the_test_set():
    """The split holds out test_fraction and deals the rest to workers without overlap."""
    shards, test = split(103, 4, 0.2, seed=3)
    seen = torch.cat([*shards, test])
    assert len(test) == 21 and sorted(seen.tolist()) == list(range(103))
    assert [len(s) for s in shards] == [21, 21, 20, 20]
    again, test2 = split(103, 4, 0.2, seed=3)
    assert torch.equal(test, test2) and all(torch.equal(a, b) for a, b in zip(shards, again, strict=True))


def test_synthetic_samples_depend_only_on_seed_and_index():
    """The same index gives the same sample whatever batch it is read in."""
    d = SyntheticData(3, 8, 50, seed=1)
    x1, y1 = d.batch(torch.tensor([4, 7]))
    x2, y2 = d.batch(torch.tensor([7]))
    assert torch.equal(x1[1], x2[0]) and y1[1] == y2[0]
    assert not torch.equal(x1[0], x1[1])


def test_same_seed_same_result():
    """Two runs with the same seed give bit-identical accuracy and loss."""
    d = SyntheticData(4, 12, 400, seed=0)
    kw = dict(workers=2, batch_size=8, steps=5, data=d, seed=0)
    a = train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.05}, **kw)
    b = train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.05}, **kw)
    assert (a.final_accuracy, a.final_loss) == (b.final_accuracy, b.final_loss)


def _images(root, classes, per_class, size=20):
    from PIL import Image

    for c in range(classes):
        folder = root / f"c{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (size, size + 4), color=(40 * c, 10 * i, 200)).save(folder / f"{i}.png")


def test_image_folder_reads_classes_and_resizes(tmp_path):
    """One sub-folder per class; images come back resized, normalised, labelled by folder."""
    _images(tmp_path, 3, 2)
    (tmp_path / "c0" / "notes.txt").write_text("not an image")
    d = load_dataset(str(tmp_path), num_classes=3, input_size=8, samples=0, seed=0)
    assert isinstance(d, ImageFolderData) and d.classes == ["c0", "c1", "c2"] and len(d) == 6
    x, y = d.batch(torch.tensor([0, 5]))
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [0, 2]
    red = (0 / 255 - 0.485) / 0.229
    assert x[0, 0, 0, 0].item() == pytest.approx(red, abs=1e-6)


def test_image_folder_errors(tmp_path):
    """A class count that does not match the model, or a folder without classes, is an error."""
    _images(tmp_path, 2, 1)
    with pytest.raises(ConfigError, match="has 2 classes, model.num_classes is 5"):
        load_dataset(str(tmp_path), 5, 8, 0, 0)
    with pytest.raises(ConfigError, match="needs one sub-folder per class"):
        load_dataset(str(tmp_path / "c0"), 2, 8, 0, 0)
    with pytest.raises(ConfigError, match="is not a folder"):
        load_dataset(str(tmp_path / "nope"), 2, 8, 0, 0)


def test_cli_train_writes_train_json(tiny, write_scenario, tmp_path):
    """`rsdgc-sim train` prints a table and writes train.json with the delta vs dense."""
    tiny["train"] = {"samples": 200, "workers": 2, "steps": 3}
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["train", str(write_scenario(tiny)), "--out", str(out), "--steps", "2"])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "train.json").read_text())
    assert [(x["compressor"], x["workers"], x["steps"]) for x in data["runs"]] == [
        ("none", 2, 2), ("topk(density=0.1)", 2, 2)]
    assert data["runs"][0]["accuracy_delta_vs_dense"] == 0.0


def test_cli_train_bad_dataset(tiny, write_scenario, tmp_path):
    """A dataset folder that does not exist is one line and exit 2."""
    tiny["train"] = {"dataset": str(tmp_path / "missing")}
    r = CliRunner().invoke(cli, ["train", str(write_scenario(tiny))])
    assert r.exit_code == 2 and r.stderr.startswith("error: train.dataset:")


def _step_messages(messages, label="topk", workers=2, steps=4):
    pattern = re.compile(rf"{label}, {workers} workers: step (\d+)/{steps}, loss ([\d.e+-]+), (~\d+ s|<1 s) left")
    return [pattern.fullmatch(m) for m in messages if ": step " in m]


def test_train_progress_reports_steps_loss_and_eta():
    """Without throttling (progress_every_s=0) every step says `topk, 2 workers: step
    3/4, loss 1.39, ~1 s left` as a Transient message; the first step's loss is the mean
    training loss of the workers' first batches on the initial model."""
    from rsdgc_sim.models import create
    from rsdgc_sim.progress import Transient

    d = SyntheticData(4, 12, 200, seed=0)
    said: list[str] = []
    train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.1}, 2, 8, 4, d, seed=0,
                  label="topk", progress=said.append, progress_every_s=0)
    got = _step_messages(said)
    assert all(got) and [int(m[1]) for m in got] == [1, 2, 3, 4]
    assert all(isinstance(m, Transient) for m in said if ": step " in m)
    net = create("cnn_small", num_classes=4, input_size=12, seed=0)
    shards, _ = split(len(d), 2, 0.2, 0)
    with torch.no_grad():
        first = sum(float(torch.nn.functional.cross_entropy(net(x), y))
                    for x, y in (d.batch(s[:8]) for s in shards)) / 2
    assert float(got[0][2]) == pytest.approx(first, rel=1e-2)


def test_train_progress_is_throttled():
    """With progress_every_s far above the run's length, no step message at all; the
    evaluation messages stay."""
    d = SyntheticData(4, 12, 200, seed=0)
    said: list[str] = []
    train_virtual("cnn_small", 4, 12, {"name": "none"}, 2, 8, 4, d, eval_every=2, label="none",
                  progress=said.append, progress_every_s=1e9)
    assert said == [f"none, 2 workers: step 2/4, test accuracy {s.split()[-1]}" for s in said]
    assert len(said) == 1


def _interrupt_after(step: int):
    """A progress callback that stops training (as Ctrl-C would) once it reports ``step``."""
    def say(message):
        m = re.search(r": step (\d+)/", str(message))
        if m and int(m.group(1)) >= step:
            raise KeyboardInterrupt
    return say


@pytest.mark.parametrize("compressor", [{"name": "randomk", "density": 0.05}, {"name": "nsi", "density": 0.05}])
def test_killed_training_resumes_to_the_same_result(tmp_path, compressor):
    """A run stopped while reporting step 7 of 12 (checkpoint after every step, saved after
    the report) and started again resumes after step 6 and ends bit-identical to an uninterrupted run: model, optimizer momentum, compressor
    residuals and generators, per-worker random streams and the bytes count all come back."""
    d = SyntheticData(4, 12, 300, seed=2)
    kw = dict(workers=3, batch_size=8, steps=12, data=d, seed=4, eval_every=4)
    whole = train_virtual("cnn_small", 4, 12, compressor, **kw)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_virtual("cnn_small", 4, 12, compressor, **kw, checkpoint=ckpt, checkpoint_every_s=0,
                      progress=_interrupt_after(7), progress_every_s=0)
    resumed = train_virtual("cnn_small", 4, 12, compressor, **kw, checkpoint=ckpt)
    assert resumed.resumed_from == 6
    assert (resumed.final_accuracy, resumed.final_loss, resumed.history, resumed.bytes_sent_per_worker) == (
        whole.final_accuracy, whole.final_loss, whole.history, whole.bytes_sent_per_worker)


def test_checkpoint_of_other_settings_is_not_used(tmp_path):
    """A checkpoint saved with other arguments (here: another learning rate) is replaced, not
    resumed: the run starts over and says so."""
    d = SyntheticData(4, 12, 300, seed=2)
    kw = dict(workers=2, batch_size=8, steps=4, data=d, checkpoint=tmp_path / "c.pt")
    train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.1}, lr=0.1, **kw)
    said = []
    again = train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.1}, lr=0.05,
                          progress=said.append, **kw)
    assert again.resumed_from == 0
    assert any("from other settings; starting over" in str(m) for m in said)
    same = train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.1}, lr=0.05, **kw)
    assert same.resumed_from == 4 and same.final_accuracy == again.final_accuracy


def test_bytes_sent_count_compressed_steps_only():
    """bytes_sent_per_worker is the steady state: the mean payload of the compressed steps,
    without the two dense warm-up steps (top-k at density 0.1 of cnn_small: 10% of the values
    plus int32 indices, per tensor ``k_for``: rounded, at least one)."""
    from rsdgc_sim.compress.select import k_for
    from rsdgc_sim.models import create

    d = SyntheticData(4, 12, 300, seed=2)
    r = train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.1}, 2, 8, 5, d)
    net = create("cnn_small", num_classes=4, input_size=12, seed=0)
    expected = sum(8 * k_for(p.numel(), 0.1) for p in net.parameters())
    assert r.bytes_sent_per_worker == expected
    dense = train_virtual("cnn_small", 4, 12, {"name": "none"}, 2, 8, 3, d)
    assert dense.bytes_sent_per_worker == 4 * sum(p.numel() for p in net.parameters())


def test_engine_state_round_trip_keeps_per_worker_random_streams():
    """VirtualDDP.state_dict/load_state_dict carry each worker's random stream: a model with
    dropout continued from a saved state (in a fresh engine) gives the same gradients as the
    engine that never stopped."""
    import copy

    from test_train_equivalence import BNDropout

    from rsdgc_sim.compress import create
    from rsdgc_sim.train.engine import VirtualDDP
    from rsdgc_sim.train.virtual import cross_entropy

    torch.manual_seed(0)
    net = BNDropout()
    g = torch.Generator().manual_seed(1)
    batches = [[(torch.randn(6, 3, 12, 12, generator=g), torch.randint(0, 10, (6,), generator=g))
                for _ in range(3)] for _ in range(5)]
    comp = create("randomk", density=0.1)
    a = VirtualDDP(net, comp, 3, seed=2)
    for b in batches[:3]:
        a.iterate(b, cross_entropy)
    saved, net_b = copy.deepcopy(a.state_dict()), copy.deepcopy(net)
    b_engine = VirtualDDP(net_b, comp, 3, seed=99)  # other seed: everything must come from the state
    b_engine.load_state_dict(saved)
    for batch in batches[3:]:
        a.iterate(batch, cross_entropy)
        b_engine.iterate(batch, cross_entropy)
        for p, q in zip(net.parameters(), net_b.parameters(), strict=True):
            assert torch.equal(p.grad, q.grad)


def test_checkpoint_of_other_data_is_not_used(tmp_path):
    """A checkpoint saved on other data of the same size (synthetic_rs at another difficulty)
    is replaced, not resumed: the key covers the data, not only its length."""
    easy = load_dataset("synthetic_rs", 4, 12, 200, 0, difficulty=0.1)
    hard = load_dataset("synthetic_rs", 4, 12, 200, 0, difficulty=0.9)
    kw = dict(workers=2, batch_size=8, steps=3, checkpoint=tmp_path / "c.pt")
    train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.1}, data=easy, **kw)
    said = []
    again = train_virtual("cnn_small", 4, 12, {"name": "topk", "density": 0.1}, data=hard,
                          progress=said.append, **kw)
    assert again.resumed_from == 0
    assert any("from other settings; starting over" in str(m) for m in said)


def test_a_diverging_run_is_one_line_not_nan_in_the_json(tiny, write_scenario, tmp_path):
    """train.lr 1e30: the loss turns NaN; one line naming the run and what to change, exit 2,
    no train.json (NaN used to reach the JSON writer)."""
    import time

    from tests.helpers import one_line_error

    tiny["train"] = {"dataset": "synthetic", "samples": 200, "steps": 10, "workers": [2],
                     "eval_every": 5, "lr": 1e30}
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["train", str(write_scenario(tiny)), "--out", str(out)])
    one_line_error(r, r"none, 2 workers: training diverged \(the test loss is nan after step "
                      r"5\); lower train\.lr", t0, limit_s=60)
    assert not (out / "train.json").exists()
