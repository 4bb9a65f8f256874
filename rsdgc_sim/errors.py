"""One exception hierarchy for the whole package.

The library raises these; only ``rsdgc_sim.cli`` turns them into a one-line message and an
exit code. Messages carry the bad value and, where there is a fixed set, the choices.
"""

from __future__ import annotations

from collections.abc import Iterable


class RsdgcError(Exception):
    """Base of every error the package raises on purpose."""

    def with_context(self, where: str) -> RsdgcError:
        """The same error (same class and attributes) with ``where: `` before its message."""
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new.args = (f"{where}: {self}",)
        return new


class ConfigError(RsdgcError, ValueError):
    """A user-supplied value (scenario field, CLI option, parameter) is wrong."""


class UnitError(ConfigError):
    """A quantity with a missing or unknown unit."""


class UnknownNameError(ConfigError, KeyError):
    """A name that is not in a registry (model, compressor, topology, collective)."""

    def __init__(self, kind: str, name: object, choices: Iterable[str]):
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ScenarioFileError(ConfigError):
    """A scenario or topology file that is missing, unreadable or not valid YAML."""


class ProfileError(RsdgcError):
    """A profile that cannot be measured, loaded or used."""


class TopologyError(ConfigError):
    """A topology that cannot hold the requested workers or is not connected."""


class GradientError(RsdgcError, ValueError):
    """A gradient that cannot be sent (NaN or Inf values)."""


class TrainingError(RsdgcError):
    """Training that cannot give an answer (it diverged: a non-finite loss)."""


class OutputError(RsdgcError):
    """An output (folder, file, cache) that cannot be written."""


class EmulationError(RsdgcError):
    """A failure while emulating a network (namespaces, tc, ranks)."""
