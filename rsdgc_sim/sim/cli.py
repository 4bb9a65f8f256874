"""``rsdgc-sim collective``: the time of one collective, for what-if questions and teaching.

A click command over :func:`rsdgc_sim.sim.collective_time`; the lead's group registers it
and turns :class:`~rsdgc_sim.errors.RsdgcError` into a one-line message and exit code 2.
"""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from ..errors import ConfigError
from ..units import (
    format_bandwidth,
    format_duration,
    parse_bandwidth,
    parse_duration,
    parse_size,
)
from .collective_time import collective_time
from .config import TopologySpec


def _pairs(values: tuple[str, ...], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key] = raw
    return out


@click.command("collective")
@click.option("--algorithm", "-a", required=True,
              help="ring, tree, double_binary_tree, halving_doubling, hierarchical, "
                   "parameter_server, allgather_ring, allgather_recursive_doubling, auto")
@click.option("--workers", "-p", required=True, type=int, help="number of ranks")
@click.option("--bytes", "nbytes", required=True,
              help="message size (allreduce) or each rank's contribution (all-gather), "
                   "e.g. 100MB, 25MiB")
@click.option("--bandwidth", required=True, help="host link bandwidth, e.g. 10Gbit/s")
@click.option("--latency", default="0", show_default=True,
              help="one-way host-to-host latency on switch (per link elsewhere), e.g. 5us")
@click.option("--topology", default="switch", show_default=True,
              help="switch, ring, tree, fat_tree, two_level, torus2d, or a topology file")
@click.option("--topology-param", "topology_params", multiple=True, metavar="KEY=VALUE",
              help="topology parameter, e.g. gpus_per_node=8 (repeatable)")
@click.option("--param", "algo_params", multiple=True, metavar="KEY=VALUE",
              help="algorithm parameter, e.g. chunks=4 or shards=2 (repeatable)")
@click.option("--fidelity", default="auto", show_default=True,
              type=click.Choice(["auto", "analytic", "step", "link"]))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--explain", is_flag=True, help="print the formula with the numbers put in")
def collective(algorithm: str, workers: int, nbytes: str, bandwidth: str, latency: str,
               topology: str, topology_params: tuple[str, ...], algo_params: tuple[str, ...],
               fidelity: str, as_json: bool, explain: bool) -> None:
    """Time of one collective on WORKERS ranks, simulated and (where one exists) in closed
    form.

    Example: rsdgc-sim collective --algorithm ring --workers 64 --bytes 100MB
    --bandwidth 10Gbit/s --latency 5us --explain
    """
    n = parse_size(nbytes, "--bytes")
    bw = parse_bandwidth(bandwidth, "--bandwidth")
    lat = parse_duration(latency, "--latency")
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {workers}")
    spec = TopologySpec(name=topology, params=_pairs(topology_params, "--topology-param"))
    res = collective_time(algorithm, workers, n, bw, lat, topology=spec, fidelity=fidelity,
                          params=_pairs(algo_params, "--param") or None)
    if as_json:
        out = {"algorithm": res.algorithm, "workers": res.workers, "bytes": res.bytes,
               "simulated_s": res.simulated_s, "closed_form_s": res.closed_form_s,
               "events": res.events, "wall_s": res.wall_s, "fidelity": res.fidelity,
               "exact": res.exact, "topology": topology, "bandwidth_bytes_per_s": bw,
               "latency_s": lat}
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
        click.echo(res.explain)
        return
    chosen = f" (chose {res.chosen})" if res.chosen else ""
    cf = ("" if res.closed_form_s is None
          else f"; closed form {format_duration(res.closed_form_s)}")
    if not res.exact:
        cf += "; an estimate (--explain says why)"
    click.echo(f"{res.algorithm}{chosen}: {workers} workers, {nbytes} ({n:.6g} B) at "
               f"{format_bandwidth(bw)}, {format_duration(lat)} on {topology}: "
               f"{format_duration(res.simulated_s)} simulated ({res.fidelity}, {res.events} "
               f"events){cf}")
