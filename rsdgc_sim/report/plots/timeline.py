"""The timeline of one iteration from ``trace.json``: the network (each bucket's
collective) and the traced workers (forward, backward, compression, waiting, optimizer),
for the dense reference and one compressor at the same point, on one time axis.

A bucket whose collective starts after its gradient was compressed waited for the network
(the previous bucket's collective): a dotted line joins the two, labelled with the wait.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError
from ...strict import excerpt
from ...units import format_bandwidth, format_duration
from .axes import axis_of, row_value
from .figure import pyplot, save, short_value

#: span category -> colour
CATEGORY_COLOURS = {"compute": "#4c72b0", "compression": "#dd8452", "communication": "#c44e52"}
#: worker rows drawn per run besides the network (worker 0 and the critical one)
MAX_WORKER_ROWS = 2


def runs_of_trace(trace: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """pid -> {"name": process label, "spans": [events]} of a combined ``trace.json``."""
    events = trace.get("traceEvents") if isinstance(trace, Mapping) else None
    if not isinstance(events, list) or not events:
        raise ConfigError("not a trace.json of `rsdgc-sim run` (no traceEvents)")
    out: dict[int, dict[str, Any]] = {}
    for i, ev in enumerate(events):
        if not isinstance(ev, Mapping) or "pid" not in ev:
            continue
        run = out.setdefault(ev["pid"], {"name": str(ev["pid"]), "spans": [], "threads": {}})
        if ev.get("ph") == "M" and ev.get("name") == "process_name":
            run["name"] = str(ev.get("args", {}).get("name", run["name"]))
        elif ev.get("ph") == "M" and ev.get("name") == "thread_name":
            run["threads"][ev["tid"]] = str(ev.get("args", {}).get("name", ev["tid"]))
        elif ev.get("ph") == "X":
            _check_span(ev, i)
            run["spans"].append(ev)
    return out


def _check_span(ev: Mapping[str, Any], i: int) -> None:
    """A span the timeline can draw: finite, non-negative ``ts`` and ``dur`` (numbers) and
    a name; anything else is one ConfigError naming the event."""
    if not isinstance(ev.get("name"), str):
        raise ConfigError(f"not a trace.json of `rsdgc-sim run`: event {i} has no name")
    for key in ("ts", "dur"):
        v = ev.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"not a trace.json of `rsdgc-sim run`: event {i} "
                              f"({excerpt(ev['name'])}) has {key} {excerpt(v)}, not a finite "
                              f"time >= 0")


def pick_runs(runs: Sequence[Mapping[str, Any]], dense: str, compressor: str | None,
              among: Sequence[int] | None = None) -> list[int]:
    """Indices (trace pids) of the dense run and the compressor's run at the point where
    the dense run's communication is closest to its compute (where overlap and compression
    both show), among points with more than one worker (and among the rows ``among``: a
    slice chosen with ``--where``)."""
    allowed = set(range(len(runs)) if among is None else among)
    if compressor is not None and compressor not in {r["compressor"] for r in runs}:
        have = ", ".join(dict.fromkeys(r["compressor"] for r in runs))
        raise ConfigError(f"--compressor {compressor}: not in these results ({have})")
    others = [r["compressor"] for i, r in enumerate(runs) if r["compressor"] != dense
              and i in allowed]
    comp = compressor or (others[0] if others else dense)
    dense_rows = [i for i, r in enumerate(runs) if r["compressor"] == dense and i in allowed]
    if not dense_rows:
        return [i for i, r in enumerate(runs) if r["compressor"] == comp and i in allowed][:1]
    multi = [i for i in dense_rows if runs[i].get("workers", 1) > 1] or dense_rows

    def balance(i: int) -> float:
        comm, comp = runs[i].get("communication_s", 0.0), runs[i].get("compute_s", 0.0)
        return abs(math.log(comm / comp)) if comm > 0 and comp > 0 else math.inf

    worst = min(multi, key=lambda i: (balance(i), -runs[i].get("workers", 0)))
    same = [i for i, r in enumerate(runs) if r["compressor"] == comp and i in allowed
            and all(r.get(k) == runs[worst].get(k) for k in ("workers", "bandwidth_bytes_per_s",
                                                              "latency_s", "topology"))
            and r.get("point") == runs[worst].get("point")]
    return [worst] + [i for i in same if i != worst][:1]


def case_text(row: Mapping[str, Any], axes: Mapping[str, Sequence[Any]] | None = None) -> str:
    """The point a run is at, in a few words: workers, link, latency, and the value of every
    other swept axis (``64 workers, 100Gbit/s, latency 5us, topology fat_tree(k=8), overlap
    on``)."""
    words = [f"{row['workers']} worker{'' if row['workers'] == 1 else 's'}",
             format_bandwidth(row["bandwidth_bytes_per_s"]),
             f"latency {format_duration(row['latency_s'])}"]
    grid = ("cluster.workers", "cluster.bandwidth", "cluster.latency")
    for p, values in (axes or {}).items():
        if p not in grid:
            try:
                words.append(short_value(axis_of(p, list(values)), row_value(row, p)))
            except ConfigError:  # an old row without this axis's value
                continue
    return ", ".join(words)


def timeline_plot(trace: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], dense: str,
                  compressor: str | None, fmt: str, title: str,
                  axes: Mapping[str, Sequence[Any]] | None = None,
                  among: Sequence[int] | None = None) -> bytes:
    """Dense above the compressor at one point (:func:`pick_runs`, among the rows
    ``among``); the title names the point (:func:`case_text`) and the compressor."""
    by_pid = runs_of_trace(trace)
    pids = [p for p in pick_runs(runs, dense, compressor, among) if p in by_pid]
    if not pids:
        raise ConfigError("trace.json has no run matching results.json (was it written by "
                          "the same `rsdgc-sim run`?)")
    if pids[0] < len(runs):
        names = " vs ".join(runs[p]["compressor"] for p in pids if p < len(runs))
        case = f"{names} at {case_text(runs[pids[0]], axes)}"
        title = f"{title}\n{case}" if title else case
    end = max(ev["ts"] + ev["dur"] for p in pids for ev in by_pid[p]["spans"]) / 1e3
    plt = pyplot()
    fig, axs = plt.subplots(len(pids), 1, figsize=(11.0, 2.3 * len(pids) + 1.1), sharex=True,
                            squeeze=False)
    axs = [a[0] for a in axs]
    for ax, pid in zip(axs, pids, strict=True):
        _draw_run(ax, by_pid[pid], runs[pid] if pid < len(runs) else None)
        ax.set_xlim(0, end * 1.02)
    axs[-1].set_xlabel("time since the iteration started (ms)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in CATEGORY_COLOURS.values()]
    names = list(CATEGORY_COLOURS)
    handles.append(plt.Line2D([], [], color="grey", ls=":", lw=1.2))
    names.append("bucket ready, waiting for the network")
    fig.legend(handles, names, loc="lower center", ncol=4, fontsize="small", frameon=False)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout(rect=(0, 0.35 / fig.get_size_inches()[1], 1, 1))
    return save(fig, fmt, "", tight=False)


def _draw_run(ax, run: Mapping[str, Any], row: Mapping[str, Any] | None) -> None:
    spans = run["spans"]
    workers = sorted({ev["tid"] for ev in spans if ev["tid"] >= 0})
    shown = workers[:1] + [w for w in workers[-1:] if w not in workers[:1]]
    shown = shown[:MAX_WORKER_ROWS]
    rows = [-1] + shown
    names = ["network" if t < 0 else f"worker {t}" for t in rows]
    for y, tid in enumerate(rows):
        for ev in spans:
            if ev["tid"] != tid:
                continue
            if tid >= 0 and ev.get("cat") == "communication":
                continue  # the network row shows it; workers show what they compute
            s, d = ev["ts"] / 1e3, ev["dur"] / 1e3
            ax.barh(y, d, left=s, height=0.6, color=CATEGORY_COLOURS.get(ev.get("cat"), "grey"),
                    edgecolor="white", lw=0.4)
            if tid < 0 and d > 0:
                label = ev["name"].split(":")[0].replace("bucket ", "b")
                ax.text(s + d / 2, y, label, ha="center", va="center", fontsize=6, color="white",
                        clip_on=True)
    _draw_waits(ax, spans, shown[-1] if shown else None, rows)
    ax.set_yticks(range(len(rows)), names, fontsize="small")
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    head = run["name"]
    if row is not None:
        head = (f"{head}: iteration {format_duration(row['iteration_s'])}, communication "
                f"{format_duration(row['communication_s'])} of which exposed "
                f"{format_duration(row['exposed_communication_s'])}")
    ax.set_title(head, fontsize="small", loc="left")


def _draw_waits(ax, spans, worker: int | None, rows: list[int]) -> None:
    """Dotted lines from when a bucket was compressed (on ``worker``) to when its
    collective started, where it had to wait for the network."""
    if worker is None:
        return
    ready = {}
    for ev in spans:
        if ev["tid"] == worker and ev["name"].startswith("compress bucket "):
            ready[ev["name"].removeprefix("compress bucket ")] = (ev["ts"] + ev["dur"]) / 1e3
    y_w = rows.index(worker)
    for ev in spans:
        if ev["tid"] != -1:
            continue
        b = ev["name"].split(":")[0].removeprefix("bucket ")
        start = ev["ts"] / 1e3
        if b in ready and start - ready[b] > 1e-9:
            ax.plot([ready[b], start], [y_w - 0.35, 0.35], color="grey", ls=":", lw=1.0)
