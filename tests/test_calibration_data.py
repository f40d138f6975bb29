"""Tests for the measurement loaders in calibration/_data.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration._data import (
    DATA_DIR,
    MODEL_IDS,
    load_collectives,
    load_kernels,
    load_serving_energy,
    load_static_batch,
    load_static_batch_power,
)

LOADERS = [
    load_kernels,
    load_collectives,
    load_static_batch,
    load_static_batch_power,
    load_serving_energy,
]

_LIB = "llm-inference-bench-a100"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return {loader.__name__: loader() for loader in LOADERS}


@pytest.mark.parametrize("name", [loader.__name__ for loader in LOADERS])
def test_tables_are_non_empty_without_nan_or_duplicates(tables, name):
    df = tables[name]
    assert len(df) > 0
    assert not df.isna().any().any()
    assert not df.duplicated().any()
    assert (df["source"] != "").all()


@pytest.mark.parametrize("name", [loader.__name__ for loader in LOADERS if loader.__name__ != "load_collectives"])
def test_every_model_has_its_catalog_id(tables, name):
    df = tables[name]
    assert (df["model"].map(MODEL_IDS) == df["model_id"]).all()


def test_model_ids_are_short_lowercase():
    assert MODEL_IDS["meta-llama/Llama-2-70b-hf"] == "llama-2-70b"
    assert MODEL_IDS["meta-llama/Meta-Llama-3.1-8B-Instruct"] == "llama-3.1-8b"
    assert MODEL_IDS["google/gemma-2-27b-it"] == "gemma-2-27b"
    for model_id in MODEL_IDS.values():
        assert model_id == model_id.lower()
        assert " " not in model_id and "/" not in model_id


def test_row_counts(tables):
    # Five models x 4 TP x 261 rows x 10 operators + phi-2 261 x 9, less operator rows of the
    # twice-measured shapes that coincide exactly.
    assert 54_000 < len(tables["load_kernels"]) <= 5 * 4 * 261 * 10 + 261 * 9
    assert len(tables["load_collectives"]) == 6958 + 1988 + 4496 + 1988 - 1
    counts = tables["load_static_batch"].groupby("framework").size().to_dict()
    assert counts == {"vllm-offline": 235, "tensorrt-llm": 256, "deepspeed-mii": 173}
    assert tables["load_static_batch_power"].groupby("framework").size().to_dict() == {
        "vllm-offline": 8,
        "tensorrt-llm": 8,
        "deepspeed-mii": 8,
    }
    assert len(tables["load_serving_energy"]) == 157


def test_kernel_gate_up_llama2_70b_reaches_241_tflops(tables):
    k = tables["load_kernels"]
    rows = k[(k["model_id"] == "llama-2-70b") & (k["op"] == "ffn_up") & (k["tp"] == 1) & (k["n_tokens"] == 4096)]
    assert len(rows) >= 1
    # Gate and up fused: N = 2 x 28672; FLOPs = 2 M N K = 2 x 4096 x 57344 x 8192.
    assert (rows["m"] == 4096).all() and (rows["n"] == 57344).all() and (rows["k"] == 8192).all()
    assert (rows["flops"] == 2 * 4096 * 57344 * 8192).all()
    # Bytes (fp16): A 4096x8192 + B 8192x57344 + C 4096x57344, 2 bytes each.
    assert (rows["bytes"] == 2 * (4096 * 8192 + 8192 * 57344 + 4096 * 57344)).all()
    # 15.9 ms upstream, so seconds (not ms) and ~241 TFLOP/s (PROVENANCE.md sanity check).
    assert rows["time_s"].between(15e-3, 17e-3).all()
    rate = rows["flops"] / rows["time_s"]
    assert np.allclose(rate, 241e12, rtol=0.10)


def test_kernel_shapes_follow_tensor_parallel_sharding(tables):
    k = tables["load_kernels"]
    one = k[(k["model_id"] == "llama-2-70b") & (k["tp"] == 8) & (k["n_tokens"] == 512)]
    dims = one.drop_duplicates("op").set_index("op")[["m", "n", "k"]]
    head_dim = 8192 // 64
    # QKV: N = (64 + 2 x 8) x 128 / 8 = 1280, K = 8192.
    assert tuple(dims.loc["qkv_proj"]) == (512, (64 + 2 * 8) * head_dim // 8, 8192)
    assert tuple(dims.loc["out_proj"]) == (512, 8192, 8192 // 8)
    assert tuple(dims.loc["ffn_up"]) == (512, 2 * 28672 // 8, 8192)
    assert tuple(dims.loc["ffn_down"]) == (512, 8192, 28672 // 8)
    assert tuple(dims.loc["act"]) == (512, 28672 // 8, 1)
    assert tuple(dims.loc["norm"]) == (512, 8192, 1)
    assert set(k["op"]) == {
        "qkv_proj", "out_proj", "ffn_up", "ffn_down", "act", "norm", "add", "rope", "emb"
    }  # fmt: skip
    assert set(k.loc[k["kind"] == "gemm", "op"]) == {"qkv_proj", "out_proj", "ffn_up", "ffn_down"}
    gemm = k[k["kind"] == "gemm"]
    assert (gemm["flops"] == 2.0 * gemm["m"] * gemm["n"] * gemm["k"]).all()
    # No GEMM beats the 312 TFLOP/s fp16 peak.
    assert (gemm["flops"] / gemm["time_s"]).max() < 312e12


def test_kernel_phi2_has_one_norm_and_no_gated_mlp(tables):
    k = tables["load_kernels"]
    phi = k[k["model_id"] == "phi-2"]
    assert set(phi["op_upstream"]) == {
        "emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
        "mlp_up_proj", "mlp_act", "mlp_down_proj", "add",
    }  # fmt: skip
    assert not phi["gated"].any()
    assert (phi.loc[phi["op"] == "ffn_up", "n"] == 10240).all()


def test_collective_sizes_are_bytes_and_times_seconds(tables):
    c = tables["load_collectives"]
    assert set(c["topology"]) == {"a100_dgx", "a100_pairwise_nvlink"}
    assert set(c["collective"]) == {"all_reduce", "send_recv"}
    assert c["size_bytes"].min() == 2 * 1024
    assert (c["n_nodes"] * c["devices_per_node"] == c["n_gpus"]).all()
    dgx = c[(c["topology"] == "a100_dgx") & (c["collective"] == "all_reduce")]
    assert dgx["size_bytes"].max() == 64 * 2**20
    # 8 GPUs in one DGX node, 64 MiB: bus bandwidth 2 (n-1)/n x size / time is NVLink-class
    # (tens to a few hundred GB/s), which only holds if size is bytes and time is seconds.
    row = dgx[(dgx["n_gpus"] == 8) & (dgx["n_nodes"] == 1) & (dgx["size_bytes"] == 64 * 2**20)]
    bus_bw = 2 * 7 / 8 * row["size_bytes"] / row["time_s"]
    assert bus_bw.between(50e9, 300e9).all()


def test_static_batch_throughput_counts_prompt_and_output(tables):
    s = tables["load_static_batch"]
    total = s["batch"] * (s["prompt_tokens"] + s["output_tokens"]) / s["latency_s"]
    assert np.allclose(total, s["throughput_tokens_per_s"], rtol=1e-9)
    assert set(s["tp"]) == {1, 2, 4}


def test_static_batch_power_is_watts(tables):
    p = tables["load_static_batch_power"]
    # Upstream is milliwatts (222122 for Llama-2-7B, batch 1): converted to ~222 W.
    assert p["avg_power_w"].between(50, 500).all()
    first = p[(p["framework"] == "vllm-offline") & (p["model_id"] == "llama-2-7b") & (p["batch"] == 1)]
    assert first["avg_power_w"].iloc[0] == pytest.approx(222.122271186, rel=1e-9)


def test_serving_energy_units_and_derived_columns(tables):
    e = tables["load_serving_energy"]
    assert set(e["task"]) == {"chat", "code"}
    assert (e["gpu"] == "A100-SXM4-40GB").all()
    assert (e["n_gpus"] == e["tp"] * e["pp"]).all()
    assert (e["max_batch"] <= e["pp"] * e["max_num_seqs"]).all()
    assert e["tpot_s"].between(0.01, 1.0).all()
    # Average power per GPU stays under the 400 W limit the runs used.
    assert (e["avg_power_w"] / e["n_gpus"]).between(50, 400).all()
    assert np.allclose(e["energy_per_output_token_j"] * e["avg_output_tokens"], e["energy_per_request_j"])
    gemma = e[(e["model_id"] == "gemma-2-27b") & (e["max_num_seqs"] == 32)]
    assert gemma["energy_per_request_j"].iloc[0] == pytest.approx(370.6291062254569)
    assert gemma["n_params_nominal"].iloc[0] == 27e9


# ----------------------------------------------------------------------------------------------
# Error paths: one-line ValueError naming the file and the column.
# ----------------------------------------------------------------------------------------------


def _write_static_batch(root: Path, name: str, df: pd.DataFrame) -> Path:
    path = root / _LIB / name
    path.parent.mkdir(parents=True)
    df.to_csv(path, index=False)
    return path


def _static_rows(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Hardware": ["Nvidia A100 GPU"] * n,
            "Num of Hardware": [1] * n,
            "Framework": ["vLLM"] * n,
            "Model": ["meta-llama/Llama-2-7b-hf"] * n,
            "Input Output Length": [128 * (i + 1) for i in range(n)],
            "Batch Size": [1] * n,
            "Latency": [1.5] * n,
            "Throughput": [2 * 128 * (i + 1) / 1.5 for i in range(n)],
        }
    )


def test_missing_column_names_file_and_column(tmp_path):
    path = _write_static_batch(tmp_path, "All_results_A100_vLLM.csv", _static_rows().drop(columns="Latency"))
    with pytest.raises(ValueError) as info:
        load_static_batch(tmp_path)
    message = str(info.value)
    assert str(path) in message and "'Latency'" in message
    assert "\n" not in message


def test_non_positive_value_names_file_and_column(tmp_path):
    rows = _static_rows()
    rows.loc[1, "Latency"] = 0.0
    path = _write_static_batch(tmp_path, "All_results_A100_vLLM.csv", rows)
    with pytest.raises(ValueError, match="'Latency'") as info:
        load_static_batch(tmp_path)
    assert str(path) in str(info.value)


def test_nan_value_is_rejected(tmp_path):
    rows = _static_rows()
    rows.loc[0, "Throughput"] = np.nan
    _write_static_batch(tmp_path, "All_results_A100_vLLM.csv", rows)
    with pytest.raises(ValueError, match="'Throughput'"):
        load_static_batch(tmp_path)


def test_unknown_model_is_rejected(tmp_path):
    rows = _static_rows()
    rows["Model"] = "someone/unknown-7b"
    _write_static_batch(tmp_path, "All_results_A100_vLLM.csv", rows)
    with pytest.raises(ValueError, match="'Model'.*someone/unknown-7b"):
        load_static_batch(tmp_path)


def test_exact_duplicate_rows_are_dropped(tmp_path):
    rows = _static_rows()
    _write_static_batch(tmp_path, "All_results_A100_vLLM.csv", pd.concat([rows, rows.iloc[[0]]]))
    assert len(load_static_batch(tmp_path)) == 2


def test_power_milliwatts_become_watts(tmp_path):
    rows = _static_rows().assign(avg_power=[250_000.0, 300_000.0])
    _write_static_batch(tmp_path, "power_results_A100_vLLM.csv", rows)
    assert list(load_static_batch_power(tmp_path)["avg_power_w"]) == [250.0, 300.0]


def test_kernel_file_missing_column(tmp_path):
    source = DATA_DIR / "vidur-a100/compute/meta-llama/Llama-2-7b-hf/mlp.csv"
    path = tmp_path / "vidur-a100/compute/meta-llama/Llama-2-7b-hf/mlp.csv"
    path.parent.mkdir(parents=True)
    pd.read_csv(source, nrows=5).drop(columns="time_stats.add.median").to_csv(path, index=False)
    with pytest.raises(ValueError) as info:
        load_kernels(tmp_path)
    assert str(path) in str(info.value) and "'time_stats.add.median'" in str(info.value)


def test_serving_energy_json_missing_key(tmp_path):
    for task in ("chat", "code"):
        shutil.copytree(DATA_DIR / "ml-energy-v2-a100" / task, tmp_path / "ml-energy-v2-a100" / task)
    model_dir = tmp_path / "ml-energy-v2-a100/chat/A100-SXM4-40GB/google/gemma-2-27b-it"
    path = model_dir / "bs32+tp2+pp1.json"
    record = json.loads(path.read_text())
    del record["Energy/req (J)"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError) as info:
        load_serving_energy(tmp_path)
    assert str(path) in str(info.value) and "'Energy/req (J)'" in str(info.value)
