"""The ``rsdgc-sim`` command: a thin layer over the Python API, one module per command (a
close pair shares one), the helpers they share in :mod:`.common`, and the group in
:mod:`.app`, whose table :data:`~.app.COMMANDS` names every command; a command's module is
imported only when that command is used.

Only this package turns library errors (:class:`~rsdgc_sim.errors.RsdgcError`) into a
one-line message on stderr and exit code 2; nothing below it exits.
"""

from .app import cli, main

__all__ = ["cli", "main"]
