"""The three efficiency levels: ideal (algorithmic), achievable (hardware), calibrated (software)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from dse.specs import HardwareEntry, SpecError, fitted_frameworks, fitted_software, has_own_fit
from models import SoftwareParams, achievable_software, ideal_software

LEVELS = ("ideal", "achievable", "calibrated")
LEVEL_DESCRIPTIONS = {
    "ideal": "pure roofline: datasheet peaks, no derating, no overheads (algorithmic efficiency)",
    "achievable": "hardware-achievable: seed utilization and bandwidth derating (hardware capability)",
    "calibrated": "software-calibrated: fitted efficiencies and overheads (software maturity)",
}


def calibration_source(hardware: HardwareEntry) -> str:
    """Where the calibrated level of ``hardware`` comes from: ``fitted`` (its own fit; a
    user's fit in effect names its file, rows and cross-validated error:
    ``fitted (FIT.yaml: 30 rows, CV MAPE 4.2 %)``), ``transferred`` (a GPU using the A100
    software fit with its own datasheet) or ``datasheet`` (no fit applies: calibrated =
    achievable)."""
    if not hardware.calibrated:
        return "datasheet"
    if hardware.fit is not None:
        return hardware.fit.label
    if has_own_fit(hardware.id):
        return "fitted"
    return "transferred" if hardware.family == "simt" else "datasheet"


def framework_of(hardware: HardwareEntry, framework: str | None = None) -> str:
    """The software profile the calibrated level of ``hardware`` uses: ``framework`` if its
    fit has it (one-line error otherwise), else the fit's default; 'none' without a fit."""
    if hardware.fit is not None:
        if framework not in (None, hardware.fit.framework):
            raise SpecError(
                f"--framework: '{framework}': the fit in effect for {hardware.id} ({hardware.fit.path}) is of "
                f"'{hardware.fit.framework}': expected that name or no --framework"
            )
        return hardware.fit.framework
    if calibration_source(hardware) == "datasheet":
        return "none"
    default, names = fitted_frameworks(hardware.id)
    if framework is None:
        return default or "none"
    if framework not in names:
        raise SpecError(
            f"--framework: unknown framework '{framework}' for {hardware.id}: expected one of {', '.join(names)}"
        )
    return framework


def calibrated_software(hardware: HardwareEntry, framework: str | None = None) -> SoftwareParams:
    """The calibrated level of one chip (see :func:`calibration_source`) with the overheads of
    ``framework`` (default: the fit's default framework)."""
    if hardware.fit is not None:
        framework_of(hardware, framework)  # a --framework other than the fit's is refused
        return hardware.fit.software
    source = calibration_source(hardware)
    if source == "datasheet":
        return achievable_software()
    return fitted_software(hardware.id, framework_of(hardware, framework))


def software_levels(
    hardware: HardwareEntry, levels: Sequence[str] = LEVELS, framework: str | None = None
) -> SoftwareParams:
    """The efficiency levels of ``hardware``'s chip stacked along a leading axis."""
    table: dict[str, Callable[[], SoftwareParams]] = {
        "ideal": ideal_software,
        "achievable": achievable_software,
        "calibrated": lambda: calibrated_software(hardware, framework),
    }
    for lv in levels:
        if lv not in table:
            raise SpecError(f"levels: unknown level '{lv}': expected one of {', '.join(LEVELS)}")
    params = [table[lv]() for lv in levels]
    stacked: SoftwareParams = jax.tree.map(lambda *x: np.stack([np.asarray(v, dtype=np.float64) for v in x]), *params)
    return stacked


def level_of(software: SoftwareParams, index: int = 0) -> SoftwareParams:
    """One level of :func:`software_levels`' stack (for single-level evaluations)."""
    one: SoftwareParams = jax.tree.map(lambda x: x[index], software)
    return one
