"""The command line: tables, JSON, predict CSVs, and every user-error path (one line, exit 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import dse
from dse.cli import main

A100 = Path("models/catalog/hardware/a100-sxm4-80gb.yaml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(capsys, argv, *fragments: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    assert lines[0].startswith("inferbench: error: ")
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def test_evaluate_table(capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--model",
        "llama-3-70b",
        "--hardware",
        "h100-sxm5-80gb",
        "--tp",
        "8",
        "--phase",
        "decode",
        "--batch",
        "1,8,32,128",
        "--context",
        "2048",
    )
    assert code == 0
    assert "step ms ideal" in out and "step ms calib" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("llama-3-70b")]) == 4


def test_evaluate_json(capsys):
    code, out, _ = run(
        capsys, "evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--batch", "1,4", "--json"
    )
    assert code == 0
    recs = json.loads(out)
    assert len(recs) == 2 and recs[1]["batch"] == 4
    assert set(recs[0]["levels"]) == {"ideal", "achievable", "calibrated"}
    assert recs[0]["levels"]["calibrated"]["feasible"] is True


def test_evaluate_infeasible_is_marked(capsys):
    code, out, _ = run(capsys, "evaluate", "--model", "llama-3-70b", "--hardware", "a100-sxm4-80gb", "--tp", "1,2")
    assert code == 0
    rows = [ln for ln in out.splitlines() if ln.startswith("llama-3-70b")]
    assert rows[0].rstrip().endswith("no: memory") and rows[1].rstrip().endswith("yes")
    # No attractive cost, energy or carbon for the row that cannot run: J/token, $/1M tok and
    # gCO2/1M tok masked.
    assert rows[0].split().count("-") == 3 and "-" not in rows[1].split()


def test_evaluate_set_override_and_dataset(capsys, tmp_path):
    import xarray as xr

    out_path = tmp_path / "e.zarr"
    code, out, _ = run(
        capsys,
        "evaluate",
        "--model",
        "llama-3-8b",
        "--hardware",
        "a100-sxm4-80gb",
        "--set",
        "hbm_bandwidth_tb_s=1,4",
        "-o",
        str(out_path),
    )
    assert code == 0
    ds = xr.open_zarr(out_path, consolidated=False)
    # Stored as a sweep stores it: the spec key in its file unit, the SI name and factor in attrs.
    assert list(ds.hbm_bandwidth_tb_s.values) == [1.0, 4.0] and ds.hbm_bandwidth_tb_s.attrs["units"] == "TB/s"
    assert ds.hbm_bandwidth_tb_s.attrs["si_name"] == "hbm_bandwidth_bytes_per_s"
    assert ds.tpot_s.attrs["units"] == "s"
    # The table shows the --set axis in the spec file's key and units.
    head, _, *rows = out.splitlines()[:4]
    assert "hbm_bandwidth_tb_s" in head and "bytes_per_s" not in head
    assert [r.split()[4] for r in rows] == ["1", "4"]


def test_predict_scenarios(capsys, tmp_path):
    src = tmp_path / "s.csv"
    src.write_text(
        "model,hardware,phase,batch,prompt_tokens,context_tokens,tp,pp,dtype\n"
        "llama-3-70b,h100-sxm5-80gb,prefill,1,2048,0,8,1,bf16\n"
        "llama-3-8b,a100-sxm4-80gb,decode,8,0,1024,1,,\n"
        "llama-3-70b,h100-sxm5-80gb,decode,32,0,4096,8,1,fp8\n"
        "llama-3-70b,a100-sxm4-80gb,decode,1,0,1024,1,1,bf16\n"
    )
    dst = tmp_path / "o.csv"
    assert run(capsys, "predict", str(src), "-o", str(dst))[0] == 0
    rows = list(csv.DictReader(dst.read_text().splitlines()))
    assert [r["model"] for r in rows] == ["llama-3-70b", "llama-3-8b", "llama-3-70b", "llama-3-70b"]
    assert rows[0]["bound"] == "compute" and rows[1]["bound"] == "memory"
    assert rows[3]["feasible"] == "False" and rows[1]["feasible"] == "True"
    # One Llama-3-8B decode step at batch 8 on an A100: ≥ weights / bandwidth = 16.06 GB / 2.039 TB/s.
    assert float(rows[1]["latency_s"]) > 16.06e9 / 2.039e12
    assert all(float(r["energy_j"]) > 0 for r in rows)
    # Serving metrics of the same evaluation; power is the span's energy over its time.
    for r in rows:
        assert float(r["average_power_w"]) == pytest.approx(float(r["energy_j"]) / float(r["latency_s"]), rel=1e-5)
        assert float(r["ttft_s"]) > 0 and float(r["throughput_tokens_per_s"]) > 0 and float(r["tpot_s"]) >= 0


def test_predict_ops(capsys, tmp_path):
    src = tmp_path / "ops.csv"
    src.write_text(
        "hardware,op,m,n,k,dtype\na100-sxm4-80gb,gemm,4096,4096,4096,bf16\nh100-sxm5-80gb,gemm,1,8192,8192,fp8\n"
    )
    code, out, _ = run(capsys, "predict", "--ops", str(src))
    assert code == 0
    rows = list(csv.DictReader(out.splitlines()))
    assert float(rows[0]["latency_s"]) > 2 * 4096**3 / 312e12  # never faster than the peak


def test_catalog(capsys):
    code, out, _ = run(capsys, "catalog")
    assert code == 0
    for name in ("llama-3-405b", "mixtral-8x22b", "gpt-4-1.8t", "moe-10t", "b200", "mi300x", "tpu-v5e"):
        assert name in out


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def hw_text(**replace: str) -> str:
    lines = []
    for line in A100.read_text().splitlines():
        key = line.split(":", 1)[0].strip()
        if key in replace:
            if replace[key] is None:
                continue
            line = f"{key}: {replace[key]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_error_unknown_key_typo(capsys, tmp_path):
    p = write(tmp_path, "hw.yaml", hw_text().replace("hbm_bandwidth_tb_s", "hbm_bandwith_tb_s"))
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-8b", "--hardware", str(p)],
        str(p),
        "unknown key 'hbm_bandwith_tb_s'",
        "did you mean 'hbm_bandwidth_tb_s'",
    )


def test_error_missing_key(capsys, tmp_path):
    p = write(tmp_path, "hw.yaml", hw_text(tdp_w=None))
    assert_user_error(
        capsys, ["evaluate", "--model", "llama-3-8b", "--hardware", str(p)], str(p), "missing key 'tdp_w'", "in W"
    )


@pytest.mark.parametrize("value", ["'fast'", "true", "[1, 2]"])
def test_error_wrong_type(capsys, tmp_path, value):
    p = write(tmp_path, "hw.yaml", hw_text(hbm_capacity_gb=value))
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-8b", "--hardware", str(p)],
        str(p),
        "'hbm_capacity_gb'",
        "in GB, a number > 0",
    )


@pytest.mark.parametrize("value", ["0", "-2.0"])
def test_error_zero_or_negative(capsys, tmp_path, value):
    p = write(tmp_path, "hw.yaml", hw_text(peak_bf16_tflops=value))
    assert_user_error(
        capsys, ["evaluate", "--model", "llama-3-8b", "--hardware", str(p)], str(p), "'peak_bf16_tflops'", "> 0"
    )


def test_error_unknown_ids(capsys):
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-7b", "--hardware", "a100-sxm4-80gb"],
        "models/catalog/models",
        "unknown model 'llama-3-7b'",
    )
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-8b", "--hardware", "h100"],
        "models/catalog/hardware",
        "unknown hardware 'h100'",
    )


def test_error_unreadable_and_invalid_files(capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_user_error(
        capsys, ["evaluate", "--model", "llama-3-8b", "--hardware", str(missing)], str(missing), "cannot read"
    )
    bad = write(tmp_path, "bad.yaml", "name: [unclosed\n")
    assert_user_error(capsys, ["evaluate", "--model", "llama-3-8b", "--hardware", str(bad)], str(bad), "not valid YAML")
    lst = write(tmp_path, "list.yaml", "- 1\n- 2\n")
    assert_user_error(capsys, ["evaluate", "--model", "llama-3-8b", "--hardware", str(lst)], str(lst), "mapping")


def test_error_model_spec_paths(capsys, tmp_path):
    good = Path("models/catalog/models/llama-3-8b.yaml").read_text()
    p = write(tmp_path, "m.yaml", good.replace("n_kv_heads: 8", "n_kv_heads: 7"))
    assert_user_error(
        capsys,
        ["evaluate", "--model", str(p), "--hardware", "a100-sxm4-80gb"],
        str(p),
        "'n_kv_heads'",
        "divisor of n_heads",
    )
    p = write(tmp_path, "m2.yaml", good.replace("ffn: gated", "ffn: swiglu"))
    assert_user_error(
        capsys, ["evaluate", "--model", str(p), "--hardware", "a100-sxm4-80gb"], str(p), "'ffn'", "gated, plain"
    )
    p = write(tmp_path, "m3.yaml", good.replace("n_layers: 32", "n_layers: 32.5"))
    assert_user_error(
        capsys, ["evaluate", "--model", str(p), "--hardware", "a100-sxm4-80gb"], str(p), "'n_layers'", "integer"
    )


def test_hf_config_json_is_a_model(capsys, tmp_path):
    cfg = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
        "_name_or_path": "meta-llama/Meta-Llama-3-8B",
    }
    p = write(tmp_path, "config.json", json.dumps(cfg))
    import dse
    from models.workloads import total_params

    m = dse.load_model(str(p))
    assert float(total_params(m.spec)) == float(total_params(dse.load_model("llama-3-8b").spec))
    del cfg["hidden_size"]
    p2 = write(tmp_path, "c2.json", json.dumps(cfg))
    assert_user_error(
        capsys, ["evaluate", "--model", str(p2), "--hardware", "a100-sxm4-80gb"], str(p2), "'hidden_size'"
    )
    p3 = write(tmp_path, "c3.json", "{not json")
    assert_user_error(
        capsys, ["evaluate", "--model", str(p3), "--hardware", "a100-sxm4-80gb"], str(p3), "not valid JSON"
    )


def test_error_bad_arguments(capsys):
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--batch", "0"],
        "--batch = 0",
        "expected a number > 0",
    )
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--tp", "two"],
        "--tp",
        "not a number",
    )
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--dtype", "fp7"],
        "unknown dtype 'fp7'",
    )
    assert_user_error(
        capsys,
        ["evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--set", "hbm_bandwith_tb_s=2"],
        "--set",
        "did you mean 'hbm_bandwidth_tb_s'",
    )
    assert_user_error(capsys, ["evaluate", "--hardware", "a100-sxm4-80gb"], "--model")
    assert_user_error(capsys, ["frobnicate"], "invalid choice")


def test_error_predict_csv(capsys, tmp_path):
    p = write(
        tmp_path, "s.csv", "model,hardware,phase,batch,prompt_tokens,tp\nllama-3-8b,a100-sxm4-80gb,prefill,1,8,1\n"
    )
    assert_user_error(capsys, ["predict", str(p)], str(p), "missing column 'context_tokens'")
    p = write(
        tmp_path,
        "s2.csv",
        "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\nllama-3-8b,a100-sxm4-80gb,prefill,x,8,0,1\n",
    )
    assert_user_error(capsys, ["predict", str(p)], str(p), "row 2", "column 'batch' = 'x'", "expected a number")
    p = write(
        tmp_path,
        "s3.csv",
        "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\nllama-3-8b,a100-sxm4-80gb,training,1,8,0,1\n",
    )
    assert_user_error(capsys, ["predict", str(p)], str(p), "'phase'", "prefill, decode, request")
    p = write(
        tmp_path,
        "s4.csv",
        "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\nllama-9b,a100-sxm4-80gb,prefill,1,8,0,1\n",
    )
    assert_user_error(capsys, ["predict", str(p)], str(p), "unknown model 'llama-9b'")
    p = write(tmp_path, "o.csv", "hardware,op,m,n,k,dtype\na100-sxm4-80gb,conv,1,1,1,bf16\n")
    assert_user_error(capsys, ["predict", "--ops", str(p)], str(p), "'op'", "gemm")
    assert_user_error(capsys, ["predict", str(tmp_path / "none.csv")], "cannot read")


def test_module_entry_point():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dse", "--version"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.startswith("inferbench ")


def test_the_command_line_loads_no_dataset_store_plot_or_fit_stack_until_a_command_needs_it():
    """A printed query's start-up is JAX and the specs: xarray (with the dask it probes), zarr,
    matplotlib and optax load only in the commands that use them (README, Speed)."""
    import subprocess
    import sys

    probe = "import sys, dse.cli._main; print(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(r.stdout.split())
    assert "jax" in loaded
    assert not loaded & {"xarray", "dask", "pandas", "zarr", "matplotlib", "optax"}


def test_predict_intervals_and_uncalibrated(capsys, tmp_path):
    src = write(
        tmp_path,
        "s.csv",
        "model,hardware,phase,batch,prompt_tokens,context_tokens,tp,framework\n"
        "llama-3-8b,a100-sxm4-40gb,prefill,4,1024,0,1,\n"
        "llama-3-8b,tpu-v5e,decode,1,0,512,1,\n"
        "llama-3-8b,a100-sxm4-40gb,prefill,4,1024,0,1,deepspeed-mii\n",
    )
    code, out, _ = run(capsys, "predict", str(src), "--intervals")
    assert code == 0
    rows = list(csv.DictReader(out.splitlines()))
    lo, mid, hi = (float(rows[0][k]) for k in ("latency_lo_s", "latency_s", "latency_hi_s"))
    assert lo < mid < hi
    assert rows[1]["latency_lo_s"] == ""  # no measurements behind a TPU prediction: no interval
    # Every row names its software profile; DeepSpeed-MII's fitted overheads are larger than vLLM's.
    assert [r["framework"] for r in rows] == ["vllm-offline", "none", "deepspeed-mii"]
    assert float(rows[2]["latency_s"]) > mid and float(rows[2]["latency_hi_s"]) > float(rows[2]["latency_s"])
    bad = write(tmp_path, "b.csv", src.read_text().replace("deepspeed-mii", "deepspeed"))
    assert_user_error(capsys, ["predict", str(bad)], str(bad), "row 4", "'framework'", "tensorrt-llm")
    code, out, _ = run(capsys, "predict", str(src), "--uncalibrated")
    raw = list(csv.DictReader(out.splitlines()))
    assert "latency_lo_s" not in raw[0] and float(raw[0]["latency_s"]) != mid
    assert_user_error(capsys, ["predict", str(src), "--intervals", "1.5"], "--interval", "between 0 and 1")


def test_evaluate_uncalibrated(capsys):
    code, out, _ = run(capsys, "evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-40gb", "--uncalibrated")
    assert code == 0 and "achievable (--uncalibrated)" in out and "a100-sxm4-40gb: datasheet, none" in out
    assert "precision: a100-sxm4-40gb: bf16 GEMMs at the BF16 rate" in out


def test_evaluate_mixed_precision_and_fallback_note(capsys):
    # Weight-only INT4 with an FP8 KV cache on an A100 (no FP8 tensor cores: the note says so
    # for an all-FP8 run; W4A16 GEMMs compute in BF16).
    base = ["evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--phase", "decode", "--uncalibrated"]
    code, out, _ = run(capsys, *base, "--weight-dtype", "int4", "--kv-dtype", "fp8")
    assert code == 0 and "weights int4 / activations bf16 / KV fp8" in out
    assert "bf16 GEMMs at the BF16 rate" in out
    mem = {r: float(ln.split()[-2]) for r, ln in (("w4", next(x for x in out.splitlines() if x.startswith("llama"))),)}
    code, out, _ = run(capsys, *base)
    bf16_mem = float(next(x for x in out.splitlines() if x.startswith("llama")).split()[-2])
    assert mem["w4"] < 0.35 * bf16_mem  # int4 weights: a quarter of the bf16 bytes
    assert_user_error(capsys, [*base, "--kv-dtype", "fp3"], "kv_dtype", "fp3")


def test_evaluate_names_and_switches_the_framework(capsys):
    args = ["evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-40gb", "--batch", "32", "--json"]
    code, out, _ = run(capsys, *args)
    default = json.loads(out)[0]
    assert (default["calibration"], default["framework"]) == ("fitted", "vllm-offline")
    code, out, _ = run(capsys, *args, "--framework", "tensorrt-llm")
    trt = json.loads(out)[0]
    assert trt["framework"] == "tensorrt-llm"
    # Only the calibrated level changes; TensorRT-LLM's fitted overheads are vLLM's or smaller.
    assert trt["levels"]["achievable"] == default["levels"]["achievable"]
    assert trt["levels"]["calibrated"]["latency_s"] < default["levels"]["calibrated"]["latency_s"]
    assert_user_error(capsys, [*args, "--framework", "trt"], "--framework", "unknown framework 'trt'", "tensorrt-llm")


def test_predict_request_rows_are_whole_requests(capsys, tmp_path):
    # phase=request: the batch's prefill plus output_tokens decode steps, the latency_s and
    # energy_j that evaluate reports for the same scenario.
    src = tmp_path / "r.csv"
    src.write_text(
        "model,hardware,phase,batch,prompt_tokens,context_tokens,tp,output_tokens\n"
        "llama-3-8b,h100-sxm5-80gb,request,4,512,0,1,64\n"
        "llama-3-8b,h100-sxm5-80gb,decode,4,0,512,1,\n"
    )
    dst = tmp_path / "o.csv"
    assert run(capsys, "predict", str(src), "-o", str(dst))[0] == 0
    rows = list(csv.DictReader(dst.read_text().splitlines()))
    ds = dse.evaluate(
        "llama-3-8b", "h100-sxm5-80gb", levels=["calibrated"], batch=4, prompt_tokens=512, output_tokens=64
    ).sel(level="calibrated")
    assert float(rows[0]["latency_s"]) == pytest.approx(float(ds.latency_s), rel=1e-5)
    assert float(rows[0]["energy_j"]) == pytest.approx(float(ds.energy_j), rel=1e-5)
    assert float(rows[1]["latency_s"]) < float(rows[0]["latency_s"]) / 64  # one step of the 64
    bad = tmp_path / "b.csv"
    bad.write_text(src.read_text().replace(",64\n", ",\n", 1))
    assert_user_error(capsys, ["predict", str(bad)], str(bad), "row 2", "'output_tokens'")


def test_image_workloads_report_per_image(capsys):
    code, out, _ = run(
        capsys, "evaluate", "--model", "vit-l-16", "--hardware", "a100-sxm4-80gb", "--batch", "8", "--json"
    )
    assert code == 0
    cal = json.loads(out)[0]["levels"]["calibrated"]
    assert cal["requests_per_s"] == pytest.approx(8 / cal["latency_s"], rel=1e-9)  # images/s
    assert cal["j_per_request"] == pytest.approx(cal["energy_j"] / 8, rel=1e-9)
    assert_user_error(capsys, ["evaluate", "--model", "llama-3-8b", "--hardware", "a100-sxm4-80gb", "--steps", "4"],
                      "--steps", "only for vision")  # fmt: skip
    assert_user_error(capsys, ["evaluate", "--model", "llama-3-8b,vit-l-16", "--hardware", "a100-sxm4-80gb"],
                      "token and image workloads mixed")  # fmt: skip


def test_every_subcommand_has_a_description_with_an_example_and_every_option_help():
    import argparse

    from dse.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        assert "Example: inferbench " + name in (parser.description or ""), name
        for action in parser._actions:
            assert action.help, (name, action.option_strings or action.dest)


def test_set_list_prints_the_keys_of_the_chosen_chips_family(capsys):
    code, out, _ = run(capsys, "evaluate", "--model", "llama-3-8b", "--hardware", "tpu-v5e", "--set", "list")
    assert code == 0 and out.startswith("systolic: ") and "array_size" in out and "hbm_bandwidth_tb_s [TB/s]" in out


def test_resident_engine_answers_as_a_local_run(tmp_path, capsys, monkeypatch):
    """`inferbench daemon start`: queries are answered by the engine, in the caller's working
    directory, with the same output, errors and exit codes as a local run; then it stops."""
    import os
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    # Its own socket folder: no other test's command is forwarded to this engine.
    env = {**os.environ, "INFERBENCH_DAEMON_DIR": str(tmp_path / "sockets"), "PYTHONPATH": str(root)}
    env.pop("INFERBENCH_DAEMON", None)

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dse", *argv], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    shutil.copy(root / A100, tmp_path / "chip.yaml")  # a relative path: resolved in the caller's directory
    query = ("evaluate", "--model", "llama-3-8b", "--hardware", "chip.yaml", "--batch", "1,8", "--json")
    assert cli("daemon", "status").returncode == 1
    started = cli("daemon", "start", "--idle-min", "5")
    assert started.returncode == 0, started.stderr
    try:
        answered = cli(*query)
        assert "1 queries" in cli("daemon", "status").stdout  # it went through the engine
        bad = cli("evaluate", "--model", "llama-3-8", "--hardware", "chip.yaml")
    finally:
        cli("daemon", "stop")
    assert cli("daemon", "status").returncode == 1  # stopped, its socket removed
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, *query)  # the same query run here
    assert answered.returncode == code == 0
    assert answered.stdout == out and json.loads(out)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "llama-3-8" in bad.stderr


def test_every_metric_of_a_phase_describes_that_phase(tmp_path, capsys):
    """A decode step's JSON and dataset hold the step (not the prefill of its context): its
    latency is the step, as in the table and in predict; its FLOPs are one token's."""
    q = ("evaluate", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--batch", "1", "--context", "2048")
    code, out, _ = run(capsys, *q, "--phase", "decode", "--json")
    step = json.loads(out)[0]["levels"]["calibrated"]
    assert code == 0 and step["latency_s"] == step["tpot_s"]
    assert "ttft_s" not in step and "prefill_flops" not in step and "usd_per_mtok" not in step
    # 2 FLOPs per parameter and token (8.0e9 parameters) plus attention over 2,048 positions: ~1.7e10
    assert 1.5e10 < step["flops"] < 2.5e10
    scen = tmp_path / "scen.csv"
    scen.write_text(
        "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\nllama-3-8b,h100-sxm5-80gb,decode,1,0,2048,1\n"
    )
    code, out, _ = run(capsys, "predict", str(scen))
    predicted = dict(zip(*[line.split(",") for line in out.strip().splitlines()[:2]], strict=False))
    assert code == 0 and float(predicted["latency_s"]) == pytest.approx(step["latency_s"], rel=1e-5)  # CSV: 6 digits
    code, out, _ = run(capsys, *q[:-2], "--prompt-tokens", "2048", "--phase", "prefill", "--json")
    pre = json.loads(out)[0]["levels"]["calibrated"]
    assert pre["latency_s"] == pre["ttft_s"] and "tpot_s" not in pre and pre["flops"] > 100 * step["flops"]
