"""Inverse design: the gradient search meets the constraints and matches or beats a random
sweep of the same box with a tenth of its evaluations (an IMC chip, ADC bits an integer knob)."""

from __future__ import annotations

import numpy as np

import dse
from dse.analysis import design, parse_knobs, random_search
from dse.engine import make_config, run_designs, software_levels
from dse.sweep import parse_constraint, parse_objective


def test_design_beats_a_random_sweep_with_a_tenth_of_the_evaluations():
    hw = dse.load_hardware("dmatrix-corsair")
    cfg = make_config(dse.load_model("llama-3-8b"), hw, batch=8)
    sw = software_levels(hw, ["calibrated"])
    knobs = parse_knobs(cfg, "adc_bits=2:8,adcs_per_tile=32:512,adc_freq_ghz=0.2:2")
    assert [k.integer for k in knobs] == [True, True, False] and knobs[2].high == 2e9  # GHz → Hz
    objective = parse_objective("test", "objective", "min:j_per_token")
    constraints = [parse_constraint("test", "c", t) for t in ("tpot_s <= 0.05", "ttft_s <= 0.5")]
    found = design(cfg, sw, knobs, objective, constraints)
    rnd = random_search(cfg, sw, knobs, objective, constraints, 25_000)
    assert found["feasible"] and found["evaluations"] <= 2_500  # a tenth of the random sweep's
    assert found["objective"] <= rnd["objective"] * (1 + 1e-9)
    # The design is what the engine gives for it, integers and all.
    x = found["design"]
    assert x["adc_bits"] == int(x["adc_bits"]) and x["adcs_per_tile"] == int(x["adcs_per_tile"])
    res = run_designs(cfg, {k: np.array([v]) for k, v in x.items()}, sw)
    assert res["j_per_token"][0, 0] == found["objective"]
    assert res["tpot_s"][0, 0] <= 0.05 and res["ttft_s"][0, 0] <= 0.5 and res["feasible"][0, 0]


def test_architectural_knobs_find_a_buildable_interior_design():
    """A TPU v5e derivative (arrays, array size, clock, HBM): its die, stacks, TDP and price
    follow the knobs, whole stacks must fit the die's edges, and the search still finds a
    design no random one of the same box beats."""
    hw = dse.load_hardware("tpu-v5e")
    cfg = make_config(dse.load_model("llama-3-70b"), hw, tp=8, batch=16)
    sw = software_levels(hw, ["calibrated"])
    box = "array_size=64:512,n_arrays=1:16,clock_ghz=0.8:2,hbm_bandwidth_tb_s=0.5:8,hbm_capacity_gb=16:192"
    knobs = parse_knobs(cfg, box)
    objective = parse_objective("test", "objective", "min:usd_per_mtok")
    constraints = [parse_constraint("test", "c", t) for t in ("ttft_s <= 2", "tpot_s <= 0.03")]
    found = design(cfg, sw, knobs, objective, constraints)
    rnd = random_search(cfg, sw, knobs, objective, constraints, 10_000)
    assert found["feasible"] and found["objective"] <= rnd["objective"] * (1 + 1e-9)
    x = found["design"]
    assert 64 < x["array_size"] < 512 and 0.5e12 < x["hbm_bandwidth_bytes_per_s"] < 8e12  # inside the box
    m = found["metrics"]
    assert m["hbm_fill"] <= 1 and m["die_fill"] <= 1 and m["power_density_fill"] <= 1 and m["chip_price_usd"] > 5000
