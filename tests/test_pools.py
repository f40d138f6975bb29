"""Disaggregated pools on two chips: found when cheaper than either chip alone, sized so that
prefill keeps up with decode, TTFT including the KV cache's transfer."""

from __future__ import annotations

import math

import pytest

from dse import analysis
from dse.specs import load_hardware, load_model
from models.workloads import kv_bytes_per_token

pytestmark = pytest.mark.figures  # six searches compiled (~50 s): CI runs it after the suite


def test_a_compute_card_prefilling_for_a_bandwidth_card_is_cheaper_than_either_alone():
    # A hypothetical H100 with 1 TB/s of HBM (fewer stacks: cheaper, slow to decode) prefills
    # long prompts; an H200 (bandwidth-rich, dearer) decodes.
    compute = analysis.with_sets(load_hardware("h100-sxm5-80gb"), {"hbm_bandwidth_tb_s": 1.0})
    decode = load_hardware("h200-sxm-141gb")
    kw = dict(prompt_tokens=6144, output_tokens=128, slo=analysis.Slo(ttft_s=1.0, tpot_s=0.03))
    pools = analysis.plan_pools("llama-3-8b", compute, decode, 6, **kw)
    best = pools["best"]
    alone = [
        analysis.plan("llama-3-8b", h, 6, objective="usd_per_mtok", top=0, **kw)["best"] for h in (compute, decode)
    ]
    assert best["usd_per_mtok"] < min(a["usd_per_mtok"] for a in alone if a)
    # Prefill keeps up with decode, within the chips; the SLOs hold with the KV transfer counted:
    # 6,144 tokens of Llama-3-8B's KV (128 KiB each in bf16) over the 50 GB/s NIC of one chip.
    assert best["chips"] <= 6 and best["ttft_s"] <= 1.0 and best["tpot_s"] <= 0.03
    assert best["kv_transfer_s"] == pytest.approx(
        6144 * float(kv_bytes_per_token(load_model("llama-3-8b").spec)) / 50e9
    )
    decode_rps = best["decode_replicas"] * best["batch"] / (128 * best["tpot_s"])
    assert best["requests_per_s"] == pytest.approx(decode_rps, rel=1e-9)
    assert best["prefill_replicas"] == math.ceil(decode_rps * (best["ttft_s"] - best["kv_transfer_s"]) - 1e-9)
