"""SIMT (GPU-class) chip: per-operator roofline with shape-dependent utilization, linear power.

time = max(FLOPs / (peak · util(shape)), bytes / (bandwidth · bw_eff)) + kernel overhead
power = P_idle + α · FLOP/s + β · bytes/s, capped at TDP;  energy = power · time

References:
  InferBench research note (seeds/000), "Architecture Models — SIMT (GPU-like)": roofline,
    cuBLAS utilization table (M<32: 15 %, M=128–512: 70 %, M>4096: 85 %), A100 power model
    60 W + 0.2 mW per GFLOP/s + 50 mW per GB/s.
  Williams, Waterman, Patterson, "Roofline", CACM 2009.
  GenZ (seeds/003) §III-B: efficiency factors Eff_C on top of the peak.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from models._pytree import pytree_dataclass, static_field
from models.workloads._transformer import ATTENTION, ELEMENTWISE, GATHER, GEMM, OperatorTable

Array = jax.Array

# Storage dtype → tensor-core rate used for a GEMM whose widest operand has that dtype.
_RATE_OF_DTYPE = {"fp32": "bf16", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "int8": "int8",
                  "int4": "fp4", "fp4": "fp4"}
_WIDTH = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4, "fp4": 4}


@pytree_dataclass
class SimtSpec:
    """A GPU-class chip, SI units. Rates are dense (no structured sparsity).

    Missing low-precision rates are filled at load with the next wider supported one
    (e.g. an A100 runs FP8 weights at its BF16 rate).
    """

    peak_bf16_flops_per_s: Array
    peak_fp8_flops_per_s: Array
    peak_int8_ops_per_s: Array
    peak_fp4_flops_per_s: Array
    peak_vector_flops_per_s: Array
    hbm_bandwidth_bytes_per_s: Array
    hbm_capacity_bytes: Array
    sram_capacity_bytes: Array
    tdp_w: Array
    idle_w: Array
    energy_per_flop_j: Array  # α: dynamic compute power per FLOP/s
    energy_per_byte_j: Array  # β: dynamic memory power per byte/s
    price_usd: Array
    link_bandwidth_bytes_per_s: Array  # scale-up, one direction, per chip
    link_latency_s: Array
    sm_count: Array
    die_area_mm2: Array
    family: str = static_field(default="simt")

    @property
    def capacity_bytes(self) -> Array:
        return self.hbm_capacity_bytes

    def peak_flops_per_s(self, dtype: str) -> Array:
        """Tensor rate for GEMMs whose widest operand has storage dtype ``dtype``."""
        return {
            "bf16": self.peak_bf16_flops_per_s,
            "fp8": self.peak_fp8_flops_per_s,
            "int8": self.peak_int8_ops_per_s,
            "fp4": self.peak_fp4_flops_per_s,
        }[_RATE_OF_DTYPE[dtype]]


# Knots of the utilization curve, in GEMM rows M (the seed's cuBLAS table: flat 15 % below
# M = 32, 70 % over 128–512, 85 % above 4096; linear in log2 M between knots).
UTIL_KNOTS_M = (32.0, 128.0, 512.0, 4096.0)
SEED_UTIL = (0.15, 0.70, 0.70, 0.85)


@pytree_dataclass
class SoftwareParams:
    """What a software stack reaches of a chip: the 'software maturity' knobs.

    Attributes:
        util_knots: utilization of the tensor peak at ``UTIL_KNOTS_M`` GEMM rows, shape [4].
        bw_efficiency: fraction of the HBM bandwidth streaming kernels reach.
        kernel_overhead_s: fixed time per kernel launch (per operator row execution).
        link_efficiency: fraction of the link bandwidth collectives reach.
        collective_latency_s: fixed time per collective call on top of the link latency.
        step_overhead_s: framework time per forward pass (scheduling, sampling, Python).
    """

    util_knots: Array
    bw_efficiency: Array
    kernel_overhead_s: Array
    link_efficiency: Array
    collective_latency_s: Array
    step_overhead_s: Array


def ideal_software() -> SoftwareParams:
    """Level 'ideal': the pure roofline — peak rates, no overheads."""
    return SoftwareParams(jnp.ones(4), jnp.asarray(1.0), jnp.asarray(0.0), jnp.asarray(1.0),
                          jnp.asarray(0.0), jnp.asarray(0.0))


def achievable_software() -> SoftwareParams:
    """Level 'achievable': seed derating of the hardware, before any calibration.

    util: the seed's cuBLAS table. bw_efficiency 0.85: estimate, typical of streaming
    kernels on HBM2e/HBM3 parts. link_efficiency 0.75: GenZ §V (nccl-tests on HGX A100,
    75 % average NVLink efficiency). Overheads zero: they belong to a software stack.
    """
    return SoftwareParams(jnp.asarray(SEED_UTIL), jnp.asarray(0.85), jnp.asarray(0.0),
                          jnp.asarray(0.75), jnp.asarray(0.0), jnp.asarray(0.0))


def gemm_utilization(util_knots: Array, m: Array) -> Array:
    """Fraction of peak a GEMM with ``m`` rows reaches: linear interpolation in log2 M.

    Flat beyond the outer knots. Differentiable in every knot value (the calibration
    parameters) and piecewise linear in log M.
    """
    x = jnp.log2(jnp.maximum(m, 1.0))
    xk = jnp.log2(jnp.asarray(UTIL_KNOTS_M))
    return jnp.interp(x, xk, util_knots)


class OpCost(NamedTuple):
    """Per-operator cost terms on one chip, shape [n_ops], for one execution of each row."""

    compute_s: Array
    memory_s: Array
    overhead_s: Array


def simt_operator_cost(
    chip: SimtSpec,
    software: SoftwareParams,
    ops: OperatorTable,
    weight_dtype: str,
    act_dtype: str,
    kv_dtype: str,
) -> OpCost:
    """Roofline terms of each operator (seed 000, SIMT): compute and memory time, overhead.

    GEMMs run at the tensor rate of their widest operand (weight-only quantization computes
    in the activation dtype); attention at the rate of max(activation, KV) width;
    elementwise and gather rows at the vector rate. Utilization applies to GEMM and
    attention rows only (the seed's table is for cuBLAS GEMMs).
    """
    gemm_dtype = max((weight_dtype, act_dtype), key=_WIDTH.__getitem__)
    attn_dtype = max((act_dtype, kv_dtype), key=_WIDTH.__getitem__)
    util = gemm_utilization(software.util_knots, ops.m)
    rate = []
    for kind, u in zip(ops.kinds, util, strict=True):
        if kind == GEMM:
            rate.append(chip.peak_flops_per_s(gemm_dtype) * u)
        elif kind == ATTENTION:
            rate.append(chip.peak_flops_per_s(attn_dtype) * u)
        elif kind in (ELEMENTWISE, GATHER):
            rate.append(chip.peak_vector_flops_per_s * jnp.ones_like(u))
        else:  # pragma: no cover - kinds are a closed set
            raise ValueError(kind)
    compute_s = ops.flops / jnp.stack(rate)
    memory_s = ops.bytes / (chip.hbm_bandwidth_bytes_per_s * software.bw_efficiency)
    overhead_s = software.kernel_overhead_s * jnp.ones_like(compute_s)
    return OpCost(compute_s, memory_s, overhead_s)


def simt_energy_j(chip: SimtSpec, time_s: Array, flops: Array, bytes_: Array) -> Array:
    """Energy of work (FLOPs, bytes) done in ``time_s`` on one chip.

    P = P_idle + α·FLOP/s + β·bytes/s (seed 000, SIMT power) capped at TDP, so
    E = min(TDP·t, P_idle·t + α·FLOPs + β·bytes).
    """
    uncapped = chip.idle_w * time_s + chip.energy_per_flop_j * flops + chip.energy_per_byte_j * bytes_
    return jnp.minimum(chip.tdp_w * time_s, uncapped)
