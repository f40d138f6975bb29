"""SIMT (GPU-class) chip: per-operator roofline with shape-dependent utilization, linear power.

time = max(FLOPs / (peak · util(shape)), bytes / (bandwidth · bw_eff)) + kernel overhead
power = P_idle + α · FLOP/s + β · bytes/s, capped at TDP;  energy = power · time

References:
  InferBench research note (seeds/000), "Architecture Models — SIMT (GPU-like)": roofline,
    cuBLAS utilization table (M<32: 15 %, M=128–512: 70 %, M>4096: 85 %), A100 power model
    60 W + 0.2 mW per GFLOP/s + 50 mW per GB/s.
  Tile and wave quantization of tiled GEMMs: NVIDIA, "Matrix Multiplication Background User's
    Guide" (Deep Learning Performance docs), sections "Tile Quantization" and "Wave
    Quantization"; CUTLASS threadblock tile shapes for SM80 (128x256, 128x128, 128x64, 64x64).
  Williams, Waterman, Patterson, "Roofline", CACM 2009.
  GenZ (seeds/003) §III-B: efficiency factors Eff_C on top of the peak.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from models._pytree import pytree_dataclass, static_field
from models.workloads._transformer import ATTENTION, ELEMENTWISE, GATHER, GEMM, OperatorTable

from ._common import linear_power_energy_j, widest

Array = jax.Array

# Storage dtype → tensor-core rate used for a GEMM whose widest operand has that dtype.
_RATE_OF_DTYPE = {"fp32": "bf16", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "int8": "int8",
                  "int4": "fp4", "fp4": "fp4"}


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


# Candidate thread-block (CTA) tiles (rows M x columns N of C) of the tile/wave form: the
# SM80 tensor-core tiles of CUTLASS's default kernels, largest first. cuBLAS picks, per
# shape, the kernel that runs fastest; the model takes the best candidate (a max).
GEMM_TILES_MN = ((128.0, 256.0), (128.0, 128.0), (128.0, 64.0), (64.0, 64.0))


def _zeros4() -> Array:
    return jnp.zeros(4)


@pytree_dataclass
class SoftwareParams:
    """What a software stack reaches of a chip: the 'software maturity' knobs.

    Two forms of the GEMM utilization curve are mixed by the leaf ``util_wave`` (0 selects
    the seed's table in M, 1 the tile/wave-quantization form over the chip's SM count; the
    levels 'ideal' and 'achievable' use the table). Both are leaves so that levels that use
    different forms stack into one PyTree (one compiled program).

    Attributes:
        util_knots: utilization of the tensor peak at ``UTIL_KNOTS_M`` GEMM rows, shape [4].
        bw_efficiency: fraction of the HBM bandwidth streaming kernels reach.
        kernel_overhead_s: fixed time per kernel launch (per operator row execution).
        link_efficiency: fraction of the link bandwidth collectives reach.
        collective_latency_s: fixed time per collective call on top of the link latency.
        step_overhead_s: framework time per forward pass (scheduling, sampling, Python).
        util_wave: weight of the tile/wave form in the utilization (0 table, 1 tile/wave).
        tile_efficiency: fraction of the tensor peak a full wave of each ``GEMM_TILES_MN``
            tile reaches, shape [4].
        k_half: reduction depth K at which the main loop reaches half its steady rate
            (prologue/epilogue of the K loop amortized over K / (K + k_half)).
        elementwise_bw_factor: bandwidth efficiency of elementwise and gather kernels
            relative to ``bw_efficiency`` (framework kernels versus library GEMMs).
        seq_overhead_s: framework time per sequence per forward pass (scheduling,
            detokenization, streaming of each sequence's token).
    """

    util_knots: Array
    bw_efficiency: Array
    kernel_overhead_s: Array
    link_efficiency: Array
    collective_latency_s: Array
    step_overhead_s: Array
    util_wave: Array = dataclasses.field(default_factory=lambda: jnp.asarray(0.0))
    tile_efficiency: Array = dataclasses.field(default_factory=_zeros4)
    k_half: Array = dataclasses.field(default_factory=lambda: jnp.asarray(0.0))
    elementwise_bw_factor: Array = dataclasses.field(default_factory=lambda: jnp.asarray(1.0))
    seq_overhead_s: Array = dataclasses.field(default_factory=lambda: jnp.asarray(0.0))
    # 1: the chip's structural utilization (array fill, ADC passes, K tiling) applies; 0: the
    # datasheet roofline (level 'ideal'). Used by the non-GPU families.
    structural_derating: Array = dataclasses.field(default_factory=lambda: jnp.asarray(1.0))

    def pass_overhead_s(self, batch: Array) -> Array:
        """Framework time of one forward pass of ``batch`` sequences (software maturity):
        a fixed part and a part per sequence (scheduling, sampling, detokenization)."""
        return self.step_overhead_s + batch * self.seq_overhead_s


def ideal_software() -> SoftwareParams:
    """Level 'ideal': the pure roofline — peak rates, no overheads."""
    return SoftwareParams(jnp.ones(4), jnp.asarray(1.0), jnp.asarray(0.0), jnp.asarray(1.0),
                          jnp.asarray(0.0), jnp.asarray(0.0), jnp.asarray(0.0), jnp.ones(4),
                          jnp.asarray(0.0), structural_derating=jnp.asarray(0.0))


def achievable_software() -> SoftwareParams:
    """Level 'achievable': seed derating of the hardware, before any calibration.

    util: the seed's cuBLAS table. bw_efficiency 0.85: estimate, typical of streaming
    kernels on HBM2e/HBM3 parts. link_efficiency 0.75: GenZ §V (nccl-tests on HGX A100,
    75 % average NVLink efficiency). Overheads zero: they belong to a software stack.
    """
    return SoftwareParams(jnp.asarray(SEED_UTIL), jnp.asarray(0.85), jnp.asarray(0.0),
                          jnp.asarray(0.75), jnp.asarray(0.0), jnp.asarray(0.0),
                          jnp.asarray(0.0), jnp.full(4, SEED_UTIL[-1]), jnp.asarray(0.0))


def gemm_utilization(util_knots: Array, m: Array) -> Array:
    """Fraction of peak a GEMM with ``m`` rows reaches: linear interpolation in log2 M.

    Flat beyond the outer knots. Differentiable in every knot value (the calibration
    parameters) and piecewise linear in log M.
    """
    x = jnp.log2(jnp.maximum(m, 1.0))
    xk = jnp.log2(jnp.asarray(UTIL_KNOTS_M))
    return jnp.interp(x, xk, util_knots)


def tile_wave_utilization(tile_efficiency: Array, k_half: Array, m: Array, n: Array, k: Array,
                          sm_count: Array, waves: bool = True) -> Array:
    """Fraction of peak of a tiled GEMM C[m,n] = A[m,k]·B[k,n]: tile and wave quantization.

    For each candidate CTA tile (tm, tn) of ``GEMM_TILES_MN`` (NVIDIA Matrix Multiplication
    Background guide, "Tile Quantization", "Wave Quantization"):
      tiles = ⌈m/tm⌉·⌈n/tn⌉ CTAs, run in ⌈tiles/SMs⌉ waves of SMs CTAs (one CTA per SM);
      tile efficiency  = m·n / (⌈m/tm⌉·tm·⌈n/tn⌉·tn)   (padding work in partial tiles),
      wave efficiency  = tiles / (⌈tiles/SMs⌉·SMs)     (idle SMs in the last wave),
      util_tile        = tile_efficiency[t] · tile eff · wave eff,
    and the library picks the fastest tile: util = max_t util_tile · K/(K + k_half) (the K
    loop's prologue and epilogue amortized over the reduction depth). ``waves=False`` (or a
    chip without an SM count) drops the wave term: batched kernels (attention over batch ×
    heads) fill the SMs with independent instances. The ⌈·⌉ are the discrete physics
    (DESIGN rule 6); the result is differentiable in the calibration parameters.
    """
    sms = jnp.maximum(sm_count, 1.0)
    best = jnp.zeros_like(m * n)
    for i, (tm, tn) in enumerate(GEMM_TILES_MN):
        rows, cols = jnp.ceil(jnp.maximum(m, 1.0) / tm), jnp.ceil(jnp.maximum(n, 1.0) / tn)
        pad = m * n / (rows * tm * cols * tn)
        tiles = rows * cols
        wave = tiles / (jnp.ceil(tiles / sms) * sms)
        if waves:
            wave = jnp.where(sm_count > 0, wave, 1.0)
        else:
            wave = jnp.ones_like(wave)
        best = jnp.maximum(best, tile_efficiency[i] * pad * wave)
    return best * k / (k + k_half)


def operator_utilization(software: SoftwareParams, m: Array, n: Array, k: Array, sm_count: Array,
                         waves: bool = True) -> Array:
    """Utilization of the tensor peak: the seed table in M mixed with the tile/wave form."""
    table = gemm_utilization(software.util_knots, m)
    wave = tile_wave_utilization(software.tile_efficiency, software.k_half, m, n, k, sm_count, waves)
    w = software.util_wave
    # Floor: keeps the rate positive (finite time) whatever the parameters.
    return jnp.maximum((1.0 - w) * table + w * wave, 1e-6)


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
    gemm_dtype, attn_dtype = widest(weight_dtype, act_dtype), widest(act_dtype, kv_dtype)
    util_gemm = operator_utilization(software, ops.m, ops.n, ops.k, chip.sm_count, waves=True)
    util_attn = operator_utilization(software, ops.m, ops.n, ops.k, chip.sm_count, waves=False)
    util = [ug if kind == GEMM else ua for kind, ug, ua in zip(ops.kinds, util_gemm, util_attn, strict=True)]
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
    streaming = jnp.asarray([kind in (ELEMENTWISE, GATHER) for kind in ops.kinds])
    bw_eff = software.bw_efficiency * jnp.where(streaming, software.elementwise_bw_factor, 1.0)
    memory_s = ops.bytes / (chip.hbm_bandwidth_bytes_per_s * bw_eff)
    overhead_s = software.kernel_overhead_s * jnp.ones_like(compute_s)
    return OpCost(compute_s, memory_s, overhead_s)


# Energy of work on a GPU: the shared linear power model capped at TDP (seed 000, SIMT power).
simt_energy_j = linear_power_energy_j
