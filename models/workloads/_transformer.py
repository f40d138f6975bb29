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
  InferBench research note (docs/references.md#research-note), "Workload Characterization".
  GenZ, Bambhaniya et al. 2024 (docs/references.md#genz), §III-A (model profiler), Table IV (models).
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import jax.numpy as jnp

from models._interface import (
    Footprint,
    LayerComm,
    OperatorTable,
    Scenario,
    Split,
    dtype_bytes,
)
from models._pytree import Array, pytree_dataclass, spec_field, static_field

from ._rows import operator_table
from ._shapes import (
    as_split,
    attention_layers,
    busiest_expert_group,
    cached_values,
    expert_width,
    mla_dims,
    moe_layers,
    ssd_groups,
    windowed_layers,
)


def image_side(scenario: Scenario, native_px: Array) -> Array:
    """The image side of a request: the scenario's, or the model's own when it gives none."""
    return jnp.where(scenario.image_px > 0, scenario.image_px, native_px)


def _optional(doc: str) -> Any:
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
    vision_tower: tuple[Any, ...] = ()
    moe: bool = static_field(default=False)
    attention: str = static_field(default="gqa")  # "gqa" (MHA/GQA/MQA) or "mla"
    ssm: bool = static_field(default=False)  # some layers are Mamba layers
    encoder: bool = static_field(default=False)  # one pass, nothing cached, nothing decoded
    bidirectional: bool = static_field(default=False)  # every token attends to every token
    vision: bool = static_field(default=False)  # patch embedding instead of a token lookup
    # Optional parts the model has (static: a model without them traces none of their work):
    # "ffn" (an FFN per layer), "window", "shared_experts", "dense_layers" (MoE), "q_lora" (MLA),
    # "ssd" (the Mamba layers are Mamba-2).
    parts: tuple[str, ...] = static_field(default=("ffn",))

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
        2022); the tp chips of a group each send 1/tp of it, the busiest group's load times the mean."""
        split = as_split(split)
        q_split = jnp.where(new_tokens > 1.0, split.sp, 1.0)
        seqs = scenario.batch / split.ep
        act = seqs * new_tokens / q_split * self.d_model * dtype_bytes(scenario.act_dtype)
        one = jnp.ones_like(act)
        if self.moe:
            # The busiest group receives its load's share of the tokens (and sends them back).
            _, _, load = busiest_expert_group(self, split, seqs * new_tokens / q_split)
            a2a, n_a2a = act * self.top_k / split.tp * load, 2.0 * one
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


def weight_params(model: TransformerSpec) -> dict[str, Array]:
    """Parameter counts by part: attention or Mamba mixers, FFNs (all experts, shared experts,
    dense layers), routers, embeddings, norms; multi-token prediction layers apart."""
    d, hd = model.d_model, model.head_dim
    if model.attention == "mla":
        attn = functools.reduce(operator.add, mla_dims(model, model.n_heads).values())
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
    tower: TransformerSpec = model.vision_tower[0]
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
    """Values one chip caches per token and attention layer (:func:`cached_values`); none for
    a workload that caches nothing between passes."""
    if not isinstance(model, TransformerSpec):
        return jnp.zeros_like(jnp.asarray(tp, dtype=float))
    return cached_values(model, tp)


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
        per_layer = per_layer + ssd_groups(model, tp) * 2.0 * model.ssm_d_state * conv
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
        dims = mla_dims(model, model.n_heads)
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
