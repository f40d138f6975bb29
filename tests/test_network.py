"""Collectives on the network hierarchy and the parallelisms that use them (models.platform).

Hand-derived references: α–β costs of each algorithm with one algorithm left (the others made
unavailable or far slower), the hierarchical split across two levels, EP and DP in ``serve``.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dse
from models import achievable_software, ideal_software
from models.platform import Level, collective_s, level_collective_s, smooth_min

MB = 1e6


def assert_close(a, b, rtol):
    np.testing.assert_allclose(a, b, rtol=rtol)


def _sw(**kw):
    """Software with no launch or step latency, full link, no direct all-reduce, unless given."""
    base = dict(
        collective_launch_s=np.asarray(0.0),
        reduce_launch_s=np.asarray(0.0),
        collective_latency_s=np.asarray(0.0),
        link_efficiency=np.asarray(1.0),
        reduce_efficiency=np.asarray(1.0),
        direct_allreduce=np.asarray(0.0),
        kernel_overhead_s=np.asarray(0.0),
    )
    return dataclasses.replace(ideal_software(), **(base | {k: np.asarray(v) for k, v in kw.items()}))


def _ring(n):
    return Level(jnp.asarray(float(n)), jnp.asarray(100e9), jnp.asarray(1e-6), "ring")


def test_ring_allreduce_is_the_alpha_beta_formula():
    # Ring of 8 at 100 GB/s, 1 us hops, 10 us launch, 64 MB:
    # 10 us + 2·7·1 us + 2·7/8·64e6/100e9 s = 10 + 14 + 1120 us = 1144 us.
    t = level_collective_s("all_reduce", jnp.asarray(64 * MB), _ring(8), _sw(collective_launch_s=10e-6))
    assert_close(float(t), 1144e-6, rtol=1e-9)


def test_all_gather_reduce_scatter_all_to_all_send_recv_on_a_switch():
    lv = Level(jnp.asarray(4.0), jnp.asarray(200e9), jnp.asarray(0.0), "switch")
    sw = _sw(collective_launch_s=5e-6)
    m = 80 * MB
    # Ring all-gather over 4: 3 steps of zero latency, 3/4·80e6/200e9 = 300 us, plus the launch.
    # (The tree and direct algorithms are slower or absent; smooth min over one algorithm.)
    assert_close(float(level_collective_s("all_gather", m, lv, sw)), 305e-6, rtol=0.1)
    assert float(level_collective_s("all_gather", m, lv, sw)) <= 305e-6 * (1 + 1e-9)
    # Reduce-scatter moves the same bytes at the reducing efficiency: half the bandwidth → 605 us.
    rs = level_collective_s("reduce_scatter", m, lv, _sw(collective_launch_s=5e-6, reduce_efficiency=0.5))
    assert_close(float(rs), 605e-6, rtol=0.1)
    # All-to-all through a switch: one step, 3/4 of the buffer leaves: 5 + 300 us.
    assert_close(float(level_collective_s("all_to_all", m, lv, sw)), 305e-6, rtol=1e-9)
    # Send/recv: launch + hop + bytes / bandwidth = 5 + 0 + 400 us.
    assert_close(float(level_collective_s("send_recv", m, lv, sw)), 405e-6, rtol=1e-9)


def test_direct_allreduce_wins_small_messages_and_in_switch_reduction_halves_large_ones():
    sw_nccl = _sw(collective_launch_s=20e-6, collective_latency_s=1e-6, kernel_overhead_s=3e-6)
    sw_direct = dataclasses.replace(sw_nccl, direct_allreduce=np.asarray(1.0))
    lv = Level(jnp.asarray(8.0), jnp.asarray(450e9), jnp.asarray(0.5e-6), "switch")
    small = 16e3
    # One-shot: 3 us kernel + 2·0.5 us barrier + 7·16e3/450e9 = 4.25 us, against NCCL's > 20 us.
    t = float(level_collective_s("all_reduce", small, lv, sw_direct))
    assert 4.25e-6 * 0.9 < t <= 4.25e-6 * (1 + 1e-9)
    assert float(level_collective_s("all_reduce", small, lv, sw_nccl)) > 20e-6
    # 1 GB: ring 2·7/8·1e9/450e9 = 3.89 ms; in-network reduction 1e9/450e9 = 2.22 ms (+ 20 us).
    big = 1e9
    ring = float(level_collective_s("all_reduce", big, lv, sw_nccl))
    nvls = float(level_collective_s("all_reduce", big, lv._replace(topology="switch_reduce"), sw_nccl))
    # (The tree, 2·1e9/450e9 = 4.44 ms, is 14 % slower than the ring: the smooth minimum sits
    # up to 4 % below the ring then; it never exceeds it.)
    assert_close(ring, 3.889e-3 + 20e-6 + 14e-6, rtol=0.05)
    assert ring <= 3.889e-3 + 20e-6 + 14e-6
    assert_close(nvls, 2.222e-3 + 20e-6 + 2 * 1.5e-6, rtol=0.02)


def test_torus_takes_fewer_steps_than_a_ring():
    sw = _sw(collective_latency_s=1e-6)
    # 256 chips: ring 2·255 steps; 16x16 torus 2·2·15 = 60 steps (1 us each, tiny message).
    ring = float(level_collective_s("all_reduce", 8.0, Level(256.0, 100e9, 0.0, "ring"), sw))
    torus = float(level_collective_s("all_reduce", 8.0, Level(256.0, 100e9, 0.0, "torus2d"), sw))
    assert_close(ring, 510e-6, rtol=1e-3)
    assert_close(torus, 60e-6, rtol=1e-3)


def test_hierarchical_allreduce_across_domains():
    # 16 chips = 2 domains of 8; in-domain 400 GB/s, across 50 GB/s; latencies zero.
    up = Level(jnp.asarray(8.0), jnp.asarray(400e9), jnp.asarray(0.0), "switch")
    out = Level(jnp.asarray(1.0), jnp.asarray(50e9), jnp.asarray(0.0), "switch")
    sw = _sw()
    m = 160 * MB
    t = float(collective_s("all_reduce", m, jnp.asarray(16.0), jnp.asarray(1.0), up, out, sw))
    # Reduce-scatter in the domain 7/8·m/400e9 = 350 us; all-reduce of m/8 across 2 domains
    # 2·1/2·20e6/50e9 = 400 us; all-gather 350 us: 1.1 ms. A flat ring over the slow level:
    # 2·15/16·m/50e9 = 6 ms. The smooth minimum is within 1 % of the hierarchical time.
    assert_close(t, 1.1e-3, rtol=0.01)
    # Inside one domain it is the one-level all-reduce.
    t8 = float(collective_s("all_reduce", m, jnp.asarray(8.0), jnp.asarray(1.0), up, out, sw))
    assert_close(t8, float(level_collective_s("all_reduce", m, up, sw)), rtol=1e-12)
    # Pipeline hops tp = 8 apart all cross domains: the scale-out send/recv.
    hop = float(collective_s("send_recv", m, jnp.asarray(2.0), jnp.asarray(8.0), up, out, sw))
    assert_close(hop, m / 50e9, rtol=1e-12)


def test_smooth_min_never_exceeds_the_fastest_and_is_close_to_it():
    a, b = jnp.asarray(1.0), jnp.asarray(3.0)
    s = float(smooth_min(a, b))
    assert 0.999 < s <= 1.0
    assert 2 ** (-1 / 8) - 1e-9 <= float(smooth_min(a, a)) <= 1.0


@settings(max_examples=25, deadline=None)
@given(
    collective=st.sampled_from(["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"]),
    n=st.sampled_from([2.0, 4.0, 8.0, 16.0, 64.0]),
    stride=st.sampled_from([1.0, 2.0, 8.0]),
    message=st.floats(1e3, 1e9),
    factor=st.floats(1.01, 10.0),
    topology=st.sampled_from(["switch", "switch_reduce", "full", "ring", "torus2d"]),
)
def test_more_bandwidth_or_less_latency_never_slows_a_collective(collective, n, stride, message, factor, topology):
    sw = achievable_software()
    sw = dataclasses.replace(sw, collective_launch_s=np.asarray(5e-6), collective_latency_s=np.asarray(1e-6))
    up = Level(jnp.asarray(8.0), jnp.asarray(300e9), jnp.asarray(1e-6), topology)
    out = Level(jnp.asarray(1.0), jnp.asarray(25e9), jnp.asarray(5e-6), "switch")

    def t(u, o):
        return float(collective_s(collective, message, jnp.asarray(n), jnp.asarray(stride), u, o, sw))

    base = t(up, out)
    assert t(up._replace(bandwidth_bytes_per_s=up.bandwidth_bytes_per_s * factor), out) <= base * (1 + 1e-12)
    assert t(up, out._replace(bandwidth_bytes_per_s=out.bandwidth_bytes_per_s * factor)) <= base * (1 + 1e-12)
    assert t(up._replace(latency_s=up.latency_s / factor), out) <= base * (1 + 1e-12)
    assert t(up, out._replace(latency_s=out.latency_s / factor)) <= base * (1 + 1e-12)


def _decode_step_s(model, hw, **knobs):
    """Calibrated time of one decode step at context 2048 (a 2-step request's decode / 2)."""
    ds = dse.evaluate(model, hw, levels=["calibrated"], prompt_tokens=2048, output_tokens=2, **knobs)
    return ds.tpot_s.isel(level=0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_llama3_70b_on_8_h100_tp8_is_near_the_weight_streaming_bound_and_beats_tp4():
    # Weight-streaming bound at TP 8: 70.6e9 params · 2 B / 8 / 3.35e12 B/s = 5.3 ms; the
    # issue asks for at most 2.5 × that (13.2 ms), and TP 8 faster than TP 4.
    t = _decode_step_s("llama-3-70b", "h100-sxm5-80gb", tp=[4, 8], batch=1)
    t4, t8 = float(t.sel(tp=4)), float(t.sel(tp=8))
    assert t8 <= 13.2e-3
    assert t8 < t4


def test_expert_parallel_splits_experts_and_attention_sequences():
    # Mixtral-8x22B, FP8, batch 32 on 4 H100: EP 4 holds 2 experts and a full copy of the
    # attention per chip; every expert is hit (1 − (6/8)^32 ≈ 1), so a chip reads its two
    # experts and the replicated rest: about 39 GB. Balanced vs all tokens on one group:
    # the busiest group computes 4x the token-expert pairs; at batch 32 that is still
    # memory-bound, so the step slows by little (GenZ §VI-C: 3.2 to 11.3 ms is their range).
    ds = dse.evaluate(
        "mixtral-8x22b", "h100-sxm5-80gb", levels=["achievable"], tp=1, ep=4, batch=32,
        prompt_tokens=1024, output_tokens=2, dtype="fp8", expert_imbalance=[1.0, 4.0],
    ).isel(level=0)  # fmt: skip
    w = float(ds.weight_bytes_per_chip.isel(expert_imbalance=0))
    assert 37e9 < w < 41e9
    t = ds.tpot_s.values
    assert t[1] >= t[0]
    assert t[0] <= 15e-3
    assert int(ds.n_chips.isel(expert_imbalance=0)) == 4


def test_data_parallel_replicas_keep_per_chip_throughput_and_latency():
    ds = dse.evaluate(
        "llama-3-8b", "a100-sxm4-80gb", levels=["calibrated"], tp=1, dp=[1, 2], batch=[32, 64],
        prompt_tokens=512, output_tokens=64,
    ).isel(level=0)  # fmt: skip
    one = ds.sel(dp=1, batch=32)
    two = ds.sel(dp=2, batch=64)  # two replicas of batch 32
    assert_close(float(two.latency_s), float(one.latency_s), rtol=1e-9)
    assert_close(float(two.throughput_tokens_per_s_per_chip), float(one.throughput_tokens_per_s_per_chip), rtol=1e-9)
    assert_close(float(two.energy_j), 2 * float(one.energy_j), rtol=1e-9)
    assert int(two.n_chips) == 2


def test_overlap_hides_communication_under_compute():
    ds = dse.evaluate(
        "llama-3-70b", "a100-sxm4-80gb", levels=["calibrated"], tp=8, batch=16, prompt_tokens=1024,
        output_tokens=16, overlap=[0.0, 0.5, 1.0],
    ).isel(level=0)  # fmt: skip
    lat = ds.latency_s.values
    assert lat[0] > lat[1] > lat[2]
    assert float(ds.network_s.isel(overlap=2)) < float(ds.network_s.isel(overlap=0))


def test_platform_files_carry_their_network():
    from dse.specs import load_platform

    p = load_platform("dgx-h100")
    assert p.network["scale_up_topology"] == "switch_reduce"
    assert_close(p.network["scale_out_bandwidth_bytes_per_s"], 50e9, rtol=1e-12)
    tpu = load_platform("tpu-v5e-256")
    assert tpu.network["scale_up_topology"] == "torus2d" and tpu.network["scale_up_chips"] == 256
    # The same 16 H100s: two DGX H100 nodes (TP 16 crosses InfiniBand) or, with the whole
    # group in one NVLink domain, faster all-reduces.
    ds_dgx = dse.evaluate("llama-3-70b", "h100-sxm5-80gb", platform="dgx-h100", levels=["achievable"], tp=16, batch=8)
    big = dse.evaluate(
        "llama-3-70b", "h100-sxm5-80gb", platform="dgx-h100", levels=["achievable"], tp=16, batch=8,
        scale_up_chips=16,
    )  # fmt: skip
    assert float(big.network_s.squeeze()) < float(ds_dgx.network_s.squeeze())


def test_bad_parallel_input_is_one_line():
    from dse.specs import SpecError

    with pytest.raises(SpecError, match="expected a divisor of the model's 8 experts"):
        dse.evaluate("mixtral-8x7b", "h100-sxm5-80gb", ep=3)
    with pytest.raises(SpecError, match="dense model has no experts"):
        dse.evaluate("llama-3-8b", "h100-sxm5-80gb", ep=2)
    with pytest.raises(SpecError, match="no scale-out level"):
        dse.evaluate("llama-3-8b", "wse-3", platform="genz-sram-wafer", tp=2)
    with pytest.raises(SpecError, match="expected 1 to inf"):
        dse.evaluate("mixtral-8x7b", "h100-sxm5-80gb", ep=2, expert_imbalance=0.5)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sequence_parallelism_splits_long_prompts_and_kv_caches():
    # Llama-3.1-8B, one 128k-token prompt, on one DGX H100 at sp = 1 and 4 (tp 1). The
    # prefill work (quadratic attention included) splits four ways, plus the ring's KV
    # all-gather: TTFT between 1/4 and 1/3 of sp = 1. The KV cache per chip is 1/4; weights
    # are replicated in each group.
    ds = dse.evaluate(
        "llama-3.1-8b", "h100-sxm5-80gb", platform="dgx-h100", levels=["achievable"], sp=[1, 4], batch=1,
        prompt_tokens=131072, output_tokens=16,
    ).isel(level=0)  # fmt: skip
    t1, t4 = ds.ttft_s.values
    assert t1 / 4 <= t4 <= t1 / 3
    kv1, kv4 = ds.kv_bytes_per_chip.values
    assert_close(kv4, kv1 / 4, rtol=1e-9)
    w1, w4 = ds.weight_bytes_per_chip.values
    assert_close(w4, w1, rtol=1e-12)
    assert ds.tpot_s.values[1] < ds.tpot_s.values[0]  # each chip reads a quarter of the KV cache
    assert list(ds.n_chips.values) == [1, 4]
