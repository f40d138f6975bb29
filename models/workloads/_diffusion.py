"""Diffusion transformer workload: text encoders once per prompt, a DiT/MMDiT denoiser once per
step, the VAE decoder once per image.

A request is one image. ``serve`` runs its prompt pass (text encoders and VAE decoder: the
work done once per image) and ``output_tokens`` decode passes, which here are the denoising
steps; the table of a step does not depend on the past, so a request's latency is linear in
the steps. Classifier-free guidance runs the denoiser (and the text encoders, for the
negative prompt) on ``cfg_batches`` copies of the batch.

Denoisers (one config covers both):
  * MMDiT joint blocks (SD3, Esser et al. 2024, Fig. 2): image and text tokens keep their own
    weights (adaLN modulation, QKV, output projection, MLP) and attend jointly over all
    image + text tokens;
  * Flux adds single-stream blocks (Black Forest Labs FLUX.1; diffusers FluxSingleTransformerBlock):
    one fused projection to QKV and the MLP input over the concatenated tokens, attention, one
    fused output projection.

VAE decoder (diffusers AutoencoderKL, Decoder): conv_in, a mid block (two ResNet blocks and
one single-head attention over the latent pixels), one up block per entry of
``vae_channels`` (reversed: layers_per_block + 1 ResNet blocks, each two 3×3 convolutions
and a 1×1 shortcut where the channels change, then a 3×3 convolution after a 2× upsample
except on the last), conv_out to RGB. Convolutions are GEMMs of M = pixels, N = output
channels, K = 9 × input channels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from models._interface import (
    ATTENTION,
    ELEMENTWISE,
    GEMM,
    Footprint,
    LayerComm,
    OperatorTable,
    Scenario,
    Split,
    dtype_bytes,
)
from models._pytree import Array, pytree_dataclass, spec_field, static_field

from ._rows import operator_table, table_from_rows
from ._shapes import as_split
from ._transformer import image_side, total_params


@pytree_dataclass
class DiffusionSpec:
    """A text-to-image diffusion transformer pipeline (one configuration).

    ``encoders`` are the text encoders (TransformerSpec with ``encoder`` set) and
    ``encoder_tokens`` their token counts per prompt."""

    joint_layers: Array = spec_field(kind="int", doc="joint (double-stream) denoiser blocks")
    single_layers: Array = spec_field(kind="nonnegative", doc="single-stream blocks (Flux; 0 for SD3)")
    d_model: Array = spec_field(kind="int", doc="denoiser width (heads x head_dim)")
    n_heads: Array = spec_field(kind="int", doc="denoiser attention heads")
    mlp_ratio: Array = spec_field(kind="positive", doc="MLP hidden width over d_model")
    latent_channels: Array = spec_field(kind="int", doc="VAE latent channels")
    patch: Array = spec_field(kind="int", doc="latent patch side (pixels of latent per token side)")
    vae_factor: Array = spec_field(kind="int", doc="image pixels per latent pixel (side)")
    text_tokens: Array = spec_field(kind="int", doc="text tokens in the denoiser's joint sequence")
    context_dim: Array = spec_field(kind="int", doc="width of the text tokens fed to the context embedder")
    pooled_dim: Array = spec_field(kind="int", doc="width of the pooled text embedding (conditioning)")
    cfg_batches: Array = spec_field(kind="int", doc="denoiser passes per step (2 with classifier-free guidance)")
    image_px: Array = spec_field(kind="int", doc="default image side in pixels")
    default_steps: Array = spec_field(kind="int", doc="default denoising steps")
    vae_layers_per_block: Array = spec_field(kind="int", doc="ResNet blocks per VAE level (the decoder has one more)")
    encoder_tokens: tuple[Any, ...] = ()
    encoders: tuple[Any, ...] = ()
    vae_channels: tuple[float, ...] = static_field(default=(128, 256, 512, 512))

    output_unit = "image"
    decodes = True

    def request_tokens(self, scenario: Scenario) -> Array:
        """The prompt pass's tokens: the text tokens (reported as prompt tokens)."""
        del scenario
        return self.text_tokens

    def image_tokens(self, scenario: Scenario) -> Array:
        px = image_side(scenario, self.image_px)
        return jnp.floor(px / (self.vae_factor * self.patch)) ** 2

    # --- the Workload interface -----------------------------------------------------------

    def operator_table(self, scenario: Scenario, split: Split, new_tokens: Array, past_tokens: Array) -> OperatorTable:
        del new_tokens
        split = as_split(split)
        step = jnp.where(past_tokens > 0, 1.0, 0.0)  # denoising step, else the once-per-image pass
        once = 1.0 - step
        table = _denoiser_table(self, scenario, split, step)
        batch = scenario.batch / split.ep * self.cfg_batches  # prompts and negative prompts
        for spec, tokens in zip(self.encoders, self.encoder_tokens, strict=True):
            sc = dataclasses.replace(scenario, batch=batch, prompt_tokens=tokens, output_tokens=jnp.ones_like(tokens))
            enc = operator_table(spec, sc, split, tokens, jnp.zeros_like(tokens))
            table = table.joined(enc._replace(repeat=enc.repeat * once))
        return table.joined(_vae_table(self, scenario, split, once))

    def footprint(self, scenario: Scenario, split: Split, pp: Array) -> Footprint:
        split = as_split(split)
        w, a = dtype_bytes(scenario.weight_dtype), dtype_bytes(scenario.act_dtype)
        weights = self.param_count() * w / (split.tp * pp)
        c = self.d_model
        tokens = scenario.batch * self.cfg_batches * (self.image_tokens(scenario) + self.text_tokens)
        act = tokens * c * (4.0 + self.mlp_ratio) / split.tp * a  # residual stream, QKV, MLP hidden
        # The VAE decoder's largest feature map: the last level's channels at full resolution.
        px = image_side(scenario, self.image_px)
        act = jnp.maximum(act, 2.0 * scenario.batch * px**2 * self.vae_channels[0] * a / split.tp)
        return Footprint(weights, 0.0 * weights, act)

    def layer_comm(self, scenario: Scenario, split: Split, new_tokens: Array) -> LayerComm:
        """Megatron TP inside each block: an all-reduce after attention and after the MLP."""
        del new_tokens
        split = as_split(split)
        tokens = scenario.batch / split.ep * self.cfg_batches * (self.image_tokens(scenario) + self.text_tokens)
        act = tokens * self.d_model * dtype_bytes(scenario.act_dtype)
        zero = 0.0 * act
        return LayerComm(act, 2.0 + zero, act, zero, zero, zero, zero)

    @property
    def n_layers(self) -> Array:
        return self.joint_layers + self.single_layers

    def param_count(self) -> Array:
        """Denoiser, text encoders and VAE decoder."""
        enc = sum((total_params(e) for e in self.encoders), jnp.zeros_like(self.d_model))
        return denoiser_params(self) + enc + vae_decoder_params(self)

    @property
    def n_kv_heads(self) -> Array:
        return self.n_heads  # multi-head attention

    @property
    def max_tp(self) -> Array:
        return self.n_heads

    @property
    def max_ep(self) -> Array:
        return jnp.ones_like(self.n_heads)


def denoiser_params(m: DiffusionSpec) -> Array:
    """Denoiser parameters: per joint block two streams of adaLN (6c²), QKV (3c²), output
    (c²) and MLP (2rc²); per single block adaLN (3c²), the fused input (3 + r)c² and output
    (1 + r)c²; patch, context and final projections."""
    c, r = m.d_model, m.mlp_ratio
    joint = 2.0 * (10.0 + 2.0 * r) * c * c
    single = (3.0 + (3.0 + r) + (1.0 + r)) * c * c
    patch_values = m.latent_channels * m.patch**2
    io = 2.0 * patch_values * c + m.context_dim * c + (m.pooled_dim + 256.0) * c + c * c
    return m.joint_layers * joint + m.single_layers * single + io


def vae_decoder_params(m: DiffusionSpec) -> Array:
    """Convolution weights of the VAE decoder (the structure in the module docstring)."""
    rev = tuple(reversed(m.vae_channels))
    lpb = m.vae_layers_per_block
    total = 9.0 * m.latent_channels * rev[0] + 4 * 9.0 * rev[0] ** 2 + 4.0 * rev[0] ** 2
    prev = rev[0]
    for i, ch in enumerate(rev):
        total = total + 9.0 * prev * ch + 9.0 * ch * ch * (2.0 * (lpb + 1.0) - 1.0)
        total = total + (prev * ch if prev != ch else 0.0)
        if i < len(rev) - 1:
            total = total + 9.0 * ch * ch
        prev = ch
    return total + 9.0 * rev[-1] * 3.0


# Rows a denoising step runs once rather than per block; the VAE's rows are named vae_*.
_ONCE = ("patch_embed", "context_embed", "cond_embed", "final")


def _denoiser_table(m: DiffusionSpec, scenario: Scenario, split: Split, step: Array) -> OperatorTable:
    tp = split.tp
    w, a = dtype_bytes(scenario.weight_dtype), dtype_bytes(scenario.act_dtype)
    b = scenario.batch / split.ep * m.cfg_batches
    n_img = m.image_tokens(scenario)
    n = n_img + m.text_tokens
    tokens = b * n
    c, r = m.d_model, m.mlp_ratio
    h = m.n_heads / tp
    hd = m.d_model / m.n_heads
    one = jnp.ones_like(tokens)
    rows: list[tuple[Any, ...]] = []

    def row(
        name: str, kind: str, *, flops: Any, weight_bytes: Any, act_bytes: Any, m: Any, n: Any, k: Any, repeat: Any
    ) -> None:
        m, n, k = (jnp.maximum(x, 1.0) for x in (m, n, k))
        rows.append((name, kind, flops, weight_bytes, act_bytes, 0 * one, m, n, k, repeat * step, weight_bytes))

    def gemm(name: str, m_rows: Any, n_cols: Any, k: Any, copies: float, rep: Any) -> None:
        # ``copies`` sets of weights (the two streams of a joint block share the GEMM shape).
        row(name, GEMM, flops=2 * m_rows * n_cols * k, weight_bytes=copies * n_cols * k * w,
            act_bytes=m_rows * (n_cols + k) * a, m=m_rows, n=n_cols, k=k, repeat=rep)  # fmt: skip

    def attention(prefix: str, rep: Any) -> None:
        # Bidirectional attention over all n tokens of each sequence.
        f = 2.0 * b * h * n * n * hd
        row(f"{prefix}attn_scores", ATTENTION, flops=f, weight_bytes=0 * one, act_bytes=3 * tokens * h * hd * a, m=n,
            n=n, k=hd, repeat=rep)  # fmt: skip
        row(f"{prefix}softmax", ELEMENTWISE, flops=5.0 * b * h * n * n, weight_bytes=0 * one, act_bytes=0 * one,
            m=b * h * n, n=n, k=one, repeat=rep)  # fmt: skip
        row(f"{prefix}attn_values", ATTENTION, flops=f, weight_bytes=0 * one, act_bytes=tokens * h * hd * a, m=n,
            n=hd, k=n, repeat=rep)  # fmt: skip

    joint, single = m.joint_layers, m.single_layers
    # Joint blocks: both streams' GEMMs (one row each, weights counted twice).
    gemm("adaln", b, 2 * 6 * c / tp, c, 1.0, joint)
    row("norms", ELEMENTWISE, flops=2 * 5 * tokens * c, weight_bytes=0 * one, act_bytes=4 * tokens * c * a, m=tokens,
        n=c, k=one, repeat=joint)  # fmt: skip
    gemm("qkv_proj", tokens, 3 * c / tp, c, 2.0, joint)
    attention("", joint)
    gemm("out_proj", tokens, c, c / tp, 2.0, joint)
    gemm("mlp_up", tokens, r * c / tp, c, 2.0, joint)
    row("mlp_act", ELEMENTWISE, flops=5 * tokens * r * c / tp, weight_bytes=0 * one,
        act_bytes=2 * tokens * r * c / tp * a, m=tokens, n=r * c / tp, k=one, repeat=joint)  # fmt: skip
    gemm("mlp_down", tokens, c, r * c / tp, 2.0, joint)
    # Single-stream blocks (Flux): fused QKV + MLP input, attention, fused output.
    gemm("single_adaln", b, 3 * c / tp, c, 1.0, single)
    gemm("single_in", tokens, (3 + r) * c / tp, c, 1.0, single)
    attention("single_", single)
    gemm("single_out", tokens, c, (1 + r) * c / tp, 1.0, single)
    # Once per step: patch and context embedders, conditioning MLP, final projection.
    pv = m.latent_channels * m.patch**2
    gemm("patch_embed", b * n_img, c, pv, 1.0, one)
    gemm("context_embed", b * m.text_tokens, c, m.context_dim, 1.0, one)
    gemm("cond_embed", b, c, m.pooled_dim + 256.0, 1.0, one)
    gemm("final", b * n_img, pv, c, 1.0, one)
    return table_from_rows(rows, split, _ONCE)


def _vae_table(m: DiffusionSpec, scenario: Scenario, split: Split, once: Array) -> OperatorTable:
    w, a = dtype_bytes(scenario.weight_dtype), dtype_bytes(scenario.act_dtype)
    tp = split.tp
    b = scenario.batch / split.ep
    px = image_side(scenario, m.image_px)
    res = px / m.vae_factor  # latent side
    lpb = m.vae_layers_per_block
    one = jnp.ones_like(b * res)
    rows: list[tuple[Any, ...]] = []

    def conv(name: str, side: Any, cin: Any, cout: Any, k: float, rep: Any) -> None:
        # A k×k convolution as a GEMM over b·side² pixels, output channels split over TP ranks.
        pixels = b * side**2
        kk = k * k * cin
        rows.append((f"vae_{name}", GEMM, 2 * pixels * cout / tp * kk, kk * cout / tp * w,
                     pixels * (cin + cout / tp) * a, 0 * one, pixels, cout / tp, kk, rep * once, kk * cout / tp * w))  # fmt: skip

    rev = tuple(reversed(m.vae_channels))
    conv("conv_in", res, m.latent_channels, rev[0], 3, one)
    conv("mid", res, rev[0], rev[0], 3, 4.0 * one)  # two ResNet blocks
    pixels = b * res**2
    c0 = rev[0]
    rows.append(("vae_mid_attn_proj", GEMM, 2 * pixels * 4 * c0 * c0 / tp, 4 * c0 * c0 / tp * w,
                 pixels * 2 * c0 * a, 0 * one, pixels, 4 * c0 / tp, c0, once, 4 * c0 * c0 / tp * w))  # fmt: skip
    rows.append(("vae_mid_attn", ATTENTION, 4 * b * res**4 * c0 / tp, 0 * one, 3 * pixels * c0 / tp * a, 0 * one,
                 res**2, res**2, c0, once, 0 * one))  # fmt: skip
    prev, side = rev[0], res
    for i, ch in enumerate(rev):
        conv(f"up{i}_first", side, prev, ch, 3, one)
        conv(f"up{i}", side, ch, ch, 3, (2.0 * (lpb + 1.0) - 1.0) * one)
        if prev != ch:
            conv(f"up{i}_shortcut", side, prev, ch, 1, one)
        if i < len(rev) - 1:
            side = side * 2.0
            conv(f"up{i}_upsample", side, ch, ch, 3, one)
        prev = ch
    conv("conv_out", side, rev[-1], 3.0, 3, one)
    return table_from_rows(rows, split, tuple(r[0] for r in rows))  # the VAE runs once per image
