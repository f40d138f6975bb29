"""Mamba layers' operator rows: Mamba-1's selective scan (Gu & Dao 2023) and Mamba-2's SSD
(Dao & Gu 2024), one layer each, rows given by keyword (:func:`._rows.operator_table` calls
them with the pass and its row collector)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp

from models._interface import ELEMENTWISE, GEMM

from ._shapes import ssd_groups

if TYPE_CHECKING:
    from ._rows import _Pass, _Rows


def ssd_rows(p: _Pass, row: _Rows) -> None:
    """Mamba-2 mixer rows of one layer (Dao & Gu 2024, SSD; heads and groups split over TP
    ranks). A prompt runs the chunked algorithm on matrix units: per token, C·Bᵀ within its
    chunk (2·Q·N per group), that mask times x (2·Q·P per head), and the chunk states in and
    out (2·N·P each per head); a decode step updates the state (h ← a·h + Δ·x·Bᵀ, y = h·C:
    ≈ 5 FLOPs per state element). The state is read and written once per pass."""
    model, b, tokens, tp, w, a, kvb, one = p.model, p.b, p.tokens, p.tp, p.w, p.a, p.kvb, p.one
    d = model.d_model
    di, h, g = model.ssm_d_inner / tp, model.ssm_heads / tp, ssd_groups(model, tp)
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


def mamba_rows(p: _Pass, row: _Rows) -> None:
    """Mamba-1 mixer rows of one layer (Gu & Dao 2023, Alg. 2; channels split over TP ranks).
    The recurrent state (d_inner × d_state) and the convolution's last d_conv − 1 inputs are
    read and written once per pass whatever the context: decode cost does not grow with it."""
    model, b, tokens, tp, w, a, kvb, one = p.model, p.b, p.tokens, p.tp, p.w, p.a, p.kvb, p.one
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
