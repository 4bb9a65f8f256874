"""Published measurements beside rsdgc-sim's estimates of them.

Reads ``benchmarks/data/published.yaml`` (measurements copied from public sources, each with
its URL and hardware; the file's header says what each field means), validated strictly,
and prints, with the error (estimate / published - 1):

* **nccl-tests**: per case and message size, the published busbw beside the estimate of the
  ``gpu_cluster`` topology (the case's preset and parameters) and the ``nccl`` (allreduce) or
  ``nccl_allgather`` collective at analytic fidelity; busbw as nccl-tests defines it
  (allreduce ``2 (p-1)/p * size / t``, all-gather ``(p-1)/p * size / t`` with ``size`` the
  gathered total); the "chosen / why" column gives NCCL's algorithm/protocol as the model's
  tuner picks them (or why no estimate). Each case's setup names its NICs' transport (the
  latency its NCCL plugin reports) and, where the source says so, whether the NVSwitch
  reduces (NVLS), and the algorithm where the source forced one (``NCCL_ALGO``). Nothing in
  the model is fitted to these cases. Summaries: median and worst |error| at sizes >= 8 MB
  (the issue's acceptance: 15 % median, 35 % worst) and, apart, below 8 MB (latency-bound:
  protocol choice); a case whose ``not_counted`` gives a reason (it cannot be set up from
  its source, or is not a steady run) is shown and summed apart, with the reason printed.
* **training throughput** (DeepLearningExamples tables): images/s per GPU beside the device
  model's estimate, ``batch / (forward + backward + optimizer)`` of the roofline
  (:func:`rsdgc_sim.profile.roofline.estimate_compute` on the zoo model counted at the case's
  batch and input size), **before** (the device's plain ``efficiency``, as before the
  calibration) and **after** (the table entry as shipped: ``conv_efficiency`` and
  ``memory_efficiency`` of ``rsdgc_sim/data/devices.yaml``). Multi-GPU rows compare per-GPU
  throughput with the one-GPU estimate (communication assumed hidden behind backward: on these
  NVLink nodes the published scaling is 7.7x-7.8x of 8): the scaling itself is not simulated.
  Summaries: median |error| over the held-out cases (never used to fit), before and after.
* **the fit**: per device, the convolution efficiency that makes the roofline hit each ``fit``
  case exactly (bisection; memory efficiency fixed at the published STREAM-like ratio), their
  median, and the value shipped in ``devices.yaml`` (they must agree).

Runs without a GPU and without network. Counting a ResNet-50 step on ``meta`` costs 5-15 s per
batch size on a small CPU (progress is printed); ``--quick`` skips the throughput part.

    python benchmarks/published.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsdgc_sim.errors import ConfigError  # noqa: E402
from rsdgc_sim.strict import Strict, validation_message  # noqa: E402
from rsdgc_sim.yaml_file import parse_yaml  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "published.yaml"
#: the size from which a message is bandwidth-bound (the issue's acceptance threshold)
LARGE_BYTES = 8 * 2**20
#: acceptance targets (issue 22): nccl busbw at >= 8 MB, median and worst |error|; throughput median
NCCL_TARGET = (0.15, 0.35)
THROUGHPUT_TARGET = 0.25


# ----------------------------------------------------------------------------- the data file

def _url(v: str) -> str:
    if not v.startswith("https://"):
        raise ValueError(f"expected an https:// URL, got {v!r}")
    return v


class Hardware(Strict):
    gpu: str = Field(min_length=1)
    nodes: int = Field(ge=1)
    gpus_per_node: int = Field(ge=1)
    intra_node: str = Field(min_length=1)
    nics: str = Field(min_length=1)
    nic_source: str | None = None
    nccl_version: str | None = None

    @model_validator(mode="after")
    def _nic_cited(self) -> Hardware:
        if self.nodes > 1 and not (self.nic_source or "").strip():
            raise ValueError("nic_source: a multi-node case names where its NICs' numbers come from")
        return self


class Setup(Strict):
    #: params of the gpu_cluster topology (a preset plus what differs from it)
    topology: dict[str, Any] = Field(min_length=1)
    #: params of the NCCL collective (algorithm, protocol: empty for NCCL's own choice)
    collective: dict[str, Any] = Field(default_factory=dict)


#: one row: size in bytes, time in us, algbw and busbw in GB/s (None: not published)
Row = tuple[int, float | None, float | None, float]


class NcclCase(Strict):
    id: str = Field(min_length=1)
    source: str
    what: str = Field(min_length=1)
    collective: Literal["all_reduce", "all_gather"]
    placement: Literal["out_of_place", "in_place"]
    hardware: Hardware
    setup: Setup
    not_modelled: str = ""
    #: why the case is shown but not counted in the acceptance summary ("": counted)
    not_counted: str = ""
    rows: list[Row] = Field(min_length=1)

    _src = field_validator("source")(_url)

    @field_validator("rows", mode="before")
    @classmethod
    def _rows_as_tuples(cls, v: Any) -> Any:
        return [tuple(r) if isinstance(r, list) else r for r in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _check_rows(self) -> NcclCase:
        sizes = [r[0] for r in self.rows]
        if sizes != sorted(set(sizes)) or sizes[0] <= 0:
            raise ValueError("rows: sizes must be positive and strictly increasing")
        if any(r[3] < 0 or (r[1] is not None and r[1] <= 0) for r in self.rows):
            raise ValueError("rows: busbw must be >= 0 and a time > 0")
        return self

    @property
    def ranks(self) -> int:
        return self.hardware.nodes * self.hardware.gpus_per_node


class ThroughputCase(Strict):
    id: str = Field(min_length=1)
    role: Literal["fit", "held_out", "reference"]
    framework: Literal["pytorch", "mxnet", "tensorflow", "paddle"]
    model: str = Field(min_length=1)
    input_size: int = Field(ge=1)
    precision: Literal["fp32", "tf32", "amp"]
    device: str = Field(min_length=1)
    gpus: int = Field(ge=1)
    batch_per_gpu: int = Field(ge=1)
    images_per_s: float = Field(gt=0)
    source: str
    note: str = ""

    _src = field_validator("source")(_url)

    @model_validator(mode="after")
    def _amp_not_compared(self) -> ThroughputCase:
        if self.precision == "amp" and self.role != "reference":
            raise ValueError("role: mixed-precision (amp) rows are reference only: the device "
                             "models do not estimate AMP")
        if self.role == "fit" and self.gpus != 1:
            raise ValueError("role: a fit case is a one-GPU row")
        return self

    @property
    def per_gpu(self) -> float:
        return self.images_per_s / self.gpus


class MemoryBandwidth(Strict):
    device: str = Field(min_length=1)
    measured: str = Field(min_length=1)
    kernel: str = Field(min_length=1)
    source: str
    note: str = ""

    _src = field_validator("source")(_url)


class LeftOut(Strict):
    source: str = Field(min_length=1)
    what: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Published(Strict):
    schema_version: Literal[1]
    nccl_tests: list[NcclCase] = Field(min_length=1)
    throughput: list[ThroughputCase] = Field(min_length=1)
    memory_bandwidth: list[MemoryBandwidth] = Field(default_factory=list)
    left_out: list[LeftOut] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Published:
        ids = [c.id for c in self.nccl_tests] + [c.id for c in self.throughput]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate ids: {', '.join(dup)}")
        return self


def load(path: Path | str = DATA) -> Published:
    """The data file, validated (unknown keys, missing URLs, unsorted rows refused)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return Published.model_validate(parse_yaml(text, str(path)))
    except ValidationError as e:
        raise ConfigError(f"{path}: {validation_message(e, Published)}") from None


# ----------------------------------------------------------------------------- arithmetic

def error(estimate: float, measured: float) -> float | None:
    """``estimate / measured - 1``; None where nothing was measured (a 0.00 busbw)."""
    return estimate / measured - 1.0 if measured > 0 else None


def summary(errors: Iterable[float | None]) -> dict[str, float | int | None]:
    """Median and worst |error| of the errors that exist, and how many there were."""
    a = [abs(e) for e in errors if e is not None]
    return {"n": len(a), "median": statistics.median(a) if a else None,
            "worst": max(a) if a else None}


def busbw(collective: str, ranks: int, size: float, seconds: float) -> float:
    """nccl-tests' bus bandwidth (bytes/s) of ``size`` bytes in ``seconds``: allreduce
    ``2 (p-1)/p * size / t``, all-gather ``(p-1)/p * size / t`` (size: the gathered total)."""
    factor = {"all_reduce": 2.0 * (ranks - 1) / ranks, "all_gather": (ranks - 1) / ranks}[collective]
    return factor * size / seconds


def images_per_gpu(batch: int, step_s: float) -> float:
    """Images per second of one GPU doing one training step of ``batch`` in ``step_s``."""
    return batch / step_s


def bisect(f: Callable[[float], float], lo: float, hi: float, tol: float = 1e-6) -> float:
    """The root of ``f`` (decreasing or increasing) in ``[lo, hi]``; raises where it has none."""
    flo, fhi = f(lo), f(hi)
    if flo * fhi > 0:
        raise ValueError(f"no root in [{lo}, {hi}]: f = {flo:.4g}, {fhi:.4g}")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _pct(e: float | None) -> str:
    return "-" if e is None else f"{e:+.0%}"


def _size(n: int) -> str:
    for unit, k in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n >= k and n % k == 0:
            return f"{n // k}{unit}"
    return str(n)


# ----------------------------------------------------------------------------- nccl-tests

def nccl_estimates(case: NcclCase, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Per row: the estimate of the gpu_cluster topology and NCCL's collective (analytic)."""
    from rsdgc_sim.sim import TopologySpec, collective_time

    topo = TopologySpec(name="gpu_cluster", params=dict(case.setup.topology))
    algorithm = "nccl" if case.collective == "all_reduce" else "nccl_allgather"
    p = case.ranks
    out = []
    for size, t_us, _algbw, bus in case.rows:
        nbytes = size if case.collective == "all_reduce" else size / p
        row: dict[str, Any] = {"size": size, "time_us": t_us, "busbw": bus}
        try:
            # the topology's links carry their own bandwidth: the two numbers are unused
            res = collective_time(algorithm, p, nbytes, None, 0.0, topology=topo,
                                  fidelity="analytic", params=dict(case.setup.collective))
        except Exception as e:  # noqa: BLE001 - report what is missing, go on
            row.update(estimate=None, error=None, why=f"{type(e).__name__}: {e}")
            out.append(row)
            continue
        est = busbw(case.collective, p, size, res.simulated_s) / 1e9
        row.update(estimate=est, time_est_us=res.simulated_s * 1e6, error=error(est, bus),
                   chosen=getattr(res, "chosen", None))
        out.append(row)
    say(f"{case.id}: {len(out)} sizes estimated")
    return out


def nccl_part(data: Published, say: Callable[[str], None]) -> list[dict[str, Any]]:
    cases = []
    for c in data.nccl_tests:
        rows = nccl_estimates(c, say)
        large = summary(r["error"] for r in rows if r["size"] >= LARGE_BYTES)
        small = summary(r["error"] for r in rows if r["size"] < LARGE_BYTES)
        cases.append({"id": c.id, "source": c.source, "collective": c.collective,
                      "placement": c.placement, "ranks": c.ranks, "gpu": c.hardware.gpu,
                      "nodes": c.hardware.nodes, "setup": c.setup.model_dump(),
                      "not_modelled": c.not_modelled, "not_counted": c.not_counted,
                      "rows": rows, "large": large, "small": small})
    return cases


def counted_summary(cases: list[dict[str, Any]], counted: bool | None = True) -> dict[str, Any]:
    """Median and worst |error| at sizes >= 8 MB over the cases counted (``counted``
    True), those not counted (False) or all (None)."""
    return summary(e for c in cases if counted is None or (not c["not_counted"]) == counted
                   for e in (r["error"] for r in c["rows"] if r["size"] >= LARGE_BYTES))


# ----------------------------------------------------------------------------- throughput

def step_seconds(step: Any, device: Any) -> float:
    """Forward + backward + optimizer of a counted step on a device model (roofline)."""
    from rsdgc_sim.profile.roofline import estimate_compute

    c = estimate_compute(step, device)
    return c.forward_s + c.backward_s + c.optimizer_s


def uncalibrated(device: Any) -> Any:
    """The device model as before the calibration: every op class at plain ``efficiency``."""
    return device.model_copy(update={"conv_efficiency": None, "memory_efficiency": None})


def fit_conv_efficiency(step: Any, device: Any, target_s: float) -> float:
    """The convolution efficiency at which the roofline's step takes ``target_s`` (the
    device's memory efficiency and everything else as they are)."""
    def f(e: float) -> float:
        return step_seconds(step, device.model_copy(update={"conv_efficiency": e})) - target_s
    return bisect(f, 1e-3, 1.0)


def throughput_part(data: Published, say: Callable[[str], None]) -> dict[str, Any]:
    from rsdgc_sim.profile.device_models import device_model
    from rsdgc_sim.profile.meta_count import count_training_step

    steps: dict[tuple[str, int, int], Any] = {}
    rows, fits = [], {}
    for c in data.throughput:
        if c.role == "reference":
            rows.append({"id": c.id, "role": c.role, "framework": c.framework,
                         "precision": c.precision, "device": c.device, "gpus": c.gpus,
                         "batch": c.batch_per_gpu, "published": c.per_gpu, "source": c.source})
            continue
        key = (c.model, c.input_size, c.batch_per_gpu)
        if key not in steps:
            t0 = time.perf_counter()
            steps[key] = count_training_step(c.model, 1000, c.input_size, c.batch_per_gpu,
                                             foreach=True)
            say(f"counted {c.model} at {c.input_size} px, batch {c.batch_per_gpu} "
                f"({time.perf_counter() - t0:.1f} s)")
        step = steps[key]
        dev = device_model({"model": c.device})
        before = images_per_gpu(c.batch_per_gpu, step_seconds(step, uncalibrated(dev)))
        after = images_per_gpu(c.batch_per_gpu, step_seconds(step, dev))
        row = {"id": c.id, "role": c.role, "framework": c.framework, "precision": c.precision,
               "device": dev.name, "gpus": c.gpus, "batch": c.batch_per_gpu,
               "published": c.per_gpu, "before": before, "after": after,
               "error_before": error(before, c.per_gpu), "error_after": error(after, c.per_gpu),
               "source": c.source}
        if c.role == "fit":
            row["fitted_conv_efficiency"] = fit_conv_efficiency(
                step, dev, c.batch_per_gpu / c.per_gpu)
            fits.setdefault(dev.name, []).append(row["fitted_conv_efficiency"])
        else:
            try:  # what the case alone would fit (shown, never used)
                row["would_fit"] = fit_conv_efficiency(step, dev, c.batch_per_gpu / c.per_gpu)
            except ValueError:
                row["would_fit"] = None  # faster than any convolution efficiency allows
        rows.append(row)
    held = [r for r in rows if r["role"] == "held_out"]
    fitted = {}
    for name, es in fits.items():
        shipped = device_model({"model": name}).conv_efficiency
        fitted[name] = {"cases": len(es), "median": statistics.median(es), "shipped": shipped}
    return {
        "rows": rows,
        "fit": fitted,
        "held_out_before": summary(r["error_before"] for r in held),
        "held_out_after": summary(r["error_after"] for r in held),
        "held_out_pytorch_after": summary(r["error_after"] for r in held
                                          if r["framework"] == "pytorch"),
    }


# ----------------------------------------------------------------------------- printing

def _nccl_tables(cases: list[dict[str, Any]]) -> list[Any]:
    from rich import box
    from rich.table import Table

    tables = []
    for c in cases:
        t = Table(title=f"{c['id']}: {c['collective']} on {c['ranks']} x {c['gpu']} "
                        f"({c['placement'].replace('_', '-')}), busbw GB/s",
                  box=box.SIMPLE_HEAD, padding=(0, 1), title_justify="left")
        for col in ("size", "time us", "busbw", "estimate", "error", "chosen / why"):
            t.add_column(col, justify="left" if col == "chosen / why" else "right",
                         no_wrap=col != "chosen / why", max_width=44)
        for r in c["rows"]:
            t.add_row(_size(r["size"]), "-" if r["time_us"] is None else f"{r['time_us']:g}",
                      f"{r['busbw']:g}",
                      "-" if r.get("estimate") is None else f"{r['estimate']:.2f}",
                      _pct(r.get("error")), r.get("chosen") or r.get("why") or "")
        tables.append(t)
    return tables


def _nccl_summary(cases: list[dict[str, Any]]) -> Any:
    from rich import box
    from rich.table import Table

    t = Table(title="nccl-tests: |error| of busbw, median / worst", box=box.SIMPLE_HEAD,
              padding=(0, 1), title_justify="left")
    for col in (">= 8 MB", "< 8 MB", "case", "not modelled"):
        t.add_column(col, justify="right" if "MB" in col else "left",
                     no_wrap=col != "not modelled", max_width=48)

    for c in cases:
        t.add_row(mw_text(c["large"]), mw_text(c["small"]),
                  c["id"] + (" (not counted)" if c["not_counted"] else ""),
                  c["not_modelled"] or "-")
    return t


def _throughput_table(tp: dict[str, Any]) -> Any:
    from rich import box
    from rich.table import Table

    t = Table(title="training throughput, images/s per GPU (ResNet-50, 224 px): published, "
                    "estimate before / after the calibration", box=box.SIMPLE_HEAD,
              padding=(0, 1), title_justify="left")
    for col in ("case", "role", "GPUs", "batch", "published", "before", "err", "after", "err"):
        t.add_column(col, justify="left" if col in ("case", "role") else "right", no_wrap=True)
    for r in tp["rows"]:
        if r["role"] == "reference":
            t.add_row(r["id"], "ref (amp)", str(r["gpus"]), str(r["batch"]),
                      f"{r['published']:.0f}", "-", "-", "-", "-")
            continue
        t.add_row(r["id"], r["role"], str(r["gpus"]), str(r["batch"]), f"{r['published']:.0f}",
                  f"{r['before']:.0f}", _pct(r["error_before"]), f"{r['after']:.0f}",
                  _pct(r["error_after"]))
    return t


def _nccl_totals(con: Any, cases: list[dict[str, Any]]) -> None:
    """The summary lines: the cases counted (the acceptance), why the others are not, and
    every case together."""
    s = counted_summary(cases)
    if not counted_summary(cases, None)["n"]:
        con.print("nccl-tests: no estimate (is the gpu_cluster topology / nccl collective "
                  "there?)")
        return
    if s["n"]:
        con.print(f"nccl-tests cases counted, sizes >= 8 MB: median |error| {s['median']:.0%}, "
                  f"worst {s['worst']:.0%} over {s['n']} sizes (target "
                  f"{NCCL_TARGET[0]:.0%} / {NCCL_TARGET[1]:.0%})")
    for c in cases:
        if c["not_counted"]:
            con.print(f"not counted: {c['id']} ({mw_text(c['large'])} >= 8 MB): "
                      f"{c['not_counted']}")
    a = counted_summary(cases, None)
    con.print(f"all nccl-tests cases, counted or not, sizes >= 8 MB: median |error| "
              f"{a['median']:.0%}, worst {a['worst']:.0%} over {a['n']} sizes")


def mw_text(s: dict[str, Any]) -> str:
    """``median / worst`` of a summary, ``-`` when it has none."""
    return "-" if s["median"] is None else f"{s['median']:.0%} / {s['worst']:.0%}"


def report(result: dict[str, Any]) -> None:
    from rich.console import Console

    con = Console(width=100)
    if result.get("nccl"):
        for t in _nccl_tables(result["nccl"]):
            con.print(t)
        con.print(_nccl_summary(result["nccl"]))
        _nccl_totals(con, result["nccl"])
    tp = result.get("throughput")
    if tp:
        con.print(_throughput_table(tp))
        for name, f in tp["fit"].items():
            con.print(f"fit {name}: conv_efficiency median {f['median']:.3f} of {f['cases']} "
                      f"fit cases; devices.yaml ships {f['shipped']}")
        b, a, ap = tp["held_out_before"], tp["held_out_after"], tp["held_out_pytorch_after"]
        con.print(f"held-out cases ({a['n']}): median |error| before {b['median']:.0%} "
                  f"(worst {b['worst']:.0%}), after {a['median']:.0%} (worst {a['worst']:.0%}); "
                  f"PyTorch rows after: {ap['median']:.0%} (target {THROUGHPUT_TARGET:.0%})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="nccl-tests cases only (no step counting)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--data", default=str(DATA), help="the data file (default: %(default)s)")
    args = ap.parse_args(argv)

    def say(msg: str) -> None:
        print(f"[published] {msg}", file=sys.stderr, flush=True)

    data = load(args.data)
    say(f"{len(data.nccl_tests)} nccl-tests cases, {len(data.throughput)} throughput cases, "
        f"{len(data.left_out)} left out")
    result: dict[str, Any] = {"data": str(args.data), "nccl": nccl_part(data, say)}
    if not args.quick:
        result["throughput"] = throughput_part(data, say)
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n",
                                   encoding="utf-8")
        say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
