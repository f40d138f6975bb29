"""Dispatch on the (static) hardware family, so that callers never branch on it."""

from __future__ import annotations

from typing import Any

import jax

from models.workloads._transformer import OperatorTable

from ._simt import OpCost, SimtSpec, SoftwareParams, simt_energy_j, simt_operator_cost

Array = jax.Array

# family id → (spec class, operator cost, energy of work)
FAMILIES: dict[str, tuple[type, Any, Any]] = {
    "simt": (SimtSpec, simt_operator_cost, simt_energy_j),
}


def operator_cost(chip: Any, software: SoftwareParams, ops: OperatorTable,
                  weight_dtype: str, act_dtype: str, kv_dtype: str) -> OpCost:
    """Compute, memory and overhead time of every operator row on one chip of ``chip``'s family."""
    return FAMILIES[chip.family][1](chip, software, ops, weight_dtype, act_dtype, kv_dtype)


def operator_energy_j(chip: Any, time_s: Array, flops: Array, bytes_: Array) -> Array:
    """Energy of one chip doing ``flops`` and moving ``bytes_`` in ``time_s``."""
    return FAMILIES[chip.family][2](chip, time_s, flops, bytes_)


def gemm_cost(chip: Any, software: SoftwareParams, m: Array, n: Array, k: Array, dtype: str) -> tuple[Array, Array]:
    """Latency (s) and energy (J) of one GEMM on one chip: roofline time plus launch overhead."""
    from models.workloads import gemm_operator

    ops = gemm_operator(m, n, k, dtype)
    c = operator_cost(chip, software, ops, dtype, dtype, dtype)
    t = jax.numpy.maximum(c.compute_s, c.memory_s) + c.overhead_s
    return t[0], operator_energy_j(chip, t, ops.flops, ops.bytes)[0]
