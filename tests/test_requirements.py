"""Platform requirements (GenZ §VI, Figs. 14-15): solved from the operator tables, checked
against the ratios the paper states and against hand-derived numbers."""

from __future__ import annotations

import pytest

import dse
from dse.analysis import requirements
from dse.specs import load_use_case
from models.workloads import active_params


def req(model: str, case: str, **kw):
    kw.setdefault("dtype", "fp8")  # GenZ §VI's figures are in FP8
    return requirements(dse.load_model(model), load_use_case(case), **kw)


def test_kv_cache_over_active_weights_for_code_generation_fig14():
    # GenZ §VI-A: the largest KV cache (Code Gen, 20k + 50 tokens, FP8) over the active weights
    # is 82 % for LLaMA2-7B, 11 % for Mixtral-8x7B and 27 % for GPT3-175B. (Its 20 % for
    # LLaMA2-70B needs 4x the KV of the published GQA config, 4.8 % here; its 2.8 % for
    # GPT4-1.8T depends on a configuration that was never published.)
    for model, paper in (("llama-2-7b", 0.82), ("mixtral-8x7b", 0.11), ("gpt-3-175b", 0.27)):
        r = req(model, "code")
        assert r["kv_bytes"] / float(active_params(dse.load_model(model).spec)) == pytest.approx(paper, rel=0.08)
    # Hand-derived: GPT-3 caches 2·96·12288 values per token, 1 byte each in FP8, for the prompt
    # and each of the 4 beams' 50 tokens (GenZ: B·(τp + S_b·τd)).
    assert req("gpt-3-175b", "code")["kv_bytes"] == 2 * 96 * 12288 * (20000 + 4 * 50)


def test_rag_needs_five_times_the_compute_of_qa_fig15():
    # GenZ §VI-B: going from QA (1k prompt, TTFT 0.2 s) to RAG (10k, 0.4 s) raises the compute
    # requirement 5.41x across all models (10x the prompt at twice the TTFT, plus attention).
    for model in ("llama-2-7b", "mixtral-8x7b", "llama-2-70b", "gpt-3-175b", "gpt-4-1.8t"):
        ratio = req(model, "rag")["compute_flops_per_s"] / req(model, "qa")["compute_flops_per_s"]
        assert ratio == pytest.approx(5.41, rel=0.1), model


def test_bandwidth_follows_the_decode_step_and_the_link_the_all_reduces():
    r = req("llama-3-70b", "qa", tp=8)
    # The last decode step reads the weights (FP8: 1 byte each; of the embedding table only the
    # batch's rows) and the whole KV cache, plus the activations it moves (< 1 %), in the 10 ms TPOT.
    embedding = 128256 * 8192
    read = r["weight_bytes"] - embedding + r["kv_bytes"]
    assert read / 0.01 < r["memory_bandwidth_bytes_per_s"] < 1.01 * read / 0.01
    # Prefill at TP 8: 2 all-reduces of 1000 x 8192 bytes per layer, 80 layers, 2·7/8 sent per chip, in 0.2 s.
    assert r["interconnect_bytes_per_s_per_chip"] == pytest.approx(80 * 2 * 1000 * 8192 * 2 * 7 / 8 / 0.2, rel=1e-9)
    assert req("llama-3-70b", "qa")["interconnect_bytes_per_s_per_chip"] == 0  # one chip: no link needed


def test_network_latency_and_hbm_stacks_by_hand():
    """GenZ §VI's network latency: a decode step of Llama-3-70B at TP 8 makes 2 ring all-reduces
    per layer of 2·(8 − 1) steps each, 80 layers: the TPOT over 2,240 steps. Memory as HBM3E
    stacks (1,024 pins at 9.6 Gb/s = 1.2288 TB/s, 36 GB): the larger of bandwidth and capacity."""
    r = requirements(dse.load_model("llama-3-70b"), load_use_case("chat"), tp=8)
    assert r["link_latency_s"] == pytest.approx(0.010 / (80 * 2 * 14))
    stacks = max(r["memory_bandwidth_bytes_per_s"] / 1.2288e12, r["memory_capacity_bytes"] / 36e9)
    assert r["hbm_stacks"] == -(-stacks // 1) and r["hbm_generation"] == "HBM3E"
    assert (
        requirements(dse.load_model("llama-3-70b"), load_use_case("chat"), hbm="hbm4")["hbm_stacks"] < r["hbm_stacks"]
    )
