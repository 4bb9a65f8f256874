"""Helpers shared by the bad-input tests (not tests themselves)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path


def one_line_error(result, pattern: str, t0: float, limit_s: float = 10.0,
                   stdout_empty: bool = False) -> str:
    """A click result that is a user's mistake done right: exit code 2 within ``limit_s`` of
    ``t0``, no traceback, exactly one short line on stderr matching ``pattern``; returns it."""
    assert time.perf_counter() - t0 < limit_s
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert len(lines[0]) < 600, lines[0][:600]
    assert re.search(pattern, lines[0]), lines[0]
    if stdout_empty:
        assert result.stdout == ""
    return lines[0]


def within(seconds: float, fn):
    """fn()'s result, or a test failure if it has not returned after ``seconds`` (a FIFO
    opened for reading blocks until a writer comes)."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # re-raised below, in the test's thread
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def launch_ranks(test_file: str, world: int, out: Path, timeout_s: float = 180.0) -> tuple[list, list]:
    """Run ``_rank_main()`` of the test module ``test_file`` on ``world`` gloo ranks on
    loopback with the project's launcher (:func:`rsdgc_sim.emulate.launcher.launch`, as
    ``python -m rank_main MODULE``: forked from a server with torch imported, since
    conftest sets ``RSDGC_SIM_FORK_RANKS``); returns what each rank saved to
    ``out/rank<r>.pt`` and the ranks' results. A rank that fails or hangs is the launcher's
    error, ending with its stderr."""
    import torch

    from rsdgc_sim.emulate.launcher import launch, python_argv

    here = str(Path(test_file).resolve().parent)
    results = launch(python_argv("rank_main", Path(test_file).stem), world,
                     env={"RSDGC_TEST_OUT": str(out), "PYTHONPATH": here},
                     timeout_s=timeout_s, workdir=out / "logs")
    return [torch.load(out / f"rank{r}.pt") for r in range(world)], results


def ranks_fixture(test_file: str, tag: str):
    """A ``ranks`` fixture for tests parametrized by ``world``: ``(world, saved, results)``
    of :func:`launch_ranks`, launched once per world size for the module (a module-scoped
    fixture parametrized per test case would launch the ranks again for every case)."""
    import pytest

    launched: dict[int, tuple[int, list, list]] = {}

    @pytest.fixture
    def ranks(world, tmp_path_factory):
        if world not in launched:
            saved, results = launch_ranks(test_file, world, tmp_path_factory.mktemp(f"{tag}{world}"))
            launched[world] = (world, saved, results)
        return launched[world]

    return ranks


def three_tensor_profile(costs: dict | None = None, wire_bytes: int = 40, sparse: bool = False):
    """A hand-made profile: tensors "a", "b", "c" of 10 floats, ready after 0.3, 0.2 and 0.1
    s of a 0.3 s backward (forward 0.1 s, optimizer 0.01 s), compressor "lbl" with
    ``costs[name] = (compress_s, decompress_s)`` (accumulate half the decompression; no cost
    when None), ``wire_bytes`` per tensor."""
    from rsdgc_sim.profile.schema import DeviceProfile, Profile, TensorCost, TensorInfo

    names = ["a", "b", "c"]
    costs = costs or {n: (0.0, 0.0) for n in names}
    return Profile(
        model="m", num_classes=2, input_size=8, batch_size=1, params=30,
        tensors=[TensorInfo(name=n, shape=[10], numel=10) for n in names],
        devices=[DeviceProfile(
            device="cpu", forward_s=0.1, backward_s=0.3, optimizer_s=0.01,
            grad_ready_s={"a": 0.3, "b": 0.2, "c": 0.1},
            compression={"lbl": {
                n: TensorCost(compress_s=c, decompress_s=d, accumulate_s=d / 2,
                              wire_bytes=wire_bytes, sparse=sparse)
                for n, (c, d) in costs.items()
            }},
        )],
    )  # fmt: skip


#: :func:`set_at`'s value that deletes the key
DELETE = object()


def set_at(data, path: str, value) -> None:
    """Set (or, with :data:`DELETE`, remove) the value at ``path`` (``a/0/b``: keys and list
    indices) inside nested JSON-like ``data``, in place."""
    *parents, last = path.split("/")
    for part in parents:
        data = data[int(part)] if isinstance(data, list) else data[part]
    if value is DELETE:
        del data[last]
    else:
        data[last] = value


def tta_data() -> dict:
    """A tta.json's data with two grid points: at 10 Mbit/s dense's curve ends at 37.8 s and
    top-k's at 4.6 s (8.2x apart), at 1 Gbit/s at 3.2 s and 3.2 s."""
    runs, rows = [], []
    for c, its in (("none", (0.126, 0.0108)), ("topk", (0.0153, 0.0106))):
        runs.append({"compressor": c, "workers": 4,
                     "history": [{"step": s, "accuracy": 0.1 + s / 400} for s in (0, 100, 300)]})
        rows += [{"compressor": c, "workers": 4, "bandwidth_bytes_per_s": bw, "latency_s": 5e-5,
                  "target": 0.8, "iteration_s": it, "time_to_target_s": None}
                 for bw, it in zip((1.25e6, 1.25e8), its, strict=True)]
    return {"scenario": {"name": "t"}, "rows": rows, "runs": runs}
