"""Fitted software parameters shipped with the catalog (``calibration/fitted/<hardware>.yaml``)."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import yaml

from models.hardware import SoftwareParams, achievable_software

FITTED_DIR = Path(__file__).resolve().parent / "fitted"


def fitted_software(hardware_id: str | None) -> SoftwareParams:
    """The calibrated level for a chip: its own fit, else the A100 fit (software parameters
    transfer across GPUs; chip parameters come from the datasheet), else the seed derating."""
    for name in (hardware_id, "a100-sxm4-40gb", "a100-sxm4-80gb"):
        path = FITTED_DIR / f"{name}.yaml"
        if name and path.exists():
            p = yaml.safe_load(path.read_text())["software"]
            return SoftwareParams(**{k: jnp.asarray(v, dtype=float) for k, v in p.items()})
    return achievable_software()


def fitted_chip(hardware_id: str | None) -> dict[str, float]:
    """Chip parameters fitted for ``hardware_id`` (SI field → value), or {} if none."""
    path = FITTED_DIR / f"{hardware_id}.yaml"
    if not hardware_id or not path.exists():
        return {}
    return {k: float(v) for k, v in (yaml.safe_load(path.read_text()).get("chip") or {}).items()}
