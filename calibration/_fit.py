"""Fit the cost models to the A100 measurements by gradient descent (optax L-BFGS).

Two stages, each one jitted optimization over its whole data set (no Python loop over
measurements; loops at trace time only over static structure such as the FFN form):

1. **Kernel level** on the A100-SXM4-80GB (Vidur kernels and NCCL collectives, see
   ``data/PROVENANCE.md``): the GEMM utilization curve (seed table or tile/wave form), HBM
   bandwidth efficiency, per-kernel overhead, collective link efficiency and per-step latency.
   All are **software** parameters.
2. **System level** on the A100-SXM4-40GB (LLM-Inference-Bench static batches and power,
   ML.ENERGY serving energy and TPOT), with the stage-1 software fixed: each framework's
   per-forward-pass overhead (software: fixed and per sequence) and the power
   model P_idle, α per FLOP, β per byte (**chip**). Given the stage-1 software, ``serve()``
   is affine in these parameters (overheads add to the wall time of every pass; energy is
   P_idle·chips·wall + α·FLOPs + β·bytes below the TDP cap), so the stage-2 loss is written
   on per-row features from one ``serve()`` evaluation; the reported errors use ``serve()``
   itself with the fitted parameters.

Loss: mean over rows of (log predicted − log measured)² per data set (scale-free), summed
over data sets. Validation holds whole models out (``HELD_OUT_MODELS``, a fixed split) and,
for the kernels, also leave-one-model-out to compare the two utilization forms.

Uncertainty: Laplace approximation at the optimum — the Hessian (``jax.hessian``) of the
negative log-likelihood with Gaussian log-residuals of per-data-set variance σ² (the
training residual variance) gives the covariance of the unconstrained parameters; the
delta method maps it to the constrained values. Rows of one model are correlated, so this
is a lower bound on the true uncertainty; the held-out residuals give the prediction
intervals (:mod:`calibration._intervals`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jax.flatten_util import ravel_pytree

from calibration import _data
from calibration._params import (
    CHIP_PARAMS,
    FRAMEWORK_PARAMS,
    KERNEL_PARAMS,
    UTIL_FORMS,
    param_info,
    raws,
    software_from,
    values,
)
from dse.engine import Config, float64, in_float64, kernel_rows, serve_rows
from dse.specs import MODEL_DIR, hardware_network, load_hardware, load_model, load_yaml
from models import (
    ELEMENTWISE,
    GEMM,
    Metrics,
    Scenario,
    SoftwareParams,
    achievable_software,
    default_economics,
    ideal_software,
)
from models.platform import Level, PlatformSpec, collective_s

Array = jax.Array

# ---------------------------------------------------------------------------------------
# The split (fixed, stated here). Whole models are held out of every fit.
# ---------------------------------------------------------------------------------------

HELD_OUT_MODELS: tuple[str, ...] = (
    # Vidur kernels (6 models): the parallel-block GELU model and InternLM-20B.
    "phi-2", "internlm-20b",
    # LLM-Inference-Bench static batches (7 models).
    "llama-3-8b", "qwen2-7b",
    # ML.ENERGY serving (22 models): about a third, across families and sizes.
    "gemma-2-9b", "phi-3-small", "mistral-nemo-12b", "llama-3.1-70b", "codellama-13b",
    "starcoder2-7b", "codegemma-7b",
)  # fmt: skip
"""``model_id`` values (``calibration._data.MODEL_IDS``) never seen by the shipped fit."""

HELD_OUT_COLLECTIVE_GPUS = 4
"""Collectives have no model: the 4-GPU all-reduce is held out (fit on 2 and 8 GPUs)."""

# Workload assumptions for ML.ENERGY (prompt lengths are not in the results; PROVENANCE.md).
# Chat: ShareGPT first user turns filtered to 4–800 tokens average about 200 tokens (Llama
# tokenizer), plus about 50 tokens of system prompt and chat template -> 250. Code: the
# HumanEval(+) prompts (signature and docstring) average about 130 Llama tokens. Estimates.
ML_ENERGY_PROMPT_TOKENS = {"chat": 250.0, "code": 130.0}

# LLM-Inference-Bench power: NVML samples over the run plus about 2 s of idle (PROVENANCE.md).
POWER_IDLE_WINDOW_S = 2.0
# vLLM reserves 90 % of the HBM (gpu_memory_utilization default) for weights and KV cache;
# rows whose weights + KV cache exceed it ran in waves or preempted: excluded (counted).
VLLM_MEMORY_FRACTION = 0.9

KERNEL_HARDWARE = "a100-sxm4-80gb"  # Vidur kernels: an 80 GB part (PROVENANCE.md)
SYSTEM_HARDWARE = "a100-sxm4-40gb"  # LLM-Inference-Bench and ML.ENERGY: A100-SXM4-40GB
# Their network: the 40 GB part's own system (DGX A100-like: NVSwitch domain of 8, HDR NICs).
SYSTEM_NETWORK = {
    k: (v if isinstance(v, str) else np.asarray(v, dtype=np.float64))
    for k, v in hardware_network(load_hardware(SYSTEM_HARDWARE, calibrated=False)).items()
    if k not in ("has_scale_out", "host_power_w")  # NVML measures the GPUs, not their hosts
}
DTYPE = "fp16"  # every data set ran in float16

# Frameworks (software profiles) of the end-to-end data sets: the offline generate calls of
# vLLM, TensorRT-LLM and DeepSpeed-MII (LLM-Inference-Bench, a column of each row) and vLLM's
# OpenAI-compatible server streaming every token (ML.ENERGY). Each gets its own framework
# overheads; the shipped default software is vLLM's offline engine (no API server).
FRAMEWORK_NAMES = ("vllm-offline", "vllm-server", "tensorrt-llm", "deepspeed-mii")
SERVING_FRAMEWORK = "vllm-server"  # every ML.ENERGY row
# ML.ENERGY measured vLLM serving at steady state with every request sent at once: continuous
# batching with the average batch running (``serve``'s continuous mode); the static-batch
# data sets time one generate call of one batch.
SERVING_BATCHING = "continuous"
# Frameworks whose LLM-Inference-Bench scripts repeat one prompt for the whole batch (PROVENANCE.md).
IDENTICAL_PROMPT_FRAMEWORKS = ("tensorrt-llm", "deepspeed-mii")
DEFAULT_FRAMEWORK = "vllm-offline"

INITIAL: dict[str, Any] = {
    "util_knots": (0.15, 0.70, 0.70, 0.85),  # seed table
    "tile_efficiency": (0.8, 0.8, 0.8, 0.8),
    "k_half": 64.0,
    "bw_efficiency": 0.85,
    "kernel_overhead_s": 2e-6,
    "link_efficiency": 0.75,
    "collective_latency_s": 0.5e-6,
    "collective_launch_s": 10e-6,
    "reduce_launch_s": 20e-6,
    "reduce_efficiency": 0.6,
    "elementwise_bw_factor": 0.7,
    "step_overhead_s": 2e-3,
    "seq_overhead_s": 0.1e-3,
    "rank_overhead_s": 0.2e-3,
    "idle_w": 60.0,  # docs/references.md#research-note power model
    "energy_per_flop_j": 0.2e-12,
    "energy_per_byte_j": 50e-12,
}

SYSTEM_ROUNDS = 1  # linearization rounds of stage 2 (see fit())
# Stage 2 is small (a few hundred rows) but its overheads are nearly collinear (a fixed, a
# per-sequence and a per-rank part per framework): L-BFGS needs about 300 steps to converge.
SYSTEM_STEPS = 300
SYSTEM_NAMES = tuple(f"{p}@{fw}" for fw in FRAMEWORK_NAMES for p in FRAMEWORK_PARAMS) + CHIP_PARAMS

DATASETS = {
    # name: (source, quantity, unit, stage)
    "kernel_gemm": ("vidur", "kernel time", "s", 1),
    "kernel_elementwise": ("vidur", "kernel time", "s", 1),
    "allreduce": ("vidur", "NCCL all-reduce time", "s", 1),
    "send_recv": ("vidur", "NCCL send/recv time", "s", 1),
    "static_latency": ("llm-inference-bench", "static-batch latency", "s", 2),
    "static_power": ("llm-inference-bench", "average GPU power", "W", 2),
    "serving_energy": ("ml-energy", "energy per request", "J", 2),
    "serving_tpot": ("ml-energy", "time per output token", "s", 2),
    "serving_throughput": ("ml-energy", "output tokens per second", "token/s", 0),  # reported only
}


# ---------------------------------------------------------------------------------------
# Data: tidy tables -> arrays.
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    """All measurement rows as arrays, plus the row metadata for reports."""

    kernels: dict[str, Array]
    kernel_meta: pd.DataFrame
    collectives: dict[str, Array]
    collective_meta: pd.DataFrame
    system_groups: list[tuple[Any, dict[str, Array]]]  # (static key, stacked rows)
    system_index: np.ndarray  # concatenated group rows -> system_meta order
    system: dict[str, Array]
    system_meta: pd.DataFrame
    file_hashes: dict[str, str]
    system_modes: tuple[str, ...] = ()  # batching mode of each system group

    @property
    def meta(self) -> pd.DataFrame:
        """Row metadata of every data set, in prediction order."""
        df = pd.concat([self.kernel_meta, self.collective_meta, self.system_meta], ignore_index=True)
        df["excluded"] = df["excluded"].fillna(False).astype(bool)
        df["excluded_why"] = df["excluded_why"].fillna("")
        return df


def _catalog_ids() -> dict[str, str]:
    out = {}
    for path in sorted(MODEL_DIR.glob("*.yaml")):
        hf = load_yaml(path.read_text()).get("hf_id")
        if hf:
            out.setdefault(hf, path.stem)
    return out


def _hashes(data_dir: Path) -> dict[str, str]:
    out = {}
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and path.suffix in (".csv", ".json"):
            out[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return out


def data_digest(hashes: Mapping[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(hashes.items())).encode()).hexdigest()[:16]


def _split(model_ids: pd.Series) -> np.ndarray:
    return np.where(model_ids.isin(HELD_OUT_MODELS), "held-out", "train")


@in_float64
def prepare(data_dir: str | Path | None = None) -> Prepared:
    """Load every data set and turn it into the arrays the predictors take."""
    root = _data.DATA_DIR if data_dir is None else Path(data_dir)
    # Kernels (Vidur, per layer, fp16).
    k = _data.load_kernels(root)
    kmeta = pd.DataFrame({
        "dataset": np.where(k["kind"] == "gemm", "kernel_gemm", "kernel_elementwise"), "framework": "-",
        "model_id": k["model_id"], "op": k["op"], "kind": k["kind"], "tp": k["tp"],
        "phase": np.where(k["n_tokens"] <= 256, "decode", "prefill"),  # decode-sized batches
        "measured": k["time_s"], "split": _split(k["model_id"]),
    })  # fmt: skip
    kernels = {c: jnp.asarray(k[c].to_numpy(float)) for c in ("m", "n", "k", "flops", "bytes")}
    kernels["is_gemm"] = jnp.asarray((k["kind"] == "gemm").to_numpy())
    # Collectives: the scale-up fabric the catalog models (DGX A100 NVSwitch, one node).
    c = _data.load_collectives(root)
    intra = (c["topology"] == "a100_dgx") & (c["n_nodes"] == 1)
    ar = intra & (c["collective"] == "all_reduce")
    sr = intra & (c["collective"] == "send_recv")
    c = c[ar | sr].reset_index(drop=True)
    is_ar = (c["collective"] == "all_reduce").to_numpy()
    cmeta = pd.DataFrame({
        "dataset": np.where(is_ar, "allreduce", "send_recv"), "framework": "-", "model_id": "-",
        "op": c["collective"] + "_" + c["n_gpus"].astype(str) + "gpu", "kind": c["collective"],
        "tp": c["n_gpus"], "phase": np.where(c["size_bytes"] <= 1 << 20, "small (<=1MiB)", "large"),
        "measured": c["time_s"],
        "split": np.where(is_ar & (c["n_gpus"] == HELD_OUT_COLLECTIVE_GPUS), "held-out", "train"),
    })  # fmt: skip
    collectives = {
        "size": jnp.asarray(c["size_bytes"].to_numpy(float)),
        "n": jnp.asarray(c["n_gpus"].to_numpy(float)),
        "is_ar": jnp.asarray(is_ar),
    }

    # System level: one serve() per row.
    cat = _catalog_ids()
    rows = []
    static = (
        ("static_latency", _data.load_static_batch(root), "latency_s"),
        ("static_power", _data.load_static_batch_power(root), "avg_power_w"),
    )
    for dataset, frame, measured in static:
        for r in frame.itertuples():
            rows.append(
                dict(
                    dataset=dataset,
                    framework=r.framework,
                    model=r.model,
                    model_id=r.model_id,
                    batch=r.batch,
                    prompt=r.prompt_tokens,
                    output=r.output_tokens,
                    tp=r.tp,
                    pp=1,
                    measured=getattr(r, measured),
                    phase="request",
                )
            )
    for r in _data.load_serving_energy(root).itertuples():
        common = dict(
            model=r.model,
            model_id=r.model_id,
            batch=r.avg_batch,  # every sequence in flight; serve() splits it into micro-batches
            prompt=ML_ENERGY_PROMPT_TOKENS[r.task],
            output=r.avg_output_tokens,
            tp=r.tp,
            pp=r.pp,
            framework=SERVING_FRAMEWORK,
        )
        rows.append(dict(dataset="serving_energy", measured=r.energy_per_request_j, phase="request", **common))
        rows.append(dict(dataset="serving_tpot", measured=r.tpot_s, phase="decode", **common))
        rows.append(dict(dataset="serving_throughput", measured=r.throughput_tokens_per_s, phase="request", **common))
    smeta = pd.DataFrame(rows)
    smeta["catalog_id"] = smeta["model"].map(cat)
    missing = sorted(set(smeta.loc[smeta["catalog_id"].isna(), "model"]))
    if missing:
        raise ValueError(f"models/catalog/models: no spec with hf_id {', '.join(missing)}")
    smeta["split"] = _split(smeta["model_id"])
    smeta["op"] = smeta["dataset"]
    smeta["kind"] = smeta["dataset"]
    codes = {name: i for i, name in enumerate(DATASETS)}
    system = {
        "code": jnp.asarray(smeta["dataset"].map(codes).to_numpy()),
        "batch": jnp.asarray(smeta["batch"].to_numpy(float)),
        "output": jnp.asarray(smeta["output"].to_numpy(float)),
        "tp": jnp.asarray(smeta["tp"].to_numpy(float)),
        "pp": jnp.asarray(smeta["pp"].to_numpy(float)),
        "framework": jnp.asarray(smeta["framework"].map(FRAMEWORK_NAMES.index).to_numpy()),
    }
    specs = {cid: load_model(cid).spec for cid in sorted(set(smeta["catalog_id"]))}
    system["vocab"] = jnp.asarray([float(specs[c].vocab_size) for c in smeta["catalog_id"]])
    groups: dict[Any, list[int]] = {}
    for i, cid in enumerate(smeta["catalog_id"]):
        s = specs[cid]
        mode = SERVING_BATCHING if smeta["dataset"].iloc[i].startswith("serving") else "static"
        # One vmapped group per static structure (FFN form, MoE, ...) and batching mode; the
        # optional parts (a window) join a group as the union of its members' (a part whose
        # leaves are zero, such as window 0, changes nothing), so they add no compilation.
        structure = jax.tree_util.tree_structure(dataclasses.replace(s, parts=()))
        groups.setdefault((structure, mode), []).append(i)
    system_groups = []
    for key, idx in groups.items():
        members = [specs[smeta["catalog_id"].iloc[i]] for i in idx]
        parts = tuple(sorted(set().union(*(m.parts for m in members))))
        # Stacked in numpy, one device array per leaf (a device array per member and leaf took 3 s).
        model = jax.tree.map(
            lambda *x: jnp.asarray(np.stack([np.asarray(v, dtype=float) for v in x])),
            *[dataclasses.replace(m, parts=parts) for m in members],
        )
        arrays = {c: jnp.asarray(smeta[c].to_numpy(float)[idx]) for c in ("batch", "prompt", "output", "tp", "pp")}
        system_groups.append((key, {"model": model, **arrays}))
    order = np.concatenate([np.asarray(idx) for idx in groups.values()])
    modes = tuple(key[1] for key in groups)
    prep = Prepared(
        kernels, kmeta, collectives, cmeta, system_groups, np.argsort(order), system, smeta, _hashes(root), modes
    )
    # Exclude static batches that overflow the KV cache (not one batch; see PROVENANCE.md),
    # and static batches faster than the roofline of their stated shape (a generate call that
    # stopped early or ran a shorter prompt than the row says; PROVENANCE.md).
    chip = load_hardware(SYSTEM_HARDWARE, calibrated=False).spec
    out = system_features(chip, achievable_software(), prep)
    mem = np.asarray(out["weight_bytes"] + out["kv_bytes"])
    static_rows = smeta["dataset"].isin(["static_latency", "static_power"]).to_numpy()
    over = static_rows & (mem > VLLM_MEMORY_FRACTION * float(chip.hbm_capacity_bytes))
    roof = system_features(chip, ideal_software(), prep)
    below = (smeta["dataset"] == "static_latency").to_numpy() & (
        smeta["measured"].to_numpy() < np.asarray(roof["ttft_s"] + roof["decode_s"])
    )
    # The TensorRT-LLM and DeepSpeed-MII scripts give every sequence of a batch the same prompt:
    # a MoE then routes all of them to the same experts, which balanced routing does not describe.
    moe = smeta["catalog_id"].map(lambda c: bool(specs[c].moe)).to_numpy()
    same = static_rows & moe & smeta["framework"].isin(IDENTICAL_PROMPT_FRAMEWORKS).to_numpy()
    prep.system_meta["excluded"] = over | below | same
    why = np.where(same, "identical_prompts_moe", np.where(below, "below_roofline", ""))
    prep.system_meta["excluded_why"] = np.where(over, "kv_overflow", why)
    prep.kernel_meta["excluded"] = False
    prep.collective_meta["excluded"] = False
    return prep


# ---------------------------------------------------------------------------------------
# Predictors (pure; the same cost functions the engine uses).
# ---------------------------------------------------------------------------------------


def fast_jit(fn, *args):
    """Compile ``fn`` for ``args`` in float64 with cheap XLA CPU settings (these programs are
    small vectors of scalar formulas: compile time dominates, run time is milliseconds).
    Returns a callable that runs the compiled program in float64."""
    options = {
        "xla_backend_optimization_level": 0,
        "xla_llvm_disable_expensive_passes": True,
        "xla_cpu_use_fusion_emitters": False,
    }
    with float64():
        try:
            compiled = jax.jit(fn).lower(*args).compile(compiler_options=options)
        except Exception:  # pragma: no cover - another backend without these options
            compiled = jax.jit(fn).lower(*args).compile()

    def run(*a):
        with float64():
            return compiled(*a)

    return run


def kernel_time_s(chip: Any, sw: SoftwareParams, d: Mapping[str, Array]) -> Array:
    """Kernel time of each measured kernel: the chip's own operator cost (``Chip.operator_cost``,
    through the engine's boundary), a GEMM row or an elementwise row."""
    args = (d["flops"], d["bytes"], d["m"], d["n"], d["k"])
    gemm = kernel_rows(chip, sw, *args, GEMM, DTYPE)
    elementwise = kernel_rows(chip, sw, *args, ELEMENTWISE, DTYPE)
    return jnp.where(d["is_gemm"], gemm, elementwise)


# The Vidur NCCL rows ran inside one DGX A100: 8 GPUs on NVSwitch (second generation, no
# in-network reduction). NCCL has ring and tree algorithms, not the one-kernel all-reduces of
# serving frameworks, so those are off for these rows (``direct_allreduce = 0``).
NCCL_DOMAIN = Level(8.0, 0.0, 0.0, "switch")


def collective_time_s(chip: Any, sw: SoftwareParams, d: Mapping[str, Array]) -> Array:
    """All-reduce or point-to-point time: ``models.platform.collective_s``, the function
    ``serve`` charges for TP, EP and PP communication, on the DGX A100's scale-up domain."""
    nccl = dataclasses.replace(sw, direct_allreduce=jnp.zeros_like(sw.direct_allreduce))
    up = NCCL_DOMAIN._replace(bandwidth_bytes_per_s=chip.link_bandwidth_bytes_per_s, latency_s=chip.link_latency_s)
    out = up._replace(n=1.0)  # unused: every row is inside one domain
    one = jnp.ones_like(d["n"])
    return jnp.where(
        d["is_ar"],
        collective_s("all_reduce", d["size"], d["n"], one, (up, out), nccl),
        collective_s("send_recv", d["size"], 2.0 * one, one, (up, out), nccl),
    )


def _serve_system(
    chip: Any, sw: SoftwareParams, groups: list[dict[str, Any]], index: np.ndarray, modes: Sequence[str]
) -> Metrics:
    """``serve()`` of every system-level row (``Prepared.system_meta`` order), through the
    engine's boundary: one vmapped evaluation per static model structure and batching mode
    (``modes``, one per group), the model's dimensions and the scenario as knobs."""
    econ = default_economics()
    parts = []
    for g, mode in zip(groups, modes, strict=True):
        model = g["model"]
        one = jnp.ones(())
        platform = PlatformSpec(one, one, **SYSTEM_NETWORK)
        scenario = Scenario(one, one, one, DTYPE, DTYPE, DTYPE, batching=mode)
        cfg = Config(model, chip, platform, scenario, econ)
        knobs = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if "spec" in f.metadata}
        knobs |= {
            "batch": g["batch"],
            "prompt_tokens": g["prompt"],
            "output_tokens": g["output"],
            "tp": g["tp"],
            "pp": g["pp"],
        }
        parts.append(serve_rows(cfg, knobs, sw))
    return Metrics(*[jnp.concatenate([getattr(p, f) for p in parts])[index] for f in Metrics._fields])


def _features_fn(
    chip: Any, sw: SoftwareParams, groups: list[dict[str, Any]], index: np.ndarray, modes: Sequence[str]
) -> dict[str, Array]:
    m = _serve_system(chip, sw, groups, index, modes)
    bytes_all = m.mbu * m.latency_s * m.n_chips * chip.hbm_bandwidth_bytes_per_s
    return {
        "ttft_s": m.ttft_s,
        "decode_s": m.decode_latency_s,
        "latency_s": m.latency_s,
        "tpot_s": m.tpot_s,
        "throughput": m.throughput_tokens_per_s,
        "flops": m.flops,
        "bytes": bytes_all,
        "energy_j": m.energy_j,
        "n_chips": m.n_chips,
        "weight_bytes": m.weight_bytes_per_chip,
        "kv_bytes": m.kv_bytes_per_chip,
    }


@in_float64
def system_features(chip: Any, sw: SoftwareParams, prep: Prepared) -> dict[str, Array]:
    """Per-row outputs of ``serve()`` (one jitted evaluation of every system-level row)."""
    groups = [g for _, g in prep.system_groups]
    key = ("features", id(prep))
    if key not in _CACHE:
        modes = prep.system_modes
        _CACHE[key] = fast_jit(lambda c, s, g: _features_fn(c, s, g, prep.system_index, modes), chip, sw, groups)
    return _CACHE[key](chip, sw, groups)


LINEAR_SOFTWARE = FRAMEWORK_PARAMS  # per-framework software parameters of stage 2
# serve() is bilinear in the idle power and each framework overhead (idle chips draw P_idle
# while the framework runs); every other second derivative is zero.
SECOND_ORDER = ("idle_w", FRAMEWORK_PARAMS)


@in_float64
def system_linearization(chip: Any, sw: SoftwareParams, prep: Prepared) -> dict[str, Array]:
    """``serve()``'s request latency and energy of every system row, and their first and
    second derivatives in the stage-2 parameters (framework overheads, the chip's power
    coefficients), at ``sw`` and ``chip``: forward-mode ``jax.jacfwd`` through ``serve`` itself.

    Below the TDP cap ``serve`` is bilinear in these parameters (overheads add to the wall
    time of every pass; energy is P_idle·chips·wall + α·FLOPs + β·bytes, so P_idle multiplies
    the overheads), hence its second-order Taylor expansion reproduces it exactly there; the
    reported errors evaluate ``serve`` itself at the fitted values.
    """
    groups = [g for _, g in prep.system_groups]
    names = LINEAR_SOFTWARE + CHIP_PARAMS
    theta0 = {n: jnp.asarray(getattr(sw if n in LINEAR_SOFTWARE else chip, n), dtype=float) for n in names}

    def outputs(theta, c, s, g):
        c = dataclasses.replace(c, **{n: theta[n] for n in CHIP_PARAMS})
        s = dataclasses.replace(s, **{n: theta[n] for n in LINEAR_SOFTWARE})
        m = _serve_system(c, s, g, prep.system_index, prep.system_modes)
        return jnp.stack([m.latency_s, m.energy_j, m.tpot_s])

    def lin(theta, c, s, g):
        # Second order only where serve() is bilinear: the idle power times the overheads'
        # idle time, ∂²/∂P_idle∂θ for each overhead θ (every other second derivative is zero;
        # test_expansion_matches_serve). One forward-over-forward pass gives the outputs, their
        # first derivatives and those of their slope in the idle power: serve is traced once
        # (three traces, for the value, the Jacobian and the cross terms, took 1.6x longer).
        idle, overheads = SECOND_ORDER

        def with_idle_slope(th):
            f = lambda p: outputs({**th, idle: p}, c, s, g)  # noqa: E731
            value, slope = jax.jvp(f, (th[idle],), (jnp.ones_like(th[idle]),))
            return (value, slope), value

        (jac, slope_jac), value = jax.jacfwd(with_idle_slope, has_aux=True)(theta)
        cross = {n: slope_jac[n] for n in overheads}
        return {"value": value, "jac": jac, "cross": cross, "theta0": theta}

    key = ("linearization", id(prep))
    if key not in _CACHE:
        _CACHE[key] = fast_jit(lin, theta0, chip, sw, groups)
    return _CACHE[key](theta0, chip, sw, groups)


def derive(
    latency_s: Array, energy_j: Array, tpot_s: Array, throughput: Array, idle_w: Array, d: Mapping[str, Array]
) -> Array:
    """The measured quantity of each system-level row from ``serve``'s outputs: a static
    batch's latency (and GPU power over it), and for serving at steady state (continuous
    batching) the energy of the batch's requests, TPOT and output throughput."""
    code = {name: i for i, name in enumerate(DATASETS)}
    # GPU 0 power over the run plus the idle margin of the window (tp = 1 rows).
    power = (energy_j + idle_w * POWER_IDLE_WINDOW_S) / (latency_s + POWER_IDLE_WINDOW_S)
    per_request = energy_j / d["batch"]
    tpot = tpot_s
    return jnp.select(
        [d["code"] == code["static_latency"], d["code"] == code["static_power"],
         d["code"] == code["serving_energy"], d["code"] == code["serving_tpot"]],
        [latency_s, power, per_request, tpot], throughput)  # fmt: skip


def system_linear(v: Mapping[str, Array], lin: Mapping[str, Any], d: Mapping[str, Array]) -> Array:
    """The measured quantity of each row from ``serve()``'s second-order expansion ``lin`` at
    parameter values ``v`` (keys ``<param>@<framework>`` and the chip's power coefficients): each row
    takes the overheads of its framework (``FRAMEWORK_NAMES``)."""
    delta = {}
    for n in LINEAR_SOFTWARE:
        row = jnp.stack([v[f"{n}@{fw}"] for fw in FRAMEWORK_NAMES])[d["framework"]]
        delta[n] = row - lin["theta0"][n]
    for n in CHIP_PARAMS:
        delta[n] = v[n] - lin["theta0"][n]
    out = lin["value"] + sum(lin["jac"][n] * delta[n] for n in delta)
    idle, overheads = SECOND_ORDER
    out = out + sum(lin["cross"][n] * delta[idle] * delta[n] for n in overheads)
    # Serving throughput is reported only (never fitted): rounds of the expanded TPOT stand in.
    throughput = d["batch"] / out[2]
    return derive(out[0], out[1], out[2], throughput, v["idle_w"], d)


# ---------------------------------------------------------------------------------------
# Loss and optimizer.
# ---------------------------------------------------------------------------------------


def _sq_log(pred: Array, measured: Array) -> Array:
    return (jnp.log(pred) - jnp.log(measured)) ** 2


def _dataset_means(err2: Array, onehot: Array, weight: Array) -> Array:
    """Mean of err2 per data set over rows of weight 1; ``onehot`` is [n_sets, n_rows]."""
    w = onehot * weight[None, :]
    return (w @ err2) / jnp.maximum(w.sum(axis=1), 1.0)


@dataclasses.dataclass
class Problem:
    """One stage: loss(raw, data, weight) over fixed data, a pure function of its arguments."""

    names: tuple[str, ...]
    predict: Any  # (raw, data) -> predictions [n_rows]
    data: Any  # PyTree of arrays (an argument of the jitted step, not a constant)
    measured: Array
    onehot: Array  # [n_sets, n_rows]
    train: Array  # weight of each row in the loss (0/1)

    def loss(self, raw: Mapping[str, Array], data: Any = None, weight: Array | None = None) -> Array:
        data = self.data if data is None else data
        w = self.train if weight is None else weight
        return _dataset_means(_sq_log(self.predict(raw, data), self.measured), self.onehot, w).sum()


def _onehot(labels: pd.Series) -> tuple[Array, list[str]]:
    names = sorted(set(labels))
    return jnp.asarray(np.stack([(labels == n).to_numpy(float) for n in names])), names


@in_float64
def kernel_problem(prep: Prepared, util_form: str, chip: Any | None = None) -> Problem:
    """Stage 1: kernels and collectives on the 80 GB part, software parameters only."""
    chip = chip if chip is not None else load_hardware(KERNEL_HARDWARE, calibrated=False).spec
    names = KERNEL_PARAMS[util_form]

    def predict(raw, data):
        ch, kd, cd = data
        sw = software_from(values(raw), util_form)
        return jnp.concatenate([kernel_time_s(ch, sw, kd), collective_time_s(ch, sw, cd)])

    meta = pd.concat([prep.kernel_meta, prep.collective_meta], ignore_index=True)
    onehot, _ = _onehot(meta["dataset"])
    return Problem(
        names,
        predict,
        (chip, prep.kernels, prep.collectives),
        jnp.asarray(meta["measured"].to_numpy(float)),
        onehot,
        jnp.asarray((meta["split"] == "train").to_numpy(float)),
    )


@in_float64
def _system_predict(raw: Mapping[str, Array], data: Any) -> Array:
    lin, d = data
    return system_linear(values(raw), lin, d)


def system_problem(prep: Prepared, lin: Mapping[str, Any]) -> Problem:
    """Stage 2: framework overheads (per framework) and the chip's power model, on ``serve()``'s
    linearization (:func:`system_linearization`)."""
    meta = prep.system_meta
    names = SYSTEM_NAMES
    predict = _system_predict

    fitted = meta["dataset"].map(lambda n: DATASETS[n][3] == 2).to_numpy() & ~meta["excluded"].to_numpy()
    # One mean per data set and framework: each framework's rows weigh alike in the loss.
    onehot, _ = _onehot(meta["dataset"] + "@" + meta["framework"])
    return Problem(
        names,
        predict,
        (dict(lin), prep.system),
        jnp.asarray(meta["measured"].to_numpy(float)),
        onehot,
        jnp.asarray(((meta["split"] == "train").to_numpy() & fitted).astype(float)),
    )


_CACHE: dict[Any, Any] = {}


@in_float64
def minimize(
    problem: Problem, raw0: Mapping[str, Array], steps: int = 100, weight: Array | None = None
) -> tuple[dict[str, Array], Array]:
    """L-BFGS (optax, zoom line search) for ``steps`` iterations in one jitted ``lax.scan``
    over the whole data set. Deterministic: fixed start, fixed steps, no randomness."""
    w = problem.train if weight is None else weight
    raw0 = {k: jnp.asarray(v, dtype=float) for k, v in raw0.items()}
    key = ("minimize", problem.predict, steps)
    if key not in _CACHE:
        opt = optax.lbfgs()

        def run(raw0, data, w):
            fun = lambda r: problem.loss(r, data, w)  # noqa: E731
            value_and_grad = optax.value_and_grad_from_state(fun)

            def step(carry, _):
                raw, state = carry
                value, grad = value_and_grad(raw, state=state)
                updates, state = opt.update(grad, state, raw, value=value, grad=grad, value_fn=fun)
                return (optax.apply_updates(raw, updates), state), value

            (raw, _), trace = jax.lax.scan(step, (raw0, opt.init(raw0)), None, length=steps)
            return raw, trace

        _CACHE[key] = jax.jit(run)
    with float64():
        return _CACHE[key](raw0, problem.data, w)


@in_float64
def laplace(problem: Problem, raw: Mapping[str, Array]) -> dict[str, np.ndarray]:
    """Standard deviation of each constrained parameter from the curvature at the optimum.

    NLL(x) = Σ_d Σ_i r_i² / (2 σ_d²) with σ_d² the mean training residual² of data set d;
    Cov(x) ≈ H⁻¹ (pseudo-inverse), and std(value) = |dvalue/dx| · std(x) (delta method).
    """
    with float64():
        return _laplace(problem, raw)


def _laplace(problem: Problem, raw: Mapping[str, Array]) -> dict[str, np.ndarray]:
    flat, unravel = ravel_pytree({k: jnp.asarray(v, dtype=float) for k, v in raw.items()})
    err2 = _sq_log(problem.predict(dict(raw), problem.data), problem.measured)
    var = jnp.maximum(_dataset_means(err2, problem.onehot, problem.train), 1e-12)
    row_var = var @ problem.onehot

    def nll(x):
        e2 = _sq_log(problem.predict(unravel(x), problem.data), problem.measured)
        return 0.5 * jnp.sum(problem.train * e2 / row_var)

    h = np.asarray(jax.jit(jax.hessian(nll))(flat))
    cov = np.linalg.pinv(h, rcond=1e-10, hermitian=True)
    sd_x = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    jac = np.asarray(jax.jacfwd(lambda x: ravel_pytree(values(unravel(x)))[0])(flat))
    sd_v = np.abs(np.diag(jac)) * sd_x
    return {k: np.asarray(v) for k, v in unravel(jnp.asarray(sd_v)).items()}


# ---------------------------------------------------------------------------------------
# The whole calibration.
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class FitResult:
    util_form: str
    kernel_values: dict[str, np.ndarray]
    system_values: dict[str, np.ndarray]  # keys <param>@<framework> and the chip's
    kernel_sd: dict[str, np.ndarray]
    system_sd: dict[str, np.ndarray]
    kernel_loss: float
    system_loss: float

    def software(self, framework: str = DEFAULT_FRAMEWORK) -> SoftwareParams:
        v = dict(self.kernel_values)
        v |= {k.split("@")[0]: x for k, x in self.system_values.items() if k.endswith(f"@{framework}")}
        return software_from(v, self.util_form)

    def chip_values(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.system_values.items() if "@" not in k and param_info(k).owner == "chip"}


def _np(tree: Mapping[str, Array]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in tree.items()}


@in_float64
def initial_raw(names: Sequence[str]) -> dict[str, Array]:
    return raws({n: INITIAL[n.split("@")[0]] for n in names})


@in_float64
def fit(prep: Prepared, util_form: str = "wave", steps: int = 100, uncertainty: bool = True) -> FitResult:
    """Both stages on the training split; deterministic."""
    if util_form not in UTIL_FORMS:
        raise ValueError(f"util_form: '{util_form}': expected one of {', '.join(UTIL_FORMS)}")
    kp = kernel_problem(prep, util_form)
    raw_k, trace_k = minimize(kp, initial_raw(kp.names), steps)
    kv = values(raw_k)
    chip40 = load_hardware(SYSTEM_HARDWARE, calibrated=False).spec
    # Fit on serve()'s second-order expansion at the initial values (exact below the TDP cap).
    raw_s = initial_raw(SYSTEM_NAMES)
    for _ in range(SYSTEM_ROUNDS):
        v0 = values(raw_s)
        chip0 = dataclasses.replace(chip40, **{n: v0[n] for n in CHIP_PARAMS})
        sw0 = dataclasses.replace(
            software_from(kv, util_form), **{n: v0[f"{n}@{DEFAULT_FRAMEWORK}"] for n in LINEAR_SOFTWARE}
        )
        sp = system_problem(prep, system_linearization(chip0, sw0, prep))
        raw_s, trace_s = minimize(sp, raw_s, max(steps, SYSTEM_STEPS))
    ksd = laplace(kp, raw_k) if uncertainty else {}
    ssd = laplace(sp, raw_s) if uncertainty else {}
    return FitResult(util_form, _np(kv), _np(values(raw_s)), ksd, ssd, float(trace_k[-1]), float(trace_s[-1]))


@in_float64
def leave_one_model_out(
    prep: Prepared, util_form: str, steps: int = 100, progress: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Kernel predictions of each Vidur model by a stage-1 fit on the other five models;
    ``progress`` is told of each fit as it starts."""
    kp = kernel_problem(prep, util_form)
    meta = pd.concat([prep.kernel_meta, prep.collective_meta], ignore_index=True)
    raw0 = initial_raw(kp.names)
    out = []
    held = sorted(prep.kernel_meta["model_id"].unique())
    for i, mid in enumerate(held, start=1):
        if progress:
            progress(f"form '{util_form}': fit {i}/{len(held)} without {mid}")
        w = jnp.asarray(((meta["model_id"] != mid) & meta["dataset"].str.startswith("kernel")).to_numpy(float))
        raw, _ = minimize(kp, raw0, steps, weight=w)
        pred = np.asarray(kp.predict(raw, kp.data))
        sel = (meta["model_id"] == mid).to_numpy()
        part = meta[sel].copy()
        part["predicted"] = pred[sel]
        out.append(part)
    return pd.concat(out, ignore_index=True)


@in_float64
def predict_all(
    prep: Prepared, software: Mapping[str, SoftwareParams], kernel_chip: Any, system_chip: Any
) -> np.ndarray:
    """Predictions of every row (``Prepared.meta`` order) with the real cost functions:
    ``software`` maps a framework name to its SoftwareParams (kernel rows use the default)."""
    sw0 = software[DEFAULT_FRAMEWORK]
    key = ("kc", id(prep))
    if key not in _CACHE:
        _CACHE[key] = fast_jit(
            lambda c, s, k, d: (kernel_time_s(c, s, k), collective_time_s(c, s, d)),
            kernel_chip,
            sw0,
            prep.kernels,
            prep.collectives,
        )
    k, c = _CACHE[key](kernel_chip, sw0, prep.kernels, prep.collectives)
    code = np.asarray(prep.system["framework"])
    s = np.zeros(len(code))
    for i, fw in enumerate(FRAMEWORK_NAMES):
        if not np.any(code == i):
            continue
        f = system_features(system_chip, software.get(fw, sw0), prep)
        pred = derive(f["latency_s"], f["energy_j"], f["tpot_s"], f["throughput"], system_chip.idle_w, prep.system)
        s = np.where(code == i, np.asarray(pred), s)
    return np.concatenate([np.asarray(k), np.asarray(c), s])


def ape(df: pd.DataFrame, pred: str = "predicted") -> np.ndarray:
    return np.abs(df[pred].to_numpy() / df["measured"].to_numpy() - 1.0)


def mape_table(
    df: pd.DataFrame,
    by: Sequence[str] = ("dataset", "split"),
    preds: Sequence[str] = ("before", "after"),
) -> pd.DataFrame:
    """MAPE and median APE (percent) of each prediction column, grouped; excluded rows dropped."""
    df = df[~df["excluded"]]
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True)) | {"n": len(g)}
        for p in preds:
            e = ape(g, p)
            row[f"mape_{p}_pct"] = 100 * float(np.mean(e))
            row[f"median_ape_{p}_pct"] = 100 * float(np.median(e))
        rows.append(row)
    return pd.DataFrame(rows)
