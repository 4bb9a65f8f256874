"""The ``rsdgc-sim`` command: a thin layer over the Python API, one module per command
group (:mod:`.main` holds the group and the commands of a study; :mod:`.collective`,
:mod:`.emulate` and :mod:`.tta` the others, imported only when used).

Only this package turns library errors (:class:`~rsdgc_sim.errors.RsdgcError`) into a
one-line message on stderr and exit code 2; nothing below it exits.
"""

from .main import cli, main

__all__ = ["cli", "main"]
