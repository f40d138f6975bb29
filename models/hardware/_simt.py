"""SIMT (GPU-class) chip: per-operator roofline with shape-dependent utilization, linear power.

time = max(FLOPs / (peak · util(shape)), bytes / (bandwidth · bw_eff)) + kernel overhead
power = P_idle + α · FLOP/s + β · bytes/s, capped at TDP;  energy = power · time
(FLOPs counted at the BF16 rate: a FLOP at a k× faster tensor rate is 1/k of the activity;
α and β of an unmeasured GPU are the fitted A100's shares of the TDP − idle budget, see
``dse.specs.transferred_power``)

References:
  InferBench research note (docs/references.md#research-note), "Architecture Models — SIMT (GPU-like)": roofline,
    cuBLAS utilization table (M<32: 15 %, M=128–512: 70 %, M>4096: 85 %), A100 power model
    60 W + 0.2 mW per GFLOP/s + 50 mW per GB/s.
  Tile and wave quantization of tiled GEMMs: NVIDIA, "Matrix Multiplication Background User's
    Guide" (Deep Learning Performance docs), sections "Tile Quantization" and "Wave
    Quantization"; CUTLASS threadblock tile shapes for SM80 (128x256, 128x128, 128x64, 64x64).
  Williams, Waterman, Patterson, "Roofline", CACM 2009.
  GenZ (docs/references.md#genz) §III-B: efficiency factors Eff_C on top of the peak.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from models._interface import (
    ATTENTION,
    DTYPE_BITS,
    ELEMENTWISE,
    GATHER,
    GEMM,
    UTIL_KNOTS_M,
    Chip,
    OpCost,
    OperatorTable,
    SoftwareParams,
    is_integer_dtype,
    linear_power_energy_j,
    widest,
)
from models._pytree import Array, pytree_dataclass, spec_field, static_field


def simt_rate_class(dtype: str) -> str:
    """Which tensor-core rate a GEMM whose widest operand has storage ``dtype`` runs at:
    16 bits and wider at the BF16 rate, 8-bit floats at FP8, 8-bit integers at INT8, 4-bit
    integers at INT4, 4-bit floats at FP4 (missing rates are filled at load with the next
    wider one: see ``RATE_FALLBACK``)."""
    bits = DTYPE_BITS[dtype]
    if bits >= 16:
        return "bf16"
    if bits >= 8:
        return "int8" if is_integer_dtype(dtype) else "fp8"
    return "int4" if is_integer_dtype(dtype) else "fp4"


# The rate a GEMM class runs at when the chip has no tensor cores of that class: the next
# wider one (an A100 runs FP8 weights at its BF16 rate, a Hopper INT4 GEMM at its INT8 rate).
# In dependency order: a class's fallback comes before it.
RATE_FALLBACK = {"fp8": "bf16", "int8": "fp8", "int4": "int8", "fp4": "fp8"}
# The SimtSpec leaf of each rate class.
RATE_FIELDS = {
    "bf16": "peak_bf16_flops_per_s",
    "fp8": "peak_fp8_flops_per_s",
    "int8": "peak_int8_ops_per_s",
    "int4": "peak_int4_ops_per_s",
    "fp4": "peak_fp4_flops_per_s",
}


@pytree_dataclass
class SimtSpec(Chip):
    """A GPU-class chip, SI units. Rates are dense (no structured sparsity).

    Missing low-precision rates are filled at load with the next wider supported one
    (e.g. an A100 runs FP8 weights at its BF16 rate).
    """

    peak_bf16_flops_per_s: Array = spec_field("peak_bf16_tflops", "TFLOP/s", doc="dense BF16 tensor rate")
    peak_fp8_flops_per_s: Array = spec_field("peak_fp8_tflops", "TFLOP/s", required=False, doc="dense FP8 tensor rate")
    peak_int8_ops_per_s: Array = spec_field("peak_int8_tops", "TOP/s", required=False, doc="dense INT8 tensor rate")
    peak_int4_ops_per_s: Array = spec_field("peak_int4_tops", "TOP/s", required=False, doc="dense INT4 tensor rate")
    peak_fp4_flops_per_s: Array = spec_field("peak_fp4_tflops", "TFLOP/s", required=False, doc="dense FP4 tensor rate")
    peak_vector_flops_per_s: Array = spec_field(
        "peak_vector_tflops", "TFLOP/s", required=False, doc="non-tensor (vector) rate"
    )
    hbm_bandwidth_bytes_per_s: Array = spec_field("hbm_bandwidth_tb_s", "TB/s", doc="HBM bandwidth")
    hbm_capacity_bytes: Array = spec_field("hbm_capacity_gb", "GB", doc="HBM capacity")
    sram_capacity_bytes: Array = spec_field("sram_mb", "MB", required=False, doc="on-chip SRAM (L2 + shared)")
    sm_count: Array = spec_field(kind="int", required=False, doc="streaming multiprocessors")
    clock_hz: Array = spec_field("clock_ghz", "GHz", required=False, doc="clock the peak rates are quoted at")
    # The SM count and clock the file's rates belong to (set at load; 0: not stated). A design
    # with more SMs or a faster clock has its rates scaled from there: peak = SMs x per-SM rate
    # x clock, the per-SM rate per clock being the file's.
    sm_ref: float = static_field(default=0.0, kw_only=True)
    clock_ref_hz: float = static_field(default=0.0, kw_only=True)

    family: ClassVar[str] = "simt"

    @property
    def rate_scale(self) -> Array | float:
        """This design's SMs and clock over those its rates are quoted at (1 on the file's)."""
        scale: Array | float = 1.0
        if self.sm_ref > 0:
            scale = scale * self.sm_count / self.sm_ref
        if self.clock_ref_hz > 0:
            scale = scale * self.clock_hz / self.clock_ref_hz
        return scale

    @property
    def capacity_bytes(self) -> Array:
        return self.hbm_capacity_bytes

    @property
    def memory_bandwidth_bytes_per_s(self) -> Array:
        return self.hbm_bandwidth_bytes_per_s

    def peak_flops_per_s(self, dtype: str) -> Array:
        """Tensor rate for GEMMs whose widest operand has storage dtype ``dtype``."""
        rate: Array = getattr(self, RATE_FIELDS[simt_rate_class(dtype)]) * self.rate_scale
        return rate

    def operator_cost(
        self, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
    ) -> OpCost:
        return simt_operator_cost(self, software, ops, weight_dtype, act_dtype, kv_dtype)

    def work_energy_j(
        self, time_s: Array, flops: Array, bytes_: Array, ops: OperatorTable, weight_dtype: str, act_dtype: str
    ) -> Array:
        """Linear power model whose compute term counts tensor-core activity: a FLOP at a rate
        k× the BF16 rate (FP8, INT8, FP4) draws 1/k of a BF16 FLOP's energy (the same power
        for the same busy time)."""
        del ops
        rate = self.peak_flops_per_s(widest(weight_dtype, act_dtype)) / self.peak_flops_per_s("bf16")
        return linear_power_energy_j(self, time_s, flops / rate, bytes_)


# Candidate thread-block (CTA) tiles (rows M x columns N of C) of the tile/wave form: the
# SM80 tensor-core tiles of CUTLASS's default kernels, largest first. cuBLAS picks, per
# shape, the kernel that runs fastest; the model takes the best candidate (a max).
GEMM_TILES_MN = ((128.0, 256.0), (128.0, 128.0), (128.0, 64.0), (64.0, 64.0))


def gemm_utilization(util_knots: Array, m: Array) -> Array:
    """Fraction of peak a GEMM with ``m`` rows reaches: linear interpolation in log2 M.

    Flat beyond the outer knots. Differentiable in every knot value (the calibration
    parameters) and piecewise linear in log M.
    """
    x = jnp.log2(jnp.maximum(m, 1.0))
    xk = jnp.log2(jnp.asarray(UTIL_KNOTS_M))
    return jnp.interp(x, xk, util_knots)


def tile_wave_utilization(
    tile_efficiency: Array, k_half: Array, m: Array, n: Array, k: Array, sm_count: Array, waves: bool = True
) -> Array:
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
    (docs/architecture.md#rules, rule 6); the result is differentiable in the calibration parameters.
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


def operator_utilization(
    software: SoftwareParams, m: Array, n: Array, k: Array, sm_count: Array, waves: bool = True
) -> Array:
    """Utilization of the tensor peak: the seed table in M mixed with the tile/wave form."""
    table = gemm_utilization(software.util_knots, m)
    wave = tile_wave_utilization(software.tile_efficiency, software.k_half, m, n, k, sm_count, waves)
    w = software.util_wave
    # Floor: keeps the rate positive (finite time) whatever the parameters.
    return jnp.maximum(software.matrix_share((1.0 - w) * table + w * wave), 1e-6)


def simt_operator_cost(
    chip: SimtSpec,
    software: SoftwareParams,
    ops: OperatorTable,
    weight_dtype: str,
    act_dtype: str,
    kv_dtype: str,
) -> OpCost:
    """Roofline terms of each operator (docs/references.md#research-note, SIMT): compute and memory time, overhead.

    GEMMs run at the tensor rate of their widest operand (weight-only quantization computes
    in the activation dtype); attention at the rate of max(activation, KV) width;
    elementwise and gather rows at the vector rate. Utilization applies to GEMM and
    attention rows only (the seed's table is for cuBLAS GEMMs).
    """
    gemm_dtype, attn_dtype = widest(weight_dtype, act_dtype), widest(act_dtype, kv_dtype)
    util_gemm = operator_utilization(software, ops.m, ops.n, ops.k, chip.sm_count, waves=True)
    util_attn = operator_utilization(software, ops.m, ops.n, ops.k, chip.sm_count, waves=False)
    # The rate of every row at once (the kinds are static masks): one vector, not a stack of
    # per-row columns.
    gemm, attention = ops.mask(GEMM) > 0, ops.mask(ATTENTION) > 0
    rate = jnp.where(
        gemm,
        chip.peak_flops_per_s(gemm_dtype) * util_gemm,
        jnp.where(
            attention, chip.peak_flops_per_s(attn_dtype) * util_attn, chip.peak_vector_flops_per_s * chip.rate_scale
        ),
    )
    # The attention kernel's own efficiency scales its compute and its KV reads alike.
    kernel = jnp.where(attention, jnp.minimum(software.attention_efficiency, 1.0), 1.0)
    compute_s = ops.flops / (rate * kernel)
    streaming = jnp.asarray([kind in (ELEMENTWISE, GATHER) for kind in ops.kinds])
    bw_eff = software.bw_efficiency * jnp.where(streaming, software.elementwise_bw_factor, 1.0) * kernel
    memory_s = ops.bytes / (chip.hbm_bandwidth_bytes_per_s * bw_eff)
    overhead_s = software.kernel_overhead_s * jnp.ones_like(compute_s)
    return OpCost(compute_s, memory_s, overhead_s)
