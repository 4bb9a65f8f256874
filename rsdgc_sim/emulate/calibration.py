"""The calibration model moved to :mod:`rsdgc_sim.calibration` (a property of links, read by
``run`` and ``sim`` too); this name stays for existing imports."""

from ..calibration import (  # noqa: F401
    CALIBRATION_KIND,
    CALIBRATION_VERSION,
    Calibration,
    Interference,
    LinkFit,
    Sample,
    calibrated_point,
    calibration_warnings,
    fit_link,
    load_calibration,
    measured_here,
    save_calibration,
)
