"""Shapes of a transformer that its operator rows and its spec both read: layer counts by
kind, expert widths, MLA and Mamba-2 projection sizes, heads and cached values per chip, and
the elementwise FLOP estimates. Pure functions of a :class:`._transformer.TransformerSpec`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp

from models._interface import Split
from models._pytree import Array

if TYPE_CHECKING:
    from ._transformer import TransformerSpec

# Elementwise cost in FLOPs per element (estimates: RMSNorm ≈ square, sum, rsqrt, scale,
# weight ≈ 5; softmax ≈ max, sub, exp, sum, div ≈ 5; SiLU·up ≈ 5; residual add = 1).
_NORM_FLOPS, _SOFTMAX_FLOPS, _ACT_FLOPS = 5.0, 5.0, 5.0


def attention_layers(model: TransformerSpec) -> Array:
    """Layers whose token mixer is attention (the rest are Mamba layers)."""
    return model.n_layers - model.ssm_layers


def moe_layers(model: TransformerSpec) -> Array:
    """Layers whose FFN is a mixture of experts."""
    return model.n_layers - model.dense_layers if model.moe else jnp.zeros_like(model.n_layers)


def expert_width(model: TransformerSpec) -> Array:
    """Hidden width of one routed (or shared) expert."""
    return jnp.where(model.d_expert > 0, model.d_expert, model.d_ff)


def windowed_layers(model: TransformerSpec) -> Array:
    """Attention layers whose keys are limited to the sliding window."""
    if "window" not in model.parts:
        return jnp.zeros_like(model.n_layers)
    return jnp.where(model.window > 0, jnp.minimum(model.window_layers, attention_layers(model)), 0.0)


def distinct_experts(n_experts: Array, top_k: Array, tokens: Array) -> Array:
    """Expected number of distinct experts hit by ``tokens`` tokens under uniform routing.

    Each expert is missed by one token with probability 1 − k/E, so by all tokens with
    (1 − k/E)^T: E_hit = E·(1 − (1 − k/E)^T). At T = 1 this is k; for T ≫ E it is E.
    """
    miss = jnp.clip(1.0 - top_k / n_experts, 0.0, 1.0)
    return n_experts * (1.0 - miss**tokens)


def busiest_expert_group(model: TransformerSpec, split: Split, tokens: Array) -> tuple[Array, Array, Array]:
    """(token-expert pairs, distinct experts hit, load over the mean) of the expert-parallel
    group that paces an MoE layer, each group serving ``tokens`` tokens (all groups' tokens are
    dispatched to all groups).

    A share h (``expert_hot_share``) of the tokens all pick the same top-k experts, held by
    one group where it holds k of them (g = E/ep experts per group: min(g, k) of them); the
    rest are routed uniformly, the busiest group taking ``expert_imbalance`` times its share
    (at most all). Distinct experts hit: the uniform tokens' (:func:`distinct_experts`) plus
    the hot ones not already among them (hit for certain once a whole hot token arrives)."""
    ep, k, n_experts = split.ep, model.top_k, model.n_experts
    per_group = n_experts / ep
    hot = jnp.minimum(per_group, k)
    h = jnp.clip(jnp.asarray(split.expert_hot_share, jnp.result_type(tokens)), 0.0, 1.0)
    load = jnp.minimum(h * ep * hot / k + (1.0 - h) * jnp.minimum(split.expert_imbalance, ep), ep)
    uniform = distinct_experts(n_experts, k, (1.0 - h) * tokens * ep) / ep
    hit_hot = hot * jnp.minimum(h * tokens * ep, 1.0) * (1.0 - uniform / per_group)
    return tokens * k * load, uniform + hit_hot, load


def mla_dims(model: TransformerSpec, heads: Array) -> dict[str, Array]:
    """Parameter counts of one MLA layer's projections for ``heads`` heads (DeepSeek-V2,
    DeepSeek-AI 2024, §2.1.2): query down/up (or one query matrix without q_lora_rank), the
    joint KV down-projection to the latent and the rotary key, its up-projections to the heads'
    keys (W_UK) and values (W_UV), and the output projection."""
    d, r, qr = model.d_model, model.kv_lora_rank, model.q_lora_rank
    qk = model.qk_nope_dim + model.qk_rope_dim
    q_in = jnp.where(qr > 0, qr, d)
    return {
        "q_down": d * qr,
        "q_up": q_in * heads * qk,
        "kv_down": d * (r + model.qk_rope_dim),
        "w_uk": r * heads * model.qk_nope_dim,
        "w_uv": r * heads * model.v_head_dim,
        "out": heads * model.v_head_dim * d,
        "norms": qr + r,  # the latent RMSNorms
    }


def ssd_groups(model: TransformerSpec, tp: Array | float) -> Array:
    """Mamba-2 B/C groups on one TP rank: split over ranks, one replicated when fewer."""
    return jnp.maximum(model.ssm_groups / tp, jnp.minimum(model.ssm_groups, 1.0))


def as_split(split: Split | Array) -> Split:
    """A :class:`Split`, or tensor parallelism only when given a tensor-parallel degree."""
    return split if isinstance(split, Split) else Split.of(jnp.asarray(split))


def kv_heads_per_chip(model: TransformerSpec, tp: Array | float) -> Array:
    """KV heads held by one chip: n_kv/tp, replicated (at least one) when tp > n_kv."""
    return jnp.maximum(model.n_kv_heads / tp, 1.0)


def cached_values(model: TransformerSpec, tp: Array | float = 1.0) -> Array:
    """Values one chip caches per token and attention layer: K and V of its KV heads, or the
    MLA latent and rotary key, which every head needs (replicated across TP ranks)."""
    if model.attention == "mla":
        return (model.kv_lora_rank + model.qk_rope_dim) * jnp.ones_like(jnp.asarray(tp, dtype=float))
    return 2.0 * kv_heads_per_chip(model, tp) * model.head_dim
