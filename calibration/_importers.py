"""Importers: what users have measured -> rows of a measurements CSV (``inferbench import``).

Each importer states the mapping it assumes:

- ``llm-inference-bench``: the CSV layout of argonne-lcf/LLM-Inference-Bench (``Hardware,
  Num of Hardware, Framework, Model, Input Output Length, Batch Size, Latency, Throughput``).
  A row is one ``LLM.generate()`` of ``Batch Size`` prompts of ``Input Output Length`` random
  tokens, each generating exactly as many tokens (``ignore_eos``): phase ``request``,
  ``batching static`` (every sequence starts together and runs to the same length), prompt =
  output = ``Input Output Length``, ``measured_latency_s`` = ``Latency`` (mean wall time of the
  call). ``Throughput`` is batch × (prompt + output) / latency, the same number: not imported.
  ``tp`` = ``Num of Hardware`` × ``chips_per_unit`` (an MI250 module is two GPUs to ROCm).
  Data type float16 (the upstream scripts' ``--dtype``). ``llama.cpp`` rows are ``llama-bench
  -p N -n N -pg N,N -b B``: one sequence (the throughput column is (2N) / latency at every B),
  its prompt processed in chunks of B tokens (``chunk_tokens``), the GPUs splitting the layers
  (llama.cpp's default split mode: ``pp`` = the GPU count, ``tp`` 1).
- ``vllm-latency``: ``benchmark_latency.py --output-json`` (``vllm bench latency``): keys
  ``avg_latency`` (s), ``latencies``, ``percentiles``. One ``generate()`` of ``--batch-size``
  prompts of ``--input-len`` tokens and ``--output-len`` tokens each (``ignore_eos``): phase
  ``request``, static batching, ``measured_latency_s`` = ``avg_latency``. The JSON does not
  record the shape: it is given with the import (model, tp, batch, input and output length).
- ``vllm-serving``: ``benchmark_serving.py --save-result`` (``vllm bench serve``): keys
  ``model_id``, ``completed``, ``total_input_tokens``, ``total_output_tokens``,
  ``request_rate``, ``max_concurrency``, ``mean_ttft_ms``, ``mean_tpot_ms``,
  ``output_throughput``. Every request in flight at once (``request_rate`` inf) is continuous
  batching in steady state with ``max_concurrency`` (else ``num_prompts``) sequences running:
  ``batching continuous``, prompt and output tokens their means per request,
  ``measured_ttft_s``, ``measured_tpot_s`` (means) and ``measured_throughput_tokens_per_s``.
  An open-loop finite rate is refused (the steady-state model needs all requests in flight).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dse.specs import MODEL_DIR, SpecError, load_model, load_yaml, read_input, writing

FORMATS = ("llm-inference-bench", "vllm-latency", "vllm-serving")
ROW_COLUMNS = ("model", "hardware", "phase", "batch", "prompt_tokens", "context_tokens", "output_tokens", "tp",
               "dtype", "batching")  # fmt: skip
LIB_COLUMNS = ("Hardware", "Num of Hardware", "Framework", "Model", "Input Output Length", "Batch Size", "Latency")
UPSTREAM_DTYPE = "fp16"


def catalog_model(hf_or_id: str) -> str | None:
    """The catalog id of a Hugging Face id (``hf_id`` of a model file) or of a catalog id."""
    try:
        return load_model(hf_or_id).id
    except SpecError:
        pass
    for path in sorted(MODEL_DIR.glob("*.yaml")):
        if load_yaml(path.read_text()).get("hf_id") == hf_or_id:
            return path.stem
    return None


def _number(path: Path, where: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise SpecError(f"{path}: {where} = {value!r}: expected a number > 0")
    return v


def llm_inference_bench(
    path: Path, hardware: str, labels: Sequence[str], chips_per_unit: int = 1, frameworks: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the chosen ``labels`` (column ``Hardware``; every row if the file has one) and
    ``frameworks`` (column ``Framework``; all if none given); notes on what was skipped."""
    text = read_input(path, "a CSV file")
    reader = csv.DictReader(text.splitlines())
    cols = reader.fieldnames or []
    missing = [c for c in LIB_COLUMNS if c not in cols]
    if missing:
        raise SpecError(f"{path}: missing column(s) {', '.join(missing)}: expected the LLM-Inference-Bench layout")
    all_rows = list(reader)
    present = sorted({r["Hardware"] for r in all_rows})
    if not labels:
        if len(present) > 1:
            raise SpecError(f"{path}: rows of {len(present)} chips: expected --label, one of {', '.join(present)}")
        labels = present
    unknown = [lb for lb in labels if lb not in present]
    if unknown:
        raise SpecError(f"{path}: --label '{unknown[0]}': no such Hardware: expected one of {', '.join(present)}")
    out, skipped = [], {}
    for i, r in enumerate(all_rows):
        if r["Hardware"] not in labels or (frameworks and r["Framework"] not in frameworks):
            continue
        model = catalog_model(r["Model"])
        if model is None:
            skipped[r["Model"]] = skipped.get(r["Model"], 0) + 1
            continue
        where = f"row {i + 2}"
        tokens = _number(path, f"{where}: column 'Input Output Length'", r["Input Output Length"])
        batch = _number(path, f"{where}: column 'Batch Size'", r["Batch Size"])
        chips = _number(path, f"{where}: column 'Num of Hardware'", r["Num of Hardware"]) * chips_per_unit
        row = {"model": model, "hardware": hardware, "phase": "request", "batch": batch, "prompt_tokens": tokens,
               "context_tokens": tokens, "output_tokens": tokens, "tp": chips, "dtype": UPSTREAM_DTYPE,
               "batching": "static", "measured_latency_s": _number(path, f"{where}: column 'Latency'", r["Latency"])}  # fmt: skip
        if r["Framework"] == "llama.cpp":  # llama-bench: one sequence; -b is the prompt chunk; GPUs split by layer
            row |= {"batch": 1.0, "chunk_tokens": batch, "tp": 1.0, "pp": chips}
        out.append(row)
    notes = [
        f"skipped {n} rows of {m}: no catalog model with that hf_id (write a model file)" for m, n in skipped.items()
    ]
    if not out:
        raise SpecError(f"{path}: no rows of {', '.join(labels)} with a catalog model: nothing to import")
    return out, notes


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_input(path, "a JSON file"))
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a JSON object")
    return data


def vllm_latency(path: Path, hardware: str, shape: dict[str, Any]) -> list[dict[str, Any]]:
    data = _json(path)
    if "avg_latency" not in data:
        raise SpecError(f"{path}: missing key 'avg_latency': expected benchmark_latency --output-json output")
    return [{
        "model": shape["model"], "hardware": hardware, "phase": "request", "batch": shape["batch"],
        "prompt_tokens": shape["input_len"], "context_tokens": shape["input_len"], "output_tokens": shape["output_len"],
        "tp": shape["tp"], "dtype": shape["dtype"], "batching": "static",
        "measured_latency_s": _number(path, "avg_latency", data["avg_latency"]),
    }]  # fmt: skip


def vllm_serving(path: Path, hardware: str, shape: dict[str, Any]) -> list[dict[str, Any]]:
    data = _json(path)
    for key in ("completed", "total_input_tokens", "total_output_tokens", "mean_ttft_ms", "mean_tpot_ms",
                "output_throughput"):  # fmt: skip
        if key not in data:
            raise SpecError(f"{path}: missing key '{key}': expected benchmark_serving --save-result output")
    rate = data.get("request_rate", "inf")
    if str(rate).lower() not in ("inf", "infinity") and not (isinstance(rate, float) and math.isinf(rate)):
        raise SpecError(
            f"{path}: request_rate = {rate}: expected inf (every request in flight, as the steady-state model "
            "assumes); open-loop rates are not imported"
        )
    model = shape.get("model") or catalog_model(str(data.get("model_id", "")))
    if model is None:
        raise SpecError(f"{path}: model_id = {data.get('model_id')!r}: no catalog model with that hf_id: give --model")
    done = _number(path, "completed", data["completed"])
    running = data.get("max_concurrency") or data.get("num_prompts") or done
    return [{
        "model": model, "hardware": hardware, "phase": "request",
        "batch": _number(path, "max_concurrency", running),
        "prompt_tokens": round(_number(path, "total_input_tokens", data["total_input_tokens"]) / done, 1),
        "context_tokens": round(_number(path, "total_input_tokens", data["total_input_tokens"]) / done, 1),
        "output_tokens": round(_number(path, "total_output_tokens", data["total_output_tokens"]) / done, 1),
        "tp": shape["tp"], "dtype": shape["dtype"], "batching": "continuous",
        "measured_ttft_s": _number(path, "mean_ttft_ms", data["mean_ttft_ms"]) / 1e3,
        "measured_tpot_s": _number(path, "mean_tpot_ms", data["mean_tpot_ms"]) / 1e3,
        "measured_throughput_tokens_per_s": _number(path, "output_throughput", data["output_throughput"]),
    }]  # fmt: skip


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(ROW_COLUMNS) + sorted({k for r in rows for k in r} - set(ROW_COLUMNS))

    def fmt(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    with writing(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: fmt(r[k]) if k in r else "" for k in columns})
