"""``rsdgc-sim list`` and ``rsdgc-sim schema``: what the package offers, and the scenario
file's JSON schema."""

from __future__ import annotations

import json

import click

from .common import stdout_console


@click.command(name="list")
def list_():
    """List models, compressors, topologies and collectives."""
    from rich.table import Table  # lazy: rich

    # lazy: these import torch, pydantic, numpy, networkx, simpy, yaml
    from ..compress import COMPRESSORS
    from ..models import MODELS
    from ..sim import COLLECTIVES, TOPOLOGIES

    t = Table(show_header=True, header_style="bold")
    t.add_column("kind")
    t.add_column("name")
    t.add_column("what it is")
    for kind, reg in (("model", MODELS), ("compressor", COMPRESSORS), ("topology", TOPOLOGIES),
                      ("collective", COLLECTIVES)):
        for name in reg.names():
            t.add_row(kind, name, reg.help(name))
    stdout_console().print(t)


@click.command()
def schema():
    """Print the JSON schema of scenario files."""
    from ..scenario import Scenario  # lazy: imports pydantic, numpy, networkx, simpy, yaml

    click.echo(json.dumps(Scenario.model_json_schema(), indent=2))
