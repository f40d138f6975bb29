"""The three efficiency levels: ideal (algorithmic), achievable (hardware), calibrated (software)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from dse.specs import HardwareEntry, SpecError, fitted_software, has_own_fit
from models import SoftwareParams, achievable_software, ideal_software

LEVELS = ("ideal", "achievable", "calibrated")
LEVEL_DESCRIPTIONS = {
    "ideal": "pure roofline: datasheet peaks, no derating, no overheads (algorithmic efficiency)",
    "achievable": "hardware-achievable: seed utilization and bandwidth derating (hardware capability)",
    "calibrated": "software-calibrated: fitted efficiencies and overheads (software maturity)",
}


def calibration_source(hardware: HardwareEntry) -> str:
    """Where the calibrated level of ``hardware`` comes from: ``fitted`` (its own fit),
    ``transferred`` (a GPU using the A100 software fit with its own datasheet) or
    ``datasheet`` (no fit applies: calibrated = achievable)."""
    if not hardware.calibrated:
        return "datasheet"
    if has_own_fit(hardware.id):
        return "fitted"
    return "transferred" if hardware.family == "simt" else "datasheet"


def calibrated_software(hardware: HardwareEntry) -> SoftwareParams:
    """The calibrated level of one chip (see :func:`calibration_source`)."""
    source = calibration_source(hardware)
    return achievable_software() if source == "datasheet" else fitted_software(hardware.id)


def software_levels(hardware: HardwareEntry, levels: Sequence[str] = LEVELS) -> SoftwareParams:
    """The efficiency levels of ``hardware``'s chip stacked along a leading axis."""
    table = {
        "ideal": ideal_software,
        "achievable": achievable_software,
        "calibrated": lambda: calibrated_software(hardware),
    }
    for lv in levels:
        if lv not in table:
            raise SpecError(f"levels: unknown level '{lv}': expected one of {', '.join(LEVELS)}")
    params = [table[lv]() for lv in levels]
    return jax.tree.map(lambda *x: np.stack([np.asarray(v, dtype=np.float64) for v in x]), *params)
