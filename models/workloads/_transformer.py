"""Transformer decoder workload: operator tables for prefill and decode, memory footprint.

One configuration at a time: every numeric field is a scalar leaf (sweepable,
differentiable); the FFN form, MoE-ness and dtypes are static structure.

Operator table conventions (all per chip, after the tensor-parallel split):
  * one row per operator of one layer (``repeat = n_layers``) or of the whole model
    (embedding, final norm, LM head: ``repeat = 1``);
  * ``flops`` and bytes are per execution of the row; multiply by ``repeat`` for the pass;
  * bytes are split by class: weights, activations, KV cache (reads + writes);
  * ``m, n, k`` are the GEMM dims of one instance (elementwise rows: m rows of width n, k=1);
  * attention is modelled as a fused (FlashAttention-style) kernel by default: scores and
    probabilities stay on chip, so softmax moves no HBM bytes (Dao et al. 2022).

References:
  InferBench research note (seeds/000), "Workload Characterization".
  GenZ, Bambhaniya et al. 2024 (seeds/003), §III-A (model profiler), Table IV (models).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models._interface import (
    ATTENTION,
    ELEMENTWISE,
    GATHER,
    GEMM,
    Footprint,
    LayerComm,
    OperatorTable,
    Scenario,
    Split,
    dtype_bytes,
)
from models._pytree import pytree_dataclass, spec_field, static_field

Array = jax.Array

# Elementwise cost in FLOPs per element (estimates: RMSNorm ≈ square, sum, rsqrt, scale,
# weight ≈ 5; softmax ≈ max, sub, exp, sum, div ≈ 5; SiLU·up ≈ 5; residual add = 1).
_NORM_FLOPS, _SOFTMAX_FLOPS, _ACT_FLOPS = 5.0, 5.0, 5.0


@pytree_dataclass
class TransformerSpec:
    """A decoder-only transformer (dense, GQA/MQA, MoE).

    Attributes:
        n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size: dimensions
            (``d_ff`` is the per-expert hidden size for MoE models).
        n_experts, top_k: experts per MoE layer and experts chosen per token (1, 1 = dense).
        gated_ffn: three-matrix gated FFN (SwiGLU/GeGLU) if True, two-matrix otherwise.
        tied_embeddings: the LM head shares the embedding matrix.
    """

    n_layers: Array = spec_field(kind="int", doc="decoder layers")
    d_model: Array = spec_field(kind="int", doc="model width")
    n_heads: Array = spec_field(kind="int", doc="attention (query) heads")
    n_kv_heads: Array = spec_field(kind="int", doc="KV heads, dividing n_heads")
    head_dim: Array = spec_field(kind="int", required=False, doc="width of one head (default d_model / n_heads)")
    d_ff: Array = spec_field(kind="int", doc="FFN hidden width (per expert for MoE)")
    vocab_size: Array = spec_field(kind="int", doc="vocabulary size")
    n_experts: Array = spec_field(kind="int", required=False, doc="experts per MoE layer (1: dense)")
    top_k: Array = spec_field(kind="int", required=False, doc="experts per token, at most n_experts")
    gated_ffn: bool = static_field(default=True)
    moe: bool = static_field(default=False)
    tied_embeddings: bool = static_field(default=False)

    # --- the Workload interface (models._interface.Workload) ----------------------------

    def operator_table(self, scenario: Scenario, split: Split, new_tokens: Array, past_tokens: Array) -> OperatorTable:
        return operator_table(self, scenario, split, new_tokens, past_tokens)

    def footprint(self, scenario: Scenario, split: Split, pp: Array) -> Footprint:
        return memory_per_chip(self, scenario, split, pp)

    def layer_comm(self, scenario: Scenario, split: Split, new_tokens: Array) -> LayerComm:
        """Megatron TP: an all-reduce of the activations after attention and after the FFN of
        every layer (GenZ §III-C); the same activations cross a pipeline-stage boundary. EP
        (MoE): an all-to-all dispatches each token's hidden state to its top-k experts' groups
        and another combines the results (GenZ §III-C; DeepSpeed-MoE, Rajbhandari et al.
        2022); the tp chips of a group each send 1/tp of it."""
        split = as_split(split)
        q_split = jnp.where(new_tokens > 1.0, split.sp, 1.0)
        seqs = scenario.batch / split.ep
        act = seqs * new_tokens / q_split * self.d_model * dtype_bytes(scenario.act_dtype)
        one = jnp.ones_like(act)
        if self.moe:
            a2a, n_a2a = act * self.top_k / split.tp, 2.0 * one
        else:
            a2a, n_a2a = 0.0 * act, 0.0 * one
        # SP: a prompt pass gathers every key and value of the layer around the sp ring; a
        # decode step combines the sp partial attention outputs of its token (an all-reduce).
        kv_layer = kv_bytes_per_token(self, scenario.kv_dtype, split.tp) / self.n_layers
        gather = jnp.where(new_tokens > 1.0, seqs * new_tokens * kv_layer, 0.0)
        combine = jnp.where(new_tokens > 1.0, 0.0, act / split.tp)
        return LayerComm(act, 2.0 * one, act, a2a, n_a2a, gather, combine)

    @property
    def max_tp(self) -> Array:
        return self.n_heads

    @property
    def max_ep(self) -> Array:
        return self.n_experts if self.moe else jnp.ones_like(self.n_experts)


def weight_params(model: TransformerSpec) -> dict[str, Array]:
    """Parameter counts by part: attention, FFN (all experts), router, embeddings, norms."""
    d, hd = model.d_model, model.head_dim
    attn = d * hd * (2.0 * model.n_heads + 2.0 * model.n_kv_heads)  # Wq, Wo, Wk, Wv
    n_mats = 3.0 if model.gated_ffn else 2.0
    ffn = n_mats * d * model.d_ff * model.n_experts
    router = d * model.n_experts if model.moe else jnp.zeros_like(d)
    emb = model.vocab_size * d * (1.0 if model.tied_embeddings else 2.0)
    norms = 2.0 * d
    layer = attn + ffn + router + norms
    return {"layers": model.n_layers * layer, "embeddings": emb + d, "per_layer": layer, "attn": attn}


def total_params(model: TransformerSpec) -> Array:
    """Total parameter count (all experts)."""
    p = weight_params(model)
    return p["layers"] + p["embeddings"]


def active_params(model: TransformerSpec) -> Array:
    """Parameters touched per token: top-k experts instead of all."""
    n_mats = 3.0 if model.gated_ffn else 2.0
    idle_experts = model.n_experts - model.top_k
    return total_params(model) - model.n_layers * n_mats * model.d_model * model.d_ff * idle_experts


def kv_bytes_per_token(model: TransformerSpec, kv_dtype: str = "bf16", tp: Array | float = 1.0) -> Array:
    """KV-cache bytes per token of context held by one chip at tensor-parallel degree ``tp``:
    2 (K and V) · KV heads per chip · head_dim · layers · bytes (the one KV formula)."""
    return 2.0 * kv_heads_per_chip(model, tp) * model.head_dim * model.n_layers * dtype_bytes(kv_dtype)


def distinct_experts(n_experts: Array, top_k: Array, tokens: Array) -> Array:
    """Expected number of distinct experts hit by ``tokens`` tokens under uniform routing.

    Each expert is missed by one token with probability 1 − k/E, so by all tokens with
    (1 − k/E)^T: E_hit = E·(1 − (1 − k/E)^T). At T = 1 this is k; for T ≫ E it is E.
    """
    miss = jnp.clip(1.0 - top_k / n_experts, 0.0, 1.0)
    return n_experts * (1.0 - miss**tokens)


def as_split(split: Split | Array) -> Split:
    """A :class:`Split`, or tensor parallelism only when given a tensor-parallel degree."""
    return split if isinstance(split, Split) else Split.of(jnp.asarray(split))


def kv_heads_per_chip(model: TransformerSpec, tp: Array) -> Array:
    """KV heads held by one chip: n_kv/tp, replicated (at least one) when tp > n_kv."""
    return jnp.maximum(model.n_kv_heads / tp, 1.0)


def operator_table(
    model: TransformerSpec,
    scenario: Scenario,
    split: Split,
    new_tokens: Array,
    past_tokens: Array,
) -> OperatorTable:
    """Per-chip operator table of one forward pass.

    Args:
        model: the transformer.
        scenario: batch and dtypes (its token counts are not used here).
        split: tensor-parallel degree (heads and FFN columns split Megatron-style) and
            expert-parallel groups (each serves batch/ep sequences and 1/ep of the experts).
        new_tokens: tokens per sequence processed in this pass (prompt S for prefill, 1 for
            a decode step).
        past_tokens: tokens already in each sequence's KV cache (0 for prefill, C for decode).

    Returns:
        The operator table; it is affine in ``past_tokens`` (what the closed-form decode sum
        in :mod:`models.system` relies on).
    """
    split = as_split(split)
    tp, ep = split.tp, split.ep
    b = scenario.batch / ep  # sequences of this chip's expert-parallel group
    # Sequence (context) parallelism over sp groups: a prompt's tokens are split over them
    # and each chip's queries attend to every key, streamed around the ring (ring attention,
    # Liu et al. 2023; causal work balanced by a zig-zag split); a decode token cannot be
    # split: it is computed in every group, each attending to the 1/sp of the KV cache it holds.
    q_split = jnp.where(new_tokens > 1.0, split.sp, 1.0)
    kv_split = split.sp / q_split
    new_here = new_tokens / q_split  # tokens per sequence this chip computes
    w = dtype_bytes(scenario.weight_dtype)
    a = dtype_bytes(scenario.act_dtype)
    d, hd, L = model.d_model, model.head_dim, model.n_layers
    h = model.n_heads / tp  # query heads per chip
    kv = kv_heads_per_chip(model, tp)
    kv_per_token_layer = kv_bytes_per_token(model, scenario.kv_dtype, tp) / L  # K and V, one layer
    group = model.n_heads / model.n_kv_heads  # queries sharing one KV head (GQA/MQA)
    tokens = b * new_here  # GEMM rows of this pass
    one = jnp.ones_like(tokens)
    # Causal attention: query i of the pass sees past + i + 1 keys, on average
    # past + (T + 1)/2 — about half of the S² work in prefill (seed 000, prefill).
    ctx_mean = past_tokens + ((new_tokens + 1.0) / 2.0 if scenario.causal else new_tokens)
    ctx_all = past_tokens + new_tokens  # keys in the cache after this pass

    rows: list[tuple] = []

    def row(name, kind, flops, wbytes, abytes, kbytes, m, n, k, rep, stored=None):
        rows.append((name, kind, flops, wbytes, abytes, kbytes, m, n, k, rep, wbytes if stored is None else stored))

    # --- per layer -------------------------------------------------------------------
    # Pre-attention and pre-FFN norms (RMSNorm/LayerNorm), replicated across TP ranks.
    row(
        "norms",
        ELEMENTWISE,
        2 * _NORM_FLOPS * tokens * d,
        2 * d * w,
        2 * 2 * tokens * d * a,
        0 * one,
        tokens,
        d,
        one,
        L,
    )
    # Fused QKV projection: N = (h + 2 kv)·head_dim per chip, K = d_model.
    n_qkv = (h + 2.0 * kv) * hd
    row(
        "qkv_proj",
        GEMM,
        2 * tokens * n_qkv * d,
        d * n_qkv * w,
        tokens * d * a + tokens * h * hd * a,
        tokens * kv_per_token_layer,  # K and V written to the cache
        tokens,
        n_qkv,
        d,
        L,
    )
    # Attention scores Q·Kᵀ: per (sequence, KV head) a GEMM of M = group·T queries,
    # N = keys, K = head_dim; 2·T·ctx·hd FLOPs per query head.
    attn_flops = 2.0 * b * h * new_here * ctx_mean * hd / kv_split
    q_bytes = tokens * h * hd * a
    cache_read = b * ctx_all * kv_per_token_layer / 2.0 / kv_split  # one of K or V, this chip's heads
    score_bytes = b * h * new_here * ctx_mean / kv_split * a  # materialised only when not fused
    fused = scenario.fused_attention
    row(
        "attn_scores",
        ATTENTION,
        attn_flops,
        0 * one,
        q_bytes + (0 if fused else score_bytes),
        cache_read,
        group * new_here,
        ctx_mean / kv_split,
        hd,
        L,
    )
    row(
        "softmax",
        ELEMENTWISE,
        _SOFTMAX_FLOPS * b * h * new_here * ctx_mean / kv_split,
        0 * one,
        (0 if fused else 2.0) * score_bytes,
        0 * one,
        b * h * new_here,
        ctx_mean / kv_split,
        one,
        L,
    )
    # Attention-times-values P·V: M = group·T, N = head_dim, K = keys.
    row(
        "attn_values",
        ATTENTION,
        attn_flops,
        0 * one,
        q_bytes + (0 if fused else score_bytes),
        cache_read,
        group * new_here,
        hd,
        ctx_mean / kv_split,
        L,
    )
    # Output projection (row-parallel): N = d_model, K = heads per chip · head_dim.
    row(
        "out_proj",
        GEMM,
        2 * tokens * d * h * hd,
        h * hd * d * w,
        tokens * h * hd * a + tokens * d * a,
        0 * one,
        tokens,
        d,
        h * hd,
        L,
    )
    # Two residual adds: read two tensors, write one.
    row("residual", ELEMENTWISE, 2 * tokens * d, 0 * one, 2 * 3 * tokens * d * a, 0 * one, tokens, d, one, L)
    # FFN. Gated: up and gate fused (N = 2·d_ff), SiLU·mul, down. MoE: per-expert GEMMs on
    # the tokens routed to the experts that are hit; weights read once per distinct expert.
    f = model.d_ff / tp
    up_n = (2.0 if model.gated_ffn else 1.0) * f
    if model.moe:
        # Token-expert pairs this chip's group computes: 1/ep of the stage's (all groups'
        # tokens are dispatched), times the imbalance of the busiest group, which paces the
        # layer; at most all of them. Its experts: 1/ep of those the stage's tokens hit.
        routed = tokens * model.top_k * jnp.minimum(split.expert_imbalance, ep)
        hit = distinct_experts(model.n_experts, model.top_k, tokens * ep) / ep
        m_expert = routed / hit
        row(
            "router",
            GEMM,
            2 * tokens * d * model.n_experts,
            d * model.n_experts * w,
            tokens * d * a + tokens * model.n_experts * a,
            0 * one,
            tokens,
            model.n_experts,
            d,
            L,
        )
    else:
        routed, hit, m_expert = tokens, one, tokens
    n_exp = model.n_experts / ep if model.moe else one
    row(
        "ffn_up",
        GEMM,
        2 * routed * up_n * d,
        hit * d * up_n * w,
        routed * d * a + routed * up_n * a,
        0 * one,
        m_expert,
        up_n,
        d,
        L,
        n_exp * d * up_n * w,
    )
    row("ffn_act", ELEMENTWISE, _ACT_FLOPS * routed * f, 0 * one, (up_n + f) * routed * a, 0 * one, routed, f, one, L)
    row(
        "ffn_down",
        GEMM,
        2 * routed * d * f,
        hit * f * d * w,
        routed * f * a + routed * d * a,
        0 * one,
        m_expert,
        d,
        f,
        L,
        n_exp * f * d * w,
    )
    # --- once per pass ---------------------------------------------------------------
    # Embedding lookup: one row of d_model weights per token.
    row(
        "embedding",
        GATHER,
        0 * one,
        tokens * d * w,
        tokens * d * a,
        0 * one,
        tokens,
        d,
        one,
        one,
        model.vocab_size * d * w / tp,
    )
    # Final norm and LM head, only on the last position of each sequence (prefill and
    # decode alike); the vocabulary is split across TP ranks.
    vocab = model.vocab_size / tp
    row(
        "lm_head",
        GEMM,
        2 * b * vocab * d + _NORM_FLOPS * b * d,
        vocab * d * w,
        b * d * a + b * vocab * a,
        0 * one,
        b,
        vocab,
        d,
        one,
    )

    cols = list(zip(*rows, strict=True))
    stack = [jnp.stack([jnp.asarray(x, dtype=jnp.result_type(float)) * one for x in c]) for c in cols[2:]]
    per_layer = tuple(name not in ("embedding", "lm_head") for name in cols[0])
    return OperatorTable(*stack, names=tuple(cols[0]), kinds=tuple(cols[1]), per_layer=per_layer, stages=split.pp)


def memory_per_chip(model: TransformerSpec, scenario: Scenario, split: Split, pp: Array) -> Footprint:
    """Memory footprint per chip for a whole request (context S + D at the end).

    Weights split over tp·pp chips, experts also over ep groups (the rest is replicated in
    each group); KV cache 2·(B/ep)·C·n_kv·head_dim·layers·bytes split over KV heads (TP,
    replicated beyond n_kv) and layers (PP); activations: the largest live tensors of a
    prefill layer (input, QKV output and FFN hidden), not multiplied by layers.
    """
    split = as_split(split)
    tp, ep, sp = split.tp, split.ep, split.sp
    w = dtype_bytes(scenario.weight_dtype)
    a = dtype_bytes(scenario.act_dtype)
    n_mats = 3.0 if model.gated_ffn else 2.0
    experts = model.n_layers * n_mats * model.d_model * model.d_ff * model.n_experts if model.moe else 0.0
    weights = ((total_params(model) - experts) + experts / ep) * w / (tp * pp)
    context = scenario.prompt_tokens + scenario.output_tokens
    batch = scenario.batch / ep
    kv = batch * context * kv_bytes_per_token(model, scenario.kv_dtype, tp) / (pp * sp)
    tokens = batch * scenario.prompt_tokens / sp
    hidden = (2.0 if model.gated_ffn else 1.0) * model.d_ff / tp * jnp.minimum(model.top_k, model.n_experts)
    act = tokens * (2.0 * model.d_model + (model.n_heads + 2.0 * model.n_kv_heads) * model.head_dim / tp + hidden) * a
    # Pipelined (pp > 1): each sequence is a micro-batch, so a stage holds one at a time.
    act = jnp.where(pp > 1, act / batch, act)
    return Footprint(weights, kv, act)
