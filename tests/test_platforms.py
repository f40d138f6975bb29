"""Platform specs (GenZ Table VII) and the platform comparison study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import serve_eager

import dse
from dse.analysis import run_platform_study
from dse.specs import load_platform, platform_ids


def test_genz_table_vii_platforms_load():
    assert set(platform_ids()) >= {"genz-multi-gpu", "genz-sram-wafer", "genz-sram-chips", "genz-multi-asic"}
    p = load_platform("genz-sram-chips")
    assert p.hardware == "groq-lpu" and p.tp == 64 and p.platform_power_kw == pytest.approx(276.8)
    assert load_platform("genz-multi-gpu").chips == 32


def test_platform_study_small(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "study: platforms\nmodels: [llama-3-8b, llama-3-70b]\n"
        "platforms: [genz-sram-wafer, {hardware: tpu-v5e, tp: 1}]\n"
        "batch: 4\nprompt_tokens: 512\noutput_tokens: 128\ndtype: fp8\n"
    )
    ds = run_platform_study(spec, tmp_path / "out", quiet=True)
    out = capsys.readouterr().out
    assert "X (OOM)" in out  # Llama 3 70B on one 16 GB TPU v5e
    assert (tmp_path / "out" / "platforms.png").exists() and (tmp_path / "out" / "platforms.svg").exists()
    back = xr.open_zarr(tmp_path / "out" / "platforms.zarr", consolidated=False)
    assert back.prefill_tokens_per_s.attrs["units"] == "token/s"
    # Llama 3 8B in FP8 (8 GB) sits in the wafer's 44 GB: it wins decode (GenZ: SRAM wafer best
    # when the model fits).
    dec = ds.normalized_decode_tokens_per_s.sel(model="llama-3-8b")
    assert float(dec.sel(platform="genz-sram-wafer")) == 1.0
    assert np.isnan(float(ds.normalized_decode_tokens_per_s.sel(model="llama-3-70b", platform="tpu-v5e")))


def test_platform_study_errors(tmp_path):
    bad = tmp_path / "b.yaml"
    bad.write_text(
        "study: platforms\nmodels: [llama-3-8b]\nplatforms: [genz-nope]\nbatch: 4\nprompt_tokens: 8\noutput_tokens: 8\n"
    )
    with pytest.raises(dse.SpecError, match=r"platforms\[0\].*unknown platform 'genz-nope'"):
        run_platform_study(bad, tmp_path, quiet=True)
    bad.write_text(
        "study: platforms\nmodels: [llama-3-8b]\nplatforms: [genz-sram-wafer]\nbatch: 4\n"
        "prompt_tokens: 8\noutput_tokens: 8\ndtpye: fp8\n"
    )
    with pytest.raises(dse.SpecError, match="unknown key 'dtpye'; did you mean 'dtype'"):
        run_platform_study(bad, tmp_path, quiet=True)
    assert Path("sweeps/platforms.yaml").exists()


@pytest.mark.parametrize("pid", platform_ids())
def test_every_platform_file_serves_a_model(pid):
    # Each catalog platform (real systems and GenZ's) loads with a consistent chip count and
    # serves Llama-3-8B decode at its own tensor-parallel degree with finite results.
    p = load_platform(pid)
    assert p.chips is None or p.chips >= p.tp * p.pp
    m = serve_eager("llama-3-8b", p.hardware, platform=p, tp=min(p.tp, 8), pp=p.pp, batch=1, prompt_tokens=512,
                    output_tokens=8)  # fmt: skip
    assert np.isfinite(float(m.tpot_s)) and float(m.tpot_s) > 0
