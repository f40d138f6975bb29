"""Workload model: hand-derived FLOPs and bytes, the seeds' published numbers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import f

import dse
from models import Scenario
from models.workloads import (
    active_params,
    distinct_experts,
    gemm_operator,
    kv_bytes_per_token,
    memory_per_chip,
    operator_table,
    total_params,
)

L3_70B = dse.load_model("llama-3-70b").spec


def pass_flops(model, scenario, tp, new, past, names=None) -> float:
    ops = operator_table(model, scenario, f(tp), f(new), f(past))
    keep = [names is None or n in names for n in ops.names]
    return float((ops.flops * ops.repeat)[np.array(keep)].sum())


def test_gemm_is_2mnk_flops_and_operand_bytes():
    # C[64,128] = A[64,256]·B[256,128] in bf16: 2·64·128·256 FLOPs; bytes 2·(64·256 + 256·128 + 64·128).
    ops = gemm_operator(f(64), f(128), f(256), "bf16")
    assert float(ops.flops[0]) == 2 * 64 * 128 * 256
    assert float(ops.bytes[0]) == 2 * (64 * 256 + 256 * 128 + 64 * 128)
    # FP8 inputs write a 16-bit output: 1·(64·256 + 256·128) + 2·64·128.
    assert float(gemm_operator(f(64), f(128), f(256), "fp8").bytes[0]) == 64 * 256 + 256 * 128 + 2 * 64 * 128


def test_llama3_70b_parameter_count():
    # 80 layers × (attention 8192·128·(2·64 + 2·8) + FFN 3·8192·28672 + norms) + 2·128256·8192
    # = 80 × (150,994,944 + 704,643,072 + 16,384) + 2,101,346,304 + 8192 = 70,553,706,496.
    assert float(total_params(L3_70B)) == 70_553_706_496
    assert float(active_params(L3_70B)) == float(total_params(L3_70B))


def test_seed_prefill_llama3_70b_2048_tokens():
    # Seed 000: per token per layer Q 134M + K/V 33.6M + O 134M + FFN 1.41B + attention 32,768·S;
    # 2048 × 142B = 291 TFLOP. The seed counts every query against all S keys (no causal
    # mask) and leaves out the LM head and embedding. Same accounting here:
    sc = Scenario(f(1), f(2048), f(1), causal=False)
    layer_ops = {"qkv_proj", "attn_scores", "attn_values", "out_proj", "ffn_up", "ffn_down"}
    full = pass_flops(L3_70B, sc, 1, 2048, 0, layer_ops)
    assert full / 1e12 == pytest.approx(291.4, rel=2e-3)
    # With the causal mask attention does (S+1)/2 per query: 291.4 − 80·2048·(32768·2048 −
    # 32768·1024.5) ≈ 288.6 TFLOP for the layers.
    causal = pass_flops(L3_70B, dataclasses.replace(sc, causal=True), 1, 2048, 0, layer_ops)
    assert (full - causal) / 1e12 == pytest.approx(80 * 2048 * 32768 * (2048 - 1024.5) / 1e12, rel=1e-9)


def test_seed_decode_step_llama3_70b():
    # Seed 000 decode table, B = 1: 137 GFLOP = 2 × 68.4 B linear-layer parameters (per token:
    # 80 × 1.711 GFLOP). Attention at context 2048 adds 80·4·8192·2049 = 5.37 GFLOP and the LM
    # head 2·128256·8192 = 2.10 GFLOP, which the seed leaves out.
    sc = Scenario(f(1), f(2048), f(1))
    linear = {"qkv_proj", "out_proj", "ffn_up", "ffn_down"}
    assert pass_flops(L3_70B, sc, 1, 1, 2048, linear) / 1e9 == pytest.approx(136.9, rel=1e-3)
    attn = pass_flops(L3_70B, sc, 1, 1, 2048, {"attn_scores", "attn_values"})
    assert attn == pytest.approx(80 * 4 * 8192 * 2049, rel=1e-12)
    # Batch scales the linear FLOPs exactly (1.1 TFLOP at 8, 4.4 at 32, 17.5 at 128, 35 at 256).
    for b, seed_tflop in ((8, 1.1), (32, 4.4), (128, 17.5), (256, 35.0)):
        got = pass_flops(L3_70B, Scenario(f(b), f(2048), f(1)), 1, 1, 2048, linear) / 1e12
        assert got == pytest.approx(seed_tflop, rel=0.01)


def test_seed_decode_arithmetic_intensity_b1():
    # Seed: AI ≈ 0.97 FLOP/byte at B = 1 (137 GFLOP over 140 GB of BF16 weights). Linear
    # layers only: 2·params_linear / (2 bytes · params_linear) ≈ 1 FLOP/B, slightly less with
    # activations; the whole step with attention and KV reads stays ≈ 1.
    ops = operator_table(L3_70B, Scenario(f(1), f(2048), f(1)), f(1), f(1), f(2048))
    ai = float((ops.flops * ops.repeat).sum() / (ops.bytes * ops.repeat).sum())
    assert ai == pytest.approx(1.0, abs=0.05)


def test_seed_kv_cache_llama3_70b():
    # 2 (K,V) · 8 KV heads · 128 dims · 80 layers · 2 bytes = 327,680 B/token. At S = 8192:
    # 2.684e9 B. The seed says 2.62 GB (= 327,680 × 8,000: its arithmetic rounds S to 8000);
    # batch 256 → 687 GB (seed: 672 GB, same rounding) — still beyond one H100's 80 GB.
    per_token = float(kv_bytes_per_token(L3_70B))
    assert per_token == 327_680
    assert per_token * 8192 == pytest.approx(2.684e9, rel=1e-3)
    fp = memory_per_chip(L3_70B, Scenario(f(256), f(8191), f(1)), f(1), f(1))
    assert float(fp.kv_bytes) == pytest.approx(256 * 8192 * 327_680, rel=1e-12)


def test_seed_vit_large_flops():
    # Seed 000: ViT-L (307M) 122.7 GFLOP per image of 197 tokens. ViT-L/16: 24 layers, d 1024,
    # 16 heads, plain FFN 4096, bidirectional attention. Linear: 24·197·2·(4·1024² + 2·1024·4096)
    # = 118.99 GFLOP; attention 24·4·197²·1024 = 3.81 GFLOP; total 122.8 GFLOP.
    vit = dataclasses.replace(
        L3_70B,
        n_layers=f(24),
        d_model=f(1024),
        n_heads=f(16),
        n_kv_heads=f(16),
        head_dim=f(64),
        d_ff=f(4096),
        gated_ffn=f(0),
    )
    sc = Scenario(f(1), f(197), f(1), causal=False)
    got = pass_flops(vit, sc, 1, 197, 0, {"qkv_proj", "attn_scores", "attn_values", "out_proj", "ffn_up", "ffn_down"})
    assert got / 1e9 == pytest.approx(122.7, rel=2e-3)


def test_mixtral_moe_flops_and_experts():
    mix = dse.load_model("mixtral-8x7b").spec
    # Active parameters: 46.7B total − 32 layers × 6 idle experts × 3·4096·14336 = 12.88B
    # (seed: 12.9B active). FLOPs per token = 2 × active minus the embedding lookup ≈ 25.5 GFLOP
    # for the linear layers. The seed's "32.2B FLOPs per token" is not 2 × 12.9B; we cannot
    # reproduce it from Mixtral's published dimensions.
    assert float(active_params(mix)) / 1e9 == pytest.approx(12.88, rel=2e-3)
    lin = {"qkv_proj", "out_proj", "ffn_up", "ffn_down", "router"}
    per_token = pass_flops(mix, Scenario(f(1), f(1), f(1)), 1, 1, 0, lin)
    # 2 FLOPs × 32 layers × (attention 4096·128·(2·32 + 2·8) + 2 experts · 3·4096·14336 + router 4096·8)
    expected = 2 * 32 * (4096 * 128 * (2 * 32 + 2 * 8) + 2 * 3 * 4096 * 14336 + 4096 * 8)
    assert per_token == pytest.approx(expected, rel=1e-12)
    # Distinct experts read in a decode step of batch B: E·(1 − (1 − k/E)^B), not k.
    assert float(distinct_experts(f(8), f(2), f(1))) == pytest.approx(2.0)
    assert float(distinct_experts(f(8), f(2), f(4))) == pytest.approx(8 * (1 - 0.75**4))
    assert float(distinct_experts(f(8), f(2), f(1000))) == pytest.approx(8.0)
    ops = operator_table(mix, Scenario(f(4), f(1), f(1)), f(1), f(1), f(100))
    up = ops.names.index("ffn_up")
    assert float(ops.weight_bytes[up]) == pytest.approx(8 * (1 - 0.75**4) * 4096 * 2 * 14336 * 2)


def test_gqa_mqa_through_kv_heads_and_tp_replication():
    sc = Scenario(f(1), f(1), f(1))
    ops1 = operator_table(L3_70B, sc, f(1), f(1), f(1000))
    i = ops1.names.index("attn_scores")
    # K cache read per layer: 1001 keys · 8 heads · 128 · 2 B.
    assert float(ops1.kv_bytes[i]) == 1001 * 8 * 128 * 2
    # TP 16 > 8 KV heads: each chip keeps one (replicated) KV head.
    ops16 = operator_table(L3_70B, sc, f(16), f(1), f(1000))
    assert float(ops16.kv_bytes[i]) == 1001 * 1 * 128 * 2


def test_prefill_lm_head_only_last_token():
    sc = Scenario(f(2), f(512), f(1))
    ops = operator_table(L3_70B, sc, f(1), f(512), f(0))
    i = ops.names.index("lm_head")
    assert float(ops.m[i]) == 2  # one row per sequence, not 2·512
    assert float(ops.flops[i]) == pytest.approx(2 * 2 * 128256 * 8192 + 5 * 2 * 8192)


def test_dtypes_change_bytes_not_flops():
    base = Scenario(f(1), f(1), f(1))
    q = Scenario(f(1), f(1), f(1), weight_dtype="int4", act_dtype="bf16", kv_dtype="fp8")
    a = operator_table(L3_70B, base, f(1), f(1), f(100))
    b = operator_table(L3_70B, q, f(1), f(1), f(100))
    np.testing.assert_allclose(a.flops, b.flops)
    np.testing.assert_allclose(b.weight_bytes, a.weight_bytes / 4)
    np.testing.assert_allclose(b.kv_bytes, a.kv_bytes / 2)


def test_memory_split_by_tp_and_pp():
    sc = Scenario(f(4), f(1000), f(24))
    one = memory_per_chip(L3_70B, sc, f(1), f(1))
    eight = memory_per_chip(L3_70B, sc, f(4), f(2))
    assert float(eight.weight_bytes) == pytest.approx(float(one.weight_bytes) / 8)
    assert float(eight.kv_bytes) == pytest.approx(float(one.kv_bytes) / 8)
    # KV: 2·B·C·n_kv·head_dim·layers·bytes.
    assert float(one.kv_bytes) == 2 * 4 * 1024 * 8 * 128 * 80 * 2
