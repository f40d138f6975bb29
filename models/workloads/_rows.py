"""Operator rows of a transformer's forward pass: attention (GQA/MQA and MLA), FFN (dense,
MoE, shared and dense experts), embedding and head, each row given by keyword; Mamba layers'
rows are in :mod:`._ssm`. Conventions of the table: :mod:`._transformer`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from models._interface import ATTENTION, ELEMENTWISE, GATHER, GEMM, OperatorTable, Scenario, Split, dtype_bytes
from models._pytree import Array

from ._shapes import (
    _ACT_FLOPS,
    _NORM_FLOPS,
    _SOFTMAX_FLOPS,
    as_split,
    attention_layers,
    busiest_expert_group,
    cached_values,
    expert_width,
    kv_heads_per_chip,
    mla_dims,
    moe_layers,
    windowed_layers,
)
from ._ssm import mamba_rows, ssd_rows

if TYPE_CHECKING:
    from ._transformer import TransformerSpec


def table_from_rows(rows: list[tuple[Any, ...]], split: Split, once: tuple[str, ...]) -> OperatorTable:
    """An operator table from rows ``(name, kind, flops, weight, act, kv bytes, m, n, k,
    repeat, stored weight bytes)``; rows named in ``once`` run once per pass, the rest per layer."""
    cols = list(zip(*rows, strict=True))
    one = jnp.ones_like(jnp.asarray(rows[0][2], dtype=jnp.result_type(float)))
    rows_at = np.eye(len(rows), dtype=bool)

    def column(values: tuple[Any, ...]) -> Array:
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


class _Rows(list[tuple[Any, ...]]):
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
    kv_per_token_layer = cached_values(model, tp) * kvb  # K and V (or the latent), one layer
    group = model.n_heads / model.n_kv_heads  # queries sharing one KV head (GQA/MQA)
    tokens = b * new_here  # GEMM rows of this pass
    one = jnp.ones_like(tokens)
    # Causal attention: query i of the pass sees past + i + 1 keys, on average
    # past + (T + 1)/2 — about half of the S² work in prefill (docs/references.md#research-note, prefill).
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


def _mla_rows(p: _Pass, row: _Rows) -> None:
    """MLA attention rows of one layer (DeepSeek-V2 §2.1.2, Appendix C). The cache holds the
    latent c_KV (kv_lora_rank) and the rotary key (qk_rope_dim) per token, for all heads.

    Two exact forms: *non-absorbed* up-projects every cached token's latent to the heads' keys
    and values (W_UK, W_UV) and attends over head_dim-wide keys; *absorbed* folds W_UK into
    the query and W_UV after the attention, attending over the latent itself (MQA-like, all
    heads sharing one cache). The pass takes the form of fewer FLOPs: absorbed for decode
    (up-projecting the context costs 2·r·h·(nope + v) per cached token), non-absorbed for
    long prompts (the latent is 1088 wide against 192 + 128 per head for DeepSeek-V3)."""
    (model, b, h, tokens, new_here, kv_split, ctx_mean, ctx_all, w, a, kvb, n_attn, one) = (
        p.model, p.b, p.h, p.tokens, p.new_here, p.kv_split, p.ctx_mean, p.ctx_all, p.w, p.a, p.kvb, p.n_attn, p.one
    )  # fmt: skip
    fused = p.scenario.fused_attention
    d = model.d_model
    r, rope, nope, vd, qr = (
        model.kv_lora_rank,
        model.qk_rope_dim,
        model.qk_nope_dim,
        model.v_head_dim,
        model.q_lora_rank,
    )
    dims = mla_dims(model, h)
    q_in = jnp.where(qr > 0, qr, d)
    queries = b * h * new_here / kv_split  # (query, head) pairs over this chip's keys
    abs_flops = 2 * tokens * (dims["w_uk"] + dims["w_uv"]) + 2 * queries * ctx_mean * (2 * r + rope)
    non_flops = 2 * b * ctx_all / kv_split * (dims["w_uk"] + dims["w_uv"]) + 2 * queries * ctx_mean * (nope + rope + vd)
    absorbed = abs_flops <= non_flops
    latent = b * ctx_all / kv_split * (r + rope) * kvb  # the cache this pass reads
    if "q_lora" in model.parts:
        row("q_down", GEMM, flops=2 * tokens * dims["q_down"], weight_bytes=dims["q_down"] * w,
            act_bytes=tokens * (d + qr) * a, kv_bytes=0 * one, m=tokens, n=qr, k=d, repeat=n_attn)  # fmt: skip
    row("q_up", GEMM, flops=2 * tokens * dims["q_up"], weight_bytes=dims["q_up"] * w,
        act_bytes=tokens * (q_in + h * (nope + rope)) * a, kv_bytes=0 * one, m=tokens, n=h * (nope + rope), k=q_in,
        repeat=n_attn)  # fmt: skip
    row("kv_down", GEMM, flops=2 * tokens * dims["kv_down"], weight_bytes=dims["kv_down"] * w,
        act_bytes=tokens * d * a, kv_bytes=tokens * (r + rope) * kvb, m=tokens, n=r + rope, k=d, repeat=n_attn)  # fmt: skip
    # W_UK: folded into the queries (absorbed) or applied, with W_UV, to every cached latent.
    kv_tokens = b * ctx_all / kv_split
    row("kv_up", GEMM,
        flops=jnp.where(absorbed, 2 * tokens * dims["w_uk"], 2 * kv_tokens * (dims["w_uk"] + dims["w_uv"])),
        weight_bytes=jnp.where(absorbed, dims["w_uk"], dims["w_uk"] + dims["w_uv"]) * w,
        act_bytes=jnp.where(absorbed, tokens * h * (nope + r), kv_tokens * h * (nope + vd)) * a,
        kv_bytes=jnp.where(absorbed, 0.0, latent), m=jnp.where(absorbed, tokens, kv_tokens),
        n=jnp.where(absorbed, h * r, h * (nope + vd)), k=jnp.where(absorbed, nope, r), repeat=n_attn,
        stored_bytes=dims["w_uk"] * w)  # fmt: skip
    key_width = jnp.where(absorbed, r + rope, nope + rope)
    val_width = jnp.where(absorbed, r, vd)
    score_bytes = queries * ctx_mean * a
    materialised = jnp.where(absorbed, 0.0, kv_tokens * h * (nope + rope + vd) * a)  # non-absorbed K and V
    q_group = jnp.where(absorbed, h, 1.0) * new_here
    row("attn_scores", ATTENTION, flops=2 * queries * ctx_mean * key_width, weight_bytes=0 * one,
        act_bytes=tokens * h * key_width * a + (0 if fused else score_bytes) + materialised * (nope + rope) / (nope + rope + vd),
        kv_bytes=jnp.where(absorbed, latent, 0.0), m=q_group, n=ctx_mean / kv_split, k=key_width, repeat=n_attn)  # fmt: skip
    row("softmax", ELEMENTWISE, flops=_SOFTMAX_FLOPS * queries * ctx_mean, weight_bytes=0 * one,
        act_bytes=(0 if fused else 2.0) * score_bytes, kv_bytes=0 * one, m=b * h * new_here, n=ctx_mean / kv_split,
        k=one, repeat=n_attn)  # fmt: skip
    row("attn_values", ATTENTION, flops=2 * queries * ctx_mean * val_width, weight_bytes=0 * one,
        act_bytes=tokens * h * val_width * a + (0 if fused else score_bytes) + materialised * vd / (nope + rope + vd),
        kv_bytes=0 * one, m=q_group, n=val_width, k=ctx_mean / kv_split, repeat=n_attn)  # fmt: skip
    row("v_up", GEMM, flops=jnp.where(absorbed, 2 * tokens * dims["w_uv"], 0.0),
        weight_bytes=jnp.where(absorbed, dims["w_uv"] * w, 0.0),
        act_bytes=jnp.where(absorbed, tokens * h * (r + vd) * a, 0.0), kv_bytes=0 * one, m=tokens, n=h * vd, k=r,
        repeat=n_attn, stored_bytes=dims["w_uv"] * w)  # fmt: skip
    row("out_proj", GEMM, flops=2 * tokens * dims["out"], weight_bytes=dims["out"] * w,
        act_bytes=tokens * (h * vd + d) * a, kv_bytes=0 * one, m=tokens, n=d, k=h * vd, repeat=n_attn)  # fmt: skip


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
        # Token-expert pairs of the busiest group (it paces the layer) and the experts they hit.
        routed, hit, _ = busiest_expert_group(model, split, tokens)
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
    split, b, w, a, d, L, tokens, one = p.split, p.b, p.w, p.a, p.d, p.L, p.tokens, p.one
    row = _Rows()
    # --- per layer -------------------------------------------------------------------
    # Pre-mixer and pre-FFN norms (RMSNorm/LayerNorm), replicated across TP ranks.
    row("norms", ELEMENTWISE, flops=2 * _NORM_FLOPS * tokens * d, weight_bytes=2 * d * w,
        act_bytes=2 * 2 * tokens * d * a, kv_bytes=0 * one, m=tokens, n=d, k=one, repeat=L)  # fmt: skip
    if model.attention == "mla":
        _mla_rows(p, row)
    else:
        _gqa_rows(p, row)
    if model.ssm:
        (ssd_rows if "ssd" in model.parts else mamba_rows)(p, row)
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
