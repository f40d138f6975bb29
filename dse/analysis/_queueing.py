"""The queueing approximation against the exact simulation on random deployments.

Each configuration is a model on a chip (TP, batch, prompt and output lengths, prompt spread,
continuous or chunked batching) at a random load between 10 % and 90 % of its saturation
rate. The engine gives its service curve and the analytic percentiles (``open_queue``); the
exact simulation (``simulate``) serves a Poisson trace of the same mix on the same curve. Both
share the cost model, so the difference is the queueing approximation alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from dse.engine import make_config, poisson_traces, run_designs, simulate_requests, software_levels
from dse.specs import load_hardware, load_model

# What is compared: (analytic metric, simulated quantity, percentile).
COMPARED = (
    ("p50_ttft_s", "ttft_s", 50.0),
    ("p99_ttft_s", "ttft_s", 99.0),
    ("p50_tpot_s", "tpot_s", 50.0),
    ("p99_tpot_s", "tpot_s", 99.0),
)
_MODELS = ("llama-3-8b", "llama-3-70b")
_CHIPS = ("h100-sxm5-80gb", "mi300x")
_MODES = ("continuous", "chunked")


def check_queueing(
    n_configs: int = 200,
    n_requests: int = 4800,
    warmup: int = 800,
    seed: int = 0,
    replications: int = 8,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Random feasible configurations (an even share per model, chip and batching mode); per
    configuration the analytic and simulated percentiles of TTFT and TPOT (the simulation's
    over the requests after the first ``warmup`` of ``replications`` traces). Returns ``rows``
    (one dict per configuration), ``mape`` (metric → mean absolute percentage error, overall
    and by load) and ``scatter`` (the same between two halves of the traces: how precisely
    the simulation itself knows each percentile)."""
    rng = np.random.default_rng(seed)
    groups = list(itertools.product(_MODELS, _CHIPS, _MODES))
    rows: list[dict[str, Any]] = []
    for g, (model_id, chip_id, mode) in enumerate(groups):
        want = n_configs // len(groups) + (1 if g < n_configs % len(groups) else 0)
        model, hw = load_model(model_id), load_hardware(chip_id)
        config = make_config(model, hw, batching=mode)
        software = software_levels(hw, ["calibrated"])
        m = 4 * want  # some do not fit; more than enough
        knobs = {
            "tp": rng.choice([1.0, 2.0, 4.0, 8.0], m),
            "batch": rng.choice([4.0, 8.0, 16.0, 32.0, 64.0, 128.0], m),
            "prompt_tokens": np.round(np.exp(rng.uniform(np.log(128), np.log(4096), m))),
            "output_tokens": np.round(np.exp(rng.uniform(np.log(32), np.log(512), m))),
            "prompt_tokens_cv": rng.choice([0.0, 0.5], m),
            "chunk_tokens": rng.choice([256.0, 512.0, 1024.0, 2048.0], m) if mode == "chunked" else np.zeros(m),
            "rate_rps": np.zeros(m),
        }
        closed = run_designs(config, knobs, software)
        ok = np.flatnonzero(closed["feasible"][-1].astype(bool))[:want]
        knobs = {k: v[ok] for k, v in knobs.items()}
        load = rng.uniform(0.1, 0.9, len(ok))
        knobs["rate_rps"] = load * closed["saturation_rate_rps"][-1][ok]
        open_ = {k: v[-1] for k, v in run_designs(config, knobs, software).items()}
        curves = {
            "step_s": open_["step_s"],
            "step_per_seq_s": open_["step_per_sequence_s"],
            "pass_s": open_["prefill_pass_s"],
            "token_s": open_["prefill_per_token_s"],
            "slots": knobs["batch"],
            "chunk_tokens": np.minimum(knobs["chunk_tokens"], knobs["prompt_tokens"]),
            "kv_tokens": open_["kv_capacity_tokens"],
            "accepted": np.ones(len(ok)),
        }
        # ``replications`` independent traces per configuration, pooled: one trace's p99 near
        # saturation scatters by tens of per cent (its waits are long and correlated).
        keys = jax.random.split(jax.random.PRNGKey(seed * 1000 + g), len(ok) * replications)
        per_trace = {k: np.repeat(v, replications) for k, v in knobs.items()}
        arrival, prompt, output = poisson_traces(
            keys,
            n_requests,
            per_trace["rate_rps"],
            per_trace["prompt_tokens"],
            per_trace["prompt_tokens_cv"],
            per_trace["output_tokens"],
        )
        sim = simulate_requests({k: np.repeat(v, replications) for k, v in curves.items()}, arrival, prompt, output)
        sim = {k: v.reshape(len(ok), replications, n_requests)[:, :, warmup:] for k, v in sim.items()}
        half = replications // 2
        for i in range(len(ok)):
            row: dict[str, Any] = {"model": model_id, "hardware": chip_id, "batching": mode, "load": load[i]}
            row |= {k: float(v[i]) for k, v in knobs.items()}
            row["finished"] = float(np.isfinite(sim["latency_s"][i]).mean())
            for name, quantity, pct in COMPARED:
                row[name] = float(open_[name][i])
                row[f"sim_{name}"] = float(np.percentile(sim[quantity][i], pct))
                # The simulation's own scatter: one half of the traces against the other.
                if half:
                    row[f"half_{name}"] = float(np.percentile(sim[quantity][i, :half], pct))
                    row[f"other_{name}"] = float(np.percentile(sim[quantity][i, half:], pct))
            rows.append(row)
        if progress:
            progress(len(ok))
    scatter = []
    for r in rows if replications > 1 else []:
        halves = dict(r)
        for name, _, _ in COMPARED:
            halves[name], halves[f"sim_{name}"] = r[f"half_{name}"], r[f"other_{name}"]
        scatter.append(halves)
    return {"rows": rows, "mape": mape_by_load(rows), "scatter": mape_by_load(scatter) if scatter else {}}


def mape_by_load(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Metric → {band: mean absolute percentage error}, bands of the load (and ``all``)."""
    bands = {"all": (0.0, 1.0), "10-50 %": (0.0, 0.5), "50-75 %": (0.5, 0.75), "75-90 %": (0.75, 1.0)}
    out: dict[str, dict[str, float]] = {}
    for name, _, _ in COMPARED:
        out[name] = {}
        for band, (lo, hi) in bands.items():
            errs = [abs(r[name] / r[f"sim_{name}"] - 1.0) for r in rows if lo <= r["load"] < hi]
            out[name][band] = float(np.mean(errs)) * 100.0 if errs else float("nan")
    return out
