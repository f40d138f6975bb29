"""Silicon economics against hand-derived numbers: dies per wafer, yield, die cost, HBM stacks
and converter area (models.silicon)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.silicon import (
    HBM,
    NODES,
    RETICLE_MM2,
    adc_area_mm2,
    adc_energy_j,
    die_yield,
    dies_per_wafer,
    good_die_cost_usd,
    hbm_cost_usd,
    hbm_stacks,
    sram_mm2,
)

pytestmark = pytest.mark.usefixtures("float64")


def test_dies_per_wafer_by_hand():
    # 300 mm wafer, A100's 826 mm^2: 70,685.83 / 826 - 942.478 / sqrt(1652) = 85.576 - 23.188.
    assert float(dies_per_wafer(826.0)) == pytest.approx(62.388, abs=1e-3)
    # 100 mm^2: 706.858 - 942.478 / 14.142 = 640.215.
    assert float(dies_per_wafer(100.0)) == pytest.approx(640.215, abs=1e-3)
    assert RETICLE_MM2 == 858.0  # 26 mm x 33 mm


def test_yield_models_by_hand():
    # A = 1 cm^2 at D0 = 0.1: Murphy ((1 - e^-0.1) / 0.1)^2 = 0.951626^2; negative binomial
    # alpha = 2: 1.05^-2; both above Poisson's e^-0.1 = 0.904837 (defects cluster).
    assert float(die_yield(100.0, 0.1)) == pytest.approx(0.905592, abs=1e-6)
    assert float(die_yield(100.0, 0.1, clustering=2.0)) == pytest.approx(0.907029, abs=1e-6)
    assert float(die_yield(0.0, 0.1)) == 1.0
    assert float(die_yield(100.0, 0.1)) > np.exp(-0.1)


def test_good_die_cost_of_a_reticle_sized_7nm_die_by_hand():
    # 826 mm^2 on N7 ($9,346 wafer, D0 0.1): AD = 0.826, Murphy yield 0.680633^2 = 0.463261,
    # 62.388 x 0.463261 = 28.902 good dies -> $323.4 each.
    assert float(good_die_cost_usd(826.0, NODES["n7"])) == pytest.approx(323.4, abs=0.1)


def test_hbm_stacks_of_catalog_gpus_by_hand():
    # H100 SXM5: 3.35 TB/s over HBM3's 819.2 GB/s = 4.09, 80 GB over 24 GB = 3.33 -> 5 stacks
    # (the H100 SXM5 has five active HBM3 stacks). A100 80GB: 2.039 TB/s / 460.8 GB/s = 4.42,
    # 80 / 16 GB = 5 -> 5 HBM2E stacks (as built).
    assert float(hbm_stacks(3.35e12, 80e9, HBM["hbm3"])) == 5.0
    assert float(hbm_stacks(2.039e12, 80e9, HBM["hbm2e"])) == 5.0
    assert HBM["hbm4"].bandwidth_bytes_per_s == 2048e9  # 2048 pins x 8 Gb/s (JESD270-4)
    assert float(hbm_cost_usd(5.0, HBM["hbm3"])) == pytest.approx(5 * 24 * 12.0)


def test_adc_area_and_energy_at_4_and_8_bits():
    # The 8-bit reference is 0.0012 mm^2; every bit fewer halves the capacitive DAC: 4 bits is
    # 1/16 of it. Walden energy at 20 fJ/step: 20e-15 x 256 = 5.12 pJ, x 16 = 0.32 pJ.
    assert float(adc_area_mm2(8.0)) == pytest.approx(0.0012)
    assert float(adc_area_mm2(4.0)) == pytest.approx(0.0012 / 16)
    assert float(adc_energy_j(8.0, 20e-15)) == pytest.approx(5.12e-12)
    assert float(adc_energy_j(4.0, 20e-15)) == pytest.approx(0.32e-12)


def test_sram_area_by_hand():
    # 50 MB of N5 SRAM: 400e6 bits x 0.021 um^2 = 8.4 mm^2 of cells, / 0.7 -> 12 mm^2.
    assert float(sram_mm2(50e6, NODES["n5"])) == pytest.approx(12.0)


@settings(max_examples=40, deadline=None)
@given(area=st.floats(10.0, RETICLE_MM2), extra=st.floats(1.0, 100.0), node=st.sampled_from(sorted(NODES)))
def test_a_larger_die_never_costs_less(area, extra, node):
    n = NODES[node]
    assert float(good_die_cost_usd(area + extra, n)) > float(good_die_cost_usd(area, n))
    assert float(dies_per_wafer(area + extra)) < float(dies_per_wafer(area))


def test_die_cost_is_differentiable_in_area():
    grad = jax.grad(lambda a: good_die_cost_usd(a, NODES["n5"]))(400.0)
    assert np.isfinite(float(grad)) and float(grad) > 0


def test_catalog_silicon_cost_of_h100_wse3_and_an_unpublished_die():
    from dse.specs import load_hardware, silicon_of

    # H100: 814 mm^2 on N4 ($16,988 wafer): 86.838 - 23.358 = 63.480 dies, Murphy yield at AD =
    # 0.814 is 0.684189^2 = 0.468115 -> 29.716 good dies, $571.7 each; 80 GB of HBM3 at $12/GB.
    h100 = silicon_of(load_hardware("h100-sxm5-80gb"))
    assert h100["logic_cost_usd"] == pytest.approx(571.7, abs=0.1)
    assert h100["hbm_cost_usd"] == pytest.approx(960.0)
    assert h100["price_over_silicon"] == pytest.approx(30000 / (571.7 + 960.0), rel=1e-4)
    # WSE-3 is beyond the reticle: a wafer-scale engine costs one processed N5 wafer.
    assert silicon_of(load_hardware("wse-3"))["silicon_cost_usd"] == pytest.approx(16988.0)
    # B200: node and HBM stated, but neither die area nor MAC count: no number, what is missing named.
    b200 = silicon_of(load_hardware("b200"))
    assert b200["silicon_cost_usd"] is None and b200["missing"] == ["die_area_mm2 or datapath_macs"]
    # TPU v5e: no published die; the floorplan model's from its knobs, at N5: 4 x 128^2 MACs x
    # 0.1534 MTr / 171.3 MTr/mm^2 = 58.69, 134.2 MB of SRAM at 0.021 um^2 / 0.74991 = 30.06,
    # two HBM PHYs 23.25 and 200 GB/s of links 8.0 -> 120.0 mm^2.
    v5e = silicon_of(load_hardware("tpu-v5e"))
    assert v5e["area_source"] == "modelled" and v5e["modelled_die_area_mm2"] == pytest.approx(120.0, abs=0.05)


def test_catalog_json_lists_each_chips_silicon(capsys):
    import json

    from dse.cli import main

    assert main(["catalog", "--json"]) == 0
    chips = {c["id"]: c for c in json.loads(capsys.readouterr().out)["hardware"]}
    assert chips["a100-sxm4-80gb"]["process_node"] == "n7" and chips["a100-sxm4-80gb"]["hbm_stacks"] == 5
    assert chips["a100-sxm4-80gb"]["silicon_cost_usd"] > 0 and chips["b200"]["missing"] == [
        "die_area_mm2 or datapath_macs"
    ]
    h100 = chips["h100-sxm5-80gb"]
    assert h100["die_area_mm2"] == 814 and h100["modelled_die_area_mm2"] > 0 and h100["modelled_tdp_w"] > 0
    assert h100["modelled_cost_usd"] > 0 and h100["tdp_w"] == 700 and h100["price_usd"] == 30000


def test_a_variants_tdp_follows_its_rates_and_a_given_tdp_is_kept():
    import dataclasses

    from dse.engine import make_config, with_knobs
    from dse.specs import load_hardware, load_model
    from models.silicon import J_PER_FLOP_N7, NODE_ENERGY

    cfg = make_config(load_model("llama-3-8b"), load_hardware("h100-sxm5-80gb", calibrated=False))
    chip = cfg.chip
    assert float(chip.design_tdp_w) == pytest.approx(700.0, rel=1e-12)  # the catalog chip: its datasheet TDP
    area = float(chip.design_silicon().die_mm2)

    def added(variant):  # leakage of the added die area, 0.05 W/mm^2
        return (float(variant.design_silicon().die_mm2) - area) * 0.05

    # 10 TB/s more HBM bandwidth: 3.9 pJ/bit at 10 TB/s, plus its PHYs' leakage, over 90 % delivery.
    fast = with_knobs(cfg, {"hbm_bandwidth_bytes_per_s": np.asarray(3.35e12 + 10e12)}).chip
    want = 700.0 + (10e12 * 8 * 3.9e-12 + added(fast)) / 0.9
    assert float(fast.design_tdp_w) == pytest.approx(want, rel=1e-9)
    # Twice the peak: 989.4 TFLOP/s more at the SIMT class's energy per FLOP at N4, plus leakage.
    big = with_knobs(cfg, {"peak_bf16_flops_per_s": np.asarray(2 * 989.4e12)}).chip
    flop_j = J_PER_FLOP_N7["simt"] * NODE_ENERGY["n4"]
    assert float(big.design_tdp_w) == pytest.approx(700.0 + (989.4e12 * flop_j + added(big)) / 0.9, rel=1e-9)
    # A TDP given with the design is kept whatever else changes.
    given = with_knobs(cfg, {"hbm_bandwidth_bytes_per_s": np.asarray(13.35e12), "tdp_w": np.asarray(650.0)}).chip
    assert given.tdp_given and float(given.design_tdp_w) == 650.0
    # A slower variant never draws less than idle, with or without recorded silicon.
    for c in (chip, load_hardware("b200", calibrated=False).spec):
        slow = dataclasses.replace(c, peak_bf16_flops_per_s=np.asarray(1e9), hbm_bandwidth_bytes_per_s=np.asarray(1e6))
        assert float(slow.design_tdp_w) >= float(c.idle_w)


@settings(max_examples=30, deadline=None)
@given(peak=st.floats(1.0, 20.0), bandwidth=st.floats(1.0, 20.0))
def test_adding_compute_or_bandwidth_never_lowers_tdp(peak, bandwidth):
    from dse.specs import load_hardware

    chip = load_hardware("tpu-v5e").spec  # systolic: the peak follows arrays x size^2 x 2 x clock
    import dataclasses

    more = dataclasses.replace(chip, clock_hz=chip.clock_hz * peak)
    assert float(more.design_tdp_w) >= float(chip.design_tdp_w)
    wider = dataclasses.replace(more, hbm_bandwidth_bytes_per_s=more.hbm_bandwidth_bytes_per_s * bandwidth)
    assert float(wider.design_tdp_w) >= float(more.design_tdp_w)


def test_a_variants_price_moves_by_the_bases_margin_on_the_silicon_it_adds():
    from dse.engine import make_config, with_knobs
    from dse.specs import load_hardware, load_model

    cfg = make_config(load_model("llama-3-8b"), load_hardware("h100-sxm5-80gb"))
    assert float(cfg.chip.design_price_usd) == pytest.approx(30000.0)  # the catalog chip: its own price
    # Up to 5 x 819.2 GB/s the H100's five 16 GB stacks suffice (a faster HBM3 bin); 6 x 819.2
    # GB/s takes a sixth stack: $192 of memory and its PHY (7.75 x 1.5 mm^2 more die), times the
    # H100's price over silicon, 30,000 / 1,531.71 = 19.586.
    same = with_knobs(cfg, {"hbm_bandwidth_bytes_per_s": np.asarray(5 * 819.2e9)}).chip
    assert float(same.design_price_usd) == pytest.approx(30000.0)
    wider = with_knobs(cfg, {"hbm_bandwidth_bytes_per_s": np.asarray(6 * 819.2e9)}).chip
    die = float(good_die_cost_usd(814.0 + 11.625, NODES["n4"]) - good_die_cost_usd(814.0, NODES["n4"]))
    assert float(wider.design_price_usd) == pytest.approx(30000.0 + 30000.0 / 1531.71 * (192.0 + die), rel=1e-4)
    # A price given with the design is kept.
    given = with_knobs(cfg, {"hbm_bandwidth_bytes_per_s": np.asarray(6e12), "price_usd": np.asarray(25000.0)}).chip
    assert given.price_given and float(given.design_price_usd) == 25000.0
    # A chip whose silicon is not stated keeps its price (and says so: no silicon recorded).
    b200 = load_hardware("b200").spec
    assert b200.silicon is None and float(b200.design_price_usd) == 40000.0


@settings(max_examples=30, deadline=None)
@given(compute=st.floats(1.0, 1.2), sram=st.floats(1.0, 1.5), hbm=st.floats(1.0, 3.0))
def test_adding_compute_sram_or_hbm_never_lowers_area_silicon_or_price(compute, sram, hbm):
    import dataclasses

    from dse.specs import load_hardware

    base = load_hardware("a100-sxm4-80gb").spec
    steps = [
        dict(peak_bf16_flops_per_s=base.peak_bf16_flops_per_s * compute),
        dict(sram_capacity_bytes=base.sram_capacity_bytes * sram),
        dict(hbm_bandwidth_bytes_per_s=base.hbm_bandwidth_bytes_per_s * hbm),
        dict(hbm_capacity_bytes=base.hbm_capacity_bytes * hbm),
    ]
    chip = base
    for change in steps:
        bigger = dataclasses.replace(chip, **change)
        a0, s0 = chip.design_silicon().die_mm2, chip.design_silicon().cost_usd
        a1, s1 = bigger.design_silicon().die_mm2, bigger.design_silicon().cost_usd
        assert float(a1) >= float(a0) and float(s1) >= float(s0)
        assert float(bigger.design_price_usd) >= float(chip.design_price_usd)
        assert float(bigger.design_tdp_w) >= float(chip.design_tdp_w)
        chip = bigger


def test_hbm_stacks_fit_along_the_dies_edges():
    from dse.engine import make_config, run_designs, software_levels
    from dse.specs import load_hardware, load_model
    from models import Infeasible
    from models.silicon import hbm_sites

    # sqrt(814) = 28.53 mm per edge / 7.75 mm per stack = 3 sites, on two edges: 6 (as built).
    assert float(hbm_sites(814.0)) == 6.0 and float(hbm_sites(826.0)) == 6.0
    h100 = load_hardware("h100-sxm5-80gb")
    cfg = make_config(load_model("llama-3-8b"), h100)
    # 6 stacks of the H100's kind (16 GB, up to HBM3's 819.2 GB/s each) fit; a 7th does not.
    bw = np.array([3.35e12, 6 * 819.2e9, 7 * 819.2e9])
    r = run_designs(cfg, {"hbm_bandwidth_bytes_per_s": bw}, software_levels(h100, ["achievable"]))
    np.testing.assert_allclose(r["hbm_stacks"][0], [5, 6, 7], rtol=1e-9)
    assert list(r["feasible"][0]) == [1, 1, 0]
    assert r["infeasible_reason"][0][2] == Infeasible.HBM_SHORELINE


def test_every_result_says_where_price_tdp_and_die_come_from():
    from dse.engine._grid import silicon_source
    from dse.specs import load_hardware

    h100 = silicon_source(load_hardware("h100-sxm5-80gb"), {})
    assert h100.startswith("modelled: TSMC N4/4N, 814 mm2 x 1 (published)")
    assert "(price_usd given)" in silicon_source(load_hardware("h100-sxm5-80gb"), {"price_usd": [1.0]})
    assert silicon_source(load_hardware("tpu-v5e"), {}).startswith("modelled: TSMC N5, 120 mm2 x 1 (modelled)")
    assert silicon_source(load_hardware("b200"), {}).startswith("datasheet: price as published")


def test_floorplan_constants_are_the_fit_and_hold_out_on_the_other_dies():
    import calibration
    from models.silicon import J_PER_FLOP_N7, MTR_PER_MAC

    dies = calibration.published_dies()
    mtr, joules = calibration.fit_floorplan(dies)
    assert mtr == pytest.approx(MTR_PER_MAC, rel=1e-3) and joules == pytest.approx(J_PER_FLOP_N7, rel=1e-3)
    rows = {r["die"]: r for r in calibration.check_floorplan()}
    held = [r for r in rows.values() if r["role"] == "held out"]
    assert sum(r["role"] == "fitted" for r in rows.values()) <= len(rows) / 2  # fitted on at most half
    assert {"a100-sxm4-40gb", "h100-sxm5-80gb", "wse-3", "amd-mi300x-xcd"} <= {r["die"] for r in held}
    assert calibration.held_out_mape(list(rows.values()), "area_error") <= 0.15
    for gpu in ("a100-sxm4-40gb", "h100-sxm5-80gb"):  # board TDPs (the wafers' are system powers)
        assert abs(rows[gpu]["tdp_error"]) <= 0.25 and rows[gpu]["tdp_scope"] == "board"


def test_architectural_knobs_move_area_by_their_parts():
    import dataclasses

    from dse.specs import load_hardware
    from models.silicon import MTR_PER_MAC, NODES, adc_area_mm2

    # A TPU v5e with 256 x 256 arrays: 3 x 4 x 128^2 more MACs at the array class's cost.
    v5e = load_hardware("tpu-v5e").spec
    bigger = dataclasses.replace(v5e, array_size=np.asarray(256.0))
    added = float(bigger.design_silicon()[0]) - float(v5e.design_silicon()[0])
    assert added == pytest.approx(3 * 4 * 128**2 * MTR_PER_MAC["array"] / NODES["n5"].logic_mtr_per_mm2, rel=1e-9)
    # d-Matrix at 8-bit ADCs: every one of its 73 x 256 ADCs grows by 2^8 - 2^4 units, over 8 chiplets.
    dm = load_hardware("dmatrix-corsair").spec
    wide = dataclasses.replace(dm, adc_bits=np.asarray(8.0))
    added = float(wide.design_silicon()[0]) - float(dm.design_silicon()[0])
    assert added == pytest.approx(73 * 256 * (float(adc_area_mm2(8.0)) - float(adc_area_mm2(4.0))) / 8, rel=1e-9)
    # More link bandwidth costs SerDes area.
    faster = dataclasses.replace(v5e, link_bandwidth_bytes_per_s=v5e.link_bandwidth_bytes_per_s * 2)
    assert float(faster.design_silicon()[0]) > float(v5e.design_silicon()[0])


def test_a_gpus_sms_and_clock_are_architectural_knobs():
    from dse.engine import make_config, with_knobs
    from dse.specs import SpecError, load_hardware, load_model

    cfg = make_config(load_model("llama-3-8b"), load_hardware("h100-sxm5-80gb", calibrated=False))
    base = cfg.chip
    # 144 SMs at the file's per-SM rate and clock: 989.4 x 144 / 132 TFLOP/s; a datapath
    # 144/132 as large (area) and more power; 2.2 GHz: the rate x 2.2 / 1.83, the same die.
    wide = with_knobs(cfg, {"sm_count": np.asarray(144.0)}).chip
    assert float(wide.peak_flops_per_s("bf16")) == pytest.approx(989.4e12 * 144 / 132, rel=1e-12)
    assert float(wide.peak_flops_per_s("fp8")) == pytest.approx(1978.9e12 * 144 / 132, rel=1e-12)
    assert float(wide.design_silicon().die_mm2) > 814.0 and float(wide.design_tdp_w) > 700.0
    fast = with_knobs(cfg, {"clock_hz": np.asarray(2.2e9)}).chip
    assert float(fast.peak_flops_per_s("bf16")) == pytest.approx(989.4e12 * 2.2 / 1.83, rel=1e-12)
    assert float(fast.design_silicon().die_mm2) == pytest.approx(814.0) and float(fast.design_tdp_w) > 700.0
    assert float(base.peak_flops_per_s("bf16")) == pytest.approx(989.4e12, rel=1e-12)
    # A file that states no clock cannot be clocked: said, not ignored.
    b200 = make_config(load_model("llama-3-8b"), load_hardware("b200"))
    from dse.engine import check_values

    with pytest.raises(SpecError, match="states no clock_ghz"):
        check_values(b200, {"clock_ghz": [2.0]}, "test")


def test_no_feasible_design_breaks_a_limit_and_shipped_studies_derive_tdp_and_price():
    from pathlib import Path

    from dse.engine import make_config, run_designs, software_levels
    from dse.specs import load_hardware, load_model
    from dse.sweep import load_sweep
    from models import Infeasible

    hw = load_hardware("tpu-v5e")
    cfg = make_config(load_model("llama-3-8b"), hw, batch=4)
    rng = np.random.default_rng(0)
    n = 2048
    knobs = {
        "array_size": np.rint(np.exp(rng.uniform(np.log(64), np.log(512), n))),
        "n_arrays": np.rint(np.exp(rng.uniform(0, np.log(16), n))),
        "clock_hz": rng.uniform(0.8e9, 2e9, n),
        "hbm_bandwidth_bytes_per_s": np.exp(rng.uniform(np.log(0.5e12), np.log(8e12), n)),
        "hbm_capacity_bytes": np.exp(rng.uniform(np.log(16e9), np.log(192e9), n)),
    }
    r = {k: v[0] for k, v in run_designs(cfg, knobs, software_levels(hw, ["achievable"])).items()}
    ok = r["feasible"].astype(bool)
    assert 0 < ok.sum() < n  # both kinds occur in this box
    for fill in ("die_fill", "hbm_fill", "power_density_fill"):
        assert np.all(r[fill][ok] <= 1 + 1e-5)
    limits = {Infeasible.DIE_TOO_LARGE, Infeasible.HBM_SHORELINE, Infeasible.POWER_DENSITY}
    assert limits <= set(r["infeasible_reason"][~ok].astype(int).tolist())
    assert np.all(r["hbm_stacks"] == np.round(r["hbm_stacks"]))  # whole stacks
    root = Path(__file__).parent.parent / "sweeps"
    for study in ("asic_pareto", "asic_pareto_imc"):
        spec = load_sweep(root / f"{study}.yaml")
        assert not {"tdp_w", "price_usd"} & {a.key for a in (*spec.sampled, *spec.grid)}
