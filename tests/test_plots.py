"""Charts of sweep stores: every file is written, PNG and SVG, and the sensitivity is a gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import check_in_browser

from dse.cli import main
from dse.sweep import run_sweep

SPEC = {
    "name": "p",
    "model": "llama-3-8b",
    "hardware": "a100-sxm4-80gb",
    "scenario": {"prompt_tokens": 512, "output_tokens": 64, "batch": 4},
    "grid": {"batch": [1, 8, 64]},
    "sample": {
        "method": "sobol",
        "n": 256,
        "seed": 0,
        "axes": {
            "hbm_bandwidth_tb_s": {"low": 1, "high": 8, "scale": "log"},
            "price_usd": {"low": 5000, "high": 40000},
        },
    },
    "objectives": ["maximize throughput_tokens_per_s_per_chip", "minimize j_per_token", "minimize usd_per_mtok"],
    "constraints": ["tpot_s <= 0.05"],
    "chunk": 256,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("plots")
    p = d / "p.yaml"
    p.write_text(yaml.safe_dump(SPEC))
    run_sweep(p, d / "p.zarr", quiet=True)
    return d / "p.zarr"


def test_plot_writes_png_and_svg(store, tmp_path):
    assert main(["plot", str(store), "-o", str(tmp_path), "--quiet", "--designs", "2"]) == 0
    for name in ("pareto", "roofline", "sensitivity"):
        for ext in ("png", "svg"):
            f = tmp_path / f"{name}.{ext}"
            assert f.exists() and f.stat().st_size > 1000


def test_axis_chart_for_grid_only_store(tmp_path):
    spec = {**SPEC, "sample": None, "objectives": [], "constraints": []}
    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump(spec))
    run_sweep(p, tmp_path / "g.zarr", quiet=True)
    assert main(["plot", str(tmp_path / "g.zarr"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "axes.svg").exists() and (tmp_path / "out" / "roofline.png").exists()


def test_sensitivity_matches_finite_differences(store):
    import xarray as xr

    from dse.analysis._plots import _design_knobs, _plan, _points, sensitivities
    from dse.engine import run_designs

    ds = xr.open_zarr(store)
    plan = _plan(ds)
    point = _points(ds, None, 1)[0]
    e = sensitivities(plan, ds, [point], ["tpot_s"])["tpot_s"][0]
    g, knobs = _design_knobs(plan, ds, point)
    names = list(knobs)
    for i, k in enumerate(names):
        h = 1e-4
        vals = {n: np.array([knobs[n], knobs[n]]) for n in names}
        vals[k] = np.array([knobs[k] * np.exp(-h), knobs[k] * np.exp(h)])
        r = run_designs(plan.groups[g].config, vals, plan.groups[g].software)["tpot_s"][0]
        np.testing.assert_allclose(e[i], (np.log(r[1]) - np.log(r[0])) / (2 * h), rtol=1e-3, atol=1e-6)


def test_plot_errors(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "none.zarr")]) == 2
    assert "not an InferBench sweep store" in capsys.readouterr().err


def test_report_draws_tail_latency_of_a_study_with_a_rate_axis(tmp_path):
    # The report's section on a store with a request-rate axis (its other sections: below).
    import xarray as xr

    from dse.analysis._report import _tail_latency

    rate = np.array([1.0, 4.0, 8.0])
    ms = {"p50_ttft_s": [30, 32, 40], "p99_ttft_s": [40, 60, 200], "p90_tpot_s": [8, 9, 11], "p99_tpot_s": [8, 10, 12]}
    data = {k: ("rate_rps", np.array(v) * 1e-3) for k, v in ms.items()}
    data |= {"tpot_s": ("rate_rps", np.full(3, 8e-3)), "saturation_rate_rps": ("rate_rps", np.full(3, 14.5))}
    html = _tail_latency(xr.Dataset(data, coords={"rate_rps": rate}), None, tmp_path)
    assert "Tail latency against the request rate" in html and html.count("<svg") == 1
    assert (tmp_path / "latency_vs_rate.png").stat().st_size > 0
    assert _tail_latency(xr.Dataset(data, coords={"rate_rps": rate}).isel(rate_rps=[0]), None, tmp_path) == ""


def test_report_is_one_self_contained_file_with_the_stores_numbers(store, tmp_path):
    import re

    import xarray as xr

    out = tmp_path / "report.html"
    assert main(["report", str(store), "-o", str(out), "--quiet"]) == 0
    page = out.read_text(encoding="utf-8")
    # Nothing fetched: no script, style sheet, image or font from elsewhere (SVG refers to its
    # own clip paths, url(#id), embeds its colour bars as data: URIs and names its XML
    # namespaces, which are not fetched).
    assert not re.search(r"<(script|link|img|iframe)\b", page) and "@import" not in page
    assert not re.search(r"url\((?!#)", page) and not re.search(r"(src|href)\s*=\s*[\"'](?!#|data:)", page)
    assert page.count("<svg") == 3  # Pareto front, roofline, sensitivities
    for section in ("Calibration status", "Pareto front", "Roofline", "Operators of the roofline's design",
                    "Sensitivities", "three levels", "Study specification"):  # fmt: skip
        assert section in page
    assert "a100-sxm4-80gb" in page and "fitted" in page and "90 % interval" in page
    # The front's numbers are the store's: the best throughput design's value appears as stored.
    ds = xr.open_zarr(store)
    best = float(ds.throughput_tokens_per_s_per_chip.where(ds.meets_constraints).max())
    from dse.analysis import fmt

    assert f"<td>{fmt(best)}</td>" in page
    assert page.count('<td class="t">ffn_up</td>') == 2  # the prompt pass and a decode step
    check_in_browser(out, figures=3)
