"""What every non-GPU chip family shares: power, price, scale-up link; and the roofline helpers.

Power model as for GPUs (seeds/000, SIMT power; GenZ Eq. 2): P = P_idle + α·FLOP/s +
β·bytes/s, capped at TDP, so E = min(TDP·t, P_idle·t + α·FLOPs + β·bytes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models._pytree import pytree_dataclass
from models.workloads._transformer import ATTENTION, ELEMENTWISE, GATHER, GEMM, OperatorTable

Array = jax.Array

_BITS = {"fp32": 32.0, "bf16": 16.0, "fp16": 16.0, "fp8": 8.0, "int8": 8.0, "int4": 4.0, "fp4": 4.0}


def dtype_bits(dtype: str) -> float:
    return _BITS[dtype]


def widest(*dtypes: str) -> str:
    return max(dtypes, key=_BITS.__getitem__)


@pytree_dataclass
class ChipCommon:
    """Fields every non-GPU family shares (power model, price, scale-up link, area)."""

    tdp_w: Array
    idle_w: Array
    energy_per_flop_j: Array  # α
    energy_per_byte_j: Array  # β
    price_usd: Array
    link_bandwidth_bytes_per_s: Array
    link_latency_s: Array
    die_area_mm2: Array


def linear_power_energy_j(chip, time_s: Array, flops: Array, bytes_: Array) -> Array:
    """E = min(TDP·t, P_idle·t + α·FLOPs + β·bytes) (seeds/000 power model, TDP cap)."""
    uncapped = chip.idle_w * time_s + chip.energy_per_flop_j * flops + chip.energy_per_byte_j * bytes_
    return jnp.minimum(chip.tdp_w * time_s, uncapped)


def kind_mask(ops: OperatorTable, *kinds: str) -> Array:
    """1.0 for rows of the given kinds, else 0.0 (kinds are static)."""
    return jnp.asarray([1.0 if k in kinds else 0.0 for k in ops.kinds])


def matmul_rows(ops: OperatorTable) -> Array:
    return kind_mask(ops, GEMM, ATTENTION)


def vector_rows(ops: OperatorTable) -> Array:
    return kind_mask(ops, ELEMENTWISE, GATHER)


def layer_rows(ops: OperatorTable) -> Array:
    """Rows executed once per layer (not the embedding or the LM head)."""
    return jnp.asarray([0.0 if n in ("embedding", "lm_head") else 1.0 for n in ops.names])


def stored_weight_bytes(ops: OperatorTable) -> Array:
    """Weights this chip holds for the pass: Σ stored weight bytes · repeat (all experts)."""
    return (ops.stored_weight_bytes * ops.repeat).sum()


def kv_cache_bytes(ops: OperatorTable) -> Array:
    """KV cache this chip holds: what the attention rows read (K and V, all layers)."""
    return (ops.kv_bytes * ops.repeat * kind_mask(ops, ATTENTION)).sum()
