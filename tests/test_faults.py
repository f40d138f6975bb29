"""Fault injection: bad inputs and damaged stores across every subcommand.

Each case runs the command line in-process and must end with exit code 2, exactly one line on
stderr (``inferbench: error: …`` naming the file, key or argument) and no traceback, and must
leave every file of the workspace — the user's files and the tool's own stores — exactly as
it was (nothing touched, nothing added).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dse.cli import main
from dse.cli._bench import FAMILY_BASE, random_family_knobs
from dse.engine import LEVELS, make_config, run_designs, software_levels
from dse.specs import SpecError, load_hardware, load_model
from dse.sweep import run_sweep
from dse.sweep._lock import store_lock

E = ["evaluate", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"]
SWEEP = {
    "name": "faults",
    "model": "llama-3-8b",
    "hardware": "h100-sxm5-80gb",
    "scenario": {"prompt_tokens": 256, "output_tokens": 16, "batch": 1},
    "grid": {"tp": [1, 2], "batch": [1, 4]},
    "objectives": ["maximize throughput_tokens_per_s_per_chip", "minimize j_per_token"],
    "chunk": 2,
}
H100 = yaml.safe_load((Path(__file__).resolve().parents[1] / "models/catalog/hardware/h100-sxm5-80gb.yaml").read_text())


def _sweep(**over) -> str:
    return yaml.safe_dump({**SWEEP, **over}, sort_keys=False)


def _sample(axes: dict, n: int = 10) -> str:
    data = {k: v for k, v in SWEEP.items() if k != "grid"}
    return yaml.safe_dump({**data, "sample": {"n": n, "axes": axes}}, sort_keys=False)


FILES: dict[str, str | bytes] = {
    "notes.txt": "my notes\n",
    "unsorted.csv": "arrival_s,prompt_tokens,output_tokens\n0,100,10\n2,100,10\n1,100,10\n",
    "negative.csv": "arrival_s,prompt_tokens,output_tokens\n-1,100,10\n2,100,10\n",
    "nocols.csv": "time,prompt,output\n0,100,10\n",
    "words.csv": "arrival_s,prompt_tokens,output_tokens\n0,many,10\n1,100,10\n",
    "front.csv": "the user's own table\n",
    "mine/data.txt": "my data\n",
    "bin.yaml": b"\x00\x01\xff\xfe\x00",
    "latin.yaml": b"name: caf\xe9\n",
    "list.yaml": "- a\n- b\n",
    "broken.yaml": "name: [unclosed\n",
    "sweep.yaml": _sweep(),
    "other.yaml": _sweep(grid={"tp": [1, 2], "batch": [1, 8]}),
    "typo_key.yaml": _sweep(modle="x"),
    "grid_typo.yaml": _sweep(grid={"hbm_bandwith_tb_s": [1, 2]}),
    "grid_tp3.yaml": _sweep(grid={"tp": [1, 3]}),
    "grid_frac_batch.yaml": _sweep(grid={"batch": [1.5, 2]}),
    "grid_negative.yaml": _sweep(grid={"hbm_bandwidth_tb_s": [-1, 2]}),
    "sample_frac_batch.yaml": _sample({"batch": {"low": 1, "high": 64}}),
    "sample_tp.yaml": _sample({"tp": {"low": 1, "high": 8, "integer": True}}),
    "sample_huge.yaml": _sample({"hbm_bandwidth_tb_s": {"low": 1, "high": 4}}, n=10**12),
    "sample_many.yaml": _sample({"hbm_bandwidth_tb_s": {"low": 1, "high": 4}}, n=10**5),
    "sample_adc.yaml": _sample({"adc_bits": {"low": 1, "high": 2000, "integer": True}}).replace(
        "h100-sxm5-80gb", "dmatrix-corsair"
    ),
    "bad_objective.yaml": _sweep(objectives=["maximize speed", "minimize j_per_token"]),
    "bad_level.yaml": _sweep(level="perfect"),
    "bad_dtype.yaml": _sweep(dtype="fp3"),
    "scen.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n"
    "llama-3-8b,h100-sxm5-80gb,decode,1,0,512,1\n",
    "extra_cell.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n"
    "llama-3-8b,h100-sxm5-80gb,decode,1,0,512,1,9\n",
    "missing_col.csv": "model,hardware,phase,batch\nllama-3-8b,h100-sxm5-80gb,decode,1\n",
    "header_only.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n",
    "bad_cell.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n"
    "llama-3-8b,h100-sxm5-80gb,decode,abc,0,512,1\n",
    "zero_batch.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n"
    "llama-3-8b,h100-sxm5-80gb,decode,0,0,512,1\n",
    "unknown_model.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n"
    "llama-9,h100-sxm5-80gb,decode,1,0,512,1\n",
    "unknown_hw.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\nllama-3-8b,h1000,decode,1,0,512,1\n",
    "bad_phase.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n"
    "llama-3-8b,h100-sxm5-80gb,train,1,0,512,1\n",
    "tp3.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp\n"
    "llama-3-70b,h100-sxm5-80gb,decode,1,0,512,3\n",
    "bin.csv": b"\xff\xfe\x00\x01",
    "ops_huge.csv": "hardware,op,m,n,k,dtype\nh100-sxm5-80gb,gemm,1e300,4096,4096,bf16\n",
    "ops_conv.csv": "hardware,op,m,n,k,dtype\nh100-sxm5-80gb,conv,16,4096,4096,bf16\n",
    "ops_dtype.csv": "hardware,op,m,n,k,dtype\nh100-sxm5-80gb,gemm,16,4096,4096,fp3\n",
    "ops_frac.csv": "hardware,op,m,n,k,dtype\nh100-sxm5-80gb,gemm,16.5,4096,4096,bf16\n",
    "t5.json": json.dumps(
        {"model_type": "t5", "is_encoder_decoder": True, "d_model": 512, "num_heads": 8, "num_layers": 6}
    ),
    "odd_heads.json": json.dumps(
        {
            "model_type": "llama",
            "hidden_size": 100,
            "num_attention_heads": 3,
            "num_hidden_layers": 2,
            "intermediate_size": 256,
            "vocab_size": 1000,
        }
    ),
    "kv_not_divisor.json": json.dumps(
        {
            "model_type": "llama",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_key_value_heads": 5,
            "num_hidden_layers": 2,
            "intermediate_size": 256,
            "vocab_size": 1000,
        }
    ),
    "no_heads.json": json.dumps({"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 24}),
    "model_missing.yaml": "name: tiny\nn_layers: 2\n",
    "hw_typo.yaml": yaml.safe_dump({**H100, "hbm_bandwith_tb_s": 3.35}),
    "hw_unit.yaml": yaml.safe_dump({**H100, "hbm_bandwidth_tb_s": "3.35 TB/s"}),
    "hw_idle.yaml": yaml.safe_dump({**H100, "idle_w": 900}),
    "hw_family.yaml": yaml.safe_dump({**H100, "family": "gpu"}),
    "hw_negative.yaml": yaml.safe_dump({**H100, "tdp_w": -700}),
    # silent acceptance (issue 24)
    "hw_duplicate.yaml": yaml.safe_dump(H100) + "tdp_w: 350\n",
    "sweep_duplicate.yaml": _sweep() + "chunk: 4\n",
    "dup.json": '{"model_type": "llama", "hidden_size": 64, "hidden_size": 128}',
    "unknown_type.json": json.dumps(
        {
            "model_type": "newfangled",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 11008,
            "vocab_size": 32000,
            "num_fancy_blocks": 4,
        }
    ),
    "no_type.json": json.dumps(
        {
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 11008,
            "vocab_size": 32000,
        }  # fmt: skip
    ),
    "vocab_huge.json": json.dumps(
        {
            "model_type": "llama",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 11008,
            "vocab_size": 1e30,
        }  # fmt: skip
    ),
    "ffn_null.json": json.dumps(
        {
            "model_type": "llama",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_hidden_layers": 2,
            "intermediate_size": None,
            "vocab_size": 32000,
        }  # fmt: skip
    ),
    "moe_zero.json": json.dumps(
        {
            "model_type": "mixtral",
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 14336,
            "vocab_size": 32000,
            "num_local_experts": 0,
        }  # fmt: skip
    ),
    "width_text.json": json.dumps(
        {
            "model_type": "llama",
            "hidden_size": "4096",
            "num_attention_heads": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 11008,
            "vocab_size": 32000,
        }  # fmt: skip
    ),
    "layers_huge.yaml": yaml.safe_dump(
        {
            "name": "x",
            "n_layers": 1e9,
            "d_model": 64,
            "n_heads": 2,
            "n_kv_heads": 2,
            "d_ff": 64,
            "vocab_size": 10,
            "ffn": "gated",
        }  # fmt: skip
    ),
    "dtype_typo.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp,dtpye\n"
    "llama-3-8b,h100-sxm5-80gb,decode,1,0,512,1,fp8\n",
    "dup_col.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp,tp\n"
    "llama-3-8b,h100-sxm5-80gb,decode,1,0,512,1,2\n",
    "has_output.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp,latency_s\n"
    "llama-3-8b,h100-sxm5-80gb,decode,1,0,512,1,0.5\n",
    "ops_extra.csv": "hardware,op,m,n,k,dtype,note\nh100-sxm5-80gb,gemm,16,4096,4096,bf16,x\n",
    "ops_output.csv": "hardware,op,m,n,k,dtype,energy_j\nh100-sxm5-80gb,gemm,16,4096,4096,bf16,1\n",
    "dp_row.csv": "model,hardware,phase,batch,prompt_tokens,context_tokens,tp,dp\n"
    "llama-3-8b,h100-sxm5-80gb,decode,1,0,512,1,8\n",
}

# (id, argv with {w} for the workspace, a regex the one stderr line must match)
CASES = [
    # evaluate: ids, files, numbers, physics, outputs
    ("eval-empty-models", [*E[:1], "--model", ",", "--hardware", "h100-sxm5-80gb"], "--model: empty list"),
    ("eval-empty-hw", ["evaluate", "--model", "llama-3-8b", "--hardware", " , "], "--hardware: empty list"),
    ("eval-model-typo", ["evaluate", "--model", "llama-3-8", "--hardware", "h100-sxm5-80gb"], "unknown model"),
    ("eval-hw-typo", ["evaluate", "--model", "llama-3-8b", "--hardware", "h100-sxm"], "unknown hardware"),
    ("eval-model-binary", ["evaluate", "--model", "{w}/bin.yaml", "--hardware", "h100-sxm5-80gb"], "not valid UTF-8"),
    ("eval-model-latin1", ["evaluate", "--model", "{w}/latin.yaml", "--hardware", "h100-sxm5-80gb"], "UTF-8"),
    ("eval-hw-binary", ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/bin.yaml"], "UTF-8"),
    ("eval-model-list", ["evaluate", "--model", "{w}/list.yaml", "--hardware", "h100-sxm5-80gb"], "mapping"),
    ("eval-model-broken", ["evaluate", "--model", "{w}/broken.yaml", "--hardware", "h100-sxm5-80gb"], "YAML"),
    ("eval-model-folder", ["evaluate", "--model", "{w}/mine", "--hardware", "h100-sxm5-80gb"], "folder"),
    ("eval-model-missing", ["evaluate", "--model", "{w}/none.json", "--hardware", "h100-sxm5-80gb"], "no such"),
    ("eval-model-fields", ["evaluate", "--model", "{w}/model_missing.yaml", "--hardware", "a100-sxm4-80gb"], "missing"),
    ("eval-t5", ["evaluate", "--model", "{w}/t5.json", "--hardware", "h100-sxm5-80gb"], "encoder-decoder"),
    ("eval-head-dim", ["evaluate", "--model", "{w}/odd_heads.json", "--hardware", "h100-sxm5-80gb"], "n_heads"),
    ("eval-kv-heads", ["evaluate", "--model", "{w}/kv_not_divisor.json", "--hardware", "h100-sxm5-80gb"], "n_kv"),
    ("eval-mamba", ["evaluate", "--model", "{w}/no_heads.json", "--hardware", "h100-sxm5-80gb"], "state_size"),
    ("eval-hw-key-typo", ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/hw_typo.yaml"], "hbm_bandwith"),
    ("eval-hw-unit", ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/hw_unit.yaml"], "hbm_bandwidth_tb_s"),
    ("eval-hw-idle", ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/hw_idle.yaml"], "idle_w"),
    ("eval-hw-family", ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/hw_family.yaml"], "family"),
    ("eval-hw-negative", ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/hw_negative.yaml"], "tdp_w"),
    ("eval-tp3-70b", ["evaluate", "--model", "llama-3-70b", "--hardware", "h100-sxm5-80gb", "--tp", "3"], "--tp = 3"),
    ("eval-tp0", [*E, "--tp", "0"], "--tp"),
    ("eval-tp-frac", [*E, "--tp", "1.5"], "--tp"),
    ("eval-pp0", [*E, "--pp", "0"], "--pp"),
    ("eval-pp-layers", [*E, "--pp", "64"], "--pp = 64"),
    ("eval-batch-frac", [*E, "--batch", "1.5"], "--batch"),
    ("eval-batch-neg", [*E, "--batch=-1"], "--batch"),
    ("eval-batch-nan", [*E, "--batch", "nan"], "--batch"),
    ("eval-batch-huge", [*E, "--batch", "1e300"], "--batch"),
    ("eval-batch-text", [*E, "--batch", "eight"], "--batch"),
    ("eval-prompt0", [*E, "--prompt-tokens", "0"], "--prompt-tokens"),
    ("eval-output-text", [*E, "--output-tokens", "abc"], "--output-tokens"),
    ("eval-phase", [*E, "--phase", "train"], "phase"),
    ("eval-dtype", [*E, "--dtype", "fp3"], "dtype"),
    ("eval-lifetime-nan", [*E, "--lifetime-years", "nan"], "--lifetime-years"),
    ("eval-pue-inf", [*E, "--pue", "inf"], "--pue"),
    ("eval-kwh-neg", [*E, "--usd-per-kwh=-1"], "--usd-per-kwh"),
    ("eval-set-tdp-idle", [*E, "--set", "tdp_w=10"], "idle power"),
    ("eval-set-adc", [*E[:3], "--hardware", "dmatrix-corsair", "--set", "adc_bits=2000"], "adc_bits"),
    ("eval-set-unknown", [*E, "--set", "nonsense=1"], "nonsense"),
    ("eval-set-typo", [*E, "--set", "hbm_bandwith_tb_s=2"], "hbm_bandwidth_tb_s"),
    ("eval-set-text", [*E, "--set", "tdp_w=abc"], "tdp_w"),
    ("eval-set-nan", [*E, "--set", "tdp_w=nan"], "tdp_w"),
    # parallelism and serving (issue 10)
    ("eval-ep-dense", [*E, "--ep", "2"], "dense model has no experts"),
    (
        "eval-ep-not-divisor",
        ["evaluate", "--model", "mixtral-8x7b", "--hardware", "h100-sxm5-80gb", "--ep", "3"],
        "divisor of the model's 8 experts",
    ),
    ("eval-sp0", [*E, "--sp", "0"], "--sp"),
    ("eval-dp-frac", [*E, "--dp", "1.5"], "--dp"),
    ("eval-chunk-gt-prompt", [*E, "--prompt-tokens", "512", "--chunk-tokens", "1024"], "at most the prompt"),
    ("eval-acceptance", [*E, "--draft-tokens", "4", "--acceptance", "1.2"], "--acceptance"),
    ("eval-acceptance-alone", [*E, "--acceptance", "0.5"], "--draft-tokens and --acceptance"),
    ("eval-disaggregate", [*E, "--disaggregate", "2"], "--disaggregate"),
    (
        "eval-imbalance",
        [*E[:3], "--hardware", "h100-sxm5-80gb", "--expert-imbalance", "0.5"],
        "--expert-imbalance = 0.5",
    ),
    ("eval-hot-share", [*E[:3], "--hardware", "mi300x", "--expert-hot-share", "1.5"], "--expert-hot-share = 1.5"),
    ("eval-overlap", [*E, "--overlap", "1.5"], "overlap"),
    ("eval-platform-typo", [*E, "--platform", "dgx-h10"], "unknown platform"),
    (
        "eval-no-scale-out",
        ["evaluate", "--model", "llama-3-8b", "--hardware", "wse-3", "--platform", "genz-sram-wafer", "--tp", "2"],
        "no scale-out level",
    ),
    (
        "plan-use-case",
        ["plan", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--max-chips", "8", "--use-case", "chatt"],
        "unknown use case",
    ),
    (
        "plan-chips",
        ["plan", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--max-chips", "0"],
        "--max-chips",
    ),
    ("eval-out-user-file", [*E, "-o", "{w}/notes.txt"], "did not write"),
    ("eval-out-user-folder", [*E, "-o", "{w}/mine"], "did not write"),
    ("eval-out-parent-file", [*E, "-o", "{w}/notes.txt/x.zarr"], "cannot create the folder"),
    ("eval-out-foreign-nc", [*E, "-o", "{w}/mine/data.txt"], "did not write"),
    # predict
    ("predict-missing", ["predict", "{w}/none.csv"], "no such|cannot read"),
    ("predict-binary", ["predict", "{w}/bin.csv"], "UTF-8"),
    ("predict-extra-cell", ["predict", "{w}/extra_cell.csv"], "row 2: 8 cells"),
    ("predict-missing-col", ["predict", "{w}/missing_col.csv"], "missing column"),
    ("predict-header-only", ["predict", "{w}/header_only.csv"], "no rows"),
    ("predict-bad-cell", ["predict", "{w}/bad_cell.csv"], "column 'batch'"),
    ("predict-zero-batch", ["predict", "{w}/zero_batch.csv"], "column 'batch'"),
    ("predict-unknown-model", ["predict", "{w}/unknown_model.csv"], "unknown model"),
    ("predict-unknown-hw", ["predict", "{w}/unknown_hw.csv"], "unknown hardware"),
    ("predict-bad-phase", ["predict", "{w}/bad_phase.csv"], "phase"),
    ("predict-tp3", ["predict", "{w}/tp3.csv"], "'tp' = 3"),
    ("predict-ops-huge", ["predict", "--ops", "{w}/ops_huge.csv"], "column 'm'"),
    ("predict-ops-conv", ["predict", "--ops", "{w}/ops_conv.csv"], "column 'op'"),
    ("predict-ops-dtype", ["predict", "--ops", "{w}/ops_dtype.csv"], "dtype"),
    ("predict-ops-frac", ["predict", "--ops", "{w}/ops_frac.csv"], "column 'm'"),
    ("predict-out-user-file", ["predict", "{w}/scen.csv", "-o", "{w}/notes.txt"], "did not write"),
    # sweep
    ("sweep-missing", ["sweep", "{w}/none.yaml"], "cannot read"),
    ("sweep-binary", ["sweep", "{w}/bin.yaml"], "UTF-8"),
    ("sweep-latin1", ["sweep", "{w}/latin.yaml"], "UTF-8"),
    ("sweep-broken", ["sweep", "{w}/broken.yaml"], "not valid YAML"),
    ("sweep-list", ["sweep", "{w}/list.yaml"], "mapping"),
    ("sweep-typo-key", ["sweep", "{w}/typo_key.yaml"], "modle"),
    ("sweep-grid-typo", ["sweep", "{w}/grid_typo.yaml"], "hbm_bandwith_tb_s"),
    ("sweep-grid-tp3", ["sweep", "{w}/grid_tp3.yaml", "-o", "{w}/new.zarr"], "grid.tp = 3"),
    ("sweep-grid-frac-batch", ["sweep", "{w}/grid_frac_batch.yaml", "-o", "{w}/new.zarr"], "batch"),
    ("sweep-grid-negative", ["sweep", "{w}/grid_negative.yaml", "-o", "{w}/new.zarr"], "hbm_bandwidth_tb_s"),
    ("sweep-sample-frac-batch", ["sweep", "{w}/sample_frac_batch.yaml", "-o", "{w}/new.zarr"], "integer: true"),
    ("sweep-sample-tp", ["sweep", "{w}/sample_tp.yaml", "-o", "{w}/new.zarr"], "grid axis"),
    ("sweep-sample-huge", ["sweep", "{w}/sample_huge.yaml", "-o", "{w}/new.zarr"], "chunks"),
    ("sweep-sample-adc", ["sweep", "{w}/sample_adc.yaml", "-o", "{w}/new.zarr"], "adc_bits"),
    ("sweep-bad-objective", ["sweep", "{w}/bad_objective.yaml"], "speed"),
    ("sweep-bad-level", ["sweep", "{w}/bad_level.yaml"], "level"),
    ("sweep-bad-dtype", ["sweep", "{w}/bad_dtype.yaml"], "dtype"),
    ("sweep-out-user-folder", ["sweep", "{w}/sweep.yaml", "-o", "{w}/mine", "--overwrite"], "not an InferBench"),
    ("sweep-out-user-file", ["sweep", "{w}/sweep.yaml", "-o", "{w}/notes.txt", "--overwrite"], "not an InferBench"),
    ("sweep-out-parent-file", ["sweep", "{w}/sweep.yaml", "-o", "{w}/notes.txt/s.zarr"], "cannot create"),
    ("sweep-chunk0", ["sweep", "{w}/sweep.yaml", "--chunk", "0"], "--chunk"),
    ("sweep-workers0", ["sweep", "{w}/sweep.yaml", "--workers", "0"], "--workers"),
    ("sweep-repair-overwrite", ["sweep", "{w}/sweep.yaml", "-o", "{w}/s.zarr", "--repair", "--overwrite"], "one of"),
    ("sweep-different-spec", ["sweep", "{w}/other.yaml", "-o", "{w}/s.zarr"], "different sweep spec"),
    ("sweep-locked", ["sweep", "{w}/sweep.yaml", "-o", "{w}/locked.zarr"], "is being written by process"),
    ("sweep-finished-damaged", ["sweep", "{w}/sweep.yaml", "-o", "{w}/holes.zarr"], "damaged: tpot_s .* --repair"),
    (
        "sweep-finished-stray",
        ["sweep", "{w}/sweep.yaml", "-o", "{w}/stray.zarr"],
        "not a chunk of this store.*--repair",
    ),
    ("sweep-flags-lost", ["sweep", "{w}/sweep.yaml", "-o", "{w}/noflags.zarr"], "--repair"),
    # pareto and plot
    ("pareto-missing", ["pareto", "{w}/none.zarr"], "not an InferBench sweep store"),
    ("pareto-user-file", ["pareto", "{w}/notes.txt"], "not an InferBench sweep store"),
    ("pareto-user-folder", ["pareto", "{w}/mine"], "not an InferBench sweep store"),
    ("pareto-partial", ["pareto", "{w}/partial.zarr"], "unfinished sweep .* --partial"),
    ("pareto-missing-chunk", ["pareto", "{w}/holes.zarr"], "damaged: tpot_s .* --repair"),
    ("pareto-truncated-chunk", ["pareto", "{w}/truncated.zarr", "-o", "{w}/f"], "damaged: feasible .*truncated"),
    ("pareto-unknown-metric", ["pareto", "{w}/s.zarr", "--objectives", "max:speed,min:j_per_token"], "speed"),
    ("pareto-one-objective", ["pareto", "{w}/s.zarr", "--objectives", "max:tpot_s"], "objectives"),
    ("pareto-bad-constraint", ["pareto", "{w}/s.zarr", "--constraints", "tpot_s<<1"], "constraint"),
    ("pareto-limit", ["pareto", "{w}/s.zarr", "--limit", "x"], "--limit"),
    ("pareto-out-user-file", ["pareto", "{w}/s.zarr", "-o", "{w}/front", "--quiet"], "did not write"),
    ("plot-user-file", ["plot", "{w}/notes.txt"], "not an InferBench sweep store"),
    ("plot-partial", ["plot", "{w}/partial.zarr"], "unfinished sweep"),
    ("plot-missing-chunk", ["plot", "{w}/holes.zarr"], "damaged"),
    ("plot-designs0", ["plot", "{w}/s.zarr", "--designs", "0"], "--designs"),
    ("plot-out-user-file", ["plot", "{w}/s.zarr", "-o", "{w}/clash"], "did not write"),
    # calibration, demo, bench, the parser
    ("validate-data", ["validate", "--data", "{w}/none"], "--data"),
    ("validate-out-file", ["validate", "-o", "{w}/notes.txt"], "cannot create the folder"),
    ("validate-hw", ["validate", "--hardware", "h100"], "hardware"),
    ("calibrate-steps", ["calibrate", "--steps", "0"], "--steps"),
    ("calibrate-hw", ["calibrate", "--hardware", "h100"], "--hardware"),
    ("calibrate-form", ["calibrate", "--util-form", "cubic"], "util-form"),
    ("calibrate-write-and-dir", ["calibrate", "--write", "-o", "{w}/fit"], "--write"),
    (
        "design-knob-typo",
        ["design", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--knobs", "hbm_bandwith_tb_s=1:10"],
        "hbm_bandwith",
    ),  # fmt: skip
    (
        "design-knob-bounds",
        ["design", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--knobs", "hbm_bandwidth_tb_s=10:1"],
        "LOW:HIGH",
    ),  # fmt: skip
    (
        "design-objective",
        [
            "design",
            "--model",
            "llama-3-8b",
            "--hardware",
            "h100-sxm5-80gb",
            "--knobs",
            "hbm_bandwidth_tb_s=1:10",
            "--objective",
            "min:cost",
        ],
        "cost",
    ),  # fmt: skip
    ("demo-user-folder", ["demo", "-o", "{w}/mine"], "did not write"),
    ("demo-user-file", ["demo", "-o", "{w}/notes.txt"], "did not write"),
    ("bench-configs", ["bench", "--configs", "0"], "--configs"),
    ("bench-repeats", ["bench", "--repeats", "0"], "--repeats"),
    ("bench-family", ["bench", "--family", "gpu"], "--family"),
    # outputs never eat their inputs or an expensive result (issue 24)
    ("pareto-out-is-input", ["pareto", "{w}/s.zarr", "-o", "{w}/s"], "is an input of this command"),
    ("pareto-out-inside-input", ["pareto", "{w}/s.zarr", "-o", "{w}/s.zarr/front"], "is inside an input"),
    ("plot-out-inside-input", ["plot", "{w}/s.zarr", "-o", "{w}/s.zarr/figures"], "is inside an input"),
    ("report-out-inside-input", ["report", "{w}/s.zarr", "-o", "{w}/s.zarr/r.html"], "is inside an input"),
    (
        "eval-prefix-long",
        [*E, "--prompt-tokens", "512", "--prefix-tokens", "600"],
        "--prefix-tokens: 600: expected fewer tokens than the prompt \\(512\\)",
    ),  # fmt: skip
    ("eval-prefix-negative", [*E, "--prefix-tokens", "-5"], "--prefix-tokens"),
    ("eval-rate-zero", [*E, "--batching", "continuous", "--rate", "0"], "--rate: 0: expected requests per second > 0"),
    ("eval-rate-negative", [*E, "--rate", "5,-1"], "--rate: -1: expected requests per second > 0"),
    ("eval-rate-word", [*E, "--rate", "fast"], "--rate: 'fast' is not a number"),
    (
        "plan-tail-without-rate",
        ["plan", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--max-chips", "1", "--p99-ttft-ms", "500"],
        "expected --rate",
    ),  # fmt: skip
    (
        "plan-rate-zero",
        ["plan", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--max-chips", "1", "--rate", "0"],
        "--rate: 0",
    ),  # fmt: skip
    (
        "trace-unsorted",
        ["simulate", "--trace", "{w}/unsorted.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
        "unsorted.csv: line 4: arrival_s 1 before the line above",
    ),
    (
        "trace-negative",
        ["simulate", "--trace", "{w}/negative.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
        "negative.csv: line 2: arrival_s -1: expected a time >= 0",
    ),
    (
        "trace-columns",
        ["simulate", "--trace", "{w}/nocols.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
        "nocols.csv: columns output, prompt, time: expected arrival_s",
    ),
    (
        "trace-word",
        ["simulate", "--trace", "{w}/words.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
        "words.csv: line 2: prompt_tokens 'many': expected a number",
    ),
    (
        "trace-missing",
        ["simulate", "--trace", "{w}/nothere.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
        "--trace: .*nothere.csv: no such file",
    ),
    (
        "trace-percentile",
        [
            *["simulate", "--trace", "{w}/unsorted.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
            "--percentiles",
            "50,100",
        ],
        "--percentiles: '100': expected percentiles between 0",
    ),
    (
        "trace-percentile-zero",
        [
            *["simulate", "--trace", "{w}/unsorted.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
            "--percentiles",
            "0",
        ],
        "--percentiles: '0'",
    ),
    (
        "trace-kv-admission",
        [
            *["simulate", "--trace", "{w}/unsorted.csv", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb"],
            "--kv-admission",
            "lazy",
        ],
        "--kv-admission: 'lazy': expected reserve or on-demand",
    ),
    ("simulate-neither", ["simulate"], "expected --trace FILE"),
    ("simulate-check-zero", ["simulate", "--check", "0"], "--check: '0'"),
    ("eval-grid-region", [*E, "--grid-gco2-per-kwh", "mars"], "--grid-gco2-per-kwh: 'mars'.*world"),
    ("eval-grid-negative", [*E, "--grid-gco2-per-kwh", "-5"], "a number >= 0"),
    ("eval-out-sweep-store", [*E, "-o", "{w}/s.zarr"], "holds the finished sweep store 'faults' of 4 designs"),
    ("eval-out-partial-store", [*E, "-o", "{w}/partial.zarr"], "holds the unfinished sweep store"),
    ("predict-out-sweep-store", ["predict", "{w}/scen.csv", "-o", "{w}/s.zarr"], "--overwrite"),
    ("predict-out-is-input", ["predict", "{w}/scen.csv", "-o", "{w}/scen.csv"], "is an input|did not write"),
    ("pareto-out-sweep-store", ["pareto", "{w}/s.zarr", "-o", "{w}/partial"], "holds the unfinished sweep store"),
    ("demo-out-sweep-store", ["demo", "-o", "{w}/s.zarr"], "holds the finished sweep store"),
    ("sweep-out-is-spec", ["sweep", "{w}/sweep.yaml", "-o", "{w}/sweep.yaml"], "not an InferBench sweep store"),
    # inputs that are not regular files, or far too large
    ("eval-model-fifo", ["evaluate", "--model", "{w}/pipe.json", "--hardware", "h100-sxm5-80gb"], "is a FIFO"),
    ("eval-hw-fifo", ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/pipe.yaml"], "is a FIFO"),
    ("eval-model-device", ["evaluate", "--model", "/dev/zero", "--hardware", "h100-sxm5-80gb"], "character device"),
    ("eval-model-huge", ["evaluate", "--model", "{w}/huge.json", "--hardware", "h100-sxm5-80gb"], "at most 67 MB"),
    ("predict-fifo", ["predict", "{w}/pipe.csv"], "is a FIFO"),
    ("predict-device", ["predict", "/dev/zero"], "character device"),
    ("sweep-fifo", ["sweep", "{w}/pipe.yaml"], "is a FIFO"),
    # no silent acceptance (issue 24)
    (
        "eval-hw-duplicate-key",
        ["evaluate", "--model", "llama-3-8b", "--hardware", "{w}/hw_duplicate.yaml"],
        "duplicate key 'tdp_w'",
    ),
    ("sweep-duplicate-key", ["sweep", "{w}/sweep_duplicate.yaml"], "duplicate key 'chunk'"),
    (
        "eval-json-duplicate-key",
        ["evaluate", "--model", "{w}/dup.json", "--hardware", "h100-sxm5-80gb"],
        "duplicate key 'hidden_size'",
    ),
    (
        "eval-unknown-model-type",
        ["evaluate", "--model", "{w}/unknown_type.json", "--hardware", "h100-sxm5-80gb"],
        "model_type.*newfangled.*num_fancy_blocks",
    ),
    (
        "eval-no-model-type",
        ["evaluate", "--model", "{w}/no_type.json", "--hardware", "h100-sxm5-80gb"],
        "model_type.*None",
    ),
    (
        "eval-read-as-typo",
        ["evaluate", "--model", "{w}/unknown_type.json@lama", "--hardware", "h100-sxm5-80gb"],
        "did you mean 'llama'",
    ),
    (
        "eval-vocab-huge",
        ["evaluate", "--model", "{w}/vocab_huge.json", "--hardware", "h100-sxm5-80gb"],
        "vocab_size.*at most",
    ),
    (
        "eval-ffn-null",
        ["evaluate", "--model", "{w}/ffn_null.json", "--hardware", "h100-sxm5-80gb"],
        "intermediate_size",
    ),
    (
        "eval-moe-zero",
        ["evaluate", "--model", "{w}/moe_zero.json", "--hardware", "h100-sxm5-80gb"],
        "num_local_experts",
    ),
    ("eval-width-text", ["evaluate", "--model", "{w}/width_text.json", "--hardware", "h100-sxm5-80gb"], "hidden_size"),
    (
        "eval-layers-huge",
        ["evaluate", "--model", "{w}/layers_huge.yaml", "--hardware", "h100-sxm5-80gb"],
        "n_layers.*at most",
    ),
    ("predict-column-typo", ["predict", "{w}/dtype_typo.csv"], "unknown column 'dtpye'; did you mean 'dtype'"),
    ("predict-duplicate-column", ["predict", "{w}/dup_col.csv"], "column 'tp' appears twice"),
    ("predict-output-column", ["predict", "{w}/has_output.csv"], "column 'latency_s' is one this command writes"),
    ("predict-ops-unknown-column", ["predict", "--ops", "{w}/ops_extra.csv"], "unknown column 'note'"),
    ("predict-ops-output-column", ["predict", "--ops", "{w}/ops_output.csv"], "column 'energy_j' is one"),
    ("predict-dp-batch", ["predict", "{w}/dp_row.csv"], "column 'dp' = 8: expected a divisor of the batch 1"),
    ("eval-dp-batch", [*E, "--dp", "8", "--batch", "1"], "--dp = 8: expected a divisor of the batch 1"),
    ("eval-dp-batch-grid", [*E, "--dp", "2,4", "--batch", "4,6"], "--dp = 4: expected a divisor of the batch 6"),
    (
        "eval-resolution-patch",
        ["evaluate", "--model", "flux-1-dev", "--hardware", "h100-sxm5-80gb", "--resolution", "1000"],
        "multiple of flux-1-dev's 16",
    ),
    (
        "eval-resolution-vit",
        ["evaluate", "--model", "vit-l-16", "--hardware", "h100-sxm5-80gb", "--resolution", "230"],
        "multiple of vit-l-16's 16",
    ),
    ("eval-prompt-cv-huge", [*E, "--prompt-cv", "1e308"], "--prompt-cv = 1e\\+308: expected 0 to 10"),
    (
        "eval-grid-huge",
        [
            *E,
            "--batch",
            ",".join(str(b) for b in range(1, 1001)),
            "--prompt-tokens",
            ",".join(str(p) for p in range(1, 1002)),
        ],
        "1,001,000 combinations",
    ),
    # every size a user can type is bounded before the work starts
    (
        "plan-chips-huge",
        ["plan", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--max-chips", "1000000000"],
        "--max-chips.*at most 1,024",
    ),
    (
        "plan-top-huge",
        ["plan", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--max-chips", "8", "--top", "1000000"],
        "--top",
    ),
    (
        "sweep-workers-huge",
        ["sweep", "{w}/sweep.yaml", "-o", "{w}/new.zarr", "--workers", "1000000"],
        "--workers.*at most",
    ),
    (
        "sweep-chunk-tiny",
        ["sweep", "{w}/sample_many.yaml", "-o", "{w}/new.zarr", "--chunk", "1"],
        "chunks of 1 designs: expected at most 20,000",
    ),
    (
        "sweep-chunk-huge",
        ["sweep", "{w}/sweep.yaml", "-o", "{w}/new.zarr", "--chunk", "1000000000000"],
        "--chunk.*at most",
    ),
    (
        "sweep-scheduler-not-url",
        ["sweep", "{w}/sweep.yaml", "-o", "{w}/new.zarr", "--scheduler", "not a url"],
        "--scheduler",
    ),
    ("bench-configs-huge", ["bench", "--configs", "100000000000"], "--configs.*at most"),
    ("bench-repeats-huge", ["bench", "--repeats", "1000000"], "--repeats.*at most"),
    (
        "design-random-huge",
        [
            "design",
            "--model",
            "llama-3-8b",
            "--hardware",
            "h100-sxm5-80gb",
            "--knobs",
            "hbm_bandwidth_tb_s=1:10",
            "--compare-random",
            "1e12",
        ],
        "--compare-random.*at most",
    ),
    (
        "design-starts-huge",
        [
            "design",
            "--model",
            "llama-3-8b",
            "--hardware",
            "h100-sxm5-80gb",
            "--knobs",
            "hbm_bandwidth_tb_s=1:10",
            "--starts",
            "1e9",
        ],
        "--starts.*at most",
    ),
    ("calibrate-steps-huge", ["calibrate", "--steps", "100000000"], "--steps.*at most"),
    ("plot-designs-huge", ["plot", "{w}/s.zarr", "--designs", "100000"], "--designs.*at most"),
    ("daemon-idle-huge", ["daemon", "run", "--idle-min", "1e308"], "--idle-min.*at most"),
    ("plot-out-is-input", ["plot", "{w}/s.zarr", "-o", "{w}/s.zarr"], "is inside an input of this command"),
    ("eval-model-dev-null", ["evaluate", "--model", "/dev/null", "--hardware", "h100-sxm5-80gb"], "character device"),
    ("predict-ops-fifo", ["predict", "--ops", "{w}/pipe.csv"], "is a FIFO"),
    ("eval-platform-fifo", [*E, "--platform", "{w}/pipe.yaml"], "is a FIFO"),
    (
        "plan-unknown-model-type",
        ["plan", "--model", "{w}/unknown_type.json", "--hardware", "h100-sxm5-80gb", "--max-chips", "8"],
        "model_type",
    ),
    (
        "requirements-unknown-model-type",
        ["requirements", "--model", "{w}/unknown_type.json", "--use-case", "qa"],
        "model_type",
    ),
    (
        "design-unknown-model-type",
        [
            "design",
            "--model",
            "{w}/unknown_type.json",
            "--hardware",
            "h100-sxm5-80gb",
            "--knobs",
            "hbm_bandwidth_tb_s=1:10",
        ],
        "model_type",
    ),
    (
        "eval-resolution-sd3",
        ["evaluate", "--model", "sd3-medium", "--hardware", "h100-sxm5-80gb", "--resolution", "520"],
        "multiple of sd3-medium's 16",
    ),
    ("eval-prompt-cv-negative", [*E, "--prompt-cv=-1"], "--prompt-cv"),
    ("pareto-partial-truncated", ["pareto", "{w}/truncated.zarr", "--partial", "-o", "{w}/f2"], "damaged: feasible"),
    ("eval-out-inside-sweep-store", [*E, "-o", "{w}/s.zarr/mine.zarr"], "is inside the sweep store"),
    (
        "predict-out-inside-sweep-store",
        ["predict", "{w}/scen.csv", "-o", "{w}/s.zarr/p.csv"],
        "is inside the sweep store",
    ),
    ("unknown-command", ["benchmark"], "invalid choice"),
    ("unknown-option", ["evaluate", "--modle", "x"], "unrecognized|required"),
]


def _snapshot(root: Path, content: bool = True) -> dict[str, tuple[str, int]]:
    """Every file's content hash (or, ``content=False``, its size and inode: any write or
    replacement changes them or the modification time) and modification time."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(folder, name), root)] = ("dir", 0)
        for name in files:
            path = os.path.join(folder, name)
            st = os.stat(path)
            if stat.S_ISFIFO(st.st_mode):
                digest = "fifo"
            elif content:
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            else:
                digest = f"{st.st_size}:{st.st_ino}"
            out[os.path.relpath(path, root)] = (digest, st.st_mtime_ns)
    return dict(sorted(out.items()))


# The workspace as the last bad-input case left it (each case checks it leaves it so).
_LAST: dict[Path, dict[str, tuple[str, int]]] = {}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    w = tmp_path_factory.mktemp("faults")
    for rel, content in FILES.items():
        p = w / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    spec = w / "sweep.yaml"
    run_sweep(spec, w / "s.zarr", quiet=True)  # a finished store of the tool's own
    run_sweep(spec, w / "partial.zarr", quiet=True, _stop_after=1)
    run_sweep(spec, w / "noflags.zarr", quiet=True, _stop_after=1)
    shutil.rmtree(w / "noflags.zarr" / "_sweep_chunk_done")
    shutil.copytree(w / "s.zarr", w / "holes.zarr")
    chunk = sorted(p for p in (w / "holes.zarr" / "tpot_s" / "c").rglob("*") if p.is_file())[0]
    chunk.unlink()
    shutil.copytree(w / "s.zarr", w / "stray.zarr")  # a file in a chunk folder that no chunk is
    first = sorted(p for p in (w / "stray.zarr" / "tpot_s" / "c").rglob("*") if p.is_file())[0]
    (first.parent / "99").write_bytes(first.read_bytes())
    shutil.copytree(w / "s.zarr", w / "truncated.zarr")
    feasible = sorted(p for p in (w / "truncated.zarr" / "feasible" / "c").rglob("*") if p.is_file())[0]
    feasible.write_bytes(feasible.read_bytes()[:-3])
    for name in ("pipe.json", "pipe.yaml", "pipe.csv"):
        os.mkfifo(w / name)  # nobody writes to them: a reader that opens one blocks forever
    with (w / "huge.json").open("wb") as f:
        f.truncate(68 * 1024 * 1024)  # sparse: no disk used
    (w / "clash").mkdir()
    (w / "clash" / "roofline.png").write_text("the user's own picture\n")
    return w


@pytest.mark.parametrize(("argv", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(workspace, capsys, argv, pattern):
    before = _LAST.get(workspace) or _snapshot(workspace, content=False)  # hashing the 68 MB file: minutes
    args = [a.replace("{w}", str(workspace)) for a in argv]
    hold = store_lock(workspace / "locked.zarr") if "locked.zarr" in " ".join(args) else contextlib.nullcontext()
    with hold:
        rc = main(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("inferbench: error: "), err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    after = _LAST[workspace] = _snapshot(workspace, content=False)
    # The lock file of the held lock is the only thing that may come and go.
    assert {k: v for k, v in after.items() if not k.startswith(".locked")} == {
        k: v for k, v in before.items() if not k.startswith(".locked")
    }


def test_at_least_two_hundred_cases():
    assert len(CASES) >= 200 and len({c[0] for c in CASES}) == len(CASES)


def test_rerun_replaces_own_outputs_but_never_an_edited_one(tmp_path, capsys):
    out = tmp_path / "r.csv"
    scen = tmp_path / "scen.csv"
    scen.write_text(FILES["scen.csv"])
    assert main(["predict", str(scen), "-o", str(out)]) == 0
    assert main(["predict", str(scen), "-o", str(out)]) == 0  # its own file: replaced
    with out.open("a") as f:
        f.write("# edited by hand\n")
    edited = out.read_bytes()
    assert main(["predict", str(scen), "-o", str(out)]) == 2
    assert "did not write" in capsys.readouterr().err
    assert out.read_bytes() == edited
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary left behind


def test_overwrite_replaces_only_own_store_and_repair_recomputes(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(FILES["sweep.yaml"])
    store = tmp_path / "s.zarr"
    assert main(["sweep", str(spec), "-o", str(store), "--quiet"]) == 0
    ref = _snapshot(store)
    chunk = sorted(p for p in (store / "ttft_s" / "c").rglob("*") if p.is_file())[1]
    chunk.write_bytes(chunk.read_bytes()[:-2])  # truncated
    assert main(["sweep", str(spec), "-o", str(store), "--repair", "--quiet"]) == 0
    assert "repaired 1 damaged chunk(s) of ttft_s" in capsys.readouterr().out
    chunks = lambda snap: {k: v[0] for k, v in snap.items() if "/c/" in k}  # noqa: E731
    assert chunks(_snapshot(store)) == chunks(ref)  # every chunk as an uninterrupted run wrote it
    assert main(["sweep", str(spec), "-o", str(store), "--overwrite", "--quiet"]) == 0
    assert os.path.isdir(store)


# --- random inputs ------------------------------------------------------------------------

VALID_TP = {"llama-3-8b": [1, 2, 4, 8], "mixtral-8x7b": [1, 2, 4, 8]}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.sampled_from(sorted(VALID_TP)),
    family=st.sampled_from(sorted(FAMILY_BASE)),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_valid_configurations_are_finite(model, family, seed):
    """Any valid scenario on any family, with every chip datasheet value scaled at random in
    [0.5, 2], gives finite numbers at every level (infeasible designs are flagged, not NaN)."""
    rng = np.random.default_rng(seed)
    n = 16
    hw = load_hardware(FAMILY_BASE[family])
    knobs = random_family_knobs(hw.spec, n, seed) | {
        "tp": rng.choice(VALID_TP[model], n).astype(float),
        "batch": rng.integers(1, 513, n).astype(float),
        "prompt_tokens": rng.integers(1, 8193, n).astype(float),
        "output_tokens": rng.integers(1, 1025, n).astype(float),
        # parallel and serving knobs (ep divides the experts: 1 for the dense model)
        "ep": rng.choice([1, 2, 4, 8] if model.startswith("mixtral") else [1], n).astype(float),
        "sp": rng.choice([1, 2, 4], n).astype(float),
        "dp": rng.integers(1, 5, n).astype(float),
        "overlap": rng.uniform(0.0, 1.0, n),
        "expert_imbalance": rng.uniform(1.0, 8.0, n),
        "draft_tokens": rng.integers(0, 9, n).astype(float),
        "acceptance": rng.uniform(0.0, 1.0, n),
        "draft_cost_ratio": rng.uniform(0.0, 0.5, n),
        "beam": rng.integers(1, 5, n).astype(float),
        "kv_offload_bytes": rng.uniform(0.0, 1e12, n),
    }
    cfg = make_config(load_model(model), hw)
    res = run_designs(cfg, knobs, software_levels(hw, LEVELS))
    for name, v in res.items():
        assert np.all(np.isfinite(v)), (name, family, model)


_JUNK = st.one_of(
    st.text(min_size=0, max_size=8),
    st.sampled_from(["0", "-1", "nan", "inf", "1.5", "1e400", "", ",", "1,,2", "0x10", "２"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(["--tp", "--pp", "--batch", "--prompt-tokens", "--output-tokens", "--pue"]), junk=_JUNK)
def test_random_invalid_numbers_never_a_traceback(capsys, flag, junk):
    try:
        numbers = [float(x) for x in junk.split(",")]
    except ValueError:
        numbers = []
    valid = (lambda x: x >= 1) if flag == "--pue" else (lambda x: x > 0 and x == int(x) and x < 2**31)
    assume(
        not numbers or not all(np.isfinite(x) and valid(x) for x in numbers) or (flag == "--pue" and len(numbers) > 1)
    )
    rc = main([*E, f"{flag}={junk}"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("inferbench: error: "), err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20), value=_JUNK)
def test_random_set_keys_never_a_traceback(capsys, key, value):
    rc = main([*E, "--set", f"{key}={value}"])
    err = capsys.readouterr().err.splitlines()
    if rc != 0:  # a real key with a valid value evaluates; anything else is one line
        assert rc == 2 and len(err) == 1 and err[0].startswith("inferbench: error: "), err


def test_non_finite_results_are_flagged_with_a_reason():
    # Inputs at the edge of float64 (the engine takes any positive reals): the metrics that
    # overflow are flagged infeasible with reason 4, never left as a silent NaN or inf.
    hw = load_hardware("h100-sxm5-80gb")
    cfg = make_config(load_model("llama-3-8b"), hw)
    res = run_designs(cfg, {"batch": np.array([1.0, 1e300])}, software_levels(hw, ["calibrated"]))
    assert bool(res["feasible"][0, 0]) and int(res["infeasible_reason"][0, 0]) == 0
    assert not bool(res["feasible"][0, 1]) and int(res["infeasible_reason"][0, 1]) == 4


def test_uneven_head_split_only_where_a_study_asks_for_it():
    # GenZ Fig. 17 runs GPT-3-175B (96 heads) at TP 64 on SRAM chipsets: the platform study
    # admits it, a user's command line does not.
    m, h = load_model("gpt-3-175b"), load_hardware("groq-lpu")
    with pytest.raises(SpecError, match="'tp' = 64: expected a divisor"):
        make_config(m, h, tp=64, prompt_tokens=1024)
    assert float(make_config(m, h, tp=64, prompt_tokens=1024, uneven_heads=True).platform.tp) == 64


def test_a_second_process_on_a_locked_store_is_refused(tmp_path):
    # A real second process: the lock is a kernel flock held by this one (no timing involved).
    import subprocess
    import sys

    spec = tmp_path / "sweep.yaml"
    spec.write_text(FILES["sweep.yaml"])
    store = tmp_path / "s.zarr"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with store_lock(store):
        out = subprocess.run(
            [sys.executable, "-m", "dse", "sweep", str(spec), "-o", str(store), "--quiet"],
            env=env,
            capture_output=True,
            text=True,
        )
    assert out.returncode == 2, out.stderr
    assert f"is being written by process {os.getpid()}" in out.stderr and len(out.stderr.splitlines()) == 1
    assert not store.exists()  # the refused writer touched nothing


def test_yaml_exponents_are_numbers_and_a_byte_order_mark_is_read(tmp_path):
    from dse.analysis._scenarios import read_csv as _read_csv

    # YAML 1.1 reads `7e2` (no dot) as a string; spec files mean a number.
    text = yaml.safe_dump({**H100, "tdp_w": 700}).replace("tdp_w: 700", "tdp_w: 7e2")
    (tmp_path / "hw.yaml").write_bytes(b"\xef\xbb\xbf" + text.encode())  # saved with a BOM
    assert float(load_hardware(tmp_path / "hw.yaml").spec.tdp_w) == 700
    (tmp_path / "ops.csv").write_bytes(b"\xef\xbb\xbfhardware,op,m,n,k,dtype\nh100-sxm5-80gb,gemm,16,64,64,bf16\n")
    assert (
        _read_csv(tmp_path / "ops.csv", ["hardware", "op", "m", "n", "k", "dtype"])[0]["hardware"] == "h100-sxm5-80gb"
    )


# --- store integrity: every corruption is named on read and repaired bit for bit -----------


def _chunk_files_of(store: Path, var: str) -> list[Path]:
    return sorted(p for p in (store / var / "c").rglob("*") if p.is_file())


def _flip_bit(store: Path) -> str:
    f = _chunk_files_of(store, "tpot_s")[0]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))
    return "tpot_s .*checksum mismatch"


def _swap_variables(store: Path) -> str:
    a, b = _chunk_files_of(store, "tpot_s")[0], _chunk_files_of(store, "ttft_s")[0]
    da_, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db), b.write_bytes(da_)
    return "(tpot_s|ttft_s) .*not the chunk written at this place"


def _swap_places(store: Path) -> str:
    a, b = _chunk_files_of(store, "energy_j")[:2]
    da_, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db), b.write_bytes(da_)
    return "energy_j .*not the chunk written at this place"


def _foreign_chunk(store: Path) -> str:
    f = _chunk_files_of(store, "tpot_s")[0]
    stray = f.parent / "7"
    stray.write_bytes(f.read_bytes())
    return "tpot_s .*not a chunk of this store"


def _masked_by_temporary(store: Path) -> str:
    f = _chunk_files_of(store, "j_per_token")[0]
    f.with_name(f".{f.name}.123.456.tmp").write_bytes(f.read_bytes())
    f.unlink()
    return "j_per_token .*missing"


def _truncated(store: Path) -> str:
    f = _chunk_files_of(store, "feasible")[0]
    f.write_bytes(f.read_bytes()[:-3])
    return "feasible .*(truncated|checksum)"


def _record_damaged(store: Path) -> str:
    f = sorted(p for p in (store / "_sweep_checksums" / "crc32c" / "c").rglob("*") if p.is_file())[0]
    f.write_bytes(b"\x00" * len(f.read_bytes()))
    return "_sweep_checksums/crc32c .*checksum mismatch"


CORRUPTIONS = [
    _flip_bit,
    _swap_variables,
    _swap_places,
    _foreign_chunk,
    _masked_by_temporary,
    _truncated,
    _record_damaged,
]


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory):
    w = tmp_path_factory.mktemp("integrity")
    (w / "sweep.yaml").write_text(FILES["sweep.yaml"])
    run_sweep(w / "sweep.yaml", w / "s.zarr", quiet=True)
    return w


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__.strip("_") for c in CORRUPTIONS])
def test_corruption_is_refused_by_every_reader_and_repaired_bit_for_bit(clean_store, tmp_path, capsys, corrupt):
    store = tmp_path / "s.zarr"
    shutil.copytree(clean_store / "s.zarr", store)
    ref = _snapshot(store)
    pattern = corrupt(store)
    for argv in (["pareto", str(store), "-o", str(tmp_path / "f")], ["plot", str(store), "-o", str(tmp_path / "p")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(f"damaged: {pattern}", err[0]), err
    partial = ["pareto", str(store), "--partial", "-o", str(tmp_path / "f"), "--quiet"]
    if "missing" in pattern:  # a chunk not there reads as missing designs; one that is there but wrong cannot be read
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # shown as a line on stderr, as to a user
            assert main(partial) == 0 and "warning: " in capsys.readouterr().err
    else:
        assert main(partial) == 2
    capsys.readouterr()
    spec = str(clean_store / "sweep.yaml")
    assert main(["sweep", spec, "-o", str(store), "--repair", "--quiet"]) == 0, capsys.readouterr().err
    assert _snapshot(store).keys() == ref.keys()  # nothing stray or temporary left
    assert {k: v[0] for k, v in _snapshot(store).items()} == {k: v[0] for k, v in ref.items()}
    assert main(["pareto", str(store), "-o", str(tmp_path / "f"), "--quiet"]) == 0


def test_a_killed_runs_temporaries_never_block_a_reader_and_resume_removes_them(clean_store, tmp_path, capsys):
    store = tmp_path / "s.zarr"
    shutil.copytree(clean_store / "s.zarr", store)
    f = _chunk_files_of(store, "tpot_s")[0]
    leftover = f.with_name(f".{f.name}.999.1.tmp")
    leftover.write_bytes(f.read_bytes()[:5])  # what a SIGKILL mid-write leaves
    assert main(["pareto", str(store), "-o", str(tmp_path / "f"), "--quiet"]) == 0
    assert main(["sweep", str(clean_store / "sweep.yaml"), "-o", str(store), "--quiet"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert not leftover.exists()


# --- fitted-parameter files are checked like spec files -------------------------------------

FITTED = yaml.safe_load((Path(__file__).resolve().parents[1] / "calibration/fitted/a100-sxm4-80gb.yaml").read_text())


def _fitted(section: str, key: str | None, value) -> dict:
    data = json.loads(json.dumps(FITTED))
    if key is None:
        del data[section]
    elif value is KeyError:
        del data[section][key]
    else:
        data[section][key] = value
    return data


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (_fitted("software", "kernel_overhead_s", -1e-6), "software: kernel_overhead_s = -1e-06: expected a time"),
        (_fitted("software", "bw_efficiency", float("nan")), "software: bw_efficiency = nan"),
        (_fitted("software", "bw_efficiency", 1.5), "bw_efficiency = 1.5: expected a fraction"),
        (_fitted("software", "bw_efficiency", KeyError), "missing key"),
        (_fitted("software", "util_knots", [0.5, 0.6]), "util_knots .*a list of 4 numbers"),
        (_fitted("software", "kernel_overhed_s", 1e-6), "unknown key 'kernel_overhed_s'; did you mean"),
        (_fitted("software", None, None), "missing key 'software'"),
        (_fitted("chip", "idle_w", -5.0), "chip: idle_w = -5.0"),
        (_fitted("chip", "idle_watts", 60.0), "chip: unknown key 'idle_watts'"),
        (_fitted("frameworks", "vllm-server", {"step_overhead_s": "slow"}), "frameworks: vllm-server: step_overhead_s"),
    ],
    ids=[
        "negative-overhead",
        "nan",
        "efficiency-above-1",
        "missing",
        "knots-shape",
        "typo",
        "no-software",
        "negative-chip",
        "chip-typo",
        "framework-text",
    ],  # fmt: skip
)
def test_a_fitted_file_the_models_cannot_use_is_refused_in_one_line(data, pattern):
    from dse.specs._fitted import check_fitted

    with pytest.raises(SpecError) as err:
        check_fitted(Path("fitted.yaml"), data)
    assert re.search(pattern, str(err.value)) and "\n" not in str(err.value), str(err.value)


def test_the_shipped_fitted_files_pass_their_own_check():
    from dse.specs._files import load_yaml
    from dse.specs._fitted import FITTED_DIR, check_fitted

    for path in sorted(FITTED_DIR.glob("*.yaml")):
        check_fitted(path, load_yaml(path.read_text()))


def test_the_lock_is_keyed_by_the_real_path(tmp_path, capsys):
    # A symlink to a store (or another spelling of its path) finds the lock its writer holds.
    spec = tmp_path / "sweep.yaml"
    spec.write_text(FILES["sweep.yaml"])
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with store_lock(tmp_path / "real" / "s.zarr"):
        assert main(["sweep", str(spec), "-o", str(tmp_path / "alias" / "s.zarr"), "--quiet"]) == 2
    assert "is being written by process" in capsys.readouterr().err
    assert not (tmp_path / "real" / "s.zarr").exists()
