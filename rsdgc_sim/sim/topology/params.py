"""The generators' parameters: the strict base class :class:`TopologyParams` (with
:class:`LinkSpec`, a link given or overridden), the registries :data:`TOPOLOGIES` (the
generators) and :data:`TOPOLOGY_PARAMS` (their parameter classes), filled by
:func:`register_generator` in the generators' modules, and the checks that use them
without building anything (:func:`check_topology_params`, :func:`topology_size`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator

from ...errors import ConfigError
from ...registry import Registry
from ...strict import Strict, excerpt, validation_message
from ...units import LinkBandwidth, LinkLatency
from .guards import TopologySize

#: name -> generator(hosts, bandwidth, latency, **params) -> Topology
TOPOLOGIES: Registry = Registry("topology")

#: bound of integer parameters (arity, k, gpus_per_node, rows, cols)
MAX_COUNT = 1_000_000_000


class LinkSpec(Strict):
    """One link of a topology file, or an override of a built topology's link: the two
    nodes it joins, and its bandwidth and latency (None: the default)."""

    between: tuple[str, str]
    bandwidth: LinkBandwidth | None = None
    latency: LinkLatency | None = None

    @field_validator("between", mode="before")
    @classmethod
    def _two_nodes(cls, value: Any) -> Any:
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(x, str) for x in value)):
            raise ValueError(f"expected two node names [a, b], got {excerpt(value)}")
        if value[0] == value[1]:
            raise ValueError(f"a link joins two different nodes, got {excerpt(list(value))}")
        return tuple(value)


class TopologyParams(Strict):
    """Base of every generator's parameters (strict: unknown names, wrong types, bools as
    numbers, non-finite values are errors). ``link_overrides`` is accepted by all: it
    changes links of the built topology (in its link table: no graph is built)."""

    link_overrides: list[LinkSpec] = Field(default_factory=list)

    #: whether the generator builds its links only when first used (``switch``)
    lazy: ClassVar[bool] = False

    def size(self, hosts: int) -> TopologySize:
        """Nodes and links of the topology for ``hosts`` hosts (before building it)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The parameters that set the size, for messages (`` with k=1000``)."""
        return ""

    def smaller(self, hosts: int) -> str:
        """What to change when the topology is too big for ``hosts`` hosts."""
        return "use fewer workers"

    def links_carry_bandwidth(self) -> bool:
        """Whether the parameters set every link's bandwidth, so that the scenario's (the
        CLI's ``--bandwidth``) is not used (``gpu_cluster`` with a preset or ``nic``)."""
        return False

    def generator_kwargs(self) -> dict[str, Any]:
        """The generator's keyword arguments (the overrides are applied after it)."""
        return {k: getattr(self, k) for k in type(self).model_fields if k != "link_overrides"}


class FileParams(TopologyParams):
    """``file``: the topology file at ``path``."""

    path: str


#: each generator's parameters, by topology name (the names of :data:`TOPOLOGIES`)
TOPOLOGY_PARAMS: Registry[type[TopologyParams]] = Registry("topology")


def register_generator(name: str, help: str, params: type[TopologyParams]):
    """Register a generator and its parameter class under ``name``."""
    TOPOLOGY_PARAMS.add(name, params)
    return TOPOLOGIES.register(name, help)


def param_names(cls: type[TopologyParams]) -> list[str]:
    """A parameter class's fields, the generator's own first."""
    own = [f for f in cls.model_fields if f != "link_overrides"]
    return [*own, "link_overrides"]


def check_topology_params(name: str, params: Mapping[str, Any] | None,
                          where: str = "") -> TopologyParams:
    """The parameters of generator ``name`` checked by its class (nothing is built).

    Raises :class:`~rsdgc_sim.errors.UnknownNameError` listing the generators for an
    unknown name, :class:`~rsdgc_sim.errors.ConfigError` naming the bad parameter and
    listing the generator's parameters for a bad one. ``where`` goes before the message."""
    cls = TOPOLOGY_PARAMS.get(name) if name != "file" else FileParams
    return validate_params(cls, name, params, where)


def validate_params(cls: type[TopologyParams], name: str, params: Any,
                    where: str) -> TopologyParams:
    prefix = f"{where}: " if where else ""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{prefix}topology {name!r}: parameters must be a mapping, got "
                          f"{excerpt(params)}")
    try:
        return cls.model_validate(dict(params))
    except ValidationError as e:
        unknown = [excerpt(err["loc"][0]) for err in e.errors()
                   if err["type"] == "extra_forbidden" and len(err["loc"]) == 1]
        text = (f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                if unknown else validation_message(e, cls))
        raise ConfigError(f"{prefix}topology {name!r}: {text}; parameters: "
                          f"{', '.join(param_names(cls))}") from None


def topology_size(name: str, hosts: int, params: Mapping[str, Any] | None = None,
                  extra_hosts: int = 0) -> TopologySize:
    """Nodes and links generator ``name`` would build for ``hosts + extra_hosts`` hosts
    (parameters checked, nothing built)."""
    p = check_topology_params(name, params)
    if isinstance(p, FileParams):
        raise ConfigError("topology 'file': the size of a file is known once it is read")
    return p.size(hosts + extra_hosts)
