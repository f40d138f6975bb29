"""Dispatch on the (static) hardware family, so that callers never branch on it."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from models.workloads._transformer import OperatorTable

from ._asic import (
    CgraSpec,
    DataflowSpec,
    ImcSpec,
    SramChipletSpec,
    SystolicSpec,
    cgra_operator_cost,
    dataflow_operator_cost,
    generic_energy_j,
    imc_energy_j,
    imc_operator_cost,
    sram_chiplet_operator_cost,
    systolic_operator_cost,
)
from ._simt import OpCost, SimtSpec, SoftwareParams, simt_operator_cost

Array = jax.Array


# family id → (spec class, operator cost, energy of work)
FAMILIES: dict[str, tuple[type, Any, Any]] = {
    "simt": (SimtSpec, simt_operator_cost, generic_energy_j),
    "systolic": (SystolicSpec, systolic_operator_cost, generic_energy_j),
    "imc": (ImcSpec, imc_operator_cost, imc_energy_j),
    "dataflow": (DataflowSpec, dataflow_operator_cost, generic_energy_j),
    "sram_chiplet": (SramChipletSpec, sram_chiplet_operator_cost, generic_energy_j),
    "cgra": (CgraSpec, cgra_operator_cost, generic_energy_j),
}


def operator_cost(chip: Any, software: SoftwareParams, ops: OperatorTable,
                  weight_dtype: str, act_dtype: str, kv_dtype: str) -> OpCost:
    """Compute, memory and overhead time of every operator row on one chip of ``chip``'s family."""
    return FAMILIES[chip.family][1](chip, software, ops, weight_dtype, act_dtype, kv_dtype)


def operator_energy_j(chip: Any, time_s: Array, flops: Array, bytes_: Array, ops: OperatorTable,
                      weight_dtype: str = "bf16", act_dtype: str = "bf16") -> Array:
    """Energy of one chip doing ``flops`` and moving ``bytes_`` in ``time_s``, per row of ``ops``."""
    return FAMILIES[chip.family][2](chip, time_s, flops, bytes_, ops, weight_dtype, act_dtype)


def memory_bandwidth_bytes_per_s(chip: Any) -> Array:
    """The bandwidth MBU is measured against: HBM for GPUs, the family's main memory otherwise."""
    bw = getattr(chip, "memory_bandwidth_bytes_per_s", None)
    return chip.hbm_bandwidth_bytes_per_s if bw is None else bw


def chips_from_capacity(chip: Any) -> bool:
    """Whether the platform's pipeline depth follows from capacity (SRAM-only chips)."""
    return bool(getattr(type(chip), "chips_from_capacity", False))


def gemm_cost(chip: Any, software: SoftwareParams, m: Array, n: Array, k: Array, dtype: str) -> tuple[Array, Array]:
    """Latency (s) and energy (J) of one GEMM on one chip: roofline time plus launch overhead."""
    from models.workloads import gemm_operator

    ops = gemm_operator(m, n, k, dtype)
    c = operator_cost(chip, software, ops, dtype, dtype, dtype)
    t = jnp.maximum(c.compute_s, c.memory_s) + c.overhead_s
    return t[0], operator_energy_j(chip, t, ops.flops, ops.bytes, ops, dtype, dtype)[0]
