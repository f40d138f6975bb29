"""Calibration parameters: constrained values through reparametrization (no clipping).

Every fitted quantity is a smooth function of one unconstrained real ``x``:
fractions (utilization, efficiencies) are ``sigmoid(x)`` in (0, 1); positive quantities
(overheads, latencies, power coefficients) are ``scale · softplus(x)``, with ``scale`` the
order of magnitude of the quantity so that ``x`` is O(1) for the optimizer.

Each parameter says whether it belongs to the **software** (``SoftwareParams``: efficiency
versus shape, overheads; transfers to other GPUs) or to the **chip** (``SimtSpec`` SI fields:
power per unit of activity; a property of the silicon and its memory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dse.engine import in_float64
from models import SoftwareParams, achievable_software

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Param:
    """One fitted parameter (possibly a vector)."""

    name: str  # field of SoftwareParams or SimtSpec
    owner: str  # "software" or "chip"
    transform: str  # "sigmoid" or "softplus"
    scale: float = 1.0  # softplus only: value = scale * softplus(x)
    size: int = 1  # 1 = scalar
    unit: str = "1"


_PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        # GEMM utilization, form 'table': the seed's four knots in M.
        Param("util_knots", "software", "sigmoid", size=4),
        # GEMM utilization, form 'wave': per-tile peak fraction and K-loop half depth.
        Param("tile_efficiency", "software", "sigmoid", size=4),
        Param("k_half", "software", "softplus", 64.0),
        Param("bw_efficiency", "software", "sigmoid"),
        Param("kernel_overhead_s", "software", "softplus", 1e-6, unit="s"),
        Param("link_efficiency", "software", "sigmoid"),
        Param("collective_latency_s", "software", "softplus", 1e-6, unit="s"),
        Param("collective_launch_s", "software", "softplus", 1e-5, unit="s"),
        Param("reduce_launch_s", "software", "softplus", 1e-5, unit="s"),
        Param("reduce_efficiency", "software", "sigmoid"),
        Param("elementwise_bw_factor", "software", "sigmoid"),
        # Framework overheads per forward pass (fitted per framework).
        Param("step_overhead_s", "software", "softplus", 1e-3, unit="s"),
        Param("seq_overhead_s", "software", "softplus", 1e-4, unit="s"),
        Param("rank_overhead_s", "software", "softplus", 1e-4, unit="s"),
        # Power model P = P_idle + α·FLOP/s + β·B/s (docs/references.md#research-note, SIMT power).
        Param("idle_w", "chip", "softplus", 100.0, unit="W"),
        Param("energy_per_flop_j", "chip", "softplus", 1e-12, unit="J/FLOP"),
        Param("energy_per_byte_j", "chip", "softplus", 1e-11, unit="J/B"),
    )
}

UTIL_FORMS = ("table", "wave")
_COMMON = (
    "bw_efficiency",
    "elementwise_bw_factor",
    "kernel_overhead_s",
    "link_efficiency",
    "collective_latency_s",
    "collective_launch_s",
    "reduce_launch_s",
    "reduce_efficiency",
)
KERNEL_PARAMS = {"table": ("util_knots", *_COMMON), "wave": ("tile_efficiency", "k_half", *_COMMON)}
FRAMEWORK_PARAMS = ("step_overhead_s", "seq_overhead_s", "rank_overhead_s")
CHIP_PARAMS = ("idle_w", "energy_per_flop_j", "energy_per_byte_j")


def param_info(name: str) -> Param:
    return _PARAMS[base_name(name)]


def base_name(name: str) -> str:
    """``step_overhead_s@vllm-server`` → ``step_overhead_s`` (per-framework copies)."""
    return name.split("@")[0]


@in_float64
def to_value(name: str, x: Array) -> Array:
    """Unconstrained ``x`` → constrained value."""
    p = _PARAMS[base_name(name)]
    if p.transform == "sigmoid":
        return jax.nn.sigmoid(x)
    return p.scale * jax.nn.softplus(x)


@in_float64
def to_raw(name: str, value: float | np.ndarray) -> Array:
    """Constrained value → unconstrained ``x`` (inverse of :func:`to_value`)."""
    p = _PARAMS[base_name(name)]
    v = jnp.asarray(value, dtype=float)
    if p.transform == "sigmoid":
        v = jnp.clip(v, 1e-6, 1 - 1e-6)  # only the starting point; the fit itself never clips
        return jnp.log(v) - jnp.log1p(-v)
    v = jnp.maximum(v / p.scale, 1e-9)
    return v + jnp.log(-jnp.expm1(-v))  # inverse softplus


@in_float64
def values(raw: Mapping[str, Array]) -> dict[str, Array]:
    return {k: to_value(k, v) for k, v in raw.items()}


@in_float64
def raws(vals: Mapping[str, float | np.ndarray]) -> dict[str, Array]:
    return {k: to_raw(k, v) for k, v in vals.items()}


@in_float64
def software_from(vals: Mapping[str, Array], util_form: str, base: SoftwareParams | None = None) -> SoftwareParams:
    """SoftwareParams with the fitted software values in ``vals`` (others from ``base``)."""
    base = base or achievable_software()
    sw = {k: jnp.asarray(v, dtype=float) for k, v in vals.items() if _PARAMS[k].owner == "software"}
    sw["util_wave"] = jnp.asarray(1.0 if util_form == "wave" else 0.0)
    return dataclasses.replace(base, **sw)


@in_float64
def chip_from(chip, vals: Mapping[str, Array]):
    """The chip spec with the fitted chip values in ``vals``."""
    ch = {k: jnp.asarray(v, dtype=float) for k, v in vals.items() if _PARAMS[k].owner == "chip"}
    return dataclasses.replace(chip, **ch) if ch else chip
