"""What ``emulate`` reports, case by case, and its file ``emulate.json``: written atomically
after every grid point, read back so that a rerun skips the cases already measured with the
same configuration (a case's ``key``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..files import write_json_atomic

REPORT_FILE = "emulate.json"


@dataclass
class EmulateCase:
    compressor: str
    workers: int
    bandwidth_bytes_per_s: float
    latency_s: float
    #: median over the timed iterations of the slowest rank's iteration time, and the IQR
    measured_iteration_s: float
    measured_iqr_s: float
    #: the simulator before the run: a profile measured alone beforehand + the calibration
    predicted_iteration_s: float | None
    prediction_error: float | None  # (predicted - measured) / measured
    #: the simulator composed from the run's own compute and compression (checks the model's
    #: composition, not its prediction)
    composed_iteration_s: float | None
    composition_error: float | None
    #: link values and interference factor the prediction used (calibrated)
    predicted_bandwidth_bytes_per_s: float
    predicted_latency_s: float
    interference_factor: float
    #: the composition with compression beside backward (not blocking), for comparison
    composed_overlapped_s: float | None
    profiled_compute_s: float | None  # forward + backward + optimizer, the profile before
    #: the profile before's compression and decompression per iteration (as simulated)
    profiled_compress_s: float | None
    profiled_decompress_s: float | None
    compute_s: float  # the same in the run (DDP's no_sync iterations, mean over ranks)
    compress_s: float  # hook's compression time per iteration (mean over ranks)
    #: hook's decompression (callback) time per iteration; None where it cannot be measured
    #: (powersgd: torch's callbacks block on the next all-reduce, rsdgc_sim.ddp.powersgd_hook)
    decompress_s: float | None
    forward_s: float  # median forward time during the timed DDP iterations (mean over ranks)
    sent_bytes: float  # per rank per iteration, as sent by the hook
    threads: int  # torch threads per rank
    cpus: list[list[int]]  # cores each rank was pinned to
    oversubscribed: bool  # ranks x threads > cores
    #: the measured spread (IQR / median) is larger than |prediction_error|
    spread_exceeds_error: bool
    key: dict[str, Any] = field(default_factory=dict)
    iteration_s: list[float] = field(default_factory=list)  # per timed iteration, max over ranks
    #: the CPU time of the hook's bodies / callbacks on their thread per iteration (mean over
    #: ranks): their cost when backward or gloo's threads share the core and stretch the
    #: host times above; None in reports from before it was recorded
    compress_cpu_s: float | None = None
    decompress_cpu_s: float | None = None
    #: DDP's synchronisation overhead per iteration the prediction and the composition
    #: added (the calibration's ``ddp_overhead``; 0 without one)
    sync_overhead_s: float = 0.0

    @property
    def spread(self) -> float:
        """IQR over median of the measured iteration time."""
        return self.measured_iqr_s / self.measured_iteration_s if self.measured_iteration_s else 0.0


@dataclass
class EmulateReport:
    scenario: str
    model: str
    mode: str  # "netns" or "loopback"
    netem: bool
    notes: list[str]
    calibration: dict[str, Any] | None
    cases: list[EmulateCase]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def relative_error(predicted: float | None, measured: float) -> float | None:
    return None if predicted is None else (predicted - measured) / measured


def load_cases(out_dir: str | Path | None) -> list[EmulateCase]:
    """The cases of an earlier ``emulate.json`` in ``out_dir`` (none when there is no
    readable one, or it is of another format: those cases are measured again)."""
    if out_dir is None:
        return []
    path = Path(out_dir) / REPORT_FILE
    try:
        data = json.loads(path.read_text())
        names = {f.name for f in fields(EmulateCase)}
        return [EmulateCase(**c) for c in data["cases"] if set(c) == names]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_report(report: EmulateReport, out_dir: str | Path) -> Path:
    return write_json_atomic(Path(out_dir) / REPORT_FILE, report.to_json())
