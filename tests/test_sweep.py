"""Sweeps: spec validation, the zarr store, resume after a crash, Dask, devices, sampling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from dse.cli import main
from dse.specs import SpecError
from dse.sweep import chunk_inputs, load_sweep, make_plan, parse_sweep, run_sweep, sample_unit, store_state

ROOT = Path(__file__).resolve().parent.parent

# Small, fast base: one compiled structure (llama-3-8b on an A100), shared by most tests.
BASE = {
    "name": "t",
    "model": "llama-3-8b",
    "hardware": "a100-sxm4-80gb",
    "scenario": {"prompt_tokens": 512, "output_tokens": 64, "batch": 4},
    "platform": {"tp": 1},
    "grid": {"hbm_bandwidth_tb_s": {"start": 1, "stop": 4, "num": 3, "scale": "log"}},
    "sample": {
        "method": "random",
        "n": 300,
        "seed": 1,
        "axes": {
            "peak_bf16_tflops": {"low": 100, "high": 1000, "scale": "log"},
            "batch": {"low": 1, "high": 64, "integer": True},
        },
    },
    "constraints": ["tpot_s <= 0.05"],
    "objectives": ["maximize throughput_tokens_per_s_per_chip", "minimize j_per_token"],
    "chunk": 128,
}


def _spec(tmp_path: Path, **over) -> Path:
    data = {**BASE, **over}
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _load(store: Path) -> xr.Dataset:
    return xr.open_zarr(store).load()


def test_store_round_trips_with_dims_coords_units(tmp_path):
    store = tmp_path / "s.zarr"
    res = run_sweep(_spec(tmp_path), store, quiet=True)
    assert res.status == "completed" and res.n_designs == 900
    ds = _load(store)
    assert ds.tpot_s.dims == ("hbm_bandwidth_tb_s", "design")
    assert ds.sizes == {"hbm_bandwidth_tb_s": 3, "design": 300}
    np.testing.assert_allclose(ds.hbm_bandwidth_tb_s.values, [1, 2, 4])
    assert ds.hbm_bandwidth_tb_s.attrs["units"] == "TB/s"
    assert ds.peak_bf16_tflops.dims == ("design",) and ds.peak_bf16_tflops.attrs["units"] == "TFLOP/s"
    assert ds.tpot_s.attrs["units"] == "s" and "decode step" in ds.tpot_s.attrs["description"]
    assert ds.usd_per_mtok.attrs["units"] == "USD/1M token"
    assert ds.feasible.dtype == bool and ds.bound.dtype == np.int8 and ds.tpot_s.dtype == np.float32
    assert ds.attrs["sweep_complete"] and ds.attrs["inferbench_version"]
    assert parse_sweep(__import__("json").loads(ds.attrs["sweep_spec"])).to_json() == ds.attrs["sweep_spec"]
    assert "_sweep_chunk_done" not in ds
    b = ds.batch.values
    assert np.all(b == np.rint(b)) and b.min() >= 1 and b.max() <= 64
    np.testing.assert_array_equal(ds.meets_constraints.values, ds.feasible.values & (ds.tpot_s.values <= 0.05))
    # A front no design reaches says which constraint excludes everything and how close it comes.
    from dse.analysis import pareto_table, store_pareto

    front, objs, cons, stats = store_pareto(store, constraints=["tpot_s <= 1e-6"])
    text = pareto_table(front, objs, cons, stats)
    best = float(ds.tpot_s.where(ds.feasible).min())
    assert stats["n_front"] == 0 and "excluded by tpot_s <= 1e-06 alone" in text
    assert f"the best feasible design reaches {best:.4g}" in text


def test_store_matches_the_evaluation_boundary(tmp_path):
    """The store holds the engine's float32 evaluation: within 1e-6 of float64's (a float32
    program of another block shape may round differently by an ulp or two)."""
    from dse.engine import make_config, run_designs, software_levels
    from dse.specs import load_hardware, load_model

    store = tmp_path / "s.zarr"
    run_sweep(_spec(tmp_path), store, quiet=True)
    ds = _load(store)
    m, h = load_model("llama-3-8b"), load_hardware("a100-sxm4-80gb")
    cfg = make_config(m, h, tp=1, batch=4, prompt_tokens=512, output_tokens=64)
    for i, bw in enumerate(ds.hbm_bandwidth_tb_s.values):
        knobs = {
            "hbm_bandwidth_bytes_per_s": np.full(300, bw * 1e12),
            "peak_bf16_flops_per_s": ds.peak_bf16_tflops.values.astype(float) * 1e12,
            "batch": ds.batch.values.astype(float),
        }
        ref = run_designs(cfg, knobs, software_levels(h, ["calibrated"]))
        for k in ("tpot_s", "j_per_token", "usd_per_mtok", "ttft_s"):
            np.testing.assert_allclose(ds[k].values[i], ref[k][0], rtol=1e-6, err_msg=k)


def test_platform_file_degrees_and_batching_reach_the_engine(tmp_path):
    from dse.engine import make_config, run_designs, software_levels
    from dse.specs import load_hardware, load_model, load_platform

    over = {"platform": {"id": "dgx-a100", "tp": 2, "dp": 2}, "batching": "continuous", "sample": None}
    store = tmp_path / "s.zarr"
    run_sweep(_spec(tmp_path, grid={"overlap": [0, 1]}, **over), store, quiet=True)
    ds = _load(store)
    assert (ds.attrs["platform"], ds.attrs["batching"], ds.attrs["tp"], ds.attrs["dp"]) == (
        "dgx-a100",
        "continuous",
        2,
        2,
    )
    m, h = load_model("llama-3-8b"), load_hardware("a100-sxm4-80gb")
    cfg = make_config(
        m,
        h,
        tp=2,
        dp=2,
        batch=4,
        prompt_tokens=512,
        output_tokens=64,
        platform=load_platform("dgx-a100"),
        batching="continuous",
    )
    ref = run_designs(cfg, {"overlap": np.array([0.0, 1.0])}, software_levels(h, ["calibrated"]))
    np.testing.assert_allclose(ds.tpot_s.values.ravel(), ref["tpot_s"][0], rtol=1e-6)
    assert ds.tpot_s.values[1] < ds.tpot_s.values[0]  # overlapped all-reduces hide under compute


def test_rerun_is_a_noop_and_overwrite_runs_again(tmp_path):
    store = tmp_path / "s.zarr"
    spec = _spec(tmp_path)
    run_sweep(spec, store, quiet=True)
    assert run_sweep(spec, store, quiet=True).status == "already complete"
    assert run_sweep(spec, store, quiet=True, overwrite=True).status == "completed"


def test_resume_after_a_crash_at_a_random_chunk_is_identical(tmp_path):
    spec = _spec(tmp_path)
    ref = tmp_path / "ref.zarr"
    run_sweep(spec, ref, quiet=True)
    n_chunks = make_plan(load_sweep(spec)).n_chunks
    rng = np.random.default_rng(7)
    for k in rng.choice(np.arange(1, n_chunks), 2, replace=False):
        store = tmp_path / f"crash{k}.zarr"
        run_sweep(spec, store, quiet=True, _stop_after=int(k))
        state, attrs = store_state(store)
        assert state == "partial" and not attrs["sweep_complete"]
        partial = xr.open_zarr(store, consolidated=False)
        assert int(partial["_sweep_chunk_done"].sum()) == k
        res = run_sweep(spec, store, quiet=True)
        assert res.status == "resumed" and res.n_chunks_run == n_chunks - k
        xr.testing.assert_identical(_load(store), _load(ref))


def test_resume_after_sigkill(tmp_path):
    """A real kill -9 at a random point of the sweep, then the same command again."""
    spec = _spec(tmp_path, sample={**BASE["sample"], "n": 1000}, chunk=128)
    store = tmp_path / "k.zarr"
    cmd = [sys.executable, "-m", "dse", "sweep", str(spec), "-o", str(store), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the session's compile cache (conftest.py)
    # Each process kills itself with SIGKILL once its k-th chunk is on disk (no wall-clock wait);
    # the stale lock it leaves must not stop the next run. 24 chunks in all.
    for k in np.random.default_rng(7).integers(1, 12, size=1):
        killed = subprocess.run(
            cmd, cwd=tmp_path, env={**env, "INFERBENCH_TEST_SIGKILL_AFTER_CHUNKS": str(k)}, capture_output=True
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert store_state(store)[0] == "partial"
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout
    ref = tmp_path / "ref.zarr"
    run_sweep(spec, ref, quiet=True)
    xr.testing.assert_identical(_load(store), _load(ref))


def test_different_spec_on_existing_store_is_refused(tmp_path):
    store = tmp_path / "s.zarr"
    run_sweep(_spec(tmp_path), store, quiet=True)
    other = _spec(tmp_path, constraints=["tpot_s <= 0.02"])
    with pytest.raises(SpecError, match="different sweep spec.*--overwrite"):
        run_sweep(other, store, quiet=True)


def test_discrete_axes_scenarios_and_relative_grid(tmp_path):
    spec = _spec(
        tmp_path,
        hardware=["a100-sxm4-80gb", "h100-sxm5-80gb"],
        scenario=[
            {"name": "prefill", "phase": "prefill", "prompt_tokens": 512, "batch": 1},
            {"name": "decode", "phase": "decode", "prompt_tokens": 512, "output_tokens": 64, "batch": 8},
        ],
        grid={"hbm_bandwidth_tb_s": {"factors": [0.5, 1, 2]}},
        sample=None,
        chunk=None,
    )
    store = tmp_path / "d.zarr"
    run_sweep(spec, store, quiet=True)
    ds = _load(store)
    assert ds.tpot_s.dims == ("hardware", "scenario", "hbm_bandwidth_tb_s_scale")
    assert list(ds.hardware.values) == ["a100-sxm4-80gb", "h100-sxm5-80gb"]
    assert list(ds.scenario.values) == ["prefill", "decode"]
    assert ds.hbm_bandwidth_tb_s_scale.attrs["units"] == "1"
    dec = ds.tpot_s.sel(scenario="decode")
    assert np.all(np.diff(dec.values, axis=1) < 0)  # more bandwidth, faster decode


def test_sampling_is_independent_of_chunking_and_lhs_is_stratified():
    for method in ("random", "sobol", "latin_hypercube"):
        spec = parse_sweep({**BASE, "grid": {}, "sample": {**BASE["sample"], "method": method, "n": 1000}})
        whole = sample_unit(spec, 0, 1000)
        parts = np.vstack([sample_unit(spec, a, min(a + 137, 1000)) for a in range(0, 1000, 137)])
        np.testing.assert_array_equal(whole, parts)
        assert whole.min() >= 0 and whole.max() < 1
        if method == "latin_hypercube":
            for j in range(whole.shape[1]):
                assert sorted(np.floor(whole[:, j] * 1000).astype(int)) == list(range(1000))
    plan = make_plan(parse_sweep({**BASE, "chunk": 64}))
    vals = [chunk_inputs(plan, ci)[0]["peak_bf16_tflops"] for ci in range(plan.chunks_per_group)]
    assert len(np.concatenate(vals)) == 900


def test_dask_local_cluster_matches_single_process(tmp_path):
    pytest.importorskip("distributed")
    # Grid keys not in alphabetical order: the store's dimensions follow the spec's order,
    # and Dask workers re-plan from the stored spec (a sorted copy once swapped the labels).
    spec = _spec(tmp_path, grid={"tp": [1, 2], "batch": [1, 4], "hbm_bandwidth_tb_s": [1, 2]}, sample=None, chunk=2)
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    run_sweep(spec, a, quiet=True)
    res = run_sweep(spec, b, quiet=True, dask=True, workers=2)
    assert res.status == "completed"
    local, dask = _load(a), _load(b)
    assert local.tpot_s.dims == ("tp", "batch", "hbm_bandwidth_tb_s")
    xr.testing.assert_identical(local, dask)  # bit for bit, labels included


def test_several_devices_shard_the_design_dimension(tmp_path):
    spec = _spec(tmp_path)
    a = tmp_path / "a.zarr"
    run_sweep(spec, a, quiet=True)
    code = textwrap.dedent(f"""
        import jax, dse
        assert jax.local_device_count() == 2
        from dse.sweep import run_sweep
        run_sweep({str(spec)!r}, {str(tmp_path / "b.zarr")!r}, quiet=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    one, two = _load(a), _load(tmp_path / "b.zarr")
    assert one.attrs == two.attrs and set(one) == set(two)
    for k in one:  # float32 programs of another shape may round differently by an ulp
        if one[k].dtype.kind == "f":
            xr.testing.assert_allclose(one[k], two[k], rtol=1e-6)
        else:
            xr.testing.assert_identical(one[k], two[k])


BAD = [
    ({"modle": "x"}, "unknown key 'modle'; did you mean 'model'"),
    (
        {"grid": {"hbm_bandwith_tb_s": [1, 2]}},
        "grid.hbm_bandwith_tb_s: unknown key 'hbm_bandwith_tb_s'.*did you mean 'hbm_bandwidth_tb_s'",
    ),
    ({"grid": {"hbm_bandwidth_tb_s": {"start": 1, "num": 3}}}, "missing key 'stop'"),
    ({"grid": {"hbm_bandwidth_tb_s": {"start": 1, "stop": 2, "num": 3, "scale": "cubic"}}}, "expected linear or log"),
    ({"grid": {"hbm_bandwidth_tb_s": [1, -2]}}, r"values\[1\] = -2: expected a number >= 0"),
    ({"grid": {"hbm_bandwidth_tb_s": [0, 2]}}, r"grid.hbm_bandwidth_tb_s = 0: expected a number > 0"),
    ({"platform": {"id": "dgx-h1000"}}, "platform.id: .*unknown platform 'dgx-h1000'"),
    ({"platform": {"tp": 1, "ep": 0}}, r"platform.ep = 0: expected an integer > 0"),
    ({"platform": {"tp": 1, "ep": 2}}, "'ep' = 2: expected 1 \\(a dense model has no experts\\)"),
    ({"batching": "contineous"}, "batching = 'contineous': expected one of static, continuous"),
    (
        {"sample": {"method": "halton", "n": 10, "axes": {"tdp_w": [1, 2]}}},
        "expected one of random, sobol, latin_hypercube",
    ),
    ({"sample": {"method": "sobol", "axes": {"tdp_w": [1, 2]}}}, "missing key 'n'"),
    ({"sample": {"n": 10, "axes": {"tdp_w": {"low": 5, "high": 1}}}}, "high = 1: expected greater than low = 5"),
    ({"constraints": ["power_w <= 700"]}, "unknown metric 'power_w'"),
    ({"constraints": ["tpot_s = 0.02"]}, "expected 'METRIC OP VALUE'"),
    ({"objectives": ["maximise tokens"]}, "expected 'maximize METRIC'"),
    ({"objectives": ["minimize area_mm2"]}, "unknown metric 'area_mm2'"),
    ({"scenario": {"prompt_tokens": 512}}, "scenario: missing key 'batch'"),
    ({"level": "best"}, "level = 'best': expected one of ideal, achievable, calibrated"),
    ({"hardware": "a100-sxm4-80gbx"}, "hardware: .*unknown hardware 'a100-sxm4-80gbx'"),
    ({"set": {"warp_size": 32}}, "set.warp_size: unknown key 'warp_size' for hardware family 'simt'"),
    ({"grid": {"model": [1, 2]}}, "expected a knob"),
    ({"outputs": ["tpot"]}, r"outputs\[0\]: unknown metric 'tpot'"),
]


@pytest.mark.parametrize("over,message", BAD)
def test_bad_specs_get_one_line_errors(tmp_path, over, message):
    data = {**BASE, **over}
    if "modle" in over:
        data.pop("model")
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError, match=message) as e:
        make_plan(load_sweep(p))
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_cli_errors_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("model: [llama-3-8b\n")
    assert main(["sweep", str(p)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert main(["sweep", str(_spec(tmp_path)), "--workers", "0"]) == 2
    assert main(["pareto", str(tmp_path / "nothing.zarr")]) == 2
    assert "not an InferBench sweep store" in capsys.readouterr().err


def test_cli_sweep_then_pareto(tmp_path, capsys):
    spec = _spec(tmp_path)
    store = tmp_path / "c.zarr"
    assert main(["sweep", str(spec), "-o", str(store), "--quiet"]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["sweep", str(spec), "-o", str(store), "--quiet"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(["pareto", str(store), "-o", str(tmp_path / "front"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "max throughput_tokens_per_s_per_chip" in out
    assert "calibration: a100-sxm4-80gb: fitted, software vllm-offline" in out
    front = xr.open_zarr(tmp_path / "front.zarr")
    assert front.sizes["front"] >= 1 and bool(front.meets_constraints.all())
    assert (tmp_path / "front.csv").exists()


STUDIES = ("asic_pareto", "asic_pareto_imc", "decode_batch", "hw_scaling")


@pytest.mark.parametrize("path", [ROOT / "sweeps" / f"{s}.yaml" for s in STUDIES], ids=lambda p: p.stem)
def test_named_studies_validate(path):
    plan = make_plan(load_sweep(path))
    assert plan.n_designs >= 1


def test_progress_is_logged_when_stderr_is_not_a_terminal():
    import io

    from dse.sweep._run import Progress

    log = io.StringIO()  # a file or a pipe: no bar, a plain line every LOG_EVERY_S seconds
    p = Progress(100, stream=log)
    p.LOG_EVERY_S = 0.0
    p.update(40)
    p.close()
    assert log.getvalue().startswith("sweep: 40.0% 40/100 designs") and "\r" not in log.getvalue()
    quiet = io.StringIO()
    q = Progress(100, stream=quiet, quiet=True)
    q.LOG_EVERY_S = 0.0
    q.update(40)
    assert quiet.getvalue() == ""
