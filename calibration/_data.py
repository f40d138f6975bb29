"""Loaders for the measured A100 data kept in ``calibration/data/``.

Each loader reads one upstream data set (layout and provenance in
``calibration/data/PROVENANCE.md``) and returns one tidy ``pandas.DataFrame``: one row per
measurement, SI units, the unit as a suffix of every physical column (``time_s``,
``size_bytes``, ``avg_power_w``, ``energy_per_request_j``). Units are converted here, once.

Every loader validates what it reads. A missing column (or JSON key), an unknown model name, or
a value that is NaN or out of range where it must be positive raises ``ValueError`` with a
one-line message that names the file and the upstream column. Exact duplicate rows are dropped;
repeated measurements of the same configuration that differ in value are kept, because both are
measurements.

Every table that has a model carries ``model`` (the upstream name, e.g.
``"meta-llama/Llama-2-70b-hf"``) and ``model_id`` (the short catalog id from ``MODEL_IDS``).
Hold whole models out when fitting: group on ``model_id``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DATA_DIR",
    "MODEL_IDS",
    "load_collectives",
    "load_kernels",
    "load_public_gemms",
    "load_serving_energy",
    "load_static_batch",
    "load_static_batch_power",
]

DATA_DIR: Path = Path(__file__).resolve().parent / "data"
"""Default root of the measurement files (the upstream layouts side by side)."""

# Unit conversions used once, at load time.
_MS_TO_S = 1e-3  # upstream kernel and collective times are in milliseconds
_MW_TO_W = 1e-3  # LLM-Inference-Bench `avg_power` is NVML milliwatts
_BYTES_PER_ELEMENT = 2  # the kernel profiles ran in float16 (2 bytes per element)

MODEL_IDS: dict[str, str] = {
    # Vidur kernel profiles.
    "Qwen/Qwen-72B": "qwen-72b",
    "codellama/CodeLlama-34b-Instruct-hf": "codellama-34b",
    "internlm/internlm-20b": "internlm-20b",
    "meta-llama/Llama-2-70b-hf": "llama-2-70b",
    "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "microsoft/phi-2": "phi-2",
    # LLM-Inference-Bench static batches (Llama-2 7B/70B are listed above).
    "Deci/DeciLM-7B": "decilm-7b",
    "Qwen/Qwen2-7B": "qwen2-7b",
    "meta-llama/Meta-Llama-3-8B": "llama-3-8b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b-v0.1",
    "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "meta-llama/Meta-Llama-3-70B": "llama-3-70b",  # TensorRT-LLM rows only
    # ML.ENERGY v2, chat task (instruction-tuned variants share the base architecture's id).
    "google/gemma-2-2b-it": "gemma-2-2b",
    "google/gemma-2-9b-it": "gemma-2-9b",
    "google/gemma-2-27b-it": "gemma-2-27b",
    "meta-llama/Meta-Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "microsoft/Phi-3-mini-4k-instruct": "phi-3-mini",
    "microsoft/Phi-3-small-8k-instruct": "phi-3-small",
    "microsoft/Phi-3-medium-4k-instruct": "phi-3-medium",
    "mistralai/Mistral-7B-Instruct-v0.3": "mistral-7b-v0.3",
    "mistralai/Mistral-Nemo-Instruct-2407": "mistral-nemo-12b",
    "mistralai/Mistral-Large-Instruct-2407": "mistral-large-123b",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b",
    "mistralai/Mixtral-8x22B-Instruct-v0.1": "mixtral-8x22b",
    # ML.ENERGY v2, code task.
    "bigcode/starcoder2-3b": "starcoder2-3b",
    "bigcode/starcoder2-7b": "starcoder2-7b",
    "bigcode/starcoder2-15b": "starcoder2-15b",
    "codellama/CodeLlama-7b-hf": "codellama-7b",
    "codellama/CodeLlama-13b-hf": "codellama-13b",
    "codellama/CodeLlama-34b-hf": "codellama-34b",
    "codellama/CodeLlama-70b-hf": "codellama-70b",
    "google/codegemma-1.1-2b": "codegemma-1.1-2b",
    "google/codegemma-7b": "codegemma-7b",
}
"""Upstream model name -> short lowercase catalog id."""

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# Validation helpers: every message is one line naming the file and the upstream column.
# --------------------------------------------------------------------------------------------


def _root(data_dir: PathLike | None) -> Path:
    return DATA_DIR if data_dir is None else Path(data_dir)


def _require_columns(df: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise ValueError(f"{path}: missing required column {names}")


def _numeric(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{path}: column {column!r} has a non-numeric value {df[column].iloc[row]!r} at data row {row}"
        )
    return values.astype(float)


def _check_values(df: pd.DataFrame, columns: Iterable[str], path: Path, *, allow_zero: bool = False) -> None:
    """Raise unless every value of `columns` is a finite number > 0 (>= 0 if allow_zero)."""
    for column in columns:
        values = _numeric(df, column, path).to_numpy()
        ok = np.isfinite(values) & ((values >= 0) if allow_zero else (values > 0))
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            need = "non-negative" if allow_zero else "positive"
            raise ValueError(
                f"{path}: column {column!r} must be {need} and not NaN; "
                f"{int((~ok).sum())} bad value(s), first {values[row]!r} at data row {row}"
            )


def _model_ids(models: pd.Series, path: Path, column: str) -> pd.Series:
    unknown = sorted(set(models) - set(MODEL_IDS))
    if unknown:
        raise ValueError(f"{path}: column {column!r} has model(s) not in MODEL_IDS: {', '.join(unknown)}")
    return models.map(MODEL_IDS)


def _read_csv(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: measurement file not found")
    df = pd.read_csv(path)
    _require_columns(df, columns, path)
    return df


def _finish(frames: list[pd.DataFrame], sort_by: list[str]) -> pd.DataFrame:
    df = pd.concat(frames, ignore_index=True)
    df = df.drop_duplicates().sort_values(sort_by, kind="stable").reset_index(drop=True)
    if df.isna().any().any():  # loaders build every column from validated inputs
        raise AssertionError(f"NaN in columns {list(df.columns[df.isna().any()])}")
    return df


# --------------------------------------------------------------------------------------------
# Vidur: per-operator kernel times of one transformer layer (non-attention operators).
# --------------------------------------------------------------------------------------------

_VIDUR_SHAPE_COLUMNS = [
    "n_head",
    "n_kv_head",
    "n_embd",
    "n_expanded_embd",
    "vocab_size",
    "use_gated_mlp",
    "num_tokens",
    "num_tensor_parallel_workers",
]

# Upstream operator -> (op, kind). `post_attention_layernorm` is absent for parallel-block
# models (phi-2: attention and MLP read the same normed input, one residual add of three terms).
_VIDUR_OPS: dict[str, tuple[str, str]] = {
    "emb": ("emb", "elementwise"),
    "input_layernorm": ("norm", "elementwise"),
    "attn_pre_proj": ("qkv_proj", "gemm"),
    "attn_rope": ("rope", "elementwise"),
    "attn_post_proj": ("out_proj", "gemm"),
    "post_attention_layernorm": ("norm", "elementwise"),
    "mlp_up_proj": ("ffn_up", "gemm"),
    "mlp_act": ("act", "elementwise"),
    "mlp_down_proj": ("ffn_down", "gemm"),
    "add": ("add", "elementwise"),
}
_VIDUR_OPTIONAL_OPS = {"post_attention_layernorm"}

# FLOPs per output element of the elementwise operators: estimates, not measurements.
_FLOPS_PER_ELEMENT = {
    "emb": 0.0,  # a gather: moves data, no arithmetic
    "norm": 5.0,  # RMSNorm x * rsqrt(mean(x^2) + eps) * w: square, sum, scale, weight (~4-5)
    "rope": 3.0,  # x * cos + rotate(x) * sin: two multiplies and an add
    "act_gated": 5.0,  # SiLU(g) * u: exp, add, divide, two multiplies
    "act_plain": 8.0,  # GELU (erf form), a handful of flops
    "add": 1.0,
}


def _vidur_rows(path: Path, model: str) -> list[pd.DataFrame]:
    """Tidy rows (one per file row x operator) for one Vidur `mlp.csv`."""
    header = pd.read_csv(path, nrows=0).columns
    ops = [op for op in _VIDUR_OPS if op not in _VIDUR_OPTIONAL_OPS or f"time_stats.{op}.median" in header]
    time_columns = [f"time_stats.{op}.{stat}" for op in ops for stat in ("median", "std")]
    df = _read_csv(path, _VIDUR_SHAPE_COLUMNS + time_columns)
    _check_values(df, [c for c in _VIDUR_SHAPE_COLUMNS if c != "use_gated_mlp"], path)
    _check_values(df, [f"time_stats.{op}.median" for op in ops], path)
    _check_values(df, [f"time_stats.{op}.std" for op in ops], path, allow_zero=True)
    gated_raw = df["use_gated_mlp"].astype(str).str.strip().str.lower()
    if not gated_raw.isin(["true", "false"]).all():
        raise ValueError(f"{path}: column 'use_gated_mlp' must be True or False")

    t = df["num_tokens"].to_numpy(np.int64)
    e = df["n_embd"].to_numpy(np.int64)
    h = df["n_head"].to_numpy(np.int64)
    kv = df["n_kv_head"].to_numpy(np.int64)
    f = df["n_expanded_embd"].to_numpy(np.int64)
    tp = df["num_tensor_parallel_workers"].to_numpy(np.int64)
    gated = (gated_raw == "true").to_numpy()
    up = np.where(gated, 2, 1)  # gate and up projections fused into one GEMM when gated
    parallel_block = "post_attention_layernorm" not in ops

    if (e % h).any():
        raise ValueError(f"{path}: column 'n_embd' is not a multiple of 'n_head'")
    head_dim = e // h
    # Heads, MLP width and vocabulary are sharded over TP; upstream asserts divisibility.
    for name, value in (("n_head", h), ("n_kv_head", kv), ("n_expanded_embd", f)):
        if (value % tp).any():
            raise ValueError(f"{path}: column {name!r} is not a multiple of 'num_tensor_parallel_workers'")

    one = np.ones_like(t)
    # GEMM C[m, n] = A[m, k] @ B[k, n] per rank (shapes of `ColumnParallelLinear` and
    # `RowParallelLinear` in the profiled model; see data/PROVENANCE.md).
    gemm_shapes = {
        "attn_pre_proj": ((h + 2 * kv) * head_dim // tp, e),  # fused QKV, heads sharded
        "attn_post_proj": (e, h * head_dim // tp),  # output projection, K sharded
        "mlp_up_proj": (up * f // tp, e),  # (gate+)up, N sharded
        "mlp_down_proj": (e, f // tp),  # down, K sharded
    }
    # Elementwise: (width of the output tensor, tensors of that size read + written, flops/elt).
    act_flops = np.where(gated, _FLOPS_PER_ELEMENT["act_gated"], _FLOPS_PER_ELEMENT["act_plain"])
    elementwise = {
        # Embedding rows gathered and written (token ids ignored); not sharded in width.
        "emb": (e, 2 * one, _FLOPS_PER_ELEMENT["emb"] * one),
        "input_layernorm": (e, 2 * one, _FLOPS_PER_ELEMENT["norm"] * one),
        "post_attention_layernorm": (e, 2 * one, _FLOPS_PER_ELEMENT["norm"] * one),
        # Rotary embedding in place on the rank's q and k heads: read and write.
        "attn_rope": ((h + kv) * head_dim // tp, 2 * one, _FLOPS_PER_ELEMENT["rope"] * one),
        # SiLU-and-mul reads gate and up (2 tensors) and writes one; GELU reads one.
        "mlp_act": (f // tp, up + 1, act_flops),
        # residual + hidden: read 2, write 1. Parallel block: (attn + mlp) + residual is two
        # adds, read 4 and write 2.
        "add": (
            e,
            (6 if parallel_block else 3) * one,
            (2.0 if parallel_block else 1.0) * _FLOPS_PER_ELEMENT["add"] * one,
        ),
    }

    common = {
        "source": "vidur",
        "model": model,
        "model_id": _model_ids(pd.Series([model]), path, "model (from the path)").iloc[0],
    }
    frames = []
    for upstream in ops:
        op, kind = _VIDUR_OPS[upstream]
        if kind == "gemm":
            n, k = gemm_shapes[upstream]
            m = t
            flops = 2.0 * m * n * k
            # Read A (m x k) and B (k x n), write C (m x n).
            n_bytes = float(_BYTES_PER_ELEMENT) * (m * k + k * n + m * n)
        else:
            n, passes, per_element = elementwise[upstream]
            m, k = t, one
            flops = per_element * m * n
            n_bytes = float(_BYTES_PER_ELEMENT) * passes * m * n
            if upstream in ("input_layernorm", "post_attention_layernorm"):
                n_bytes = n_bytes + _BYTES_PER_ELEMENT * n  # the norm weight vector
        frames.append(
            pd.DataFrame(
                {
                    **common,
                    "op": op,
                    "op_upstream": upstream,
                    "kind": kind,
                    "m": m,
                    "n": n,
                    "k": k,
                    "flops": np.asarray(flops, dtype=float),
                    "bytes": np.asarray(n_bytes, dtype=float),
                    "tp": tp,
                    "n_tokens": t,
                    "n_embd": e,
                    "n_head": h,
                    "n_kv_head": kv,
                    "n_expanded_embd": f,
                    "gated": gated,
                    "vocab_size": df["vocab_size"].to_numpy(np.int64),
                    "time_s": df[f"time_stats.{upstream}.median"].to_numpy(float) * _MS_TO_S,
                    "time_std_s": df[f"time_stats.{upstream}.std"].to_numpy(float) * _MS_TO_S,
                }
            )
        )
    return frames


def load_kernels(data_dir: PathLike | None = None) -> pd.DataFrame:
    """Per-operator kernel times of one transformer layer on one A100 (Vidur profiles).

    Reads ``vidur-a100/compute/<org>/<model>/mlp.csv``. One output row per file row and
    operator. Each file row holds summary statistics over 20 timed forward passes of one layer
    (CUDA kernel time, float16). We use the **median**: mean and median agree within about
    1 % for the GEMMs, but the small elementwise kernels have occasional slow samples
    (max/median up to 1.5), which pull the mean and not the median; the median is also what
    the upstream simulator fits on.

    Rows with ``tp > 1`` are the per-rank sharded shapes timed on one GPU, without any
    communication. Which A100 variant ran them is not stated upstream (see PROVENANCE.md).

    Args:
        data_dir: root of the data layout; defaults to ``calibration/data``.

    Returns:
        Columns: ``source`` ("vidur"), ``model``, ``model_id``, ``op`` (qkv_proj, out_proj,
        ffn_up, ffn_down, act, norm, add, rope, emb), ``op_upstream`` (the Vidur operator; the
        two norms of a layer differ only here), ``kind`` ("gemm" or "elementwise"), ``m``,
        ``n``, ``k`` (GEMM C[m, n] = A[m, k] B[k, n] per rank; elementwise: m = tokens,
        n = width of the output tensor, k = 1), ``flops`` (2mnk for GEMMs, an estimate of a few
        flops per element otherwise, 0 for the embedding gather), ``bytes`` (2 bytes per
        element: a GEMM reads A and B and writes C once; elementwise ops read and write their
        tensors once), ``tp``, ``n_tokens``, ``n_embd``, ``n_head``, ``n_kv_head``,
        ``n_expanded_embd``, ``gated``, ``vocab_size``, ``time_s`` (median),
        ``time_std_s``.
    """
    base = _root(data_dir) / "vidur-a100" / "compute"
    paths = sorted(base.glob("*/*/mlp.csv"))
    if not paths:
        raise FileNotFoundError(f"{base}: no <org>/<model>/mlp.csv files found")
    frames: list[pd.DataFrame] = []
    for path in paths:
        model = f"{path.parent.parent.name}/{path.parent.name}"
        frames.extend(_vidur_rows(path, model))
    return _finish(frames, ["model", "op_upstream", "tp", "n_tokens"])


# --------------------------------------------------------------------------------------------
# Vidur: NCCL collectives.
# --------------------------------------------------------------------------------------------


def load_collectives(data_dir: PathLike | None = None) -> pd.DataFrame:
    """NCCL all-reduce and send/recv times (Vidur network profiles).

    Reads ``vidur-a100/network/<topology>/<collective>.csv``. The upstream ``size`` column is
    already in bytes (the profiler stores float16 element count x 2). Each row holds
    statistics over 3 timed samples; we use the median, as for the kernels.

    ``n_gpus`` devices take part, ``devices_per_node`` of them per node, so
    ``n_nodes = n_gpus / devices_per_node``: rows with ``n_nodes > 1`` cross the inter-node
    network (send/recv with ``devices_per_node == 1`` is the inter-node pipeline hop).

    Args:
        data_dir: root of the data layout; defaults to ``calibration/data``.

    Returns:
        Columns: ``source`` ("vidur"), ``topology`` (a100_dgx, a100_pairwise_nvlink),
        ``collective`` (all_reduce, send_recv), ``n_gpus``, ``devices_per_node``,
        ``n_nodes``, ``size_bytes`` (buffer size; for send/recv the message), ``time_s``
        (median), ``time_std_s``.
    """
    base = _root(data_dir) / "vidur-a100" / "network"
    paths = sorted(p for p in base.glob("*/*.csv") if p.stem in ("all_reduce", "send_recv"))
    if not paths:
        raise FileNotFoundError(f"{base}: no <topology>/{{all_reduce,send_recv}}.csv files found")
    frames = []
    for path in paths:
        collective = path.stem
        median, std = f"time_stats.{collective}.median", f"time_stats.{collective}.std"
        required = [median, std, "num_workers", "devices_per_node", "size", "collective"]
        df = _read_csv(path, required)
        if not (df["collective"] == collective).all():
            raise ValueError(f"{path}: column 'collective' has values other than {collective!r}")
        _check_values(df, [median, "num_workers", "devices_per_node", "size"], path)
        _check_values(df, [std], path, allow_zero=True)
        n_gpus = df["num_workers"].to_numpy(np.int64)
        per_node = df["devices_per_node"].to_numpy(np.int64)
        if (n_gpus % per_node).any():
            raise ValueError(f"{path}: column 'num_workers' is not a multiple of 'devices_per_node'")
        frames.append(
            pd.DataFrame(
                {
                    "source": "vidur",
                    "topology": path.parent.name,
                    "collective": collective,
                    "n_gpus": n_gpus,
                    "devices_per_node": per_node,
                    "n_nodes": n_gpus // per_node,
                    "size_bytes": df["size"].to_numpy(np.int64),
                    "time_s": df[median].to_numpy(float) * _MS_TO_S,
                    "time_std_s": df[std].to_numpy(float) * _MS_TO_S,
                }
            )
        )
    return _finish(frames, ["topology", "collective", "n_gpus", "devices_per_node", "size_bytes"])


# --------------------------------------------------------------------------------------------
# LLM-Inference-Bench: one static batch per row, vLLM, TensorRT-LLM and DeepSpeed-MII on
# A100-SXM4-40GB.
# --------------------------------------------------------------------------------------------

_LIB_DIR = "llm-inference-bench-a100"
FRAMEWORK_IDS: dict[str, str] = {
    # upstream `Framework` value: the software profile it measures
    "vLLM": "vllm-offline",
    "TensorRT-LLM": "tensorrt-llm",
    "Deepspeed-MII": "deepspeed-mii",
}
_LIB_FILES = {  # latency file, power file (the vLLM pair is required, the other optional)
    "vLLM": ("All_results_A100_vLLM.csv", "power_results_A100_vLLM.csv"),
    "TRT-LLM_DS-MII": ("All_results_A100_TRT-LLM_DS-MII.csv", "power_results_A100_TRT-LLM_DS-MII.csv"),
}


def _lib_paths(data_dir: PathLike | None, which: int) -> list[Path]:
    """The LLM-Inference-Bench files of one kind (0 latency, 1 power) that a data folder has."""
    root = _root(data_dir) / _LIB_DIR
    paths = [root / files[which] for files in _LIB_FILES.values()]
    return [p for i, p in enumerate(paths) if i == 0 or p.is_file()]


_LIB_COLUMNS = [
    "Hardware",
    "Num of Hardware",
    "Framework",
    "Model",
    "Input Output Length",
    "Batch Size",
    "Latency",
    "Throughput",
]


def _static_batch(path: Path, extra: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = _read_csv(path, _LIB_COLUMNS + extra)
    if not (df["Hardware"] == "Nvidia A100 GPU").all():
        raise ValueError(f"{path}: column 'Hardware' has values other than 'Nvidia A100 GPU'")
    unknown = sorted(set(df["Framework"]) - set(FRAMEWORK_IDS))
    if unknown:
        raise ValueError(
            f"{path}: column 'Framework' has value(s) {', '.join(unknown)}: expected {', '.join(FRAMEWORK_IDS)}"
        )
    positive = ["Num of Hardware", "Input Output Length", "Batch Size", "Latency", "Throughput"]
    _check_values(df, positive + extra, path)
    batch = df["Batch Size"].to_numpy(np.int64)
    length = df["Input Output Length"].to_numpy(np.int64)
    latency = df["Latency"].to_numpy(float)
    out = pd.DataFrame(
        {
            "source": "llm-inference-bench",
            "framework": df["Framework"].map(FRAMEWORK_IDS),
            "model": df["Model"],
            "model_id": _model_ids(df["Model"], path, "Model"),
            "batch": batch,
            # The same length L is used for the prompt and for the generation (ignore_eos).
            "prompt_tokens": length,
            "output_tokens": length,
            # `Num of Hardware` is vLLM's tensor_parallel_size in the upstream run scripts.
            "tp": df["Num of Hardware"].to_numpy(np.int64),
            "latency_s": latency,
            # Upstream throughput counts prompt and generated tokens: batch * 2L / latency.
            "throughput_tokens_per_s": df["Throughput"].to_numpy(float),
            "output_throughput_tokens_per_s": batch * length / latency,
            # Tokens held in the KV cache at the end of the batch: compare with the KV capacity.
            "peak_context_tokens": batch * 2 * length,
        }
    )
    return df, out


def load_static_batch(data_dir: PathLike | None = None) -> pd.DataFrame:
    """Static-batch latency of vLLM, TensorRT-LLM and DeepSpeed-MII on A100-SXM4-40GB
    (LLM-Inference-Bench).

    Reads ``llm-inference-bench-a100/All_results_A100_vLLM.csv`` and
    ``All_results_A100_TRT-LLM_DS-MII.csv``. A vLLM row times one ``LLM.generate()`` call
    (wall clock, after 3 warm-up calls): ``batch`` prompts of ``prompt_tokens`` random tokens,
    each generating exactly ``output_tokens`` tokens, so the latency covers the prefill of the
    whole batch plus all decode steps and vLLM's scheduling. The other frameworks' rows time
    their own generate call of the same shape (caveats in ``data/PROVENANCE.md``). When
    ``peak_context_tokens`` exceeds the KV-cache capacity, the batch runs in waves or
    preempts, and the latency is no longer that of one batch of that size.

    Args:
        data_dir: root of the data layout; defaults to ``calibration/data``.

    Returns:
        Columns: ``source`` ("llm-inference-bench"), ``framework`` (``FRAMEWORK_IDS``),
        ``model``, ``model_id``, ``batch``,
        ``prompt_tokens``, ``output_tokens``, ``tp``, ``latency_s``,
        ``throughput_tokens_per_s`` (upstream, prompt + output tokens per second),
        ``output_throughput_tokens_per_s``, ``peak_context_tokens``.
    """
    frames = [_static_batch(path, [])[1] for path in _lib_paths(data_dir, 0)]
    return _finish(frames, ["framework", "model", "tp", "batch", "prompt_tokens"])


def load_static_batch_power(data_dir: PathLike | None = None) -> pd.DataFrame:
    """Static-batch runs with average GPU power (LLM-Inference-Bench, A100-SXM4-40GB).

    Reads ``llm-inference-bench-a100/power_results_A100_{vLLM,TRT-LLM_DS-MII}.csv``: the columns of
    ``load_static_batch`` plus ``avg_power_w``, converted from the upstream milliwatts. Power is
    the mean of NVML samples every 0.25 s on GPU 0 only, over a window that adds about 1 s of
    idle before and after a second ``generate()`` of the same batch, so short runs read low.
    Every row here has ``tp == 1``, so GPU 0 is the whole configuration.

    Args:
        data_dir: root of the data layout; defaults to ``calibration/data``.

    Returns:
        Columns of ``load_static_batch`` plus ``avg_power_w``.
    """
    frames = []
    for path in _lib_paths(data_dir, 1):
        df, out = _static_batch(path, ["avg_power"])
        out["avg_power_w"] = df["avg_power"].to_numpy(float) * _MW_TO_W
        frames.append(out)
    return _finish(frames, ["framework", "model", "tp", "batch", "prompt_tokens"])


# --------------------------------------------------------------------------------------------
# ML.ENERGY leaderboard v2: vLLM serving at steady state on A100-SXM4-40GB.
# --------------------------------------------------------------------------------------------

_MLE_DIR = "ml-energy-v2-a100"
_MLE_GPU = "A100-SXM4-40GB"
_MLE_FILE = re.compile(r"^bs(\d+)\+tp(\d+)\+pp(\d+)\.json$")
_MLE_KEYS = {
    "Model": "model",
    "GPU": "gpu",
    "TP": "tp",
    "PP": "pp",
    "Energy/req (J)": "energy_per_request_j",
    "Avg TPOT (s)": "tpot_s",
    "Token tput (tok/s)": "throughput_tokens_per_s",
    "Avg Output Tokens": "avg_output_tokens",
    "Avg BS (reqs)": "avg_batch",
    "Max BS (reqs)": "max_batch",
}
# Workload of each task, from the upstream benchmark scripts (the result files do not record
# prompt lengths): prompt set, and the generation cap sent with every request.
_MLE_TASKS = {
    "chat": ("sharegpt-first-turn", 1024),
    "code": ("humaneval-plus", 512),
}


def load_serving_energy(data_dir: PathLike | None = None) -> pd.DataFrame:
    """vLLM serving energy and speed at steady state on A100-SXM4-40GB (ML.ENERGY v2).

    Reads ``ml-energy-v2-a100/{chat,code}/A100-SXM4-40GB/<org>/<model>/bs<B>+tp<T>+pp<P>.json``
    and the task's ``models.json``. All requests arrive at once and the server runs with
    ``--max-num-seqs B`` (from the file name) and a 400 W power limit; the published numbers
    cover the steady-state window only. Energy is the NVML GPU energy summed over the
    ``tp * pp`` GPUs.

    Prompt lengths are not in the published results. Chat prompts are the first user turn of
    ShareGPT conversations, kept when prompt and reply are both 4 to 800 tokens (Llama
    tokenizer), sent with a one-sentence system prompt through the model's chat template,
    ``max_tokens`` 1024. Code prompts are the HumanEval+ function headers and docstrings (a
    few hundred tokens at most), plain completion with stop sequences, ``max_tokens`` 512.

    Args:
        data_dir: root of the data layout; defaults to ``calibration/data``.

    Returns:
        Columns: ``source`` ("ml-energy"), ``task`` (chat, code), ``model``, ``model_id``,
        ``gpu``, ``tp``, ``pp``, ``n_gpus``, ``max_num_seqs``, ``energy_per_request_j``,
        ``tpot_s``, ``throughput_tokens_per_s`` (generated tokens per second),
        ``avg_output_tokens``, ``avg_batch``, ``max_batch`` (requests running; with PP > 1
        this counts all stages, up to ``pp * max_num_seqs``), ``n_params_nominal`` (the
        leaderboard's rounded parameter count), ``prompt_dataset``, ``max_output_tokens``,
        and two derived columns: ``energy_per_output_token_j`` and ``avg_power_w`` (all GPUs,
        energy per request x requests per second).
    """
    base = _root(data_dir) / _MLE_DIR
    numeric_keys = [k for k in _MLE_KEYS if k not in ("Model", "GPU")]
    records: list[dict[str, object]] = []
    for task, (prompt_dataset, max_output_tokens) in _MLE_TASKS.items():
        models_path = base / task / "models.json"
        if not models_path.is_file():
            raise FileNotFoundError(f"{models_path}: measurement file not found")
        models = json.loads(models_path.read_text())
        paths = sorted((base / task / _MLE_GPU).glob("*/*/*.json"))
        if not paths:
            raise FileNotFoundError(f"{base / task / _MLE_GPU}: no <org>/<model>/*.json files")
        for path in paths:
            match = _MLE_FILE.match(path.name)
            if match is None:
                raise ValueError(f"{path}: file name is not bs<B>+tp<T>+pp<P>.json")
            if not path.is_file():  # a FIFO or device would block the read below
                raise FileNotFoundError(f"{path}: not a regular measurement file")
            raw = pd.DataFrame([json.loads(path.read_text())])
            _require_columns(raw, _MLE_KEYS, path)
            _check_values(raw, numeric_keys, path)
            record = {new: raw[old].iloc[0] for old, new in _MLE_KEYS.items()}
            if _MLE_GPU not in str(record["gpu"]):
                raise ValueError(f"{path}: column 'GPU' is {record['gpu']!r}, not {_MLE_GPU}")
            max_num_seqs, tp, pp = (int(g) for g in match.groups())
            for key, from_name in (("TP", tp), ("PP", pp)):
                if raw[key].iloc[0] != from_name:
                    raise ValueError(f"{path}: column {key!r} is {raw[key].iloc[0]} but the file name says {from_name}")
            model = str(record["model"])
            model_id = _model_ids(pd.Series([model]), path, "Model").iloc[0]
            params = models.get(model, {}).get("params")
            if not isinstance(params, int | float) or not params > 0:
                raise ValueError(f"{models_path}: no positive 'params' for {model!r} (column 'Model' of {path})")
            record.update(
                source="ml-energy",
                task=task,
                model_id=model_id,
                gpu=_MLE_GPU,
                max_num_seqs=max_num_seqs,
                n_params_nominal=float(params) * 1e9,
                prompt_dataset=prompt_dataset,
                max_output_tokens=max_output_tokens,
            )
            records.append(record)

    df = pd.DataFrame.from_records(records)
    df["n_gpus"] = df["tp"] * df["pp"]
    df["energy_per_output_token_j"] = df["energy_per_request_j"] / df["avg_output_tokens"]
    # Requests per second = output tokens per second / output tokens per request.
    df["avg_power_w"] = df["energy_per_request_j"] * df["throughput_tokens_per_s"] / df["avg_output_tokens"]
    integers = ("tp", "pp", "n_gpus", "max_num_seqs", "max_batch", "max_output_tokens")
    df = df.astype(dict.fromkeys(integers, np.int64))
    columns = [
        "source", "task", "model", "model_id", "gpu", "tp", "pp", "n_gpus", "max_num_seqs",
        "energy_per_request_j", "tpot_s", "throughput_tokens_per_s", "avg_output_tokens",
        "avg_batch", "max_batch", "n_params_nominal", "prompt_dataset", "max_output_tokens",
        "energy_per_output_token_j", "avg_power_w",
    ]  # fmt: skip
    return _finish([df[columns]], ["task", "model", "tp", "pp", "max_num_seqs"])


# --------------------------------------------------------------------------------------------
# Public A100 GEMM measurements (independent of the Vidur profiles): the generalization check.
# --------------------------------------------------------------------------------------------


def load_public_gemms(data_dir: PathLike | None = None) -> pd.DataFrame:
    """Dense FP16/BF16 tensor-core GEMMs measured on A100s by third parties.

    Reads ``gemm-public-a100/gemm.csv`` (one row per shape: source, A100 variant, dtype, M, N,
    K, TFLOP/s, how measured; sources in ``data/PROVENANCE.md``). Never used in a fit: it
    checks that the kernel model generalizes beyond the transformer-layer shapes it was
    fitted on (square GEMMs to 16k, skinny GEMMs down to M = 1).

    Returns:
        Columns: ``source``, ``a100_variant``, ``dtype``, ``m``, ``n``, ``k``, ``tflops``,
        ``how``, ``time_s`` (2·M·N·K / rate).
    """
    path = _root(data_dir) / "gemm-public-a100" / "gemm.csv"
    df = _read_csv(path, ["source", "a100_variant", "dtype", "m", "n", "k", "tflops", "how"])
    _check_values(df, ["m", "n", "k", "tflops"], path)
    df["time_s"] = 2.0 * df["m"] * df["n"] * df["k"] / (df["tflops"] * 1e12)
    return df.reset_index(drop=True)
