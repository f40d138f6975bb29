"""The interfaces between the layers of the cost model.

A **workload** (:class:`Workload`) says what a forward pass does — an :class:`OperatorTable`
of FLOPs, bytes by class and GEMM shapes per chip — what it holds in memory
(:class:`Footprint`) and what it sends between chips (:class:`LayerComm`). A **chip**
(:class:`Chip`, the base of every hardware family) says how long each operator row takes
(:class:`OpCost`) and what the work costs in energy. :class:`SoftwareParams` is what a
software stack reaches of a chip (the three levels ideal, achievable and calibrated differ
only in it). ``serve`` (:mod:`models._serve`) joins them and never names a workload or a
family.

One dtype table (:data:`DTYPE_BITS`) serves every layer.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, NamedTuple, Protocol

import jax.numpy as jnp
import numpy as np

from models._pytree import Array, pytree_dataclass, spec_field, static_field
from models.silicon import SiliconBase, VariantSilicon, floorplan_tdp, variant_plan, variant_silicon

# ---------------------------------------------------------------------------------------
# Data types: storage width in bits and whether the format is floating point.
# ---------------------------------------------------------------------------------------

DTYPE_BITS: dict[str, float] = {
    "fp32": 32.0,
    "bf16": 16.0,
    "fp16": 16.0,
    "fp8": 8.0,
    "int8": 8.0,
    "int4": 4.0,
    "fp4": 4.0,
}
DTYPES: tuple[str, ...] = tuple(DTYPE_BITS)
# The dtype of weights, activations and KV cache wherever none is given (every command, the API).
DEFAULT_DTYPE = "bf16"


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of a storage dtype (``int4`` is half a byte)."""
    return DTYPE_BITS[dtype] / 8.0


def is_integer_dtype(dtype: str) -> bool:
    return dtype.startswith("int")


def widest(*dtypes: str) -> str:
    """The widest of the given dtypes (the one a mixed-precision operation computes in)."""
    return max(dtypes, key=DTYPE_BITS.__getitem__)


# ---------------------------------------------------------------------------------------
# What a workload gives the hardware.
# ---------------------------------------------------------------------------------------

# Operator kinds: what decides the compute rate and utilization of a row.
GEMM, ATTENTION, ELEMENTWISE, GATHER = "gemm", "attention", "elementwise", "gather"
KINDS = (GEMM, ATTENTION, ELEMENTWISE, GATHER)


class OperatorTable(NamedTuple):
    """Per-chip operators of one forward pass; each array has shape ``[n_ops]``.

    ``flops`` and bytes are per execution of a row (multiply by ``repeat`` for the pass);
    bytes are split by class (weights, activations, KV cache or state); ``m, n, k`` are the
    GEMM dims of one instance (elementwise rows: m rows of width n, k = 1). ``names``,
    ``kinds`` and ``per_layer`` (the row runs once per layer rather than once per pass) are
    static structure.
    """

    flops: Array
    weight_bytes: Array
    act_bytes: Array
    kv_bytes: Array
    m: Array
    n: Array
    k: Array
    repeat: Array
    stored_weight_bytes: Array  # weights the row keeps in memory (all experts, whole tables)
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    per_layer: tuple[bool, ...]
    stages: Array | float = 1.0  # pipeline stages the layers are spread over (each chip holds 1/stages)

    @property
    def bytes(self) -> Array:
        return self.weight_bytes + self.act_bytes + self.kv_bytes

    def mask(self, *kinds: str) -> Array:
        """1.0 for rows of the given kinds, else 0.0 (kinds are static)."""
        return jnp.asarray([1.0 if k in kinds else 0.0 for k in self.kinds])

    @property
    def layer_mask(self) -> Array:
        """1.0 for rows executed once per layer."""
        return jnp.asarray([1.0 if p else 0.0 for p in self.per_layer])

    @property
    def stored_weight_total_bytes(self) -> Array:
        """Weights this chip holds: Σ stored weight bytes · repeat (all experts) over the
        pipeline stages (a multi-chip or multi-wafer pipeline places 1/stages on each)."""
        return (self.stored_weight_bytes * self.repeat).sum() / self.stages

    def merged(self, other: OperatorTable) -> OperatorTable:
        """One pass that does the work of both tables (same rows): chunked prefill riding along
        a decode step (Sarathi-Serve, Agrawal et al. 2024). FLOPs, activation and KV bytes add;
        weights are read once; GEMM and elementwise rows see the rows of both; attention rows
        keep this table's per-sequence shapes."""
        attention = self.mask(ATTENTION)
        return self._replace(
            flops=self.flops + other.flops,
            weight_bytes=jnp.maximum(self.weight_bytes, other.weight_bytes),
            act_bytes=self.act_bytes + other.act_bytes,
            kv_bytes=self.kv_bytes + other.kv_bytes,
            m=self.m + (1.0 - attention) * other.m,
        )

    def joined(self, other: OperatorTable) -> OperatorTable:
        """The rows of both tables, this one's first (a pipeline of models in one pass: text
        encoders, a denoiser, a VAE decoder)."""
        arrays = [
            jnp.concatenate([jnp.atleast_1d(x), jnp.atleast_1d(y)]) for x, y in zip(self[:9], other[:9], strict=True)
        ]
        # _make: the nine row arrays, then the names, kinds, per-layer flags and stages.
        return OperatorTable._make(
            [*arrays, self.names + other.names, self.kinds + other.kinds, self.per_layer + other.per_layer, self.stages]
        )

    @property
    def kv_total_bytes(self) -> Array:
        """KV cache (or state) this chip holds: what the attention rows read, its stage's layers."""
        return (self.kv_bytes * self.repeat * self.mask(ATTENTION)).sum() / self.stages


class Footprint(NamedTuple):
    """Memory held by one chip, bytes."""

    weight_bytes: Array
    kv_bytes: Array
    act_bytes: Array

    @property
    def total_bytes(self) -> Array:
        return self.weight_bytes + self.kv_bytes + self.act_bytes


class LayerComm(NamedTuple):
    """What one layer of a pass sends between chips (per chip).

    ``allreduce_bytes``: the message of each tensor-parallel all-reduce, ``allreduces``: how
    many per layer, ``stage_bytes``: what crosses a pipeline-stage boundary,
    ``alltoall_bytes``: what one chip sends in each expert-parallel all-to-all (dispatch or
    combine, its own share included), ``alltoalls``: how many per layer.
    """

    allreduce_bytes: Array
    allreduces: Array
    stage_bytes: Array
    alltoall_bytes: Array
    alltoalls: Array
    sp_gather_bytes: Array | float = 0.0
    sp_reduce_bytes: Array | float = 0.0


class Split(NamedTuple):
    """How the layers of one pipeline stage are split over its chips (GenZ §III-C).

    ``tp``: tensor-parallel degree; ``ep``: expert-parallel groups of ``tp`` chips, each
    serving its own share of the sequences in attention and 1/ep of the experts;
    ``expert_imbalance``: tokens routed to the busiest group over the mean (1 = balanced);
    ``sp``: sequence (context) parallel groups of ``tp`` chips: a prompt's tokens are split
    over them (ring attention) and the KV cache of every sequence too. ``pp``: the pipeline
    stages the layers are spread over (what each chip holds; the operator table still covers
    every layer's work). ``expert_hot_share``: share of the tokens that all pick the same
    top-k experts (1: every token to one expert set, GenZ §IV's worst case), the rest routed
    as ``expert_imbalance`` says.
    """

    tp: Array
    ep: Array
    expert_imbalance: Array
    sp: Array | float = 1.0
    pp: Array | float = 1.0
    expert_hot_share: Array | float = 0.0

    @staticmethod
    def of(tp: Array) -> Split:
        """Tensor parallelism only."""
        one = jnp.ones_like(tp)
        return Split(tp, one, one, one, one, 0.0 * one)


@pytree_dataclass
class Scenario:
    """A request batch: ``batch`` sequences of ``prompt_tokens`` in, ``output_tokens`` out."""

    batch: Array = spec_field(kind="int", doc="sequences served together")
    prompt_tokens: Array = spec_field(kind="int", doc="prompt tokens per sequence")
    output_tokens: Array = spec_field(kind="int", doc="output tokens per sequence")
    weight_dtype: str = static_field(default="bf16")
    act_dtype: str = static_field(default="bf16")
    kv_dtype: str = static_field(default="bf16")
    fused_attention: bool = static_field(default=True)
    causal: bool = static_field(default=True)  # False: encoder (ViT) attention over all tokens
    # Serving (static structure): 'static' serves one request batch start to end;
    # 'continuous' is continuous batching in steady state (``batch`` sequences running).
    batching: str = static_field(default="static")
    # Whether requests arrive at ``rate_rps`` (the queue's model is compiled in): set by the
    # engine when a rate is given, so that programs without one stay as small as before.
    arrivals: bool = static_field(default=False)
    chunk_tokens: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="prefill tokens per iteration (0: whole prompts)",
        value=0.0,
    )
    draft_tokens: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="speculative tokens per step (0: none)",
        value=0.0,
    )
    acceptance: Array = spec_field(
        kind="fraction",
        required=False,
        doc="acceptance rate of a drafted token",
        value=0.0,
    )
    draft_cost_ratio: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="draft step time over a verify pass",
        value=0.0,
    )
    draft_weight_share: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="the draft model's weights over the target's (held beside them while drafting)",
        value=0.0,
    )
    draft_kv_share: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="the draft model's KV cache per token over the target's",
        value=0.0,
    )
    beam: Array = spec_field(kind="int", required=False, doc="beam width", value=1.0)
    # Service-level objectives and the spread of the request mix, for goodput: the output
    # tokens/s of requests that meet both SLOs.
    slo_ttft_s: Array = spec_field(
        kind="nonnegative", required=False, doc="time-to-first-token SLO (0: none)", value=0.0
    )
    slo_tpot_s: Array = spec_field(
        kind="nonnegative", required=False, doc="time-per-output-token SLO (0: none)", value=0.0
    )
    prompt_tokens_cv: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="coefficient of variation of the prompt lengths (lognormal; 0: all of the mean length)",
        value=0.0,
    )
    prefix_tokens: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="prompt tokens of a prefix every request shares (system prompt, earlier turns), found in the prefix "
        "cache: not prefilled again, its KV held once per replica",
        value=0.0,
    )
    rate_rps: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="requests per second arriving at the platform, Poisson (0: the running batch is always full)",
        value=0.0,
    )
    image_px: Array = spec_field(
        kind="nonnegative",
        required=False,
        doc="image side in pixels (vision, diffusion; 0: the model's own)",
        value=0.0,
    )
    images: Array = spec_field(
        kind="nonnegative", required=False, doc="images in each prompt of a vision-language model", value=0.0
    )


class Workload(Protocol):
    """What ``serve`` and the hardware families need from a model (single configuration)."""

    def operator_table(self, scenario: Scenario, split: Split, new_tokens: Array, past_tokens: Array) -> OperatorTable:
        """Per-chip operators of one pass of ``new_tokens`` per sequence after ``past_tokens``
        (``scenario.batch`` sequences over the stage's ``split.ep`` groups).

        Must be affine in ``past_tokens`` (the closed-form decode sum relies on it)."""
        ...

    def footprint(self, scenario: Scenario, split: Split, pp: Array) -> Footprint:
        """Memory per chip at the end of the request."""
        ...

    def layer_comm(self, scenario: Scenario, split: Split, new_tokens: Array) -> LayerComm:
        """Per-layer communication of one pass."""
        ...

    @property
    def n_layers(self) -> Array: ...

    @property
    def max_tp(self) -> Array:
        """The largest tensor-parallel degree the model can be split over."""
        ...

    @property
    def max_ep(self) -> Array:
        """The largest expert-parallel degree (the experts per layer; 1 for dense models)."""
        ...

    # What a request yields and feeds (``serve`` reads these; defaults: an LLM):
    #   output_unit: "token" (a request yields output_tokens tokens) or "image" (one result);
    #   decodes: whether decode passes run (False for an encoder: one pass per input;
    #       a diffusion model's decode passes are its denoising steps);
    #   request_tokens(scenario): the tokens of the first pass (a VLM's image tokens join the
    #       prompt; a ViT's patches; a diffusion pipeline's text tokens).


# ---------------------------------------------------------------------------------------
# What a software stack reaches of a chip.
# ---------------------------------------------------------------------------------------

# Knots of the utilization curve, in GEMM rows M (the seed's cuBLAS table: flat 15 % below
# M = 32, 70 % over 128–512, 85 % above 4096; linear in log2 M between knots).
UTIL_KNOTS_M = (32.0, 128.0, 512.0, 4096.0)
SEED_UTIL = (0.15, 0.70, 0.70, 0.85)


def _scalar(v: float) -> Any:
    return dataclasses.field(default_factory=lambda: np.asarray(v))


@pytree_dataclass
class SoftwareParams:
    """What a software stack reaches of a chip: the 'software maturity' knobs.

    Two forms of the GEMM utilization curve are mixed by the leaf ``util_wave`` (0 selects
    the seed's table in M, 1 the tile/wave-quantization form over the chip's SM count; the
    levels 'ideal' and 'achievable' use the table). Both are leaves so that levels that use
    different forms stack into one PyTree (one compiled program).

    Attributes:
        util_knots: utilization of the tensor peak at ``UTIL_KNOTS_M`` GEMM rows, shape [4].
        bw_efficiency: fraction of the memory bandwidth streaming kernels reach.
        kernel_overhead_s: fixed time per kernel launch (per operator row execution).
        link_efficiency: fraction of the link bandwidth copy collectives (send/recv,
            all-gather, all-to-all) reach.
        collective_latency_s: software time per collective step on top of the link latency.
        step_overhead_s: framework time per forward pass (scheduling, sampling, Python).
        util_wave: weight of the tile/wave form in the utilization (0 table, 1 tile/wave).
        tile_efficiency: fraction of the tensor peak a full wave of each GPU CTA tile
            reaches, shape [4] (``models.hardware.GEMM_TILES_MN``).
        k_half: reduction depth K at which the main loop reaches half its steady rate.
        elementwise_bw_factor: bandwidth efficiency of elementwise and gather kernels
            relative to ``bw_efficiency`` (framework kernels versus library GEMMs).
        seq_overhead_s: framework time per sequence per forward pass.
        rank_overhead_s: framework time per forward pass per chip beyond the first of a
            stage (the driver's per-step inputs to each worker and the wait for the slowest).
        structural_derating: 1 applies the chip's structural utilization (array fill, ADC
            passes, K tiling); 0 is the datasheet roofline (level 'ideal').
        collective_launch_s: fixed software time of any collective (library launch, setup).
        reduce_launch_s: extra fixed time of a reducing collective (all-reduce, reduce-scatter).
        reduce_efficiency: fraction of the link bandwidth reducing collectives reach.
        direct_allreduce: 1 when the stack has one-kernel all-reduces over a switch or a fully
            connected level (one-shot and two-shot, as vLLM's and TensorRT-LLM's custom
            all-reduce), 0 when it has the collective library's algorithms only.
        compute_efficiency: factor on the matrix rate the level reaches (GEMM and attention
            utilization, array fill), capped at the peak: what a user's calibration fits
            for a stack that kernel-level data does not describe (1: the level as it is).
        attention_efficiency: factor on the attention kernels' rates, compute and KV-cache
            reads alike (a paged or flash kernel at 1; a naive one reads and writes the scores).
    """

    util_knots: Array
    bw_efficiency: Array
    kernel_overhead_s: Array
    link_efficiency: Array
    collective_latency_s: Array
    step_overhead_s: Array
    util_wave: Array = _scalar(0.0)
    tile_efficiency: Array = dataclasses.field(default_factory=lambda: np.zeros(4))
    k_half: Array = _scalar(0.0)
    elementwise_bw_factor: Array = _scalar(1.0)
    seq_overhead_s: Array = _scalar(0.0)
    structural_derating: Array = _scalar(1.0)
    collective_launch_s: Array = _scalar(0.0)
    reduce_launch_s: Array = _scalar(0.0)
    reduce_efficiency: Array = _scalar(1.0)
    direct_allreduce: Array = _scalar(1.0)
    rank_overhead_s: Array = _scalar(0.0)
    compute_efficiency: Array = _scalar(1.0)
    attention_efficiency: Array = _scalar(1.0)

    def matrix_share(self, utilization: Array | float = 1.0) -> Array:
        """Share of a matrix peak reached: the structural ``utilization`` times
        :attr:`compute_efficiency`, never above the peak."""
        return jnp.minimum(utilization * self.compute_efficiency, 1.0)

    def pass_overhead_s(self, batch: Array, ranks: Array) -> Array:
        """Framework time of one forward pass of ``batch`` sequences on ``ranks`` chips that
        work on it together: a fixed part, a part per sequence (scheduling, sampling,
        detokenization) and a part per chip beyond the first (coordinating the workers)."""
        return self.step_overhead_s + batch * self.seq_overhead_s + (ranks - 1.0) * self.rank_overhead_s


def ideal_software() -> SoftwareParams:
    """Level 'ideal': the pure roofline — peak rates, no overheads, no structural derating."""
    a = np.asarray
    return SoftwareParams(
        np.ones(4), a(1.0), a(0.0), a(1.0), a(0.0), a(0.0), a(0.0), np.ones(4), a(0.0), structural_derating=a(0.0)
    )  # collectives: every algorithm, no software latency, the whole link


def achievable_software() -> SoftwareParams:
    """Level 'achievable': seed derating of the hardware, before any calibration.

    util: the seed's cuBLAS table. bw_efficiency 0.85: estimate, typical of streaming
    kernels on HBM2e/HBM3 parts. link_efficiency 0.75: GenZ §V (nccl-tests on HGX A100,
    75 % average NVLink efficiency), for copies and reductions alike. Overheads zero: they
    belong to a software stack; every collective algorithm is available.
    """
    a = np.asarray
    return SoftwareParams(
        a(SEED_UTIL),
        a(0.85),
        a(0.0),
        a(0.75),
        a(0.0),
        a(0.0),
        a(0.0),
        np.full(4, SEED_UTIL[-1]),
        a(0.0),
        reduce_efficiency=a(0.75),
    )


class OpCost(NamedTuple):
    """Per-operator cost terms on one chip, shape [n_ops], for one execution of each row."""

    compute_s: Array
    memory_s: Array
    overhead_s: Array


# ---------------------------------------------------------------------------------------
# What every chip is.
# ---------------------------------------------------------------------------------------


@pytree_dataclass
class Chip(abc.ABC):
    """The base of every hardware family: power model, price, scale-up link, area.

    Power (docs/references.md#research-note, SIMT power; GenZ Eq. 2): P = P_idle + α·FLOP/s + β·bytes/s, capped at
    TDP, so E = min(TDP·t, P_idle·t + α·FLOPs + β·bytes). A family overrides
    :meth:`operator_cost` (and :meth:`work_energy_j` where its energy is not linear) and
    provides ``memory_bandwidth_bytes_per_s`` (a field or a property: the bandwidth of its
    main memory, which MBU is measured against).
    """

    tdp_w: Array = spec_field(unit="W", doc="thermal design power")
    idle_w: Array = spec_field(unit="W", doc="idle power, below tdp_w")
    energy_per_flop_j: Array = spec_field(
        "power_w_per_tflops", "W/(TFLOP/s)", required=False, doc="dynamic power per unit of compute (α)"
    )
    energy_per_byte_j: Array = spec_field(
        "power_w_per_tb_s", "W/(TB/s)", required=False, doc="dynamic power per unit of memory traffic (β)"
    )
    price_usd: Array = spec_field(unit="USD", doc="price of one chip")
    link_bandwidth_bytes_per_s: Array = spec_field(
        "link_bandwidth_gb_s", "GB/s", doc="scale-up bandwidth per direction"
    )
    link_latency_s: Array = spec_field("link_latency_us", "us", doc="scale-up per-hop latency")
    die_area_mm2: Array = spec_field(unit="mm2", required=False, doc="die area")
    # The design the given TDP belongs to: its BF16 peak rate and memory bandwidth (set at
    # load; 0: none recorded). A variant's TDP follows its own rates from there (design_tdp_w)
    # unless the TDP itself was given for it (``tdp_given``, set by the engine's with_knobs).
    tdp_ref_flops_per_s: float = static_field(default=0.0, kw_only=True)
    tdp_ref_bytes_per_s: float = static_field(default=0.0, kw_only=True)
    tdp_given: bool = static_field(default=False, kw_only=True)
    # The published silicon a variant's area, silicon cost and price are measured from (set at
    # load for chips whose die area and node are published; None: the price stays as given).
    silicon: SiliconBase | None = static_field(default=None, kw_only=True)
    price_given: bool = static_field(default=False, kw_only=True)

    family: ClassVar[str] = ""
    chips_from_capacity: ClassVar[bool] = False  # the platform sizes pp from capacity (SRAM-only chips)

    @abc.abstractmethod
    def peak_flops_per_s(self, dtype: str) -> Array:
        """Datasheet peak rate of matrix operations whose widest operand has ``dtype``."""

    @property
    @abc.abstractmethod
    def capacity_bytes(self) -> Array:
        """Memory that holds weights and KV cache."""

    @abc.abstractmethod
    def operator_cost(
        self, software: SoftwareParams, ops: OperatorTable, weight_dtype: str, act_dtype: str, kv_dtype: str
    ) -> OpCost:
        """Compute, memory and overhead time of every operator row on one chip."""

    def work_energy_j(
        self, time_s: Array, flops: Array, bytes_: Array, ops: OperatorTable, weight_dtype: str, act_dtype: str
    ) -> Array:
        """Energy of one chip doing ``flops`` and moving ``bytes_`` in ``time_s``, per row."""
        del ops, weight_dtype, act_dtype
        return linear_power_energy_j(self, time_s, flops, bytes_)

    @property
    def design_tdp_w(self) -> Array:
        """TDP of this design: the given TDP plus what the design's parts add at their peak
        rates — the floorplan model's power (models.silicon: datapath energy per FLOP by class
        and node, DRAM and link energy per bit, leakage by area) of this design less its base's,
        where the silicon is recorded; else the power model's dynamic power at the added peak
        rates, α·Δpeak + β·Δbandwidth (docs/references.md#research-note). Never below the idle power. A catalog chip's
        own TDP is its datasheet figure; one given with the design is kept."""
        if self.tdp_given or self.tdp_ref_flops_per_s == 0.0:
            return self.tdp_w
        if self.silicon is not None:
            base, silicon = self.silicon, self.design_silicon()
            assert silicon is not None
            plan = base.plan._replace(link_bytes_per_s=self.link_bandwidth_bytes_per_s)
            dense = base.dense_flops_per_s * self.datapath_flops_per_s / base.datapath_flops_per_s
            area = silicon.die_mm2 * base.dies
            power = floorplan_tdp(plan, dense, self.dram_bytes_per_s, area, self.converter_power_w).tdp_w
            return jnp.maximum(self.tdp_w + power - base.tdp_model_w, self.idle_w)
        bandwidth: Array = self.memory_bandwidth_bytes_per_s  # type: ignore[attr-defined]  # every family has it
        extra = self.energy_per_flop_j * (self.peak_flops_per_s("bf16") - self.tdp_ref_flops_per_s)
        extra = extra + self.energy_per_byte_j * (bandwidth - self.tdp_ref_bytes_per_s)
        return jnp.maximum(self.tdp_w + extra, self.idle_w)

    @property
    def datapath_flops_per_s(self) -> Array:
        """The rate the datapath's power follows: the BF16 peak (a family computing elsewhere,
        in memory arrays, overrides it)."""
        return self.peak_flops_per_s("bf16")

    @property
    def converter_power_w(self) -> Array | float:
        """Power of data converters and analog arrays at full rate (0: none)."""
        return 0.0

    @property
    def dram_bytes_per_s(self) -> Array | float:
        """Bandwidth of the off-chip DRAM (HBM, DDR, external memory): what the floorplan
        model's memory power follows."""
        total: Array | float = 0.0  # numpy at load, traced in the engine (no eager JAX op at load)
        for name in ("hbm_bandwidth_bytes_per_s", "ddr_bandwidth_bytes_per_s", "external_bandwidth_bytes_per_s"):
            total = total + getattr(self, name, 0.0)
        return total

    @property
    def mac_units(self) -> Array:
        """Multiply-accumulate units in the family's own measure: the BF16 peak over the clock
        where the family has one (a faster clock adds no units), else the peak."""
        peak = self.peak_flops_per_s("bf16")
        clock = getattr(self, "clock_hz", None)
        if clock is None:
            return peak
        units: Array = peak / (clock + (clock <= 0))  # no clock stated (0): the peak itself
        return units

    @property
    def datapath_macs(self) -> Array | None:
        """16-bit MAC units of the datapath where the family's knobs give them (None: the
        hardware file states them as ``datapath_macs``)."""
        return None

    def floorplan_parts(self) -> dict[str, Array]:
        """The knobs of this design that the floorplan model (models.silicon) prices, besides
        MAC units and HBM: SRAM, off-chip links and LPDDR/DDR interfaces (a family adds its own)."""
        return {
            "sram_bytes": getattr(self, "sram_capacity_bytes", np.zeros(())),
            "link_bytes_per_s": self.link_bandwidth_bytes_per_s,
            "ddr_bytes_per_s": getattr(self, "ddr_bandwidth_bytes_per_s", np.zeros(())),
        }

    @property
    def offchip_dram_bytes(self) -> Array | float:
        """Off-package LPDDR or DDR the chip carries (HBM apart): priced with its silicon."""
        return getattr(self, "ddr_capacity_bytes", 0.0)

    def design_silicon(self) -> VariantSilicon | None:
        """This design's die area, HBM stacks, silicon cost and embodied carbon, from the
        silicon it varies (``silicon``); None without one."""
        if self.silicon is None:
            return None
        bandwidth = getattr(self, "hbm_bandwidth_bytes_per_s", 0.0)
        capacity = getattr(self, "hbm_capacity_bytes", 0.0)
        macs = self.datapath_macs  # from the family's knobs, else the base's scaled by the MAC units
        if macs is None:
            macs = self.silicon.plan.macs * (self.mac_units / self.silicon.macs)
        plan = variant_plan(self.silicon, macs, bandwidth, capacity, **self.floorplan_parts())
        return variant_silicon(self.silicon, plan, self.offchip_dram_bytes)

    @property
    def design_price_usd(self) -> Array:
        """Price of this design: the given price plus the base's margin (price over silicon,
        off-package DRAM apart) times the logic and HBM this design adds, plus the DRAM it adds
        at its cost; the given price where it was given for the design
        or where no published silicon is recorded."""
        silicon = self.design_silicon()
        if self.price_given or silicon is None or self.silicon is None:
            return self.price_usd
        base = self.silicon
        added = (silicon.cost_usd - silicon.dram_usd) - (base.silicon_usd - base.dram_usd)
        price = self.price_usd + base.margin * added + (silicon.dram_usd - base.dram_usd)  # DRAM at its cost
        return jnp.maximum(price, silicon.cost_usd)

    def layers_in_space(self, weight_bytes: Array, kv_bytes: Array, stage_layers: Array) -> Array:
        """Layers of a pipeline stage laid out side by side on the chip, each on its own share
        of it (1: the chip runs its layers one after another, each on the whole chip).

        A sequence's token crosses such a chip's layers in turn, each at its region's rate:
        one micro-batch sees ``stage_layers`` times the whole-chip time, and only as many
        micro-batches in flight as layers recover the chip's aggregate rate."""
        del weight_bytes, kv_bytes
        return jnp.ones_like(stage_layers)


def linear_power_energy_j(chip: Chip, time_s: Array, flops: Array, bytes_: Array) -> Array:
    """E = min(TDP·t, P_idle·t + α·FLOPs + β·bytes) (docs/references.md#research-note power model, TDP cap)."""
    uncapped = chip.idle_w * time_s + chip.energy_per_flop_j * flops + chip.energy_per_byte_j * bytes_
    return jnp.minimum(chip.design_tdp_w * time_s, uncapped)
