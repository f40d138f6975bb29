"""``evaluate``: a labelled grid of configurations (an xarray.Dataset) through the one boundary."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from dse.specs import (
    HardwareEntry,
    ModelEntry,
    PlatformEntry,
    SpecError,
    check_placement,
    gemm_precision,
    load_hardware,
    load_model,
    load_platform,
    network_of,
)
from models import EconomicsSpec, Metrics

from ._boundary import check_knobs, run_designs
from ._config import check_context, check_physics, knob_keys, make_config, with_knobs
from ._levels import LEVEL_DESCRIPTIONS, LEVELS, calibration_source, framework_of, software_levels
from ._metrics import BOOL_METRICS, CODE_METRICS, metric_attrs


def _entries(ref: Any, loader: Callable[[Any], Any]) -> list[Any]:
    if isinstance(ref, str | bytes) or not isinstance(ref, Sequence):
        return [ref if isinstance(ref, ModelEntry | HardwareEntry) else loader(ref)]
    return [r if isinstance(r, ModelEntry | HardwareEntry) else loader(r) for r in ref]


def _check_serving(knobs: dict[str, Any], base: dict[str, Any], batching: str, where: str) -> None:
    """Serving knobs that only make sense together: a chunk within the prompt, a chunk budget
    for chunked prefill, a prefill pool for disaggregation."""
    prompt = float(np.min(np.asarray(knobs.get("prompt_tokens", base["prompt_tokens"]), dtype=float)))
    chunk = knobs.get("chunk_tokens")
    if chunk is not None and float(np.max(np.asarray(chunk, dtype=float))) > prompt:
        raise SpecError(
            f"{where}: 'chunk_tokens' = {float(np.max(chunk)):g}: expected at most the prompt ({prompt:g} tokens)"
        )
    if batching == "chunked" and (chunk is None or float(np.min(np.asarray(chunk, dtype=float))) <= 0):
        raise SpecError(f"{where}: batching 'chunked' needs 'chunk_tokens' > 0 (prefill tokens per iteration)")
    share = knobs.get("prefill_share")
    if batching == "disaggregated":
        dp = np.asarray(knobs.get("dp", base["dp"]), dtype=float)
        if share is None or np.any(np.asarray(share, dtype=float) <= 0) or np.any(dp < 2):
            raise SpecError(
                f"{where}: batching 'disaggregated' needs dp >= 2 replicas and 'prefill_share' in (0, 1) "
                "(the share of them that prefill)"
            )


def evaluate(
    model: str | ModelEntry | Sequence[str | ModelEntry],
    hardware: str | HardwareEntry | Sequence[str | HardwareEntry],
    *,
    levels: Sequence[str] = LEVELS,
    dtype: str | None = None,
    weight_dtype: str = "bf16",
    act_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    economics: EconomicsSpec | None = None,
    uneven_heads: bool = False,
    platform: str | PlatformEntry | None = None,
    batching: str = "static",
    framework: str | None = None,
    **knobs: Any,
) -> xr.Dataset:
    """Evaluate a grid of configurations and return a labelled dataset.

    Every keyword knob (``tp``, ``pp``, ``batch``, ``prompt_tokens``, ``output_tokens``, any
    SI leaf of the chip such as ``hbm_bandwidth_bytes_per_s``, of the model or of the
    economics) may be a scalar or a 1-D sequence; each sequence becomes a dimension of the
    result (outer product). ``model`` and ``hardware`` may be lists: they become the
    ``model`` and ``hardware`` dimensions, one compiled program per static structure.
    Knob values are checked (:func:`check_physics`); ``uneven_heads`` admits a tp that does
    not divide the attention heads, as some published studies use. ``platform`` (a platform
    id or file) puts the chips on that platform's network; otherwise each chip runs on its
    own system's (its hardware file's scale-up domain and scale-out NICs). Parallel knobs:
    ``tp``, ``pp``, ``ep``, ``sp``, ``dp`` (``batch`` is the whole platform's, split over dp
    replicas and, in attention, over ep groups), ``overlap``, ``expert_imbalance``.
    ``batching`` is ``static`` (one request batch), ``continuous``, ``chunked`` (with
    ``chunk_tokens``) or ``disaggregated`` (with ``prefill_share``): see ``models.serve``;
    serving knobs ``draft_tokens``, ``acceptance``, ``draft_cost_ratio``, ``beam``,
    ``kv_offload_bytes``, ``host_bandwidth_bytes_per_s``. ``framework`` picks the software
    profile of the calibrated level (``vllm-offline``, ``vllm-server``, ``tensorrt-llm``,
    ``deepspeed-mii``; default: the fit's default); the ``framework`` variable names the one used.

    Examples:
        >>> ds = evaluate("llama-3-70b", "h100-sxm5-80gb", tp=8, batch=[1, 8, 32],
        ...               prompt_tokens=2048, output_tokens=256)
        >>> ds.tpot_s.sel(level="calibrated").dims
        ('batch',)
    """
    if dtype is not None:
        weight_dtype = act_dtype = kv_dtype = dtype
    models = _entries(model, load_model)
    hws = _entries(hardware, load_hardware)
    if isinstance(platform, str):
        platform = load_platform(platform)
    base_defaults = dict(tp=1, pp=1, ep=1, sp=1, dp=1, batch=1, prompt_tokens=2048, output_tokens=256)
    scalars = {k: v for k, v in knobs.items() if np.ndim(v) == 0}
    axes = {k: np.asarray(v, dtype=float) for k, v in knobs.items() if np.ndim(v) > 0}
    for k, v in axes.items():
        if v.ndim != 1:
            raise SpecError(f"{k}: expected a scalar or a 1-D list of values")
    grid = np.meshgrid(*axes.values(), indexing="ij") if axes else []
    flat = {k: g.ravel() for k, g in zip(axes, grid, strict=True)}
    shape = tuple(len(v) for v in axes.values())
    base = {k: scalars.get(k, v) for k, v in base_defaults.items()}
    rest = {k: v for k, v in scalars.items() if k not in base_defaults}
    results, sources, configs, profiles = [], [], [], []
    for m, h in itertools.product(models, hws):
        cfg = make_config(
            m,
            h,
            weight_dtype=weight_dtype,
            act_dtype=act_dtype,
            kv_dtype=kv_dtype,
            economics=economics,
            uneven_heads=uneven_heads,
            platform=platform,
            batching=batching,
            **base,
        )
        check_knobs(cfg, rest)
        biggest = np.prod([np.max(np.asarray(knobs.get(k, 1), dtype=float)) for k in ("tp", "pp", "ep", "sp")])
        check_placement(f"{m.id} on {platform.id if platform else h.id}", network_of(h, platform), float(biggest))
        _check_serving(knobs, base, batching, f"{m.id} on {h.id}")
        check_physics(cfg, {**rest, **axes}, f"{m.id} on {h.id}", uneven_heads)
        check_context(
            m, axes.get("prompt_tokens", base["prompt_tokens"]), axes.get("output_tokens", base["output_tokens"]), m.id
        )
        cfg = with_knobs(cfg, {k: np.asarray(float(v)) for k, v in rest.items()})
        results.append(run_designs(cfg, flat, software_levels(h, levels, framework)))
        sources.append(calibration_source(h))
        profiles.append(framework_of(h, framework) if "calibrated" in levels else "none")
        configs.append(cfg)
    dims = ("level", *axes)
    data_vars = {}
    for name in Metrics._fields:
        arr = np.stack([r[name].reshape((len(levels), *shape)) for r in results])
        arr = arr.reshape((len(models), len(hws), len(levels), *shape))
        if name in BOOL_METRICS:
            arr = arr.astype(bool)
        elif name in (*CODE_METRICS, "n_chips"):
            arr = np.rint(arr).astype(np.int32)
        data_vars[name] = (("model", "hardware", *dims), arr, metric_attrs(name))
    coords = {"model": [m.id for m in models], "hardware": [h.id for h in hws], "level": list(levels)}
    coords |= {k: v for k, v in axes.items()}
    ds = xr.Dataset(data_vars, coords=coords)
    ds["calibration"] = (
        ("hardware",),
        np.asarray(sources[: len(hws)], dtype=object),
        {
            "description": "where the calibrated level comes from: fitted (this chip's own fit), "
            "transferred (the A100 software fit on this chip's datasheet) or "
            "datasheet (no fit: calibrated = achievable)"
        },
    )
    ds["precision"] = (
        ("hardware",),
        np.asarray([gemm_precision(h, weight_dtype, act_dtype) for h in hws], dtype=object),
        {"description": "tensor rate the GEMMs run at for the weight and activation dtypes (fallback if noted)"},
    )
    ds["framework"] = (
        ("hardware",),
        np.asarray(profiles[: len(hws)], dtype=object),
        {"description": "software profile (framework overheads) of the calibrated level; none without a fit"},
    )
    ds["level"].attrs["description"] = "; ".join(f"{k}: {LEVEL_DESCRIPTIONS[k]}" for k in levels)
    table = knob_keys(configs[0])
    for k in axes:
        ds[k].attrs["units"] = table[k].key.si_unit
    for k, v in base_defaults.items():
        if k not in axes:
            ds.attrs[k] = float(knobs.get(k, v))
    ds.attrs |= {"weight_dtype": weight_dtype, "act_dtype": act_dtype, "kv_dtype": kv_dtype}
    hosts = {h.id: float(network_of(h, platform).get("host_power_w", 0.0)) for h in hws}
    counted = ", ".join(f"{w:.0f} W per chip on {k}" for k, w in hosts.items() if w > 0)
    missing = [k for k, w in hosts.items() if w == 0]
    ds.attrs["energy_scope"] = (
        "chips and their links"
        + (f"; hosts, switches and NICs of the system: {counted}" if counted else "")
        + (f"; no system power known for {', '.join(missing)} (its hosts are not counted)" if missing else "")
    )
    if isinstance(model, str | ModelEntry):
        ds = ds.squeeze("model", drop=False)
    if isinstance(hardware, str | HardwareEntry):
        ds = ds.squeeze("hardware", drop=False)
    return ds
