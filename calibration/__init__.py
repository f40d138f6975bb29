"""Calibration of the cost models to measurements (optax): fitting, validation, intervals.

Calibration sits above the engine: it evaluates through the engine's boundary (the same
``serve`` and the same chip roofline) and writes the fitted files that :mod:`dse.specs` reads.
"""

from dse._lazy import lazy_exports

_EXPORTS = {
    "prediction_interval": "_intervals",
    "CALIBRATABLE": "_run",
    "calibrate": "_run",
    "against_shipped": "_run",
    "format_table": "_run",
    "gemm_generalization": "_run",
    "validate": "_run",
    "prepare": "_fit",
    "calibrate_user": "_user",
    "format_fit": "_user",
    "read_measurements": "_user",
    "fit": "_fit",
    "check_floorplan": "_silicon",
    "fit_floorplan": "_silicon",
    "held_out_mape": "_silicon",
    "published_dies": "_silicon",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
