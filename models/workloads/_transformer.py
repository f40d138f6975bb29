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

import dataclasses
import functools
import operator
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

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
from models._pytree import Array, pytree_dataclass, spec_field, static_field

from ._mixers import _ACT_FLOPS, _NORM_FLOPS, _SOFTMAX_FLOPS, _mamba_rows, _mla_dims, _mla_rows, _ssd_groups, _ssd_rows


def image_side(scenario: Scenario, native_px: Array) -> Array:
    """The image side of a request: the scenario's, or the model's own when it gives none."""
    return jnp.where(scenario.image_px > 0, scenario.image_px, native_px)


def table_from_rows(rows: list[tuple], split: Split, once: tuple[str, ...]) -> OperatorTable:
    """An operator table from rows ``(name, kind, flops, weight, act, kv bytes, m, n, k,
    repeat, stored weight bytes)``; rows named in ``once`` run once per pass, the rest per layer."""
    cols = list(zip(*rows, strict=True))
    one = jnp.ones_like(jnp.asarray(rows[0][2], dtype=jnp.result_type(float)))
    rows_at = np.eye(len(rows), dtype=bool)

    def column(values: tuple) -> Array:
        # Each row's value selected into place rather than stacked: where the rows vary per
        # design (a pipeline depth from capacity sets the decode batch), XLA made a stack of
        # them a strided concatenate and a transpose, and the wafer-scale family ran at 1.8
        # instead of 3.2 M designs/s. Selects are exact (no 0 * inf).
        col = jnp.zeros(len(rows), dtype=jnp.result_type(float)) * one
        for i, x in enumerate(values):
            col = jnp.where(rows_at[i], jnp.asarray(x, dtype=jnp.result_type(float)), col)
        return col

    stack = [column(c) for c in cols[2:]]
    per_layer = tuple(name not in once for name in cols[0])
    return OperatorTable._make([*stack, tuple(cols[0]), tuple(cols[1]), per_layer, split.pp])


def _optional(doc: str) -> Array:
    """A leaf that a model may leave out: a count or width, 0 when the model has no such part."""
    return spec_field(kind="nonnegative", required=False, value=0.0, doc=doc, limit=1e9)


@pytree_dataclass
class TransformerSpec:
    """A decoder-only transformer (dense, GQA/MQA, MoE).

    Attributes:
        n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size: dimensions
            (``d_ff`` is the per-expert hidden size for MoE models).
        n_experts, top_k: experts per MoE layer and experts chosen per token (1, 1 = dense).
        gated_ffn: 1 for a three-matrix gated FFN (SwiGLU/GeGLU), 0 for two matrices.
        tied_embeddings: 1 when the LM head shares the embedding matrix.
    """

    # Limits: 100-1000x the largest published models (160 layers, width 18,432, 256 k vocabulary,
    # 256 experts): beyond them a value is a typo or an overflow, not a model.
    n_layers: Array = spec_field(kind="int", doc="decoder layers", limit=1e5)
    d_model: Array = spec_field(kind="int", doc="model width", limit=1e7)
    n_heads: Array = spec_field(kind="int", doc="attention (query) heads", limit=1e6)
    n_kv_heads: Array = spec_field(kind="int", doc="KV heads, dividing n_heads", limit=1e6)
    head_dim: Array = spec_field(
        kind="int", required=False, doc="width of one head (default d_model / n_heads)", limit=1e6
    )
    d_ff: Array = spec_field(
        kind="nonnegative",
        doc="hidden width of a dense FFN (per expert for MoE without d_expert; 0: no FFN)",
        limit=1e8,
    )
    vocab_size: Array = spec_field(kind="int", doc="vocabulary size", limit=1e8)
    n_experts: Array = spec_field(kind="int", required=False, doc="experts per MoE layer (1: dense)", limit=1e6)
    top_k: Array = spec_field(kind="int", required=False, doc="experts per token, at most n_experts", limit=1e6)
    # MoE variants (DeepSeek-V2/V3, Qwen-MoE, Jamba): the width of one routed expert, the
    # experts every token also runs, and the layers whose FFN stays dense.
    d_expert: Array = _optional("hidden width of one routed expert (0: d_ff)")
    n_shared_experts: Array = _optional("shared experts every token runs (MoE layers)")
    dense_layers: Array = _optional("layers of a MoE model whose FFN is dense (width d_ff)")
    # Attention variants: a sliding window on some layers (Mistral, Gemma-2 local layers).
    window: Array = _optional("sliding window in tokens (0: none)")
    window_layers: Array = _optional("attention layers with the sliding window")
    # MLA (DeepSeek-V2/V3): a latent KV cache of kv_lora_rank + qk_rope_dim values per token
    # and layer, shared by every head.
    kv_lora_rank: Array = _optional("MLA latent KV width")
    q_lora_rank: Array = _optional("MLA query low rank (0: none)")
    qk_rope_dim: Array = _optional("MLA rotary key width per head")
    qk_nope_dim: Array = _optional("MLA non-rotary key width per head")
    v_head_dim: Array = _optional("MLA value width per head")
    mtp_layers: Array = _optional("multi-token prediction layers (stored; not run)")
    # State-space layers: layers whose mixer is a selective scan, Mamba-1 (Gu & Dao 2023) or,
    # with ssm_heads > 0, Mamba-2's SSD (Dao & Gu 2024: scalar decay per head, B and C shared
    # by ssm_groups groups of heads, no x_proj or dt_proj).
    ssm_layers: Array = _optional("layers with a Mamba mixer")
    ssm_d_inner: Array = _optional("Mamba inner width")
    ssm_d_state: Array = _optional("Mamba state size per channel")
    ssm_d_conv: Array = _optional("Mamba convolution width")
    ssm_dt_rank: Array = _optional("Mamba-1 step-size rank")
    ssm_heads: Array = _optional("Mamba-2 heads (0: a Mamba-1 mixer)")
    ssm_groups: Array = _optional("Mamba-2 groups of heads sharing B and C")
    # Encoders (ViT, CLIP and T5 text encoders): one pass per input, no KV cache, no decode.
    patch_px: Array = _optional("ViT patch side in pixels")
    channels: Array = _optional("image channels (ViT)")
    image_px: Array = _optional("ViT native image side in pixels")
    # Vision-language models: a vision encoder (``vision_tower``, one TransformerSpec with
    # ``vision``) whose patches are merged vision_merge² to one language-model token.
    vision_merge: Array = _optional("patches merged per side into one LM token (VLM)")
    tied_embeddings: Array = _optional("1 when the LM head shares the embedding matrix, else 0")
    gated_ffn: Array = spec_field(
        kind="nonnegative", required=False, value=1.0, doc="1 for a gated three-matrix FFN (SwiGLU/GeGLU), 0 for two"
    )
    vision_tower: tuple = ()
    moe: bool = static_field(default=False)
    attention: str = static_field(default="gqa")  # "gqa" (MHA/GQA/MQA) or "mla"
    ssm: bool = static_field(default=False)  # some layers are Mamba layers
    encoder: bool = static_field(default=False)  # one pass, nothing cached, nothing decoded
    bidirectional: bool = static_field(default=False)  # every token attends to every token
    vision: bool = static_field(default=False)  # patch embedding instead of a token lookup
    # Optional parts the model has (static: a model without them traces none of their work):
    # "ffn" (an FFN per layer), "window", "shared_experts", "dense_layers" (MoE), "q_lora" (MLA),
    # "ssd" (the Mamba layers are Mamba-2).
    parts: tuple = static_field(default=("ffn",))

    @property
    def output_unit(self) -> str:
        """What a request yields: output tokens, or one result per image for a vision encoder."""
        return "image" if self.vision else "token"

    @property
    def decodes(self) -> bool:
        return not self.encoder

    def request_tokens(self, scenario: Scenario) -> Array:
        """Tokens a request feeds the first pass: the prompt (with a VLM's image tokens), or a
        ViT's patches and [CLS]."""
        if self.vision_tower:
            return scenario.prompt_tokens + scenario.images * self.tokens_per_image(scenario)
        if not self.vision:
            return scenario.prompt_tokens
        px = image_side(scenario, self.image_px)
        return jnp.floor(px / self.patch_px) ** 2 + 1.0

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
        kv_layer = kv_values_per_token_layer(self, split.tp) * dtype_bytes(scenario.kv_dtype)
        gather = jnp.where(new_tokens > 1.0, seqs * new_tokens * kv_layer, 0.0)
        combine = jnp.where(new_tokens > 1.0, 0.0, act / split.tp)
        return LayerComm(act, 2.0 * one, act, a2a, n_a2a, gather, combine)

    def patches_per_image(self, scenario: Scenario) -> Array:
        """A VLM's vision-tower patches per image."""
        tower = self.vision_tower[0]
        px = image_side(scenario, tower.image_px)
        return jnp.floor(px / tower.patch_px) ** 2

    def tokens_per_image(self, scenario: Scenario) -> Array:
        """A VLM's language-model tokens per image: its patches, merged vision_merge² to one."""
        return self.patches_per_image(scenario) / self.vision_merge**2

    @property
    def max_tp(self) -> Array:
        # Heads split over TP ranks; a model of Mamba layers only splits its inner channels.
        return jnp.where(self.ssm_layers >= self.n_layers, self.ssm_d_inner, self.n_heads)

    @property
    def max_ep(self) -> Array:
        return self.n_experts if self.moe else jnp.ones_like(self.n_experts)


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


def weight_params(model: TransformerSpec) -> dict[str, Array]:
    """Parameter counts by part: attention or Mamba mixers, FFNs (all experts, shared experts,
    dense layers), routers, embeddings, norms; multi-token prediction layers apart."""
    d, hd = model.d_model, model.head_dim
    if model.attention == "mla":
        attn = functools.reduce(operator.add, _mla_dims(model, model.n_heads).values())
    else:
        attn = d * hd * (2.0 * model.n_heads + 2.0 * model.n_kv_heads)  # Wq, Wo, Wk, Wv
    di, ds, dc, dtr = model.ssm_d_inner, model.ssm_d_state, model.ssm_d_conv, model.ssm_dt_rank
    if "ssd" in model.parts:
        # Mamba-2 block: in_proj (z, x, B, C, Δ), depthwise conv over x, B, C (+ bias), Δ bias,
        # A and D per head, gated RMSNorm, out_proj (Dao & Gu 2024, §7; the HF Mamba2Mixer).
        h, bc = model.ssm_heads, 2.0 * model.ssm_groups * ds
        ssm = d * (2.0 * di + bc + h) + (di + bc) * (dc + 1.0) + 3.0 * h + di + di * d
    else:
        # Mamba-1 block: in_proj (x, z), depthwise conv (+ bias), x_proj (Δ, B, C), dt_proj
        # (+ bias), A and D, out_proj (Gu & Dao 2023, Alg. 2; the HF MambaMixer's parameters).
        ssm = d * 2.0 * di + di * (dc + 1.0) + di * (dtr + 2.0 * ds) + (dtr + 1.0) * di + di * (ds + 1.0) + di * d
    n_mats = 2.0 + model.gated_ffn
    de = expert_width(model)
    dense_ffn = n_mats * d * model.d_ff
    n_moe = moe_layers(model)
    experts = n_mats * d * de * model.n_experts if model.moe else jnp.zeros_like(d)
    shared = n_mats * d * de * model.n_shared_experts if model.moe else jnp.zeros_like(d)
    router = d * model.n_experts if model.moe else jnp.zeros_like(d)
    if model.vision:  # patch embedding, position embeddings and the classifier head
        emb = model.channels * model.patch_px**2 * d + (jnp.floor(model.image_px / model.patch_px) ** 2 + 1.0) * d
        emb = emb + model.vocab_size * d
    else:
        emb = model.vocab_size * d * (2.0 - model.tied_embeddings)
    norms = (2.0 if "ffn" in model.parts else 1.0) * d  # one before the mixer, one before the FFN
    n_attn = attention_layers(model)
    layers = (
        n_attn * attn
        + model.ssm_layers * ssm
        + (model.n_layers - n_moe) * dense_ffn
        + n_moe * (experts + shared + router)
        + model.n_layers * norms
    )
    # A DeepSeek-V3 MTP module: one more layer (MoE FFN) plus its projection of [h; emb] (2d → d)
    # and two norms; it shares the embedding and head (DeepSeek-V3 report §2.2).
    mtp = model.mtp_layers * (attn + experts + shared + router + norms + 2.0 * d * d + 2.0 * d)
    return {"layers": layers, "embeddings": emb + d, "attn": attn, "ssm": ssm, "experts": n_moe * experts, "mtp": mtp}


def total_params(model: TransformerSpec) -> Array:
    """Total parameter count (all experts; multi-token prediction layers excluded, as
    published counts exclude them)."""
    if not isinstance(model, TransformerSpec):
        return model.param_count()  # another workload counts its own
    p = weight_params(model)
    return p["layers"] + p["embeddings"] + vision_params(model)


def vision_params(model: TransformerSpec) -> Array:
    """A VLM's vision tower and its projector: a two-layer MLP from merge² patch features to
    the language model's width (Qwen2-VL's PatchMerger)."""
    if not model.vision_tower:
        return jnp.zeros_like(model.d_model)
    tower = model.vision_tower[0]
    merged = model.vision_merge**2 * tower.d_model
    return total_params(tower) + merged * merged + merged * model.d_model


def active_params(model: TransformerSpec) -> Array:
    """Parameters touched per token: top-k routed experts instead of all."""
    if not isinstance(model, TransformerSpec):
        return total_params(model)
    n_mats = 2.0 + model.gated_ffn
    idle = model.n_experts - model.top_k if model.moe else jnp.zeros_like(model.n_experts)
    return total_params(model) - moe_layers(model) * n_mats * model.d_model * expert_width(model) * idle


def kv_values_per_token_layer(model: TransformerSpec, tp: Array | float = 1.0) -> Array:
    """Values one chip caches per token and attention layer: K and V of its KV heads, or the
    MLA latent and rotary key, which every head needs (replicated across TP ranks)."""
    if not isinstance(model, TransformerSpec):
        return jnp.zeros_like(jnp.asarray(tp, dtype=float))  # nothing cached between passes
    if model.attention == "mla":
        return (model.kv_lora_rank + model.qk_rope_dim) * jnp.ones_like(jnp.asarray(tp, dtype=float))
    return 2.0 * kv_heads_per_chip(model, tp) * model.head_dim


def kv_bytes_per_token(model: TransformerSpec, kv_dtype: str = "bf16", tp: Array | float = 1.0) -> Array:
    """KV-cache bytes per token of context held by one chip at tensor-parallel degree ``tp``,
    over every attention layer while the context is within any sliding window (the one KV
    formula; GQA: 2 · KV heads per chip · head_dim · layers · bytes)."""
    if not isinstance(model, TransformerSpec):
        return kv_values_per_token_layer(model, tp)
    cached = 0.0 if model.encoder else 1.0  # an encoder keeps nothing between requests
    return cached * kv_values_per_token_layer(model, tp) * attention_layers(model) * dtype_bytes(kv_dtype)


def ssm_state_bytes(model: TransformerSpec, kv_dtype: str = "bf16", tp: Array | float = 1.0) -> Array:
    """Fixed state of one sequence on one chip: every Mamba layer's d_inner/tp channels ×
    (d_state scan state + d_conv − 1 convolution inputs), whatever the context length; a
    Mamba-2 layer also keeps the convolution inputs of its B and C groups."""
    conv = jnp.maximum(model.ssm_d_conv - 1.0, 0.0)
    per_layer = model.ssm_d_inner / tp * (model.ssm_d_state + conv)
    if "ssd" in model.parts:
        per_layer = per_layer + _ssd_groups(model, tp) * 2.0 * model.ssm_d_state * conv
    return model.ssm_layers * per_layer * dtype_bytes(kv_dtype)


def kv_bytes_per_sequence(
    model: TransformerSpec, context: Array, kv_dtype: str = "bf16", tp: Array | float = 1.0
) -> Array:
    """KV cache and state of one sequence of ``context`` tokens on one chip: windowed layers
    keep at most ``window`` tokens; Mamba layers keep their fixed state."""
    per_layer = kv_values_per_token_layer(model, tp) * dtype_bytes(kv_dtype)
    wl = windowed_layers(model)
    tokens = (attention_layers(model) - wl) * context + wl * jnp.minimum(context, model.window)
    return per_layer * tokens + ssm_state_bytes(model, kv_dtype, tp)


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


def kv_heads_per_chip(model: TransformerSpec, tp: Array | float) -> Array:
    """KV heads held by one chip: n_kv/tp, replicated (at least one) when tp > n_kv."""
    return jnp.maximum(model.n_kv_heads / tp, 1.0)


class _Rows(list):
    """The operator rows of a pass, each given by keyword (what every number of a row is)."""

    def __call__(
        self, name: str, kind: str, *, flops: Any, weight_bytes: Any, act_bytes: Any, kv_bytes: Any, m: Any, n: Any,
        k: Any, repeat: Any, stored_bytes: Any = None,
    ) -> None:  # fmt: skip
        stored = weight_bytes if stored_bytes is None else stored_bytes
        self.append((name, kind, flops, weight_bytes, act_bytes, kv_bytes, m, n, k, repeat, stored))


class _Pass(NamedTuple):
    """What the rows of one forward pass read, per chip: the split, the sequences and tokens
    this chip computes, dtype widths, the model's shape and the mean and final contexts."""

    model: Any
    scenario: Any
    split: Any
    tp: Any
    ep: Any
    b: Any
    kv_split: Any
    new_here: Any
    w: Any
    a: Any
    kvb: Any
    d: Any
    hd: Any
    L: Any
    n_attn: Any
    h: Any
    kv: Any
    kv_per_token_layer: Any
    group: Any
    tokens: Any
    one: Any
    ctx_mean: Any
    ctx_all: Any


def _pass(model: TransformerSpec, scenario: Scenario, split: Split, new_tokens: Array, past_tokens: Array) -> _Pass:
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
    kvb = dtype_bytes(scenario.kv_dtype)
    d, hd, L = model.d_model, model.head_dim, model.n_layers
    n_attn = attention_layers(model)
    h = model.n_heads / tp  # query heads per chip
    kv = kv_heads_per_chip(model, tp)
    kv_per_token_layer = kv_values_per_token_layer(model, tp) * kvb  # K and V (or the latent), one layer
    group = model.n_heads / model.n_kv_heads  # queries sharing one KV head (GQA/MQA)
    tokens = b * new_here  # GEMM rows of this pass
    one = jnp.ones_like(tokens)
    # Causal attention: query i of the pass sees past + i + 1 keys, on average
    # past + (T + 1)/2 — about half of the S² work in prefill (seed 000, prefill).
    causal = scenario.causal and not model.bidirectional
    ctx_mean = past_tokens + ((new_tokens + 1.0) / 2.0 if causal else new_tokens)
    ctx_all = past_tokens + new_tokens  # keys in the cache after this pass
    if "window" in model.parts:
        # Sliding-window layers see at most ``window`` keys; the rows carry the mean over layers
        # (attention work is linear in the keys, so the mean is exact per pass).
        win = jnp.maximum(model.window, 1.0)
        lo, hi = past_tokens + 1.0, past_tokens + new_tokens  # key counts of the pass's first and last query
        inside = (lo + hi) / 2.0
        partial = ((win * (win + 1.0) - (lo - 1.0) * lo) / 2.0 + (hi - win) * win) / new_tokens
        win_mean = jnp.where(hi <= win, inside, jnp.where(lo >= win, win, partial)) if causal else None
        win_mean = jnp.minimum(ctx_mean, win) if win_mean is None else win_mean
        wl = windowed_layers(model) / jnp.maximum(n_attn, 1.0)  # share of attention layers windowed
        ctx_mean = (1.0 - wl) * ctx_mean + wl * win_mean
        ctx_all = (1.0 - wl) * ctx_all + wl * jnp.minimum(ctx_all, win)
    return _Pass(
        model,
        scenario,
        split,
        tp,
        ep,
        b,
        kv_split,
        new_here,
        w,
        a,
        kvb,
        d,
        hd,
        L,
        n_attn,
        h,
        kv,
        kv_per_token_layer,
        group,
        tokens,
        one,
        ctx_mean,
        ctx_all,
    )


def _gqa_rows(p: _Pass, row: _Rows) -> None:
    """GQA/MQA attention rows of one layer: fused QKV projection, scores, softmax, values and
    output projection (FlashAttention-style fused kernels keep the scores on chip)."""
    (model, b, kv_split, new_here, w, a, d, hd, n_attn, h, kv, kv_per_token_layer, group, tokens, one, ctx_mean,
        ctx_all) = (
        p.model, p.b, p.kv_split, p.new_here, p.w, p.a, p.d, p.hd, p.n_attn, p.h, p.kv, p.kv_per_token_layer, p.group,
        p.tokens, p.one, p.ctx_mean, p.ctx_all
    )  # fmt: skip
    fused = p.scenario.fused_attention
    # Fused QKV projection: N = (h + 2 kv)·head_dim per chip, K = d_model.
    n_qkv = (h + 2.0 * kv) * hd
    # K and V written to the cache
    row("qkv_proj", GEMM, flops=2 * tokens * n_qkv * d, weight_bytes=d * n_qkv * w,
        act_bytes=tokens * d * a + tokens * h * hd * a,
        kv_bytes=tokens * kv_per_token_layer * (0.0 if model.encoder else 1.0), m=tokens, n=n_qkv, k=d, repeat=n_attn)  # fmt: skip
    # Attention scores Q·Kᵀ: per (sequence, KV head) a GEMM of M = group·T queries,
    # N = keys, K = head_dim; 2·T·ctx·hd FLOPs per query head.
    attn_flops = 2.0 * b * h * new_here * ctx_mean * hd / kv_split
    q_bytes = tokens * h * hd * a
    cache_read = b * ctx_all * kv_per_token_layer / 2.0 / kv_split  # one of K or V, this chip's heads
    score_bytes = b * h * new_here * ctx_mean / kv_split * a  # materialised only when not fused
    row("attn_scores", ATTENTION, flops=attn_flops, weight_bytes=0 * one,
        act_bytes=q_bytes + (0 if fused else score_bytes), kv_bytes=cache_read, m=group * new_here,
        n=ctx_mean / kv_split, k=hd, repeat=n_attn)  # fmt: skip
    row("softmax", ELEMENTWISE, flops=_SOFTMAX_FLOPS * b * h * new_here * ctx_mean / kv_split, weight_bytes=0 * one,
        act_bytes=(0 if fused else 2.0) * score_bytes, kv_bytes=0 * one, m=b * h * new_here, n=ctx_mean / kv_split,
        k=one, repeat=n_attn)  # fmt: skip
    # Attention-times-values P·V: M = group·T, N = head_dim, K = keys.
    row("attn_values", ATTENTION, flops=attn_flops, weight_bytes=0 * one,
        act_bytes=q_bytes + (0 if fused else score_bytes), kv_bytes=cache_read, m=group * new_here, n=hd,
        k=ctx_mean / kv_split, repeat=n_attn)  # fmt: skip
    # Output projection (row-parallel): N = d_model, K = heads per chip · head_dim.
    row("out_proj", GEMM, flops=2 * tokens * d * h * hd, weight_bytes=h * hd * d * w,
        act_bytes=tokens * h * hd * a + tokens * d * a, kv_bytes=0 * one, m=tokens, n=d, k=h * hd, repeat=n_attn)  # fmt: skip


def _ffn_rows(
    p: _Pass, row: _Rows, prefix: str, width: Any, m_rows: Any, routed: Any, hit: Any, stored_experts: Any, rep: Any
) -> None:
    """One FFN's rows: up (and gate, fused: N = 2·width), activation, down; ``routed`` token
    rows over ``hit`` distinct experts (1, 1 for a dense FFN), weights read once per expert."""
    tp, w, a, d, one = p.tp, p.w, p.a, p.d, p.one
    gate = 1.0 + p.model.gated_ffn
    f = width / tp
    up_n = gate * f
    row(f"{prefix}_up", GEMM, flops=2 * routed * up_n * d, weight_bytes=hit * d * up_n * w,
        act_bytes=routed * d * a + routed * up_n * a, kv_bytes=0 * one, m=m_rows, n=up_n, k=d, repeat=rep,
        stored_bytes=stored_experts * d * up_n * w)  # fmt: skip
    row(f"{prefix}_act", ELEMENTWISE, flops=_ACT_FLOPS * routed * f, weight_bytes=0 * one,
        act_bytes=(up_n + f) * routed * a, kv_bytes=0 * one, m=routed, n=f, k=one, repeat=rep)  # fmt: skip
    row(f"{prefix}_down", GEMM, flops=2 * routed * d * f, weight_bytes=hit * f * d * w,
        act_bytes=routed * f * a + routed * d * a, kv_bytes=0 * one, m=m_rows, n=d, k=f, repeat=rep,
        stored_bytes=stored_experts * f * d * w)  # fmt: skip


def _ffn_block(p: _Pass, row: _Rows) -> None:
    """FFN. Gated: up and gate fused (N = 2·d_ff), SiLU·mul, down. MoE: per-expert GEMMs on
    the tokens routed to the experts that are hit; weights read once per distinct expert."""
    model, split, ep, w, a, d, L, tokens, one = p.model, p.split, p.ep, p.w, p.a, p.d, p.L, p.tokens, p.one
    n_moe = moe_layers(model)
    if model.moe:
        # Token-expert pairs this chip's group computes: 1/ep of the stage's (all groups'
        # tokens are dispatched), times the imbalance of the busiest group, which paces the
        # layer; at most all of them. Its experts: 1/ep of those the stage's tokens hit.
        routed = tokens * model.top_k * jnp.minimum(split.expert_imbalance, ep)
        hit = distinct_experts(model.n_experts, model.top_k, tokens * ep) / ep
        row("router", GEMM, flops=2 * tokens * d * model.n_experts, weight_bytes=d * model.n_experts * w,
            act_bytes=tokens * d * a + tokens * model.n_experts * a, kv_bytes=0 * one, m=tokens, n=model.n_experts,
            k=d, repeat=n_moe)  # fmt: skip
        _ffn_rows(p, row, "ffn", expert_width(model), routed / hit, routed, hit, model.n_experts / ep, n_moe)
        # Shared experts (DeepSeekMoE, Dai et al. 2024): every token, as one dense FFN of their
        # summed width, split over the TP ranks of each group.
        shared = model.n_shared_experts * expert_width(model)
        if "shared_experts" in model.parts:
            _ffn_rows(p, row, "shared", shared, tokens, tokens, one, one, n_moe)
        # The first layers of DeepSeek-V2/V3 (and Jamba's odd layers) keep a dense FFN.
        if "dense_layers" in model.parts:
            _ffn_rows(p, row, "dense", model.d_ff, tokens, tokens, one, one, model.n_layers - n_moe)
    elif "ffn" in model.parts:
        _ffn_rows(p, row, "ffn", model.d_ff, tokens, tokens, one, one, L)


def _head_rows(p: _Pass, row: _Rows) -> None:
    """Rows run once per pass: the embedding (a lookup, or a ViT's patch GEMM) and the final
    norm and LM head."""
    model, tp, b, w, a, d, tokens, one = p.model, p.tp, p.b, p.w, p.a, p.d, p.tokens, p.one
    if model.vision:
        # Patch embedding (ViT, Dosovitskiy et al. 2021): a GEMM of the flattened patches,
        # channels · patch² values each, to d_model.
        patch = model.channels * model.patch_px**2
        row("embedding", GEMM, flops=2 * tokens * patch * d, weight_bytes=patch * d * w,
            act_bytes=tokens * (patch + d) * a, kv_bytes=0 * one, m=tokens, n=d, k=patch, repeat=one,
            stored_bytes=patch * d * w)  # fmt: skip
    else:
        # Embedding lookup: one row of d_model weights per token.
        row("embedding", GATHER, flops=0 * one, weight_bytes=tokens * d * w, act_bytes=tokens * d * a,
            kv_bytes=0 * one, m=tokens, n=d, k=one, repeat=one, stored_bytes=model.vocab_size * d * w / tp)  # fmt: skip
    # Final norm and LM head, only on the last position of each sequence (prefill and
    # decode alike); the vocabulary is split across TP ranks.
    vocab = model.vocab_size / tp
    # a text encoder has no head
    row("lm_head", GEMM, flops=2 * b * vocab * d + _NORM_FLOPS * b * d, weight_bytes=vocab * d * w,
        act_bytes=b * d * a + b * vocab * a, kv_bytes=0 * one, m=b, n=vocab, k=d,
        repeat=one * (0.0 if model.encoder and not model.vision else 1.0))  # fmt: skip


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
    p = _pass(model, scenario, as_split(split), new_tokens, past_tokens)
    (split, tp, b, h, kv_split, new_here, w, a, kvb, d, L, n_attn, tokens, one, ctx_mean, ctx_all) = (
        p.split, p.tp, p.b, p.h, p.kv_split, p.new_here, p.w, p.a, p.kvb, p.d, p.L, p.n_attn, p.tokens, p.one,
        p.ctx_mean, p.ctx_all
    )  # fmt: skip
    row = _Rows()
    # --- per layer -------------------------------------------------------------------
    # Pre-mixer and pre-FFN norms (RMSNorm/LayerNorm), replicated across TP ranks.
    row("norms", ELEMENTWISE, flops=2 * _NORM_FLOPS * tokens * d, weight_bytes=2 * d * w,
        act_bytes=2 * 2 * tokens * d * a, kv_bytes=0 * one, m=tokens, n=d, k=one, repeat=L)  # fmt: skip
    if model.attention == "mla":
        _mla_rows(model, row, b, h, tokens, new_here, kv_split, ctx_mean, ctx_all, w, a, kvb, n_attn,
                  scenario.fused_attention, one)  # fmt: skip
    else:
        _gqa_rows(p, row)
    if model.ssm:
        (_ssd_rows if "ssd" in model.parts else _mamba_rows)(model, row, b, tokens, tp, w, a, kvb, one)
    # Two residual adds: read two tensors, write one.
    row("residual", ELEMENTWISE, flops=2 * tokens * d, weight_bytes=0 * one, act_bytes=2 * 3 * tokens * d * a,
        kv_bytes=0 * one, m=tokens, n=d, k=one, repeat=L)  # fmt: skip

    _ffn_block(p, row)
    _head_rows(p, row)
    if model.vision_tower:
        # The prompt's images through the vision tower and the projector, once per request:
        # a pass within the prompt (past + new ≤ its tokens: the whole prompt, or one chunk of
        # it under chunked prefill) encodes its share of the images, new / prompt tokens (the
        # scenario's prompt counts the image tokens here, as serve passes it).
        prompt = scenario.prompt_tokens
        within = past_tokens + new_tokens <= prompt * (1.0 + 1e-9)
        prompt_pass = jnp.where(within, new_tokens / prompt, 0.0)
        tower = model.vision_tower[0]
        sc_v = dataclasses.replace(scenario, batch=b * scenario.images)
        patches = model.patches_per_image(scenario)
        merged = model.vision_merge**2 * tower.d_model
        image_tokens = b * scenario.images * model.tokens_per_image(scenario)
        for name, n_out, k_in in (("projector_up", merged, merged), ("projector_down", d, merged)):
            row(name, GEMM, flops=2 * image_tokens * n_out * k_in, weight_bytes=n_out * k_in * w,
                act_bytes=image_tokens * (n_out + k_in) * a, kv_bytes=0 * one, m=image_tokens, n=n_out, k=k_in,
                repeat=prompt_pass)  # fmt: skip
    table = table_from_rows(row, split, ("embedding", "lm_head", "projector_up", "projector_down"))
    if model.vision_tower:
        vision = operator_table(tower, sc_v, split, patches, jnp.zeros_like(patches))
        names = tuple(f"vision_{n}" for n in vision.names)
        table = table.joined(vision._replace(repeat=vision.repeat * prompt_pass, names=names))
    return table


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
    experts = weight_params(model)["experts"]
    weights = ((total_params(model) - experts) + experts / ep) * w / (tp * pp)
    if model.attention == "mla":
        # MLA's down-projections (to the query low rank and to the latent) are replicated on
        # every TP rank: every head needs the whole latent.
        dims = _mla_dims(model, model.n_heads)
        replicated = attention_layers(model) * (dims["q_down"] + dims["kv_down"])
        weights = weights + replicated * (1.0 - 1.0 / tp) * w / pp
    context = scenario.prompt_tokens + scenario.output_tokens
    batch = scenario.batch / ep
    attn_kv = kv_bytes_per_sequence(model, context, scenario.kv_dtype, tp) - ssm_state_bytes(
        model, scenario.kv_dtype, tp
    )
    kv = batch * (attn_kv / (pp * sp) + ssm_state_bytes(model, scenario.kv_dtype, tp) / pp)
    kv = 0.0 * kv if model.encoder else kv  # an encoder caches nothing between requests
    tokens = batch * scenario.prompt_tokens / sp
    gate = 1.0 + model.gated_ffn
    moe_width = (jnp.minimum(model.top_k, model.n_experts) + model.n_shared_experts) * expert_width(model)
    hidden = gate * jnp.maximum(model.d_ff, moe_width if model.moe else 0.0) / tp
    hidden = jnp.maximum(hidden, 2.0 * model.ssm_d_inner / tp)
    act = tokens * (2.0 * model.d_model + (model.n_heads + 2.0 * model.n_kv_heads) * model.head_dim / tp + hidden) * a
    # Pipelined (pp > 1): each sequence is a micro-batch, so a stage holds one at a time.
    act = jnp.where(pp > 1, act / batch, act)
    return Footprint(weights, kv, act)
