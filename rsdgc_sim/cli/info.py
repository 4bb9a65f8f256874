"""``rsdgc-sim list`` and ``rsdgc-sim schema``: what the package offers, and the scenario
file's JSON schema."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from .common import stdout_console

#: the ``train.dataset`` names, what each is (any other value is a folder)
DATASET_HELP = {
    "synthetic": "class templates plus Gaussian noise: any number of classes and input size, "
                 "train.samples images",
    "synthetic_rs": "procedurally generated remote-sensing-like scenes (farmland, forest, "
                    "water, ...): up to 8 classes, train.samples images, train.difficulty 0 "
                    "(easy) to 1 (hard), default 0.35",
    "fashion_mnist": "Fashion-MNIST, 10 classes, 70,000 images of 28x28 (resized to "
                     "model.input_size), from the four .gz files of Debian's "
                     "dataset-fashion-mnist (train.data_dir, default "
                     "/usr/share/datasets/fashion-mnist)",
    "FOLDER": "any other value: a folder with one sub-folder of images per class",
}


def plain(text: str) -> str:
    """``text`` without reStructuredText markup: ``` ``a = b`` ``` -> ``a = b``,
    ``:func:`~pkg.mod.f``` -> ``f``, ``:data:`X``` -> ``X``."""
    text = re.sub(r":[\w:.-]+:`~[\w.]*?\.?(\w+)`", r"\1", text)
    text = re.sub(r":[\w:.-]+:`([^`]*)`", r"\1", text)
    return re.sub(r"``([^`]*)``", r"\1", text)


def _value(name: str, value: Any) -> str:
    """A default as a scenario file would write it (bandwidths and latencies with a unit)."""
    from ..units import format_bandwidth, format_duration  # lazy: imports pydantic

    if isinstance(value, float) and name.endswith("bandwidth"):
        return format_bandwidth(value)
    if isinstance(value, float) and name.endswith("latency"):
        return format_duration(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _defaults(cls, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """A pydantic parameter class's fields and their defaults, as text."""
    return {k: _value(k, f.get_default(call_default_factory=True))
            for k, f in cls.model_fields.items() if k not in skip}


def _flops(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e12:.3g}"


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """Everything ``list`` shows: per section, one entry per name (``name``, ``help`` and
    the section's own fields), help without RST markup."""
    # lazy: these import torch (the compressors' help), pydantic, numpy, networkx, simpy
    from ..compress import COMPRESSORS
    from ..compress.params import COMPRESSOR_PARAMS
    from ..models.catalog import CATALOG
    from ..profile.device_models import device_table
    from ..scenario.validate import BUILTIN_DATASETS
    from ..sim import COLLECTIVES, TOPOLOGIES
    from ..sim.topology.params import TOPOLOGY_PARAMS

    table = device_table()
    return {
        "models": [{"name": n, "help": plain(CATALOG.help(n))} for n in CATALOG.names()],
        "compressors": [{"name": n, "help": plain(COMPRESSORS.help(n)),
                         "parameters": _defaults(COMPRESSOR_PARAMS.get(n))}
                        for n in COMPRESSORS.names()],
        "topologies": [{"name": n, "help": plain(TOPOLOGIES.help(n)),
                        "parameters": _defaults(TOPOLOGY_PARAMS.get(n), ("link_overrides",))}
                       for n in TOPOLOGIES.names()],
        "collectives": [{"name": n, "help": plain(COLLECTIVES.help(n))}
                        for n in COLLECTIVES.names()],
        "device models": [{"name": n, "kind": e.kind, "fp32_flops": e.fp32,
                           "tf32_flops": e.tf32, "memory_bandwidth": e.memory_bandwidth,
                           "efficiency": e.efficiency, "aliases": e.aliases}
                          for n, e in table.devices.items()],
        "data sets": [{"name": n, "help": DATASET_HELP[n]}
                      for n in (*BUILTIN_DATASETS, "FOLDER")],
    }


def _tables(cat: dict[str, list[dict[str, Any]]]) -> list:
    """One rich table per section, each at most 100 columns wide (text wraps at spaces)."""
    from rich.markup import escape  # lazy: rich

    from ..report.table import TABLE_WIDTH, new_table

    out = []
    for section, entries in cat.items():
        if section == "device models":
            t = new_table("device models (device: {model: NAME}; estimated by a roofline)",
                          width=TABLE_WIDTH)
            for col in ("name", "kind", "fp32 TFLOP/s", "tf32 TFLOP/s", "memory TB/s",
                        "efficiency"):
                t.add_column(col, justify="left" if col in ("name", "kind") else "right",
                             no_wrap=True)
            t.add_column("aliases", ratio=1)
            for e in entries:
                t.add_row(e["name"], e["kind"], _flops(e["fp32_flops"]),
                          _flops(e["tf32_flops"]), f"{e['memory_bandwidth'] / 1e12:.3g}",
                          f"{e['efficiency']:g}", ", ".join(e["aliases"]) or "-")
        else:
            note = {"topologies": " (every one also takes link_overrides)",
                    "data sets": " (train.dataset)"}.get(section, "")
            t = new_table(f"{section}{note}", width=TABLE_WIDTH)
            t.add_column("name", no_wrap=True)
            t.add_column("what it is", ratio=1)
            for e in entries:
                text = escape(e["help"])  # plain text, not rich markup
                if e.get("parameters") is not None:
                    params = ", ".join(f"{k}={v}" for k, v in e["parameters"].items())
                    text += f"\n[dim]parameters:[/dim] {escape(params) or '(none)'}"
                t.add_row(e["name"], text)
        out.append(t)
    return out


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON object: section -> entries (name, help, parameters with their "
                   "defaults, device numbers in SI units)")
def list_(as_json: bool) -> None:
    """List models, compressors, topologies and collectives. Also the compressors' and
    topologies' parameters with their defaults, the device models of estimated profiles and
    the data sets of training."""
    cat = catalogue()
    if as_json:
        click.echo(json.dumps(cat, indent=1))
        return
    out = stdout_console()
    for i, t in enumerate(_tables(cat)):
        if i:
            out.print()
        out.print(t)


@click.command()
def schema():
    """Print the JSON schema of scenario files."""
    from ..scenario import Scenario  # lazy: imports pydantic, numpy, networkx, simpy, yaml

    click.echo(json.dumps(Scenario.model_json_schema(), indent=2))
