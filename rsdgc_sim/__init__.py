"""rsdgc-sim: how long will data-parallel training take, and what will it cost in accuracy,
when gradients are compressed with RS-DGC or its rivals, on a given cluster?

The Python API comes first; the ``rsdgc-sim`` command is a thin layer over it.
"""

__version__ = "0.1.0"
