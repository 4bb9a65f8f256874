"""``rsdgc-sim collective``: the time of one collective, for what-if questions and teaching.

A click command over :func:`rsdgc_sim.sim.collective_time`; the lead's group registers it
and turns :class:`~rsdgc_sim.errors.RsdgcError` into a one-line message and exit code 2.

Every command line finishes or is refused within seconds, before anything large is built:

* ``--bytes`` is a finite size >= 0; ``--bandwidth`` and ``--latency`` are bounded as a
  scenario's cluster values are (1 byte/s to 1 PB/s, 0 to 3600 s); ``--bandwidth`` is
  required unless the topology's links carry their own
  (:func:`~rsdgc_sim.sim.topology.links_carry_bandwidth`: ``gpu_cluster`` with a preset,
  topology files that give every link's bandwidth);
* ``--workers`` is at most :data:`~rsdgc_sim.scenario.model.MAX_WORKERS` (65,536, the
  scenario bound and the scale the simulator is built for). Above that only closed forms
  are evaluated: with ``--fidelity analytic`` up to :data:`MAX_ANALYTIC_WORKERS` ranks are
  answered at once on ``switch`` (whose links are never built for a closed form); any other
  topology is still refused by its size estimate (:func:`~rsdgc_sim.sim.topology.build_topology`);
* the topology's size (nodes + links from its parameters) is estimated before it is built
  and refused over budget, with the alternative (:mod:`rsdgc_sim.sim.topology`);
* ``--fidelity link`` is refused when :func:`~rsdgc_sim.sim.fidelity.link_seconds_estimate`
  expects the flows to take more than :data:`LINK_SECONDS_LIMIT` (``auto`` never runs flows
  expected to take more than half a second), and when the link run's memory estimate is
  over :class:`~rsdgc_sim.sim.runner.LinkBudget`;
* ``--topology`` names a generator, a bundled file or a YAML file (checked as a path: a NUL
  byte or a missing file is a usage error); ``--topology-param`` and ``--param`` values are
  read as YAML with the limits of :func:`~rsdgc_sim.yaml_file.parse_yaml` (else taken as
  text) and checked by the generator's or algorithm's parameters.

The topology is built once: the ``link`` check's build is the one the time is computed on.
``--json`` adds nccl-tests' ``algbw_bytes_per_s`` and ``busbw_bytes_per_s``
(:mod:`rsdgc_sim.sim.collective_time`), ``time_s`` and, for the NCCL collectives, the
``nccl_algorithm`` and ``nccl_protocol`` chosen (null for the others).
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import ConfigError, ScenarioFileError, UnknownNameError
from ..scenario.model import MAX_WORKERS
from ..sim.collective_time import build_bandwidth, collective_time
from ..sim.collectives import COLLECTIVES, Message, make_collective
from ..sim.config import TopologySpec
from ..sim.fidelity import link_seconds_estimate, link_transfers
from ..sim.runner import auto_candidates
from ..sim.topology import Topology, build_topology
from ..strict import excerpt
from ..units import (
    MAX_BANDWIDTH,
    MAX_LATENCY,
    MIN_BANDWIDTH,
    format_bandwidth,
    format_duration,
    parse_bandwidth,
    parse_duration,
    parse_size,
)
from ..yaml_file import parse_yaml
from .common import SafePath

#: ranks ``--fidelity analytic`` answers for (above MAX_WORKERS only closed forms run)
MAX_ANALYTIC_WORKERS = 1_000_000_000
#: the longest a ``--fidelity link`` run may be expected to take (s); the estimate errs
#: high (0.9 to 18 times the measured time, :mod:`rsdgc_sim.sim.fidelity`)
LINK_SECONDS_LIMIT = 5.0
#: the longest KEY of a KEY=VALUE option
MAX_KEY_LENGTH = 100


def _pairs(values: tuple[str, ...], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` items as a mapping; a VALUE is read as YAML (``4`` an integer,
    ``[...]`` a list), or kept as text where it is not YAML or is too large to be."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option}: expected KEY=VALUE, got {excerpt(item)}")
        if len(key) > MAX_KEY_LENGTH:
            raise ConfigError(f"{option}: the name {excerpt(key)} is longer than "
                              f"{MAX_KEY_LENGTH} characters")
        if key in out:
            raise ConfigError(f"{option}: {key} is given twice")
        try:
            out[key] = parse_yaml(raw, f"{option} {key}")
        except ScenarioFileError:  # not YAML, or refused (alias bomb, huge integer)
            out[key] = raw
    return out


def _topology_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A name that looks like a path (a YAML suffix, a slash, a NUL byte) must be an
    existing file (SafePath: usage errors, never tracebacks)."""
    if value.endswith((".yaml", ".yml")) or "/" in value or "\0" in value:
        SafePath(exists=True, dir_okay=False).convert(value, param, ctx)
    elif len(value) > 200:
        raise click.BadParameter(f"{excerpt(value)} is not a topology name (200 characters "
                                 f"at most)", ctx, param)
    return value


def _check_inputs(algorithm: str, workers: int, nbytes: str, bandwidth: str | None,
                  latency: str, fidelity: str) -> tuple[float, float | None, float]:
    """Sizes, bandwidth (None when not given) and latency in SI units, within bounds;
    workers within bounds."""
    if algorithm not in COLLECTIVES:
        shown = algorithm if len(algorithm) <= 60 else algorithm[:57] + "..."
        raise UnknownNameError("collective", shown, COLLECTIVES.names())
    n = parse_size(nbytes, "--bytes")
    if n < 0:
        raise ConfigError(f"--bytes: must be >= 0 bytes, got {excerpt(nbytes)}")
    bw = None if bandwidth is None else parse_bandwidth(bandwidth, "--bandwidth",
                                                        unit_required=True)
    if bw is not None and not MIN_BANDWIDTH <= bw <= MAX_BANDWIDTH:
        raise ConfigError(
            f"--bandwidth: {excerpt(bandwidth)} is {bw:.6g} bytes/s; expected "
            f"{MIN_BANDWIDTH:g} byte/s to {MAX_BANDWIDTH:g} bytes/s (1 PB/s)")
    lat = parse_duration(latency, "--latency", unit_required=True)
    if not 0 <= lat <= MAX_LATENCY:
        raise ConfigError(f"--latency: {excerpt(latency)} is {lat:.6g} s; expected 0 to "
                          f"{MAX_LATENCY:g} s")
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {workers}")
    if workers > MAX_ANALYTIC_WORKERS:
        raise ConfigError(f"--workers: {workers:,} is more than the "
                          f"{MAX_ANALYTIC_WORKERS:,} ranks answered even in closed form")
    if workers > MAX_WORKERS and fidelity != "analytic":
        raise ConfigError(
            f"--workers: {workers:,} ranks is more than the {MAX_WORKERS:,} simulated at "
            f"step or link fidelity; above that only closed forms are evaluated: use "
            f"--fidelity analytic (on the switch topology), or fewer workers")
    return n, bw, lat


def _check_link_time(algorithm: str, workers: int, n: float, bw: float | None, lat: float,
                     spec: TopologySpec, params: dict[str, Any] | None) -> Topology | None:
    """Refuse a ``link`` run expected to take more than LINK_SECONDS_LIMIT (every
    candidate of ``auto``), before any flow starts. Returns the topology it built (None for
    one worker), for the run itself."""
    if workers <= 1:
        return None
    if algorithm == "auto":
        topo = build_topology(spec.name, workers, build_bandwidth(bw, spec, 0), lat,
                              spec.params)
        colls = [make_collective(a) for a in auto_candidates(topo, workers)]
    else:
        colls = [make_collective(algorithm, params)]
        extra = colls[0].extra_hosts(workers)
        topo = build_topology(spec.name, workers, build_bandwidth(bw, spec, extra), lat,
                              spec.params, extra_hosts=extra)
    msg = Message(workers, float(n))
    for coll in colls:
        if getattr(coll, "analytic_only", False):
            continue  # refused by the run itself, with the level to use
        coll.check(workers, msg, topo)
        phases = coll.phases(workers, msg, topo)
        secs = link_seconds_estimate(coll, workers, msg, topo, phases, LINK_SECONDS_LIMIT)
        if secs > LINK_SECONDS_LIMIT:
            transfers = link_transfers(coll, workers, msg, topo, phases)
            raise ConfigError(
                f"--fidelity link: {coll.name!r} on {workers:,} workers of topology "
                f"{topo.name!r} would simulate {transfers:,} transfers as flows, expected to "
                f"take more than {LINK_SECONDS_LIMIT:g} s here; use --fidelity step (one "
                f"event per phase) or auto (the cheapest exact level), or fewer workers")
    return topo


@click.command("collective")
@click.option("--algorithm", "-a", required=True,
              help="ring, tree, double_binary_tree, halving_doubling, hierarchical, "
                   "parameter_server, allgather_ring, allgather_recursive_doubling, auto; "
                   "NCCL's as its tuner picks them: nccl (allreduce), nccl_allgather, "
                   "nccl_reduce_scatter (--param algorithm=ring|tree|nvls|nvls_tree|pat, "
                   "protocol=simple|ll|ll128, channels=N, gpu=volta|ampere|hopper|blackwell)")
@click.option("--workers", "-p", required=True, type=int,
              help=f"number of ranks (at most {MAX_WORKERS:,}; up to "
                   f"{MAX_ANALYTIC_WORKERS:,} with --fidelity analytic)")
@click.option("--bytes", "nbytes", required=True,
              help="message size (allreduce), each rank's contribution (all-gather) or "
                   "block of the result (reduce-scatter), e.g. 100MB, 25MiB")
@click.option("--bandwidth", default=None,
              help="host link bandwidth, e.g. 10Gbit/s (1 byte/s to 1 PB/s); required unless "
                   "the topology's links carry their own (gpu_cluster with a preset)")
@click.option("--latency", default="0us", show_default=True,
              help="one-way host-to-host latency on switch (per link elsewhere), e.g. 5us "
                   "(at most 3600 s)")
@click.option("--topology", default="switch", show_default=True, callback=_topology_name,
              help="switch, ring, tree, fat_tree, two_level, torus2d, gpu_cluster, or a "
                   "topology file")
@click.option("--topology-param", "topology_params", multiple=True, metavar="KEY=VALUE",
              help="topology parameter, e.g. gpus_per_node=8 (repeatable)")
@click.option("--param", "algo_params", multiple=True, metavar="KEY=VALUE",
              help="algorithm parameter, e.g. chunks=4 or shards=2 (repeatable)")
@click.option("--fidelity", default="auto", show_default=True,
              type=click.Choice(["auto", "analytic", "step", "link"]),
              help="analytic: closed forms; step: one event per phase; link: every transfer "
                   "as a flow on the links; auto: the cheapest exact level")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--explain", is_flag=True, help="print the formula with the numbers put in")
def collective(algorithm: str, workers: int, nbytes: str, bandwidth: str | None, latency: str,
               topology: str, topology_params: tuple[str, ...], algo_params: tuple[str, ...],
               fidelity: str, as_json: bool, explain: bool) -> None:
    """Time of one collective on WORKERS ranks, simulated and (where one exists) in closed
    form.

    Example: rsdgc-sim collective --algorithm ring --workers 64 --bytes 100MB
    --bandwidth 10Gbit/s --latency 5us --explain
    """
    n, bw, lat = _check_inputs(algorithm, workers, nbytes, bandwidth, latency, fidelity)
    spec = TopologySpec(name=topology, params=_pairs(topology_params, "--topology-param"))
    params = _pairs(algo_params, "--param") or None
    built = None
    if fidelity == "link":
        built = _check_link_time(algorithm, workers, n, bw, lat, spec, params)
    res = collective_time(algorithm, workers, n, bw, lat, topology=spec, fidelity=fidelity,
                          params=params, built=built)
    if as_json:
        out = {"algorithm": res.algorithm, "workers": res.workers, "bytes": res.bytes,
               "simulated_s": res.simulated_s, "closed_form_s": res.closed_form_s,
               "events": res.events, "wall_s": res.wall_s, "fidelity": res.fidelity,
               "exact": res.exact, "topology": topology, "bandwidth_bytes_per_s": bw,
               "latency_s": lat, "time_s": res.time_s,
               "algbw_bytes_per_s": res.algbw_bytes_per_s,
               "busbw_bytes_per_s": res.busbw_bytes_per_s,
               "nccl_algorithm": res.nccl_algorithm, "nccl_protocol": res.nccl_protocol}
        if res.chosen:
            out["chosen"] = res.chosen
        if explain:
            out["explain"] = res.explain
        try:
            text = json.dumps(out, allow_nan=False)
        except ValueError:  # collective_time rejects non-finite results; never print NaN
            raise ConfigError(f"--json: simulated_s {res.simulated_s} and closed_form_s "
                              f"{res.closed_form_s} must be finite numbers") from None
        click.echo(text)
        return
    if explain:
        click.echo(_wrapped(res.explain))
        return
    chosen = f" (chose {res.chosen})" if res.chosen else ""
    if res.nccl_algorithm:
        chosen = f" ({res.nccl_algorithm}/{res.nccl_protocol})"
    cf = ("" if res.closed_form_s is None
          else f"; closed form {format_duration(res.closed_form_s)}")
    if not res.exact:
        cf += "; an estimate (--explain says why)"
    if bw is not None:
        head = (f"{res.algorithm}{chosen}: {workers} workers, {nbytes} ({n:.6g} B) at "
                f"{format_bandwidth(bw)}, {format_duration(lat)} on {topology}:")
    else:
        head = (f"{res.algorithm}{chosen}: {workers} workers, {nbytes} ({n:.6g} B) on "
                f"{topology} (its links' own bandwidths):")
    tail = f"{format_duration(res.simulated_s)} simulated ({res.fidelity}, {res.events} events){cf}"
    one = f"{head} {tail}"
    click.echo(one if len(one) <= _width() else _wrapped(f"{head}\n    {tail}"))


#: the widest line the command prints (the project's tables fit 100 columns too)
MAX_COLUMNS = 100


def _width() -> int:
    """The terminal's width, at most :data:`MAX_COLUMNS` (and at least 40)."""
    import shutil

    return max(40, min(MAX_COLUMNS, shutil.get_terminal_size((MAX_COLUMNS, 24)).columns))


def _wrapped(text: str) -> str:
    """Every line of ``text`` wrapped at spaces to the terminal's width (at most
    :data:`MAX_COLUMNS`), continuations indented: a formula with its numbers put in breaks
    between its terms instead of running past the edge."""
    import textwrap

    width = _width()
    return "\n".join(
        textwrap.fill(line, width, subsequent_indent="    ", break_long_words=False,
                      break_on_hyphens=False, replace_whitespace=False) if line else line
        for line in text.splitlines())
