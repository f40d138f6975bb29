"""Calibration of the cost models to measurements (optax), and the fitted parameter files."""

from ._fitted import fitted_chip as fitted_chip
from ._fitted import fitted_software as fitted_software
from ._fitted import fitted_source as fitted_source
from ._intervals import prediction_interval as prediction_interval
