"""Prediction intervals for ``inferbench predict --intervals``.

The interval of a prediction is multiplicative: the model's error on **held-out models**,
in log space, with mean μ and standard deviation σ per data set (stored in the fitted file's
``intervals`` section), gives value·exp(μ ± z·σ) at the requested coverage (z from the
normal quantile). The held-out error already contains the parameter uncertainty (the
Laplace standard deviations are much smaller; they are in the ``uncertainty`` section).
For a GPU without a fit of its own the A100 intervals are widened by ``TRANSFER_WIDENING``
(an assumption: the software transfer adds an error we cannot measure without data).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from dse.specs import SpecError, fitted_source, read_fitted

# quantity asked for -> data set whose held-out errors describe it
QUANTITIES = {
    "latency": "static_latency",  # whole-request latency (offline engine)
    "prefill": "static_latency",
    "decode": "serving_tpot",
    "tpot": "serving_tpot",
    "energy": "serving_energy",
    "power": "static_power",
    "kernel": "kernel_gemm",
    "gemm": "kernel_gemm",
    "allreduce": "allreduce",
}
TRANSFER_WIDENING = 2.0


def prediction_interval(
    hardware_id: str | None, value, quantity: str = "latency", level: float = 0.9, framework: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of a prediction ``value`` (scalar or array) at coverage ``level``.

    Args:
        hardware_id: catalog id of the chip the prediction is for.
        value: predicted value(s), any positive unit.
        quantity: one of ``QUANTITIES`` (latency, prefill, decode, tpot, energy, power,
            kernel, gemm, allreduce).
        level: two-sided coverage in (0, 1).
        framework: the software profile of the prediction: its own held-out errors where the
            fit has them (``<data set>@<framework>``), else the data set's.

    Returns:
        (lower, upper), arrays of the shape of ``value``; NaN when there is no fitted file.
    """
    if quantity not in QUANTITIES:
        raise SpecError(f"--intervals: unknown quantity '{quantity}': expected one of {', '.join(QUANTITIES)}")
    if not 0.0 < level < 1.0:
        raise SpecError(f"--interval-level: {level}: expected a coverage between 0 and 1, e.g. 0.9")
    v = np.asarray(value, dtype=float)
    source = fitted_source(hardware_id)
    data = read_fitted(source) if source else None
    table = (data or {}).get("intervals") or {}
    stats = table.get(f"{QUANTITIES[quantity]}@{framework}") or table.get(QUANTITIES[quantity])
    if not stats:
        nan = np.full_like(v, np.nan)
        return nan, nan
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    sd = float(stats["sd_log"]) * (1.0 if source == hardware_id else TRANSFER_WIDENING)
    mu = float(stats["mean_log"])
    return v * np.exp(mu - z * sd), v * np.exp(mu + z * sd)
