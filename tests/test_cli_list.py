"""`rsdgc-sim list`: models, compressors with their parameters and defaults, topologies,
collectives, device models and data sets; plain text (no RST markup); 100 columns."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rsdgc_sim.cli import cli
from rsdgc_sim.cli.info import plain


@pytest.fixture(scope="module")
def listing() -> str:
    r = CliRunner().invoke(cli, ["list"], terminal_width=100, env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    return r.stdout


def test_every_section_is_listed(listing):
    """Each section's title and an entry of it: models, compressors (with parameters),
    topologies, collectives, device models (with an alias), data sets."""
    for word in ("models", "compressors", "topologies", "collectives", "device models",
                 "data sets", "resnet50", "powersgd", "two_level", "allgather_ring",
                 "H100-SXM", "V100-SXM2", "synthetic_rs", "fashion_mnist", "FOLDER"):
        assert word in listing, word


def test_compressor_parameters_and_defaults(listing):
    """Every compressor's parameters appear with their defaults (compress/params.py)."""
    for text in ("rank=1", "start_iter=2", "levels=16", "clip=null", "density=0.01",
                 "statistic=abs_times_mean", "intra_bandwidth=1.2Tbit/s", "arity=4"):
        assert text in listing, text


def test_no_rst_markup_and_100_columns(listing):
    """No ``double backticks`` or :roles: (before: ``a = grad + residual``), no line over
    100 columns."""
    assert "``" not in listing and ":func:" not in listing and ":data:" not in listing
    assert "a = grad + residual" in listing
    assert max(len(line) for line in listing.splitlines()) <= 100


def test_plain_strips_roles_and_literals():
    """Roles keep their target's last name; literals lose their backticks."""
    assert plain("see :func:`~rsdgc_sim.compress.create` and ``a = b``") == "see create and a = b"
    assert plain(":data:`MAX_WORKERS` of :class:`Foo`") == "MAX_WORKERS of Foo"


def test_list_json_matches_the_registries():
    """`list --json`: one object per section, the compressors' defaults as the parameter
    classes give them, the device table's numbers in SI units."""
    from rsdgc_sim.compress.params import COMPRESSOR_PARAMS
    from rsdgc_sim.profile.device_models import device_table

    r = CliRunner().invoke(cli, ["list", "--json"])
    assert r.exit_code == 0, r.output
    cat = json.loads(r.stdout)
    assert list(cat) == ["models", "compressors", "topologies", "collectives",
                         "device models", "data sets"]
    comps = {e["name"]: e for e in cat["compressors"]}
    assert set(comps) == set(COMPRESSOR_PARAMS.names())
    assert list(comps["powersgd"]["parameters"]) == list(
        COMPRESSOR_PARAMS.get("powersgd").model_fields)
    assert comps["qsgd"]["parameters"]["levels"] == "16"
    devices = {e["name"]: e for e in cat["device models"]}
    assert devices["H100-SXM"]["fp32_flops"] == device_table().devices["H100-SXM"].fp32
    assert "H100" in devices["H100-SXM"]["aliases"]
