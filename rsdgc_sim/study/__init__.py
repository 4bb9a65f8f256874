"""Studies: sweeps over any scenario field, a store of finished points (resume), and
execution of the points here, in local processes (``--jobs``) or on a Dask cluster."""

from .sweep import GRID_AXES, Variant, expand_sweep, split_path

__all__ = ["GRID_AXES", "Variant", "expand_sweep", "split_path"]
