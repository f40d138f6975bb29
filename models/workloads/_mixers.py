"""Mixer rows and shapes other than grouped-query attention: DeepSeek's multi-head latent
attention (MLA) and Mamba's selective-scan layers (Mamba-1 and Mamba-2/SSD), each one layer's
operator rows given by keyword (:func:`models.workloads._transformer.operator_table` calls
them with its row collector)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp

from models._interface import ATTENTION, ELEMENTWISE, GEMM
from models._pytree import Array

if TYPE_CHECKING:
    from ._transformer import TransformerSpec

# Elementwise cost in FLOPs per element (estimates: RMSNorm ≈ square, sum, rsqrt, scale,
# weight ≈ 5; softmax ≈ max, sub, exp, sum, div ≈ 5; SiLU·up ≈ 5; residual add = 1).
_NORM_FLOPS, _SOFTMAX_FLOPS, _ACT_FLOPS = 5.0, 5.0, 5.0


def _mla_dims(model: TransformerSpec, heads: Array) -> dict[str, Array]:
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


def _mla_rows(model, row, b, h, tokens, new_here, kv_split, ctx_mean, ctx_all, w, a, kvb, n_attn, fused, one) -> None:
    """MLA attention rows of one layer (DeepSeek-V2 §2.1.2, Appendix C). The cache holds the
    latent c_KV (kv_lora_rank) and the rotary key (qk_rope_dim) per token, for all heads.

    Two exact forms: *non-absorbed* up-projects every cached token's latent to the heads' keys
    and values (W_UK, W_UV) and attends over head_dim-wide keys; *absorbed* folds W_UK into
    the query and W_UV after the attention, attending over the latent itself (MQA-like, all
    heads sharing one cache). The pass takes the form of fewer FLOPs: absorbed for decode
    (up-projecting the context costs 2·r·h·(nope + v) per cached token), non-absorbed for
    long prompts (the latent is 1088 wide against 192 + 128 per head for DeepSeek-V3)."""
    d = model.d_model
    r, rope, nope, vd, qr = (
        model.kv_lora_rank,
        model.qk_rope_dim,
        model.qk_nope_dim,
        model.v_head_dim,
        model.q_lora_rank,
    )
    dims = _mla_dims(model, h)
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


def _ssd_groups(model: TransformerSpec, tp: Array | float) -> Array:
    """Mamba-2 B/C groups on one TP rank: split over ranks, one replicated when fewer."""
    return jnp.maximum(model.ssm_groups / tp, jnp.minimum(model.ssm_groups, 1.0))


def _ssd_rows(model, row, b, tokens, tp, w, a, kvb, one) -> None:
    """Mamba-2 mixer rows of one layer (Dao & Gu 2024, SSD; heads and groups split over TP
    ranks). A prompt runs the chunked algorithm on matrix units: per token, C·Bᵀ within its
    chunk (2·Q·N per group), that mask times x (2·Q·P per head), and the chunk states in and
    out (2·N·P each per head); a decode step updates the state (h ← a·h + Δ·x·Bᵀ, y = h·C:
    ≈ 5 FLOPs per state element). The state is read and written once per pass."""
    d = model.d_model
    di, h, g = model.ssm_d_inner / tp, model.ssm_heads / tp, _ssd_groups(model, tp)
    ds, dc = model.ssm_d_state, model.ssm_d_conv
    rep = model.ssm_layers
    bc = 2 * g * ds
    width = 2 * di + bc + h
    row("ssm_in_proj", GEMM, flops=2 * tokens * d * width, weight_bytes=d * width * w,
        act_bytes=tokens * (d + width) * a, kv_bytes=0 * one, m=tokens, n=width, k=d, repeat=rep)  # fmt: skip
    conv_state = 2 * b * (di + bc) * jnp.maximum(dc - 1.0, 0.0) * kvb
    row("ssm_conv", ELEMENTWISE, flops=2 * tokens * (di + bc) * dc, weight_bytes=(di + bc) * (dc + 1) * w,
        act_bytes=2 * tokens * (di + bc) * a, kv_bytes=conv_state, m=tokens, n=di + bc, k=one, repeat=rep)  # fmt: skip
    chunk = jnp.minimum(tokens / b, 256.0)  # the reference kernels' chunk length
    prompt = chunk > 1.0
    state = 2 * b * di * ds * kvb
    row("ssm_ssd_chunks", GEMM, flops=jnp.where(prompt, tokens * (2 * chunk * (g * ds + di) + 4 * di * ds), 0.0),
        weight_bytes=jnp.where(prompt, 3 * h * w, 0.0),
        act_bytes=jnp.where(prompt, tokens * (di + bc + h + di) * a, 0.0), kv_bytes=jnp.where(prompt, state, 0.0),
        m=tokens, n=di, k=chunk, repeat=rep)  # fmt: skip
    row("ssm_ssd_step", ELEMENTWISE, flops=jnp.where(prompt, 0.0, 5 * tokens * di * ds),
        weight_bytes=jnp.where(prompt, 0.0, 3 * h * w),
        act_bytes=jnp.where(prompt, 0.0, tokens * (2 * di + bc + h) * a), kv_bytes=jnp.where(prompt, 0.0, state),
        m=tokens, n=di * ds, k=one, repeat=rep)  # fmt: skip
    row("ssm_out_proj", GEMM, flops=2 * tokens * di * d, weight_bytes=(di + di * d) * w,
        act_bytes=tokens * (2 * di + d) * a, kv_bytes=0 * one, m=tokens, n=d, k=di, repeat=rep)  # fmt: skip


def _mamba_rows(model, row, b, tokens, tp, w, a, kvb, one) -> None:
    """Mamba-1 mixer rows of one layer (Gu & Dao 2023, Alg. 2; channels split over TP ranks).
    The recurrent state (d_inner × d_state) and the convolution's last d_conv − 1 inputs are
    read and written once per pass whatever the context: decode cost does not grow with it."""
    d = model.d_model
    di = model.ssm_d_inner / tp
    ds, dc, dtr = model.ssm_d_state, model.ssm_d_conv, model.ssm_dt_rank
    rep = model.ssm_layers
    row("ssm_in_proj", GEMM, flops=2 * tokens * d * 2 * di, weight_bytes=d * 2 * di * w,
        act_bytes=tokens * (d + 2 * di) * a, kv_bytes=0 * one, m=tokens, n=2 * di, k=d, repeat=rep)  # fmt: skip
    conv_state = 2 * b * di * jnp.maximum(dc - 1.0, 0.0) * kvb
    row("ssm_conv", ELEMENTWISE, flops=2 * tokens * di * dc, weight_bytes=di * (dc + 1) * w,
        act_bytes=2 * tokens * di * a, kv_bytes=conv_state, m=tokens, n=di, k=one, repeat=rep)  # fmt: skip
    row("ssm_x_proj", GEMM, flops=2 * tokens * di * (dtr + 2 * ds), weight_bytes=di * (dtr + 2 * ds) * w,
        act_bytes=tokens * (di + dtr + 2 * ds) * a, kv_bytes=0 * one, m=tokens, n=dtr + 2 * ds, k=di, repeat=rep)  # fmt: skip
    row("ssm_dt_proj", GEMM, flops=2 * tokens * dtr * di, weight_bytes=(dtr + 1) * di * w,
        act_bytes=tokens * (dtr + di) * a, kv_bytes=0 * one, m=tokens, n=di, k=dtr, repeat=rep)  # fmt: skip
    # Selective scan: discretize (exp(Δ·A), Δ·B·x), update h = Ā·h + B̄x, read y = C·h, + D·x,
    # gate by SiLU(z): ≈ 9 FLOPs per channel and state (an estimate of the elementwise ops).
    scan_state = 2 * b * di * ds * kvb
    row("ssm_scan", ELEMENTWISE, flops=9 * tokens * di * ds, weight_bytes=di * (ds + 1) * w,
        act_bytes=tokens * (4 * di + 2 * ds) * a, kv_bytes=scan_state, m=tokens, n=di * ds, k=one, repeat=rep)  # fmt: skip
    row("ssm_out_proj", GEMM, flops=2 * tokens * di * d, weight_bytes=di * d * w, act_bytes=tokens * (di + d) * a,
        kv_bytes=0 * one, m=tokens, n=d, k=di, repeat=rep)  # fmt: skip
