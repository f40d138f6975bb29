"""Calibration of the cost models to measurements (optax): fitting, validation, intervals.

Calibration sits above the engine: it evaluates through the engine's boundary (the same
``serve`` and the same chip roofline) and writes the fitted files that :mod:`dse.specs` reads.
"""

from ._intervals import prediction_interval as prediction_interval
