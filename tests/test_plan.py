"""Deployment search (dse.analysis.plan, ``inferbench plan``)."""

from __future__ import annotations

import json

import pytest

import dse
from dse.analysis import Slo, plan
from dse.cli import main
from dse.specs import SpecError, load_use_case


@pytest.fixture(scope="module")
def chat():
    # Llama-3-8B on up to 4 A100s, a chat-like request with a TPOT SLO of 20 ms.
    return plan(
        "llama-3-8b", "a100-sxm4-80gb", 4, prompt_tokens=1024, output_tokens=256, slo=Slo(ttft_s=0.5, tpot_s=0.02)
    )


def test_the_best_meets_the_slos_and_matches_a_direct_evaluation(chat):
    best = chat["best"]
    assert best is not None and best["ttft_s"] <= 0.5 and best["tpot_s"] <= 0.02 and best["feasible"]
    knobs = {k: best[k] for k in ("tp", "pp", "ep", "dp", "batch")}
    if best["batching"] == "chunked":
        knobs["chunk_tokens"] = best["chunk_tokens"]
    ds = dse.evaluate(
        "llama-3-8b", "a100-sxm4-80gb", levels=["calibrated"], batching=best["batching"],
        prompt_tokens=1024, output_tokens=256, **knobs,
    ).isel(level=0)  # fmt: skip
    assert float(ds.throughput_tokens_per_s_per_chip) == pytest.approx(
        best["throughput_tokens_per_s_per_chip"], rel=1e-9
    )
    # Every runner-up meets the SLOs and is no better than the best.
    for r in chat["runners_up"]:
        assert r["tpot_s"] <= 0.02 and r["ttft_s"] <= 0.5
        assert r["throughput_tokens_per_s_per_chip"] <= best["throughput_tokens_per_s_per_chip"]
        assert "lower" in r["why"]


def test_a_looser_slo_never_gives_a_worse_answer(chat):
    loose = plan(
        "llama-3-8b", "a100-sxm4-80gb", 4, prompt_tokens=1024, output_tokens=256, slo=Slo(ttft_s=0.5, tpot_s=0.05)
    )
    assert loose["feasible"] >= chat["feasible"]
    assert loose["best"]["throughput_tokens_per_s_per_chip"] >= chat["best"]["throughput_tokens_per_s_per_chip"]


def test_excluded_layouts_say_which_constraint_and_use_cases_are_genz_table_iii(capsys):
    case = load_use_case("summarization")  # GenZ Table III: 15000/1000, beam 4, 2 s / 20 ms
    assert (case.prompt_tokens, case.output_tokens, case.beam, case.ttft_s, case.tpot_s) == (15000, 1000, 4, 2.0, 0.02)
    # A TPOT of 0.5 ms is beyond any A100 deployment of an 8B model: every layout is excluded,
    # each with its closest candidate and the constraint it breaks.
    rc = main(["plan", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--max-chips", "4",
               "--prompt-tokens", "1024", "--output-tokens", "256", "--tpot-ms", "0.5", "--json"])  # fmt: skip
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["best"] is None and res["feasible"] == 0
    assert res["excluded"] and all("TPOT" in r["why"] for r in res["excluded"])
    with pytest.raises(SpecError, match="unknown use case 'chatt'"):
        load_use_case("chatt")


def test_goodput_objective_keeps_90_percent_of_a_spread_mix_within_the_slos(chat):
    mixed = plan(
        "llama-3-8b", "a100-sxm4-80gb", 4, prompt_tokens=1024, output_tokens=256,
        slo=Slo(ttft_s=0.5, tpot_s=0.02, prompt_cv=1.5), objective="goodput_per_chip",
    )  # fmt: skip
    best = mixed["best"]
    assert best["slo_attainment"] >= 0.9 and best["tpot_s"] <= 0.02
    assert best["goodput_tokens_per_s_per_chip"] == pytest.approx(
        best["slo_attainment"] * best["throughput_tokens_per_s_per_chip"], rel=1e-9
    )
    # A spread of prompt lengths only removes candidates: some long prompts miss the TTFT.
    assert mixed["feasible"] <= chat["feasible"]
    assert all(r["slo_attainment"] >= 0.9 for r in mixed["runners_up"])


def test_at_a_rate_the_cheapest_wins_and_holds_the_tail(capsys):
    # The command at a rate ranks by $/1M tokens ("the cheapest deployment that holds the
    # percentiles"); every candidate that meets the SLOs costs at least the best's.
    argv = ["plan", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--max-chips", "4", "--prompt-tokens",
            "1024", "--output-tokens", "256", "--rate", "4", "--p99-ttft-ms", "500", "--p90-tpot-ms", "30", "--json"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    best = res["best"]
    assert res["objective"] == "usd_per_mtok"
    assert best["p99_ttft_s"] <= 0.5 and best["p90_tpot_s"] <= 0.03 and best["saturation_rate_rps"] > 4.0
    assert all(r["usd_per_mtok"] >= best["usd_per_mtok"] for r in res["runners_up"])
    # By tokens per chip, every deployment of as many chips ties at a rate: the tie goes to the
    # lower $/1M tokens, and a runner-up of the same throughput says so.
    slo = Slo(rate_rps=4.0, p99_ttft_s=0.5, p90_tpot_s=0.03)
    res = plan("llama-3-8b", "a100-sxm4-80gb", 4, prompt_tokens=1024, output_tokens=256, slo=slo)
    best = res["best"]
    for r in res["runners_up"]:
        assert r["throughput_tokens_per_s_per_chip"] <= best["throughput_tokens_per_s_per_chip"] * (1 + 1e-9)
        if r["why"].startswith("same"):
            assert r["usd_per_mtok"] >= best["usd_per_mtok"]
    assert any(r["why"].startswith("same") for r in res["runners_up"])
