"""``inferbench catalog``, ``evaluate`` and ``predict``: the engine from the command line."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import calibration
from dse import analysis, engine, specs
from dse.analysis._scenarios import (
    INTERVAL_COLUMNS,
    PREDICT_OPTIONAL,
    PREDICT_PHASES,
    PREDICT_REQUIRED,
    ROW_KNOBS,
    cell,
    parse_row,
    read_csv,
    row_labels,
)
from dse.engine import (
    calibration_source,
    check_context,
    check_values,
    column,
    evaluate_grid,
    framework_of,
    gemm_designs,
    level_of,
    make_config,
    phase_metrics,
    run_designs,
    software_levels,
)
from dse.specs import (
    SpecError,
    fitted_frameworks,
    gemm_precision,
    hardware_ids,
    hardware_keys,
    keys_of,
    load_hardware,
    load_model,
    load_platform,
    make_parent,
    model_ids,
    platform_ids,
    refuse_foreign,
    silicon_of,
    suggest,
    use_cases,
    writing,
)
from models import BOUND_NAMES, DEFAULT_DTYPE, DTYPES, GRID_GCO2_PER_KWH, INFEASIBLE_REASONS, default_economics
from models.platform import PlatformSpec
from models.workloads import active_params, kv_bytes_per_token, total_params


def _floats(text: str, what: str) -> list[float]:
    """``--what A,B,…`` → numbers. Parsing only: what a value may be is the engine's one check
    (:func:`dse.engine.check_values`), which names the flag (:data:`_FLAGS`)."""
    out = []
    for part in str(text).split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise SpecError(f"--{what}: '{part}' is not a number: expected numbers, comma-separated") from None
    return out


# The flag each knob is given by, and the factor from SI to the flag's units (errors name them).
_FLAGS: dict[str, tuple[str, float]] = {
    **{k: (f"--{k}", 1.0) for k in ("tp", "pp", "ep", "sp", "dp", "batch", "overlap", "images", "beam", "acceptance")},
    "expert_imbalance": ("--expert-imbalance", 1.0),
    "expert_hot_share": ("--expert-hot-share", 1.0),
    "prompt_tokens": ("--prompt-tokens", 1.0),
    "output_tokens": ("--output-tokens", 1.0),
    "image_px": ("--resolution", 1.0),
    "draft_tokens": ("--draft-tokens", 1.0),
    "chunk_tokens": ("--chunk-tokens", 1.0),
    "kv_offload_bytes": ("--kv-offload-gb", 1e9),
    "host_flops_per_s": ("--host-tflops", 1e12),
    "slo_ttft_s": ("--ttft-slo-ms", 1e-3),
    "slo_tpot_s": ("--tpot-slo-ms", 1e-3),
    "prompt_tokens_cv": ("--prompt-cv", 1.0),
    "rate_rps": ("--rate", 1.0),
    "prefix_tokens": ("--prefix-tokens", 1.0),
}


def _scalar_or_list(values: list[float]) -> Any:
    return values[0] if len(values) == 1 else values


class _Listed(Exception):
    """``--set list``: the keys were printed; nothing to evaluate."""


def _set_knobs(items: Sequence[str], families: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=V[,V]`` with spec-file keys (file units) of every chosen chip's family → SI knobs."""
    out: dict[str, Any] = {}
    for item in items or []:
        if item.strip() in ("?", "list", "help"):
            for family in families:  # the keys the chosen chips take, with their units
                keys = {k: v for k, v in hardware_keys(family).items() if v.field}
                print(
                    f"{family}: "
                    + ", ".join(f"{k} [{v.unit}]" if v.unit != "1" else k for k, v in sorted(keys.items()))
                )
            raise _Listed
        if "=" not in item:
            raise SpecError(
                f"--set: '{item}': expected KEY=VALUE[,VALUE...] with a spec key such as hbm_bandwidth_tb_s=2,3"
            )
        key, val = item.split("=", 1)
        infos = []
        for family in families:
            info = hardware_keys(family).get(key)
            if info is None or info.field is None:
                known = sorted({k for f in families for k, v in hardware_keys(f).items() if v.field})
                raise SpecError(
                    f"--set: unknown key '{key}' for hardware family {family}{suggest(key, known)} "
                    f"(known: {', '.join(known)})"
                )
            infos.append(info)
        if len({(i.field, i.factor) for i in infos}) > 1:
            raise SpecError(
                f"--set: key '{key}' means different knobs in families {', '.join(families)}: "
                "expected one family per --set"
            )
        info = infos[0]
        out[info.field] = _scalar_or_list([v * info.factor for v in _floats(val, f"set {key}")])
    return out


def cmd_catalog(args: argparse.Namespace) -> int:
    if args.silicon:
        return _silicon_check(args.json)
    models, chips = [], []
    for mid in model_ids():
        m = load_model(mid)
        models.append(
            {
                "id": mid,
                "name": m.name,
                "params": float(total_params(m.spec)),
                "active_params": float(active_params(m.spec)),
                "kv_bytes_per_token_bf16": float(kv_bytes_per_token(m.spec)),
                "layers": int(m.spec.n_layers),
                "d_model": int(m.spec.d_model),
            }
        )
    chips = [_catalog_chip(load_hardware(hid)) for hid in hardware_ids()]
    platforms = [_catalog_platform(load_platform(pid)) for pid in platform_ids()]
    cases = [dataclasses.asdict(c) for c in use_cases().values()]
    if args.json:
        print(json.dumps({"models": models, "hardware": chips, "platforms": platforms, "use_cases": cases}, indent=1))
        return 0
    print("Models")
    head = ["id", "name", "params B", "active B", "KV/token kB (bf16)", "layers", "d_model"]
    print(
        analysis.render(
            head,
            [
                [m["id"], m["name"], m["params"] / 1e9, m["active_params"] / 1e9, m["kv_bytes_per_token_bf16"] / 1e3]
                + [m["layers"], m["d_model"]]
                for m in models
            ],
        )
    )
    print("\nHardware")
    head = ["id", "family", "BF16 TFLOP/s", "FP8 TFLOP/s", "INT4 TOP/s", "mem TB/s", "capacity GB", "TDP W"]
    head += ["price $", "die mm2", "silicon $", "price/silicon", "calibration", "software profiles"]
    rows = [
        [c["id"], c["family"], c["peak_bf16_flops_per_s"] / 1e12, *(_rate_cell(c, d) for d in ("fp8", "int4"))]
        + [c["memory_bandwidth_bytes_per_s"] / 1e12, c["capacity_bytes"] / 1e9, c["tdp_w"], c["price_usd"]]
        + [_die_cell(c), c["silicon_cost_usd"] or "-", c["price_over_silicon"] or "-", c["calibration"]]
        + [", ".join(c["software_profiles"]) or "-"]
        for c in chips
    ]
    print(analysis.render(head, rows))
    print(
        "*: no such rate in the datasheet: GEMMs of that dtype run at the next wider rate shown (fallback). "
        "calibration: fitted (its own measurements), transferred (the A100 fit with this datasheet), datasheet "
        "(calibrated = achievable); software profiles: --framework names, the default first. die mm2: all logic "
        "dies, published or (m) modelled from the microarchitecture; silicon $: good logic dies on the stated node "
        "plus HBM at its generation's price per GB (packaging, board and margin excluded); price/silicon: the margin "
        "a variant's added logic and HBM are priced at; '-': not stated. The model's check: inferbench catalog "
        "--silicon"
    )
    print("\nPlatforms (--platform)")
    head = ["id", "hardware", "chips", "tp", "pp", "ep", "dp", "scale-up", "topology", "power kW"]
    rows = [
        [p["id"], p["hardware"], p["chips"] or "-", p["tp"], p["pp"] or "capacity", p["ep"], p["dp"]]
        + [p["scale_up"], p["topology"], p["platform_power_kw"] or "-"]
        for p in platforms
    ]
    print(analysis.render(head, rows))
    print("\nUse cases (--use-case; GenZ Table III)")
    head = ["id", "prompt", "output", "beam", "TTFT ms", "TPOT ms", "description"]
    rows = [
        [c["id"], c["prompt_tokens"], c["output_tokens"], c["beam"]]
        + [c[k] * 1e3 if c[k] else "-" for k in ("ttft_s", "tpot_s")]
        + [c["description"]]
        for c in cases
    ]
    print(analysis.render(head, rows))
    return 0


def _catalog_chip(h: specs.HardwareEntry) -> dict[str, Any]:
    s = h.spec
    default, names = fitted_frameworks(h.id) if calibration_source(h) != "datasheet" else (None, ())
    return {
        "id": h.id,
        "name": h.name,
        "family": s.family,
        **{f"peak_{d}_flops_per_s": float(s.peak_flops_per_s(d)) for d in ("bf16", "fp8", "int4")},
        # The dtypes whose GEMMs run at a wider rate than their own (no such rate in the datasheet).
        "fallbacks": {d: gemm_precision(h, d, d) for d in ("fp8", "int4") if "fallback" in gemm_precision(h, d, d)},
        "memory_bandwidth_bytes_per_s": float(s.memory_bandwidth_bytes_per_s),
        "capacity_bytes": float(s.capacity_bytes),
        "tdp_w": float(s.tdp_w),
        "price_usd": float(s.price_usd),
        "calibration": calibration_source(h),
        "software_profiles": [n for n in dict.fromkeys((default, *names)) if n],
        **silicon_of(h),
    }


def _rate_cell(chip: dict[str, Any], dtype: str) -> str:
    rate = chip[f"peak_{dtype}_flops_per_s"] / 1e12
    return analysis.fmt(rate) + ("*" if dtype in chip["fallbacks"] else "")


def _catalog_platform(p: Any) -> dict[str, Any]:
    net = p.network
    return {
        "id": p.id,
        "name": p.name,
        "hardware": p.hardware,
        "chips": p.chips,
        "tp": p.tp,
        "pp": p.pp if p.pp > 1 or p.chips else None,
        "ep": p.ep,
        "dp": p.dp,
        "scale_up": int(net["scale_up_chips"]) if "scale_up_chips" in net else "-",
        "topology": str(net.get("scale_up_topology", "-")),
        "platform_power_kw": p.platform_power_kw,
    }


def _die_cell(chip: dict[str, Any]) -> str:
    area = chip["die_area_mm2"] or chip["modelled_die_area_mm2"]
    if area is None or chip["area_source"] is None:
        return "-"
    return f"{area:,.0f}" + (" (m)" if chip["area_source"] == "modelled" else "")


def _silicon_check(as_json: bool) -> int:
    """The floorplan model against every published die: area and TDP, fitted or held out."""
    rows = calibration.check_floorplan()
    summary = {
        "area": calibration.held_out_mape(rows, "area_error"),
        "board_tdp": calibration.held_out_mape(rows, "tdp_error", "board"),
        "system_tdp": calibration.held_out_mape(rows, "tdp_error", "system"),
    }
    if as_json:
        print(json.dumps({"dies": rows, "held_out_mape": summary}, indent=1))
        return 0
    head = ["die", "class", "node", "role", "die mm2", "model mm2", "error", "TDP W", "model W", "error"]
    print(
        analysis.render(
            head,
            [
                [r["die"], r["class"], r["node"], r["role"], r["die_area_mm2"], r["modelled_die_area_mm2"]]
                + [f"{r['area_error']:+.1%}", r["tdp_w"] or "-", r["modelled_tdp_w"] or "-"]
                + [f"{r['tdp_error']:+.1%}" if r["tdp_error"] is not None else "-"]
                for r in rows
            ],
        )
    )
    print(
        f"held out: die area MAPE {summary['area']:.1%}; board TDP MAPE {summary['board_tdp']:.1%}; the wafer's "
        f"system power {summary['system_tdp']:.1%} (per-class constants fitted on the oldest die of each class: "
        "V100, Groq TSP, WSE-2; TDP '-' where the file's is an estimate)"
    )
    return 0


def _scenario(args: argparse.Namespace) -> dict[str, Any]:
    """Phase → prompt/output token knobs. decode: one step at the given context."""
    for flag in ("prompt_tokens", "context"):
        if getattr(args, flag) is not None and not getattr(args, flag).strip():
            raise SpecError(f"--{flag.replace('_', '-')}: empty: expected integers > 0, comma-separated")
    batch = _floats(args.batch, "batch")
    if args.phase == "decode":
        ctx = _floats(args.context or args.prompt_tokens or "2048", "context")
        return dict(batch=batch, prompt_tokens=ctx, output_tokens=[1.0])
    prompt = _floats(args.prompt_tokens or args.context or "2048", "prompt-tokens")
    out = [1.0] if args.phase == "prefill" else _floats(args.output_tokens, "output-tokens")
    return dict(batch=batch, prompt_tokens=prompt, output_tokens=out)


_IMAGE_COLUMNS = [
    column("latency_s"),
    column("tpot_s", "step"),
    column("requests_per_s"),
    column("j_per_request"),
    column("usd_per_k_requests"),
    column("bound"),
]


def _image_knobs(args: argparse.Namespace, models: Sequence[str], images: bool) -> dict[str, Any]:
    """``--steps`` and ``--resolution`` for vision and diffusion models: a request is one image
    (its denoising steps are its decode passes); refused for token workloads."""
    if not images:
        vlm = all(getattr(load_model(m).spec, "vision_tower", ()) for m in models)
        flags = ("steps",) if vlm else ("steps", "resolution", "images")
        for flag in flags:
            if getattr(args, flag) is not None:
                raise SpecError(
                    f"--{flag}: only for vision, vision-language and diffusion models (got {', '.join(models)})"
                )
        knobs: dict[str, Any] = {}
        if vlm and args.images is not None:
            knobs["images"] = _floats(args.images, "images")
        if vlm and args.resolution is not None:
            knobs["image_px"] = _floats(args.resolution, "resolution")
        return knobs
    knobs: dict[str, Any] = {}
    specs = [load_model(m).spec for m in models]
    if args.resolution is not None:
        knobs["image_px"] = _floats(args.resolution, "resolution")
        for m, spec in zip(models, specs, strict=True):
            # An image is cut into whole tokens: side / (VAE factor x latent patch) for a diffusion
            # transformer, side / patch for a ViT; a remainder would be a fractional token.
            tile = float(getattr(spec, "vae_factor", 1.0)) * float(
                getattr(spec, "patch", getattr(spec, "patch_px", 1.0))
            )
            bad = [px for px in np.atleast_1d(knobs["image_px"]) if float(px) % tile]
            if bad:
                raise SpecError(
                    f"--resolution: {_num(bad[0])}: expected a multiple of {m}'s {tile:g} pixels per token side"
                )
    if args.steps is not None:
        knobs["output_tokens"] = _floats(args.steps, "steps")
    else:
        steps = {float(getattr(s, "default_steps", 1.0)) for s in specs}
        if len(steps) > 1:
            raise SpecError("--steps: the models' default steps differ: give --steps")
        knobs["output_tokens"] = [steps.pop()]
    return knobs


def _pools(text: str) -> tuple[list[float], list[float]]:
    """``--disaggregate P:D[,P:D]`` → (prefill shares, [dp]): pools of one total size."""
    shares, dps = [], []
    for part in text.split(","):
        p, _, d = part.partition(":")
        try:
            n_p, n_d = int(p), int(d)
        except ValueError:
            n_p = n_d = 0
        if n_p <= 0 or n_d <= 0:
            raise SpecError(f"--disaggregate: '{part}': expected PREFILL:DECODE replica counts, e.g. 1:3")
        shares.append(n_p / (n_p + n_d))
        dps.append(float(n_p + n_d))
    if len(set(dps)) > 1:
        raise SpecError("--disaggregate: expected pools of one total size (the dp of the platform), e.g. 1:3,2:2")
    return shares, dps[:1]


def _speculation(args: argparse.Namespace, models: Sequence[str]) -> dict[str, Any]:
    """``--draft-tokens``, ``--acceptance`` (both or neither) and ``--draft-model``'s cost."""
    knobs: dict[str, Any] = {}
    if args.draft_tokens is not None:
        knobs["draft_tokens"] = _floats(args.draft_tokens, "draft-tokens")
    if args.acceptance is not None:
        knobs["acceptance"] = _floats(args.acceptance, "acceptance")
    if args.draft_model is not None:
        if len(models) != 1:
            raise SpecError("--draft-model: expected one --model (the draft's cost is relative to the target's)")
        target, draft = load_model(models[0]), load_model(args.draft_model)
        # Decode is weight-streaming bound: a draft step costs its active parameters' share of
        # a verify pass of the target.
        knobs["draft_cost_ratio"] = [float(active_params(draft.spec) / active_params(target.spec))]
        # Its memory: weights and KV cache beside the target's (in the same dtypes).
        knobs["draft_weight_share"] = [float(total_params(draft.spec) / total_params(target.spec))]
        knobs["draft_kv_share"] = [float(kv_bytes_per_token(draft.spec) / kv_bytes_per_token(target.spec))]
    if ("draft_tokens" in knobs) != ("acceptance" in knobs):
        raise SpecError("--draft-tokens and --acceptance: expected both (speculative decoding) or neither")
    return knobs


def _serving(args: argparse.Namespace, models: Sequence[str]) -> tuple[dict[str, Any], str]:
    """Serving flags → (knobs, batching mode). ``--chunk-tokens`` implies chunked prefill and
    ``--disaggregate P:D`` (prefill and decode replicas) disaggregated pools, unless
    ``--batching`` says otherwise; ``--draft-model`` sets the draft's cost from its active
    parameters."""
    knobs: dict[str, Any] = {}
    batching = args.batching
    if args.chunk_tokens is not None:
        knobs["chunk_tokens"] = _floats(args.chunk_tokens, "chunk-tokens")
        batching = batching or "chunked"
    if args.disaggregate is not None:
        knobs["prefill_share"], knobs["dp"] = _pools(args.disaggregate)
        batching = batching or "disaggregated"
    knobs |= _speculation(args, models)
    if args.beam is not None:
        knobs["beam"] = _floats(args.beam, "beam")
    if args.kv_offload_gb is not None:
        knobs["kv_offload_bytes"] = [v * 1e9 for v in _floats(args.kv_offload_gb, "kv-offload-gb")]
    if args.host_tflops is not None:
        knobs["host_flops_per_s"] = [v * 1e12 for v in _floats(args.host_tflops, "host-tflops")]
    for flag, knob in (("ttft_slo_ms", "slo_ttft_s"), ("tpot_slo_ms", "slo_tpot_s")):
        if getattr(args, flag) is not None:
            knobs[knob] = [v / 1e3 for v in _floats(getattr(args, flag), flag.replace("_", "-"))]
    if args.prompt_cv is not None:
        knobs["prompt_tokens_cv"] = _floats(args.prompt_cv, "prompt-cv")
    if getattr(args, "rate", None) is not None:
        knobs["rate_rps"] = rates(args.rate)
    if getattr(args, "prefix_tokens", None) is not None:
        knobs["prefix_tokens"] = _floats(args.prefix_tokens, "prefix-tokens")
    return knobs, batching or "static"


def rates(text: str) -> list[float]:
    """``--rate R[,R…]``: requests per second, each > 0 (0 is no arrival process: omit the flag)."""
    values = _floats(text, "rate")
    for v in values:
        if not 0 < v < float("inf"):
            raise SpecError(f"--rate: {v:g}: expected requests per second > 0, comma-separated")
    return values


def _economics(args: argparse.Namespace):
    e = default_economics()
    vals = {k: getattr(args, k) for k in ("lifetime_years", "usd_per_kwh", "pue") if getattr(args, k) is not None}
    for k, v in vals.items():
        if not np.isfinite(v) or v <= 0:
            raise SpecError(f"--{k.replace('_', '-')}: {v}: expected a finite number > 0")
        if k == "pue" and v < 1:  # facility energy / IT energy (The Green Grid): at least 1
            raise SpecError(f"--pue: {v}: expected a number >= 1 (facility energy over IT energy)")
    if args.grid_gco2_per_kwh is not None:
        vals["grid_gco2_per_kwh"] = _grid_intensity(args.grid_gco2_per_kwh)
    return dataclasses.replace(e, **{k: np.asarray(float(v)) for k, v in vals.items()})


def _grid_intensity(text: str) -> float:
    """``--grid-gco2-per-kwh``: gCO2e per kWh, or a region of the sourced table."""
    if text.strip().lower() in GRID_GCO2_PER_KWH:
        return GRID_GCO2_PER_KWH[text.strip().lower()]
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 <= v < float("inf"):
        raise SpecError(
            f"--grid-gco2-per-kwh: '{text}': expected gCO2e per kWh (a number >= 0) or a region: "
            + ", ".join(f"{k} ({g:g})" for k, g in GRID_GCO2_PER_KWH.items())
        )
    return v


# Headline columns per phase: (metric, header, scale).
_COLUMNS = {
    "prefill": [
        column(n) for n in ("ttft_s", "prefill_tokens_per_s", "prefill_j_per_token", "prefill_mfu", "prefill_bound")
    ],
    "decode": [column("tpot_s", "step")]
    + [column(n) for n in ("decode_tokens_per_s_per_chip", "decode_j_per_token", "decode_mbu", "decode_bound")],
    "request": [
        column(n)
        for n in (
            "ttft_s",
            "tpot_s",
            "throughput_tokens_per_s_per_chip",
            "j_per_token",
            "usd_per_mtok",
            "gco2_per_mtok",
            "bound",
        )
    ],
}
MEMORY_COLUMN = column("memory_per_chip_bytes")
# With ``--rate``: the mean TTFT first (three levels), then the tails, the queue and the limit.
_RATE_COLUMNS = ("p50_ttft_s", "p99_ttft_s", "tpot_s", "p90_tpot_s", "p99_tpot_s", "queue_delay_s",
                 "saturation_rate_rps")  # fmt: skip


def _check_output(output: str | None) -> None:
    """Refuse an output path now, before the work, rather than after it."""
    if output:
        refuse_foreign(Path(output))
        make_parent(Path(output))


MAX_EVALUATE = 1_000_000


def _check_combinations(n_pairs: int, knobs: dict[str, Any]) -> None:
    """Every combination is printed and held in memory (~1.2 kB each at three levels): a larger
    design space is a sweep, streamed to a store."""
    n = n_pairs * int(np.prod([len(v) if isinstance(v, list) else 1 for v in knobs.values()]))
    if n > MAX_EVALUATE:
        raise SpecError(
            f"evaluate: {n:,} combinations of the given lists: expected at most {MAX_EVALUATE:,} "
            "(`inferbench sweep` streams larger design spaces to a store)"
        )


def _metric_cells(cols: Sequence[Any], cal: dict[str, Any], feasible: bool, images: bool) -> list[Any]:
    """The table cells of the non-headline metrics of one row (calibrated level)."""
    vals: list[Any] = []
    for name, _, scale in cols:
        v = cal[name]
        if scale is None:
            vals.append(BOUND_NAMES[int(v)])
        elif images and name == "tpot_s" and v == 0:
            vals.append("-")  # an encoder makes one pass: no steps
        elif not feasible and name.startswith(("usd_", "j_", "prefill_j", "decode_j", "gco2_")):
            vals.append("-")  # no attractive cost or energy for a design that cannot run
        else:
            vals.append(float(v) * scale)
    return vals


def _repeats_no_speculation(point: dict[str, Any], coord: dict[str, Any]) -> bool:
    """A row without speculation (0 draft tokens) at a second acceptance rate: the same row again."""
    if "draft_tokens" not in point or "acceptance" not in point or float(point["draft_tokens"]) != 0:
        return False
    return float(point["acceptance"]) != float(coord["acceptance"][1][0])


def _key_cell(dim: str, value: Any, shown: dict[str, Any], pool_dp: int) -> Any:
    if dim == "prefill_share" and pool_dp:
        prefill = int(round(float(value) * pool_dp))
        return f"{prefill}:{pool_dp - prefill}"
    return _num(value / (shown[dim].factor if dim in shown else 1.0))


def _labels(args: argparse.Namespace, shown: dict[str, Any], images: bool) -> dict[str, tuple[str, float]]:
    """How the engine's errors name each knob: by the flag (or ``--set`` key) it came from."""
    labels = {k: (f"--set {i.key}", i.factor) for k, i in shown.items()} | _FLAGS
    if args.phase == "decode":
        labels["prompt_tokens"] = ("--context", 1.0)
    if images:
        labels["output_tokens"] = ("--steps", 1.0)
    return labels


def _emit(args: argparse.Namespace, grid: Any, hws: Sequence[Any], headers: list[str], rows: list[list[Any]],
          records: list[dict[str, Any]], dtypes: dict[str, str]) -> None:  # fmt: skip
    """The table (or JSON), the operator breakdown and the rate chart of an evaluation."""
    breakdown = _breakdown(args, grid, hws, len(rows)) if args.breakdown else None
    if args.plot:
        for path in _plot_rates(args, grid):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        if breakdown is not None:
            records[0]["breakdown"] = breakdown
        print(json.dumps(records, indent=1))
    else:
        print(analysis.render(headers, rows))
        print(_table_notes(args, grid, dtypes))
        _print_breakdown(args, breakdown)


def _plot_rates(args: argparse.Namespace, grid: Any) -> list[Path]:
    """``--plot DIR``: tail latency against the request rate, a line per other combination."""
    if "rate_rps" not in grid.axes:
        raise SpecError("--plot: expected --rate with two or more rates (the chart's x axis)")
    names = ("p50_ttft_s", "p99_ttft_s", "p90_tpot_s", "p99_tpot_s", "saturation_rate_rps")
    var, coord = grid.variables, grid.coords
    dims = ("model", "hardware", *grid.axes)
    at = dims.index("rate_rps")
    # The calibrated (last) level; the rate axis last, the rest flattened into lines.
    arrays = {n: np.moveaxis(var[n][1][:, :, -1], at, -1) for n in names}
    others = [d for d in dims if d != "rate_rps"]
    lines = []
    for idx in itertools.product(*(range(len(coord[d][1])) for d in others)):
        label = ", ".join(
            str(coord[d][1][i]) if d in ("model", "hardware") else f"{d} {_num(coord[d][1][i])}"
            for d, i in zip(others, idx, strict=True)
            if d in ("model", "hardware") or len(coord[d][1]) > 1
        )
        line = {n: arrays[n][idx] for n in names}
        line["saturation_rate_rps"] = float(line["saturation_rate_rps"][0])
        lines.append(line | {"label": label, "rate_rps": coord["rate_rps"][1]})
    return analysis.plot_latency_vs_rate(lines, Path(args.plot))


def _check_prefix(knobs: dict[str, Any]) -> None:
    if "prefix_tokens" in knobs and max(knobs["prefix_tokens"]) >= min(knobs["prompt_tokens"]):
        raise SpecError(
            f"--prefix-tokens: {max(knobs['prefix_tokens']):g}: expected fewer tokens than the prompt "
            f"({min(knobs['prompt_tokens']):g}): a cached prefix is part of the prompt"
        )


def _print_breakdown(args: argparse.Namespace, breakdown: list[dict[str, Any]] | None) -> None:
    if breakdown is not None:
        print(f"\nper operator, one chip of one replica, {'achievable' if args.uncalibrated else 'calibrated'} "
              "level (x: executions per pass; network and framework time per pass not included):")  # fmt: skip
        print(analysis.render(analysis.BREAKDOWN_HEADERS, analysis.breakdown_cells(breakdown)))


def _breakdown(args: argparse.Namespace, grid: Any, hws: Sequence[Any], n_rows: int) -> list[dict[str, Any]]:
    """``--breakdown``: per-operator time and energy of the one configuration evaluated."""
    if n_rows != 1 or len(grid.configs) != 1:
        raise SpecError(f"--breakdown: {n_rows} configurations: expected one (give single values)")
    level = "achievable" if args.uncalibrated else "calibrated"
    return analysis.operator_breakdown(grid.configs[0], level_of(software_levels(hws[0], [level], args.framework)))


def cmd_evaluate(args: argparse.Namespace) -> int:
    _check_output(args.output)
    if args.plot and (args.rate is None or len(rates(args.rate)) < 2):
        raise SpecError("--plot: expected --rate with two or more rates (the chart's x axis)")
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    hw_ids = [h.strip() for h in args.hardware.split(",") if h.strip()]
    for flag, given in (("--model", models), ("--hardware", hw_ids)):
        if not given:
            raise SpecError(f"{flag}: empty list: expected one or more catalog ids or spec files, comma-separated")
    hws = [load_hardware(h, calibrated=not args.uncalibrated) for h in hw_ids]
    knobs: dict[str, Any] = {k: _floats(getattr(args, k), k) for k in ("tp", "pp", "ep", "sp", "dp")}
    if args.overlap is not None:
        knobs["overlap"] = _floats(args.overlap, "overlap")
    for k in ("expert_imbalance", "expert_hot_share"):
        if getattr(args, k) is not None:
            knobs[k] = _floats(getattr(args, k), k)
    knobs |= _scenario(args)
    units = {load_model(m).spec.output_unit for m in models}
    if len(units) > 1:
        raise SpecError("--model: token and image workloads mixed: evaluate them in separate calls")
    images = units == {"image"}
    knobs |= _image_knobs(args, models, images)
    serving, batching = _serving(args, models)
    knobs |= serving
    _check_prefix(knobs)
    families = list(dict.fromkeys(h.family for h in hws))
    try:
        knobs |= {k: v if isinstance(v, list) else [v] for k, v in _set_knobs(args.set, families).items()}
    except _Listed:
        return 0
    _check_combinations(len(models) * len(hws), knobs)
    levels = ("ideal", "achievable") if args.uncalibrated else ("ideal", "achievable", "calibrated")
    dtypes = {f"{part}_dtype": getattr(args, f"{part}_dtype") or args.dtype for part in ("weight", "act", "kv")}
    # --set axes in the spec file's key and units (hbm_bandwidth_tb_s = 2, not 2e12 bytes/s).
    shown = {
        info.field: info
        for item in args.set or []
        if "=" in item
        for info in [hardware_keys(families[0]).get(item.split("=", 1)[0])]
        if info is not None and info.field
    }
    # Platform knobs given in other units by their flags (kv_offload_gb, host_tflops): the same.
    shown |= {i.field: i for i in keys_of(PlatformSpec).values() if i.field in knobs and i.factor != 1.0}
    grid = evaluate_grid(
        models,
        hws,
        **dtypes,
        economics=_economics(args),
        levels=levels,
        platform=args.platform,
        batching=batching,
        framework=args.framework,
        labels=_labels(args, shown, images),
        **{k: _scalar_or_list(v) if k not in ("batch", "tp") else v for k, v in knobs.items()},
    )
    # The rows are read from the grid's arrays: a printed query never builds a Dataset.
    var, coord = grid.variables, grid.coords
    cols = _IMAGE_COLUMNS if images else _COLUMNS[args.phase]
    if args.phase == "request" and args.rate and not images:
        cols = [cols[0], *(column(n) for n in _RATE_COLUMNS), *cols[2:6]]
    if args.phase == "request" and (args.ttft_slo_ms or args.tpot_slo_ms):
        cols = [*cols[:3], column("goodput_tokens_per_s"), column("slo_attainment"), *cols[3:]]
    key_names = ["model", "hardware", *(shown[d].key if d in shown else d for d in grid.axes)]
    # The chips each row occupies (tp·pp·ep·sp·dp, or what a chip family's placement needs).
    # Disaggregated pools read as the flag gave them (P:D replicas), not as a prefill share.
    pool_dp = int(knobs["dp"][0]) if args.disaggregate is not None else 0
    headers = ["pools P:D" if k == "prefill_share" and pool_dp else k for k in key_names] + ["chips"]
    main_metric = cols[0]
    headers += [f"{main_metric[1]} ideal", f"{main_metric[1]} achv", f"{main_metric[1]} calib"]
    headers += [c[1] for c in cols[1:]] + [MEMORY_COLUMN[1], "fits"]
    level_names = [str(lv) for lv in coord["level"][1]]
    per_level = [k for k, (dims, _, _) in var.items() if "level" in dims]
    # JSON and the dataset hold what describes the phase, under the metric's own name.
    view = phase_metrics("request" if images else args.phase)
    rows, records = [], []
    for mi, hi, *at in itertools.product(*(range(len(coord[d][1])) for d in ("model", "hardware", *grid.axes))):
        # This row's metrics by level; the other columns are at the last level.
        row = {k: var[k][1][(mi, hi, slice(None), *at)] for k in per_level}
        cal = {k: v[-1].item() for k, v in row.items()}
        key = [str(coord["model"][1][mi]), str(coord["hardware"][1][hi])]
        point = {d: coord[d][1][i] for d, i in zip(grid.axes, at, strict=True)}
        if _repeats_no_speculation(point, coord):
            continue
        key += [_key_cell(d, v, shown, pool_dp) for d, v in point.items()]
        vals = [int(round(cal["n_chips"]))]
        vals += [
            row[main_metric[0]][level_names.index(lv)].item() * main_metric[2] if lv in level_names else float("nan")
            for lv in ("ideal", "achievable", "calibrated")
        ]
        feasible = bool(cal["feasible"])
        reason = int(cal["infeasible_reason"])
        vals += _metric_cells(cols[1:], cal, feasible, images)
        fits = "yes" if feasible else f"no: {INFEASIBLE_REASONS[reason].split(':')[0]}"
        vals += [float(cal["memory_per_chip_bytes"]) * MEMORY_COLUMN[2], fits]
        shown_key = [
            "-" if d == "acceptance" and float(point.get("draft_tokens", 1)) == 0 else k  # no draft, no acceptance
            for d, k in zip(["model", "hardware", *point], key, strict=True)
        ]
        rows.append(shown_key + vals)
        rec = dict(zip(key_names, key, strict=True))
        rec["levels"] = {
            lv: {k: _jsonable(k, row[src][li].item()) for k, src in view.items() if src in row}
            for li, lv in enumerate(level_names)
        }
        for name in ("calibration", "framework", "precision"):
            rec[name] = str(var[name][1][hi])
        rec["infeasible_reason_text"] = INFEASIBLE_REASONS[reason]
        records.append(rec)
    _emit(args, grid, hws, headers, rows, records, dtypes)
    if args.output:
        metrics = {k: v for k, v in var.items() if "level" in v[0]}
        kept = {k: v for k, v in var.items() if k not in metrics}
        kept |= {k: metrics[src] for k, src in view.items() if src in metrics}
        ds = engine.to_dataset(dataclasses.replace(grid, variables=kept, attrs=grid.attrs | {"phase": args.phase}))
        _write_dataset(_spec_key_axes(ds, shown), Path(args.output))
    return 0


def _table_notes(args: argparse.Namespace, grid: Any, dtypes: dict[str, str]) -> str:
    """The lines under evaluate's table: the phase and levels, precision, energy scope and
    each chip's calibration and software profile."""
    var, coord = grid.variables, grid.coords
    level_shown = "achievable (--uncalibrated)" if args.uncalibrated else "calibrated"
    hw_ids = [str(h) for h in coord["hardware"][1]]
    profiles = ", ".join(f"{h}: {var['calibration'][1][i]}, {var['framework'][1][i]}" for i, h in enumerate(hw_ids))
    precision = "; ".join(f"{h}: {var['precision'][1][i]}" for i, h in enumerate(hw_ids))
    silicon = "; ".join(f"{h}: {var['silicon'][1][i]}" for i, h in enumerate(hw_ids))
    w, a, kv = dtypes.values()
    dt = w if w == a == kv else f"weights {w} / activations {a} / KV {kv}"
    return (
        f"\nphase: {args.phase}; levels: ideal = roofline, achv = hardware-achievable, calib = software-"
        f"calibrated; other columns at the {level_shown} level; dtype {dt}\n"
        f"precision: {precision}\n"
        f"energy: {grid.attrs['energy_scope']}\n"
        f"calibration and software profile: {profiles}" + ("" if args.framework else " (--framework to change)") + "\n"
        f"silicon: {silicon}"
    )


def _spec_key_axes(ds: Any, shown: dict[str, Any]) -> Any:
    """``--set`` axes under their spec key in its file unit, as a sweep store names them
    (hbm_bandwidth_tb_s in TB/s, not hbm_bandwidth_bytes_per_s in B/s); the SI name in attrs."""
    for field, info in shown.items():
        if field in ds.dims:
            values = ds[field].values / info.factor
            ds = ds.rename({field: info.key}).assign_coords(
                {
                    info.key: (
                        info.key,
                        values,
                        {
                            "units": info.unit,
                            "description": f"grid axis {info.key}",
                            "si_name": field,
                            "si_factor": info.factor,
                        },
                    )
                }  # fmt: skip
            )
    return ds


def _num(x: Any) -> int | float:
    x = float(x)
    return int(x) if x.is_integer() else x


def _jsonable(name: str, v: Any) -> Any:
    """A metric as JSON: enumerations by their label, a non-finite number as null (JSON has no NaN)."""
    v = v.item() if isinstance(v, np.generic) else v
    if name.endswith("bound") and isinstance(v, int | float) and not isinstance(v, bool):
        return BOUND_NAMES[int(v)]
    if name == "infeasible_reason":
        return INFEASIBLE_REASONS[int(v)]
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _write_dataset(ds, path: Path) -> None:
    specs.write_dataset(ds, path)
    print(f"wrote {path}", file=sys.stderr)


PREDICT_OUTPUTS = ("latency_s", "energy_j", "ttft_s", "tpot_s", "throughput_tokens_per_s", "average_power_w",
                   "memory_per_chip_bytes", "feasible", "bound", "calibration", "framework",
                   *INTERVAL_COLUMNS)  # fmt: skip


def cmd_predict(args: argparse.Namespace) -> int:
    _check_output(args.output)
    if args.ops:
        return _predict_ops(Path(args.ops), args.output, args)
    if not args.scenarios:
        raise SpecError("predict: expected SCENARIOS.csv or --ops OPS.csv")
    path = Path(args.scenarios)
    rows = read_csv(path, PREDICT_REQUIRED, PREDICT_OPTIONAL, PREDICT_OUTPUTS)
    groups: dict[tuple[str, ...], list[int]] = {}
    parsed = []
    for i, r in enumerate(rows):
        p = parse_row(path, i, r)
        parsed.append(p)
        framework = cell(path, i, r, "framework", "str", "") or args.framework
        key = (
            cell(path, i, r, "model", "str"),
            cell(path, i, r, "hardware", "str"),
            p["dtype"],
            p["batching"],
            framework,
        )
        groups.setdefault(key, []).append(i)
    out: list[dict[str, Any]] = [{} for _ in rows]
    calibrated = not args.uncalibrated
    level = "calibrated" if calibrated else "achievable"
    for (mid, hid, dtype, batching, framework), idx in groups.items():
        m = _entry(load_model, mid, path)
        h = _entry(lambda r: load_hardware(r, calibrated=calibrated), hid, path)
        try:
            profile = framework_of(h, framework) if calibrated else "none"
        except SpecError as e:
            raise SpecError(f"{path}: row {idx[0] + 2}: column 'framework': {str(e).split(': ', 1)[1]}") from None
        cfg = make_config(m, h, weight_dtype=dtype, act_dtype=dtype, kv_dtype=dtype, batching=batching)
        for i in idx:
            row = parsed[i]
            values = {k: row[src] for k, src in ROW_KNOBS}
            check_values(cfg, values, f"{path}: row {i + 2}", labels=row_labels(row))
            check_context(m, row["tokens"], row["output"], f"{path}: row {i + 2}")
        knobs = {k: np.array([parsed[i][src] for i in idx]) for k, src in ROW_KNOBS}
        res = run_designs(cfg, knobs, software_levels(h, [level], framework))
        for j, i in enumerate(idx):
            phase = parsed[i]["phase"]
            lat_key, energy_key, bound_key, quantity = PREDICT_PHASES[phase]
            lat, energy = res[lat_key][0, j], res[energy_key][0, j]
            out[i] = {
                "latency_s": lat,
                "energy_j": energy,
                "ttft_s": res["ttft_s"][0, j],
                "tpot_s": res["tpot_s"][0, j],
                "throughput_tokens_per_s": res["throughput_tokens_per_s"][0, j],
                "average_power_w": energy / lat if lat > 0 else 0.0,
                "memory_per_chip_bytes": res["memory_per_chip_bytes"][0, j],
                "feasible": bool(res["feasible"][0, j]),
                "bound": _bound_name(res[bound_key][0, j]),
                "calibration": calibration_source(h) if calibrated else "datasheet",
                "framework": profile,
            }
            if args.intervals is not None:
                out[i] |= _intervals(
                    h,
                    calibrated,
                    args.intervals,
                    (("latency", lat, quantity), ("energy", energy, "energy")),
                    profile,
                )
    _write_rows(rows, out, args.output)
    return 0


def _intervals(hw, calibrated: bool, level: float, items, framework: str | None = None) -> dict[str, Any]:
    """Prediction-interval columns from the held-out error of the chip's fit ('' when no fit
    applies: --uncalibrated, or a non-GPU chip without measurements of its own)."""
    applies = calibrated and calibration_source(hw) != "datasheet"
    out: dict[str, Any] = {}
    for name, value, quantity in items:
        unit = "s" if name == "latency" else "j"
        if applies and hw.fit is not None:  # a user's fit: its own cross-validated errors
            lo, hi = hw.fit.interval(value, name, level)
        elif applies:
            lo, hi = calibration.prediction_interval(hw.id, value, quantity, level, framework)
        else:
            lo, hi = np.nan, np.nan
        lo, hi = float(lo), float(hi)
        out[f"{name}_lo_{unit}"] = lo if np.isfinite(lo) else ""
        out[f"{name}_hi_{unit}"] = hi if np.isfinite(hi) else ""
    return out


def _bound_name(code: float) -> str:
    return BOUND_NAMES[int(round(float(code)))]


def _entry(loader, ref: str, path: Path):
    try:
        return loader(ref)
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None


def _write_rows(rows: list[dict[str, str]], extra: list[dict[str, Any]], output: str | None) -> None:
    fields = list(rows[0].keys()) + [k for k in extra[0] if k not in rows[0]]

    def write(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r, e in zip(rows, extra, strict=True):
            w.writerow({**r, **{k: (f"{v:.6g}" if isinstance(v, float | np.floating) else v) for k, v in e.items()}})

    if not output:
        write(sys.stdout)
        return
    with writing(output) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        write(f)
    if output:
        print(f"wrote {output} ({len(rows)} rows)", file=sys.stderr)


def _predict_ops(path: Path, output: str | None, args: argparse.Namespace) -> int:
    rows = read_csv(path, ["hardware", "op", "m", "n", "k", "dtype"], (), ("latency_s", "energy_j", *INTERVAL_COLUMNS))
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        op = cell(path, i, r, "op", "str")
        if op != "gemm":
            raise SpecError(f"{path}: row {i + 2}: column 'op' = '{op}': expected gemm")
        dt = cell(path, i, r, "dtype", "str")
        if dt not in DTYPES:
            raise SpecError(f"{path}: row {i + 2}: column 'dtype' = '{dt}': expected one of {', '.join(DTYPES)}")
        for c in ("m", "n", "k"):
            cell(path, i, r, c)
        groups.setdefault((cell(path, i, r, "hardware", "str"), dt), []).append(i)
    out: list[dict[str, Any]] = [{} for _ in rows]
    for (hid, dt), idx in groups.items():
        calibrated = not args.uncalibrated
        h = _entry(lambda r: load_hardware(r, calibrated=calibrated), hid, path)
        sw = software_levels(h, ["calibrated" if calibrated else "achievable"])
        t, e = gemm_designs(h.spec, level_of(sw), *(np.array([float(rows[i][c]) for i in idx]) for c in "mnk"), dt)
        for j, i in enumerate(idx):
            out[i] = {"latency_s": float(t[j]), "energy_j": float(e[j])}
            if args.intervals is not None:
                out[i] |= _intervals(h, calibrated, args.intervals, (("latency", t[j], "gemm"),))
    _write_rows(rows, out, output)
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "catalog",
        help="list catalog hardware and models with key numbers",
        description="The catalog's models (parameters, active parameters, KV bytes per token) and hardware (peaks, "
        "memory, calibration status). Example: inferbench catalog",
    )
    s.add_argument("--json", action="store_true", help="print JSON, with each chip's silicon and its modelled cost")
    s.add_argument(
        "--silicon",
        action="store_true",
        help="check the floorplan model (die area, TDP) against every published die, fitted and held out",
    )
    s.set_defaults(func=cmd_catalog)

    s = sub.add_parser(
        "evaluate",
        help="evaluate models on hardware over a grid; prints a table",
        description="Evaluate every combination of the given models, chips and values (comma-separated lists) "
        "at the three levels: ideal, achievable and calibrated. Example: inferbench evaluate --model llama-3-70b "
        "--hardware h100-sxm5-80gb --tp 8 --batch 1,8,64 --phase decode",
    )
    s.add_argument("--model", required=True, help="catalog id(s) or config.json path, comma-separated")
    s.add_argument("--hardware", required=True, help="catalog id(s) or YAML path, comma-separated")
    s.add_argument(
        "--phase",
        choices=("prefill", "decode", "request"),
        default="request",
        help="what the table shows: the prompt pass, one decode step, or whole requests (default)",
    )
    s.add_argument("--tp", default="1", help="tensor-parallel degree(s), e.g. 1,2,4,8")
    s.add_argument("--pp", default="1", help="pipeline-parallel degree(s)")
    s.add_argument("--ep", default="1", help="expert-parallel degree(s) (MoE: divides the experts)")
    s.add_argument("--sp", default="1", help="sequence (context) parallel degree(s): prompts and KV caches split")
    s.add_argument("--dp", default="1", help="data-parallel replicas (the batch is split over them)")
    s.add_argument("--overlap", help="share(s) of communication that overlaps compute, 0 to 1 (default 0)")
    s.add_argument("--expert-imbalance", help="tokens of the busiest expert group over the mean, >= 1 (default 1)")
    s.add_argument(
        "--expert-hot-share",
        help="share of tokens that all pick the same top-k experts, 0-1 (1: all tokens to one expert; default 0)",
    )
    s.add_argument("--platform", help="platform id or YAML (network levels); default: each chip's own system")
    s.add_argument("--batch", default="1", help="batch size(s), of the whole platform")
    s.add_argument(
        "--batching",
        choices=("static", "continuous", "chunked", "disaggregated"),
        help="static: one request batch (default); continuous: continuous batching in steady state with "
        "--batch sequences running; chunked: with chunked prefill; disaggregated: prefill and decode pools",
    )
    s.add_argument("--chunk-tokens", help="prefill tokens per iteration (chunked prefill), e.g. 256,512")
    s.add_argument("--disaggregate", help="PREFILL:DECODE replicas of disaggregated pools, e.g. 1:3,2:2")
    s.add_argument("--draft-model", help="draft model of speculative decoding (catalog id or config.json)")
    s.add_argument("--draft-tokens", help="speculative tokens per step (gamma), e.g. 2,4,8")
    s.add_argument("--acceptance", help="acceptance rate(s) of a drafted token, 0 to 1")
    s.add_argument("--beam", help="beam width(s)")
    s.add_argument("--kv-offload-gb", help="host memory per chip for KV cache that does not fit (GB)")
    s.add_argument(
        "--host-tflops",
        help="host (CPU) compute per chip that runs the attention over the offloaded KV (TFLOP/s; default 0: the KV "
        "streams to the chip)",
    )
    s.add_argument("--ttft-slo-ms", help="TTFT SLO(s) in ms: adds goodput and the share of requests within the SLOs")
    s.add_argument("--tpot-slo-ms", help="TPOT SLO(s) in ms (goodput)")
    s.add_argument(
        "--plot", metavar="DIR", help="with --rate: write DIR/latency_vs_rate.{png,svg} (tails against the rate)"
    )
    s.add_argument(
        "--breakdown",
        action="store_true",
        help="per-operator time and energy of the prefill pass and a decode step (one configuration)",
    )
    s.add_argument(
        "--prefix-tokens",
        help="prompt tokens of a prefix every request shares (system prompt, earlier turns), found in the prefix "
        "cache: not prefilled again, its KV held once per replica (must be shorter than the prompt)",
    )
    s.add_argument(
        "--rate",
        help="requests per second arriving (Poisson), e.g. 5,10,20: TTFT, TPOT and latency percentiles, "
        "the queue's delay and the saturation rate; cost and energy at that load",
    )
    s.add_argument(
        "--prompt-cv",
        help="spread of the request mix: coefficient of variation of the prompt lengths (log-normal, default 0)",
    )
    s.add_argument("--prompt-tokens", help="prompt tokens (prefill, request)")
    s.add_argument("--context", help="context tokens of the decode step (decode)")
    s.add_argument("--output-tokens", default="256", help="output tokens (request)")
    s.add_argument("--steps", help="denoising steps of a diffusion model (default: its pipeline's)")
    s.add_argument("--resolution", help="image side(s) in pixels of a vision or diffusion model (default: its own)")
    s.add_argument("--images", help="images per prompt of a vision-language model (default 0)")
    s.add_argument(
        "--dtype",
        default=DEFAULT_DTYPE,
        help=f"weights, activations and KV dtype (default {DEFAULT_DTYPE}): " + ", ".join(DTYPES),
    )
    s.add_argument("--weight-dtype", help="weights dtype (overrides --dtype), e.g. int4 for weight-only quantization")
    s.add_argument("--act-dtype", help="activations dtype (overrides --dtype)")
    s.add_argument("--kv-dtype", help="KV-cache dtype (overrides --dtype)")
    s.add_argument(
        "--set",
        action="append",
        metavar="KEY=V[,V]",
        help="override a hardware spec key of the chips' family, e.g. hbm_bandwidth_tb_s=2,4 or array_size=256; "
        "--set list prints the keys (and units) the chosen chips' families take",
    )
    s.add_argument("--lifetime-years", type=float, help="hardware amortization period in years (default 4)")
    s.add_argument("--usd-per-kwh", type=float, help="electricity price in USD/kWh (default 0.10)")
    s.add_argument(
        "--grid-gco2-per-kwh",
        help="carbon intensity of the electricity: gCO2e/kWh or a region ("
        + ", ".join(f"{k} {g:g}" for k, g in GRID_GCO2_PER_KWH.items())
        + "; default world)",
    )
    s.add_argument("--pue", type=float, help="data-centre power usage effectiveness, >= 1 (default 1.3)")
    s.add_argument(
        "--framework",
        help="software profile of the calibrated level: vllm-offline (default), vllm-server, tensorrt-llm, "
        "deepspeed-mii",
    )
    s.add_argument("--uncalibrated", action="store_true", help="pure datasheet model: levels ideal and achievable only")
    s.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    s.add_argument("-o", "--output", help="also write the dataset (.zarr or .nc)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser(
        "predict",
        help="latency and energy for each row of a scenario (or --ops) CSV",
        description="One prediction per row of a CSV of scenarios (model, hardware, phase, batch, tokens, tp), "
        "with prediction intervals on request; --ops for single GEMMs. "
        "Example: inferbench predict scenarios.csv --intervals 0.9 -o predicted.csv",
    )
    s.add_argument(
        "scenarios",
        nargs="?",
        help="CSV: model,hardware,phase,batch,prompt_tokens,context_tokens,tp[,pp,ep,sp,dp,output_tokens,dtype,framework]",
    )
    s.add_argument("--ops", help="CSV of operator micro-benchmarks: hardware,op,m,n,k,dtype")
    s.add_argument(
        "--intervals",
        type=float,
        nargs="?",
        const=0.9,
        metavar="LEVEL",
        help="add prediction intervals (default coverage 0.9) from the fit's held-out error",
    )
    s.add_argument(
        "--framework",
        help="software profile of the calibrated level (a 'framework' column overrides it per row): vllm-offline (default), vllm-server, tensorrt-llm, "
        "deepspeed-mii",
    )
    s.add_argument("--uncalibrated", action="store_true", help="pure datasheet model (no fitted parameters)")
    s.add_argument("-o", "--output", help="output CSV (default: stdout)")
    s.set_defaults(func=cmd_predict)
