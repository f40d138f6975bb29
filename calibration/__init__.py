"""Calibration of the cost models to measurements (optax), and the fitted parameter files."""

from ._fitted import fitted_software as fitted_software
from ._fitted import fitted_chip as fitted_chip
