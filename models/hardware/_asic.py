"""The five non-GPU architecture families of the InferBench note (docs/references.md#research-note, "Architecture
Models") and GenZ Table VII (docs/references.md#genz): systolic arrays, in-memory compute, wafer-scale
dataflow, SRAM chiplets and CGRAs.

Each family answers the same question as the GPU model — compute, memory and overhead time
of every operator row on one chip, and the energy of that work — so workloads, platforms
and metrics never branch on the family. Structural utilization (array fill, ADC passes) is
hardware capability: it applies at the 'achievable' and 'calibrated' levels; the 'ideal'
level (``structural_derating`` 0) is the datasheet roofline.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from models._interface import (
    ATTENTION,
    DTYPE_BITS,
    GEMM,
    Chip,
    OpCost,
    OperatorTable,
    SoftwareParams,
    widest,
)
from models._pytree import Array, pytree_dataclass, spec_field


def _derated(software: SoftwareParams, util: Array) -> Array:
    """Structural utilization where the level applies it (not at 'ideal')."""
    return jnp.where(software.structural_derating > 0, util, 1.0)


def _rows(ops: OperatorTable, *kinds: str) -> Array:
    return ops.mask(*kinds)


def _row_dtypes(ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str) -> list[str]:
    """Compute dtype per row: GEMMs at their widest operand, attention at max(act, KV)."""
    g, a = widest(weight_dtype, act_dtype), widest(act_dtype, kv_dtype)
    return [g if k == GEMM else a for k in ops.kinds]


def _narrow_rows(ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str) -> Array:
    """True for rows that compute in 8 bits or fewer (a static mask: one vector of rates per
    design rather than a stack of per-row scalars)."""
    return jnp.asarray([DTYPE_BITS[d] <= 8 for d in _row_dtypes(ops, weight_dtype, act_dtype, kv_dtype)])


# ----------------------------------------------------------------------------------------
# 1. Systolic array (TPU-like)
# ----------------------------------------------------------------------------------------


@pytree_dataclass
class SystolicSpec(Chip):
    """Weight-stationary N×N systolic arrays with HBM (TPU-like)."""

    array_size: Array = spec_field(kind="int", doc="N of the N×N array")
    n_arrays: Array = spec_field(kind="int", doc="arrays per chip")
    clock_hz: Array = spec_field("clock_ghz", "GHz", doc="array clock")
    int8_speedup: Array = spec_field(required=False, doc="8-bit (and narrower) rate / 16-bit rate")
    sram_capacity_bytes: Array = spec_field("sram_mb", "MB", doc="on-chip SRAM")
    hbm_bandwidth_bytes_per_s: Array = spec_field("hbm_bandwidth_tb_s", "TB/s", doc="HBM bandwidth")
    hbm_capacity_bytes: Array = spec_field("hbm_capacity_gb", "GB", doc="HBM capacity")
    peak_vector_flops_per_s: Array = spec_field("peak_vector_tflops", "TFLOP/s", required=False, doc="vector rate")

    family: ClassVar[str] = "systolic"

    @property
    def peak_bf16_flops_per_s(self) -> Array:
        """peak = n_arrays · N² · 2 · f_clk (docs/references.md#research-note, Systolic Array)."""
        return self.n_arrays * self.array_size**2 * 2.0 * self.clock_hz

    def peak_flops_per_s(self, dtype: str) -> Array:
        return self.peak_bf16_flops_per_s * (self.int8_speedup if DTYPE_BITS[dtype] <= 8 else 1.0)

    @property
    def datapath_macs(self) -> Array:
        return self.n_arrays * self.array_size**2

    @property
    def capacity_bytes(self) -> Array:
        return self.hbm_capacity_bytes

    @property
    def memory_bandwidth_bytes_per_s(self) -> Array:
        return self.hbm_bandwidth_bytes_per_s

    def operator_cost(
        self, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
    ) -> OpCost:
        return systolic_operator_cost(self, software, ops, weight_dtype, act_dtype, kv_dtype)


def systolic_utilization(m: Array, n: Array, k: Array, array_size: Array) -> Array:
    """Fraction of the array's peak a GEMM (M×K)·(K×N) reaches, weight-stationary.

    Streaming: M activation rows pass through each N×N weight tile, so min(1, M/N) of the
    array works (docs/references.md#research-note: M = 1 on 128×128 is 0.78 %). Tiling: K×N_out weights occupy
    ⌈K/N⌉·⌈N_out/N⌉ tiles of N² cells, the edge tiles partly empty (Jouppi et al., ISCA
    2017, §4, on MXU fill).
    """
    stream = jnp.minimum(1.0, m / array_size)
    tiles = jnp.ceil(k / array_size) * jnp.ceil(n / array_size)
    edge = k * n / (tiles * array_size**2)
    return stream * edge


def systolic_operator_cost(
    chip: SystolicSpec, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
) -> OpCost:
    """Roofline per operator with systolic utilization; weights re-loaded when a GEMM's tile
    set does not fit the on-chip SRAM (activations then re-stream once per SRAM-full of
    weights)."""
    mm = _rows(ops, GEMM, ATTENTION)
    peak = chip.peak_bf16_flops_per_s * jnp.where(
        _narrow_rows(ops, weight_dtype, act_dtype, kv_dtype), chip.int8_speedup, 1.0
    )
    util = _derated(software, systolic_utilization(ops.m, ops.n, ops.k, chip.array_size))
    rate = jnp.where(mm > 0, peak * software.matrix_share(util), chip.peak_vector_flops_per_s)
    # Weight-load passes: ⌈weights / SRAM⌉ refills, each re-streaming the activations.
    refills = jnp.maximum(1.0, jnp.ceil(ops.weight_bytes / jnp.maximum(chip.sram_capacity_bytes, 1.0)))
    moved = ops.weight_bytes + ops.kv_bytes + ops.act_bytes * jnp.where(mm > 0, refills, 1.0)
    memory_s = moved / (chip.hbm_bandwidth_bytes_per_s * software.bw_efficiency)
    return OpCost(ops.flops / rate, memory_s, software.kernel_overhead_s * jnp.ones_like(memory_s))


# ----------------------------------------------------------------------------------------
# 2. In-memory compute (d-Matrix-like, the seed's ADC abstraction)
# ----------------------------------------------------------------------------------------


@pytree_dataclass
class ImcSpec(Chip):
    """Weights stationary in memory arrays; analog dot products read out by ADCs."""

    n_tiles: Array = spec_field(kind="int", doc="compute tiles")
    adcs_per_tile: Array = spec_field(kind="int", doc="ADCs per tile")
    adc_freq_hz: Array = spec_field("adc_freq_ghz", "GHz", doc="ADC conversion rate")
    array_rows: Array = spec_field(kind="int", doc="rows summed per conversion (dot-product length)")
    adc_bits: Array = spec_field(kind="int", doc="ADC resolution")
    dac_bits: Array = spec_field(kind="int", doc="DAC (input slice) resolution")
    weight_bits: Array = spec_field(kind="int", doc="native array weight precision")
    input_bits: Array = spec_field(kind="int", doc="native input precision")
    imc_capacity_bytes: Array = spec_field("imc_capacity_mb", "MB", doc="weights the arrays hold")
    digital_flops_per_s: Array = spec_field("digital_tflops", "TFLOP/s", doc="vector units: attention, softmax, norms")
    memory_bandwidth_bytes_per_s: Array = spec_field("memory_bandwidth_tb_s", "TB/s", doc="off-chip memory bandwidth")
    memory_capacity_bytes: Array = spec_field("memory_capacity_gb", "GB", doc="off-chip memory capacity")
    sram_bandwidth_bytes_per_s: Array = spec_field(
        "sram_bandwidth_tb_s", "TB/s", required=False, doc="on-chip activation SRAM bandwidth"
    )
    walden_fom_j: Array = spec_field("walden_fom_fj", "fJ", required=False, doc="ADC energy per conversion-step")
    analog_energy_per_op_j: Array = spec_field(
        "analog_energy_fj_per_op", "fJ", required=False, doc="analog MAC energy per op"
    )
    digital_energy_per_op_j: Array = spec_field(
        "digital_energy_fj_per_op", "fJ", required=False, doc="digital energy per op"
    )

    family: ClassVar[str] = "imc"

    @property
    def datapath_macs(self) -> Array:
        """The digital vector units as 16-bit MACs at the ADC clock (estimate: the crossbars
        themselves are priced as compute-in-memory cells and converters)."""
        return self.digital_flops_per_s / (2.0 * self.adc_freq_hz)

    @property
    def dram_bytes_per_s(self) -> Array:
        return self.memory_bandwidth_bytes_per_s  # off-chip LPDDR

    @property
    def datapath_flops_per_s(self) -> Array:
        return self.digital_flops_per_s  # the crossbars' power is the converters' and cells'

    @property
    def converter_power_w(self) -> Array:
        """Every ADC converting at its rate and every array op at its native peak: the
        conversions' energy, the analog MAC's and the digital shift-and-add's."""
        tiles = self.n_tiles * self.tile_ops_per_s
        adcs = self.n_tiles * self.adcs_per_tile * self.adc_freq_hz * self.conversion_energy_j()
        return adcs + tiles * (self.analog_energy_per_op_j + self.digital_energy_per_op_j)

    @property
    def offchip_dram_bytes(self) -> Array:
        return self.memory_capacity_bytes  # LPDDR

    def floorplan_parts(self) -> dict[str, Array]:
        return {
            **super().floorplan_parts(),
            "ddr_bytes_per_s": self.memory_bandwidth_bytes_per_s,
            "cim_bytes": self.imc_capacity_bytes,
            "adcs": self.n_tiles * self.adcs_per_tile,
            "adc_bits": self.adc_bits,
        }

    def passes(self, weight_dtype: str = "int4", act_dtype: str = "int4") -> Array:
        """n_passes = ⌈input_bits/dac_bits⌉ · ⌈effective_bits/adc_bits⌉ (docs/references.md#research-note, IMC).

        Effective weight bits and input bits are the wider of the array's native precision
        and the model's dtype.
        """
        wb = jnp.maximum(self.weight_bits, DTYPE_BITS[weight_dtype])
        ib = jnp.maximum(self.input_bits, DTYPE_BITS[act_dtype])
        return jnp.ceil(ib / self.dac_bits) * jnp.ceil(wb / self.adc_bits)

    @property
    def tile_ops_per_s(self) -> Array:
        """One conversion digitizes a dot product of ``array_rows`` MACs = 2·rows ops:
        256 ADCs × 1 GHz × 2 × 256 rows = 131 TOPS per tile (docs/references.md#research-note)."""
        return self.adcs_per_tile * self.adc_freq_hz * 2.0 * self.array_rows

    @property
    def peak_bf16_flops_per_s(self) -> Array:
        return self.n_tiles * self.tile_ops_per_s  # single-pass rate

    def peak_flops_per_s(self, dtype: str) -> Array:
        return self.n_tiles * self.tile_ops_per_s / self.passes(dtype, dtype)

    @property
    def capacity_bytes(self) -> Array:
        return self.memory_capacity_bytes

    def operator_cost(
        self, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
    ) -> OpCost:
        return imc_operator_cost(self, software, ops, weight_dtype, act_dtype, kv_dtype)

    def work_energy_j(
        self, time_s: Array, flops: Array, bytes_: Array, ops: OperatorTable, weight_dtype: str, act_dtype: str
    ) -> Array:
        return imc_energy_j(self, time_s, flops, bytes_, ops, weight_dtype, act_dtype)

    def conversion_energy_j(self) -> Array:
        """ADC energy per conversion from the Walden figure of merit: E = FoM · 2^ENOB
        (Walden, IEEE JSAC 1999; values: Murmann, ADC Performance Survey 1997–2024)."""
        return self.walden_fom_j * 2.0**self.adc_bits

    def energy_per_matmul_op_j(self, weight_dtype: str, act_dtype: str) -> Array:
        """Dynamic energy per GEMM op: each pass pays the ADC conversion (shared by 2·rows
        ops), the analog MAC and the digital shift-and-add."""
        per_pass = (
            self.conversion_energy_j() / (2.0 * self.array_rows)
            + self.analog_energy_per_op_j
            + self.digital_energy_per_op_j
        )
        return self.passes(weight_dtype, act_dtype) * per_pass

    def weight_resident_fraction(self, stored_bytes: Array) -> Array:
        """Share of the weights held in the arrays; the rest spills to off-chip memory."""
        return jnp.minimum(1.0, self.imc_capacity_bytes / jnp.maximum(stored_bytes, 1.0))


def imc_operator_cost(
    chip: ImcSpec, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
) -> OpCost:
    """GEMMs on the arrays at n_tiles·tile rate / passes (K tiled over array rows); other
    rows on the digital units. Weights beyond the arrays' capacity stream from off-chip
    memory and are written into the arrays each pass; KV cache in off-chip memory;
    activations in on-chip SRAM."""
    gemm = _rows(ops, GEMM)
    passes = chip.passes(weight_dtype, act_dtype)
    k_fill = _derated(software, ops.k / (jnp.ceil(ops.k / chip.array_rows) * chip.array_rows))
    array_rate = chip.n_tiles * chip.tile_ops_per_s / _derated(software, passes) * k_fill
    rate = jnp.where(gemm > 0, array_rate * software.matrix_share(), chip.digital_flops_per_s)
    resident = chip.weight_resident_fraction(ops.stored_weight_total_bytes)
    bw = software.bw_efficiency
    memory_s = (ops.weight_bytes * (1.0 - resident) + ops.kv_bytes) / (
        chip.memory_bandwidth_bytes_per_s * bw
    ) + ops.act_bytes / (chip.sram_bandwidth_bytes_per_s * bw)
    return OpCost(ops.flops / rate, memory_s, software.kernel_overhead_s * jnp.ones_like(memory_s))


# ----------------------------------------------------------------------------------------
# 3. Wafer-scale dataflow (Cerebras-like)
# ----------------------------------------------------------------------------------------


@pytree_dataclass
class DataflowSpec(Chip):
    """On-wafer SRAM holding weights and KV when they fit; external memory streams them when
    they do not (MemoryX-like weight streaming)."""

    peak_bf16_flops_per_s: Array = spec_field("peak_bf16_tflops", "TFLOP/s", doc="dense BF16 rate")
    sram_capacity_bytes: Array = spec_field("sram_capacity_gb", "GB", doc="on-wafer SRAM")
    sram_bandwidth_bytes_per_s: Array = spec_field("sram_bandwidth_pb_s", "PB/s", doc="on-wafer SRAM bandwidth")
    external_bandwidth_bytes_per_s: Array = spec_field(
        "external_bandwidth_tb_s", "TB/s", doc="external (weight-streaming) memory bandwidth"
    )
    external_capacity_bytes: Array = spec_field("external_capacity_tb", "TB", doc="external memory capacity")

    family: ClassVar[str] = "dataflow"

    def peak_flops_per_s(self, dtype: str) -> Array:
        del dtype  # one rate (FP16/BF16); narrower types only save bytes
        return self.peak_bf16_flops_per_s

    @property
    def capacity_bytes(self) -> Array:
        return self.sram_capacity_bytes + self.external_capacity_bytes

    @property
    def memory_bandwidth_bytes_per_s(self) -> Array:
        return self.sram_bandwidth_bytes_per_s

    def operator_cost(
        self, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
    ) -> OpCost:
        return dataflow_operator_cost(self, software, ops, weight_dtype, act_dtype, kv_dtype)

    def weights_resident(self, weight_bytes: Array, kv_bytes: Array) -> Array:
        """1.0 when weights and KV cache fit in the on-wafer SRAM (docs/references.md#research-note: Llama 3 8B at
        FP16, 16 GB, fits WSE-3's 44 GB; Llama 3 70B, 140 GB, does not)."""
        return jnp.where(weight_bytes + kv_bytes <= self.sram_capacity_bytes, 1.0, 0.0)

    def layers_in_space(self, weight_bytes: Array, kv_bytes: Array, stage_layers: Array) -> Array:
        """Resident: layer-pipelined execution, each layer on its own region of the wafer
        (Cerebras's pipelined mode; Lie, "Cerebras Architecture Deep Dive", Hot Chips 34, 2022).
        Streamed: weight-streaming mode runs one layer at a time on the whole wafer."""
        resident = self.weights_resident(weight_bytes, kv_bytes)
        return resident * stage_layers + (1.0 - resident)


def dataflow_operator_cost(
    chip: DataflowSpec, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
) -> OpCost:
    """Resident: every byte from SRAM, decode becomes compute- or SRAM-bound. Not resident:
    weights stream from external memory; the KV cache stays on the wafer while it fits."""
    del weight_dtype, act_dtype, kv_dtype
    kv_total = ops.kv_total_bytes
    resident = chip.weights_resident(ops.stored_weight_total_bytes, kv_total)
    kv_on_wafer = jnp.where(kv_total <= chip.sram_capacity_bytes, 1.0, 0.0)
    bw = software.bw_efficiency
    sram, ext = chip.sram_bandwidth_bytes_per_s * bw, chip.external_bandwidth_bytes_per_s * bw
    w_s = ops.weight_bytes * (resident / sram + (1.0 - resident) / ext)
    kv_s = ops.kv_bytes * (kv_on_wafer / sram + (1.0 - kv_on_wafer) / ext)
    memory_s = w_s + kv_s + ops.act_bytes / sram
    compute_s = ops.flops / (chip.peak_bf16_flops_per_s * software.matrix_share())
    return OpCost(compute_s, memory_s, software.kernel_overhead_s * jnp.ones_like(memory_s))


# ----------------------------------------------------------------------------------------
# 4. SRAM chiplets (Groq-like)
# ----------------------------------------------------------------------------------------


@pytree_dataclass
class SramChipletSpec(Chip):
    """Chips with SRAM only: the model and KV cache are split over as many chips as capacity
    demands (the platform's pipeline depth, hence the chip count, is an output)."""

    peak_bf16_flops_per_s: Array = spec_field("peak_bf16_tflops", "TFLOP/s", doc="dense BF16 rate")
    peak_int8_ops_per_s: Array = spec_field("peak_int8_tops", "TOP/s", required=False, doc="dense INT8 rate")
    sram_capacity_bytes: Array = spec_field("sram_mb", "MB", doc="on-chip SRAM")
    sram_bandwidth_bytes_per_s: Array = spec_field("sram_bandwidth_tb_s", "TB/s", doc="on-chip SRAM bandwidth")

    family: ClassVar[str] = "sram_chiplet"
    chips_from_capacity: ClassVar[bool] = True

    def peak_flops_per_s(self, dtype: str) -> Array:
        return self.peak_int8_ops_per_s if DTYPE_BITS[dtype] <= 8 else self.peak_bf16_flops_per_s

    @property
    def capacity_bytes(self) -> Array:
        return self.sram_capacity_bytes

    @property
    def memory_bandwidth_bytes_per_s(self) -> Array:
        return self.sram_bandwidth_bytes_per_s

    def operator_cost(
        self, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
    ) -> OpCost:
        return sram_chiplet_operator_cost(self, software, ops, weight_dtype, act_dtype, kv_dtype)


def sram_chiplet_operator_cost(
    chip: SramChipletSpec,
    software: SoftwareParams,
    ops: OperatorTable,
    weight_dtype: str,
    act_dtype: str,
    kv_dtype: str,
) -> OpCost:
    """Every byte from on-chip SRAM; deterministic compute at the datasheet rate."""
    narrow = _narrow_rows(ops, weight_dtype, act_dtype, kv_dtype)
    peak = jnp.where(narrow, chip.peak_int8_ops_per_s, chip.peak_bf16_flops_per_s)
    memory_s = ops.bytes / (chip.sram_bandwidth_bytes_per_s * software.bw_efficiency)
    return OpCost(
        ops.flops / (peak * software.matrix_share()), memory_s, software.kernel_overhead_s * jnp.ones_like(memory_s)
    )


# ----------------------------------------------------------------------------------------
# 5. Reconfigurable dataflow (CGRA, SambaNova-like)
# ----------------------------------------------------------------------------------------


@pytree_dataclass
class CgraSpec(Chip):
    """Reconfigurable dataflow chip with a three-tier memory (SRAM, HBM, DDR)."""

    peak_bf16_flops_per_s: Array = spec_field("peak_bf16_tflops", "TFLOP/s", doc="dense BF16 rate")
    sram_capacity_bytes: Array = spec_field("sram_mb", "MB", doc="on-chip SRAM")
    hbm_bandwidth_bytes_per_s: Array = spec_field("hbm_bandwidth_tb_s", "TB/s", doc="HBM bandwidth")
    hbm_capacity_bytes: Array = spec_field("hbm_capacity_gb", "GB", doc="HBM capacity")
    ddr_bandwidth_bytes_per_s: Array = spec_field("ddr_bandwidth_tb_s", "TB/s", doc="DDR bandwidth")
    ddr_capacity_bytes: Array = spec_field("ddr_capacity_gb", "GB", doc="DDR capacity")
    reconfig_time_s: Array = spec_field("reconfig_time_us", "us", doc="time of one reconfiguration")
    config_groups_per_layer: Array = spec_field(doc="configurations per layer")
    fusion_fraction: Array = spec_field(kind="fraction", doc="share of intermediate activation traffic kept on chip")

    family: ClassVar[str] = "cgra"

    def peak_flops_per_s(self, dtype: str) -> Array:
        del dtype
        return self.peak_bf16_flops_per_s

    @property
    def capacity_bytes(self) -> Array:
        return self.hbm_capacity_bytes + self.ddr_capacity_bytes

    @property
    def memory_bandwidth_bytes_per_s(self) -> Array:
        return self.hbm_bandwidth_bytes_per_s

    def operator_cost(
        self, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
    ) -> OpCost:
        return cgra_operator_cost(self, software, ops, weight_dtype, act_dtype, kv_dtype)


def reconfiguration_s_per_pass(chip: CgraSpec, n_layers: Array) -> Array:
    """t_reconf × configuration groups per layer × layers (docs/references.md#research-note: 10 µs × 3 × 80 =
    2.4 ms), paid once per forward pass, so amortized over the batch's tokens."""
    return chip.reconfig_time_s * chip.config_groups_per_layer * n_layers


def cgra_operator_cost(
    chip: CgraSpec, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
) -> OpCost:
    """Fusion (GEMM + bias + activation + norm) keeps ``fusion_fraction`` of intermediate
    activation bytes on chip; weights from HBM up to its capacity, the rest from DDR;
    reconfiguration spread over the layer's rows."""
    del weight_dtype, act_dtype, kv_dtype
    bw = software.bw_efficiency
    hbm_share = jnp.minimum(1.0, chip.hbm_capacity_bytes / jnp.maximum(ops.stored_weight_total_bytes, 1.0))
    w_s = ops.weight_bytes * (
        hbm_share / (chip.hbm_bandwidth_bytes_per_s * bw) + (1.0 - hbm_share) / (chip.ddr_bandwidth_bytes_per_s * bw)
    )
    memory_s = w_s + (ops.kv_bytes + ops.act_bytes * (1.0 - chip.fusion_fraction)) / (
        chip.hbm_bandwidth_bytes_per_s * bw
    )
    layer = ops.layer_mask
    per_row = chip.reconfig_time_s * chip.config_groups_per_layer / layer.sum()
    overhead = software.kernel_overhead_s + per_row * layer
    return OpCost(ops.flops / (chip.peak_bf16_flops_per_s * software.matrix_share()), memory_s, overhead)


# ----------------------------------------------------------------------------------------
# Energy
# ----------------------------------------------------------------------------------------


def imc_energy_j(
    chip: ImcSpec, time_s: Array, flops: Array, bytes_: Array, ops: OperatorTable, weight_dtype: str, act_dtype: str
) -> Array:
    """GEMM rows: per-op ADC/analog/digital energy × passes; other rows: digital energy per op;
    plus β per byte and idle power, capped at TDP."""
    gemm = _rows(ops, GEMM)
    per_op = jnp.where(gemm > 0, chip.energy_per_matmul_op_j(weight_dtype, act_dtype), chip.digital_energy_per_op_j)
    uncapped = chip.idle_w * time_s + per_op * flops + chip.energy_per_byte_j * bytes_
    return jnp.minimum(chip.design_tdp_w * time_s, uncapped)
