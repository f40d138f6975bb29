"""One engine path: a sweep, ``evaluate`` and ``predict`` give the same numbers (checked on a
GPU and an in-memory-compute ASIC), and every entry point uses each family's own software
levels (checked for all six)."""

from __future__ import annotations

import csv

import jax
import numpy as np
import pytest
import yaml

import dse
from dse.cli import main
from dse.cli._bench import FAMILY_BASE
from dse.engine import LEVELS, software_levels
from dse.sweep import load_sweep, make_plan, run_sweep
from models.hardware import FAMILIES

# One catalog chip per family (the bench's base chips), every family.
FAMILY_CHIPS = FAMILY_BASE
SCENARIO = {"prompt_tokens": 512, "output_tokens": 64, "batch": 8}
TP = 4


# The numeric agreement runs on a GPU and on an ASIC with its own energy model (one engine
# path serves every family; each family's own software level is checked for all six below).
AGREE_CHIPS = [FAMILY_CHIPS["simt"], FAMILY_CHIPS["imc"]]


def _sweep_file(tmp_path, level: str, chips=tuple(FAMILY_CHIPS.values())):
    spec = {
        "name": f"agree-{level}",
        "model": "llama-3-8b",
        "hardware": list(chips),
        "scenario": SCENARIO,
        "platform": {"tp": TP},
        "level": level,
        "grid": {"batch": [SCENARIO["batch"]]},
    }
    path = tmp_path / f"agree-{level}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("level", LEVELS)
def test_sweep_plans_the_chips_own_software_at_every_level(tmp_path, level):
    # The bug this guards against: a sweep applied the A100 GPU fit to every family.
    plan = make_plan(load_sweep(_sweep_file(tmp_path, level)))
    for group, hw in zip(plan.groups, FAMILY_CHIPS.values(), strict=True):
        want = software_levels(dse.load_hardware(hw), [level])
        for a, b in zip(jax.tree.leaves(group.software), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_every_family_is_covered():
    assert set(FAMILY_CHIPS) == set(FAMILIES)


def test_sweep_evaluate_and_predict_agree(tmp_path, capsys):
    level = "calibrated"
    ds = (
        dse.evaluate(
            "llama-3-8b",
            AGREE_CHIPS,
            levels=[level],
            tp=TP,
            batch=[SCENARIO["batch"]],
            prompt_tokens=SCENARIO["prompt_tokens"],
            output_tokens=SCENARIO["output_tokens"],
        )
        .sel(level=level)
        .isel(batch=0)
    )
    run_sweep(_sweep_file(tmp_path, level, AGREE_CHIPS), tmp_path / "s.zarr", quiet=True)
    import xarray as xr

    sw = (
        xr.open_zarr(tmp_path / "s.zarr").isel(batch=0, design=0)
        if "design" in xr.open_zarr(tmp_path / "s.zarr").dims
        else xr.open_zarr(tmp_path / "s.zarr").isel(batch=0)
    )
    for metric in ("ttft_s", "tpot_s", "energy_j", "usd_per_mtok"):
        e = ds[metric].values
        s = sw[metric].sel(hardware=AGREE_CHIPS).values
        np.testing.assert_allclose(s, e, rtol=1e-6, err_msg=metric)  # the store keeps float32
    # predict: one prefill pass and one decode step per chip (the CLI's own grouping).
    predicted = AGREE_CHIPS
    rows = [
        {
            "model": "llama-3-8b",
            "hardware": hw,
            "phase": phase,
            "batch": 8,
            "prompt_tokens": 512,
            "context_tokens": 512,
            "tp": TP,
        }
        for hw in predicted
        for phase in ("prefill", "decode")
    ]
    path = tmp_path / "scen.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["predict", str(path), "-o", str(tmp_path / "out.csv")]) == 0
    with (tmp_path / "out.csv").open() as f:
        out = list(csv.DictReader(f))
    prefill = {r["hardware"]: float(r["latency_s"]) for r in out if r["phase"] == "prefill"}
    for hw in predicted:
        # The prefill pass of the batch is the request's TTFT (same scenario, same level).
        assert prefill[hw] == pytest.approx(float(ds.ttft_s.sel(hardware=hw)), rel=1e-5), hw
        assert {r["calibration"] for r in out if r["hardware"] == hw} == {str(ds.calibration.sel(hardware=hw).item())}
