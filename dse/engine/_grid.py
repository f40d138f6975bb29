"""A labelled grid of configurations through the one boundary, as plain arrays (:class:`Grid`).

:func:`dse.engine.evaluate` makes it an xarray Dataset; a query that only prints a table reads
the arrays and never imports xarray (0.25 s of a 2-core CPU's start-up, and 0.25 s more for the
dask it probes on the first variable it makes)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

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
from models import DEFAULT_DTYPE, EconomicsSpec, Metrics

from ._boundary import run_designs
from ._config import Config, Labels, check_context, check_values, knob_keys, make_config, with_knobs
from ._levels import LEVEL_DESCRIPTIONS, LEVELS, calibration_source, framework_of, software_levels
from ._metrics import BOOL_METRICS, CODE_METRICS, metric_attrs


def silicon_source(hardware: HardwareEntry, knobs: dict[str, Any]) -> str:
    """One line: whether this chip's price, TDP and die follow the knobs, or were given."""
    given = [k for k in ("price_usd", "tdp_w") if k in knobs]
    base = hardware.spec.silicon
    if base is None:
        modelled = "datasheet: price as published (no node and die or microarchitecture to vary); TDP follows"
    else:
        die = f"{base.die_mm2:.4g} mm2 x {base.dies:g} ({base.area_source})"
        modelled = f"modelled: {base.node.name}, {die}; price, TDP and die follow"
    return modelled + (f" ({', '.join(given)} given)" if given else "")


def _entries(ref: Any, loader: Callable[[Any], Any]) -> list[Any]:
    if isinstance(ref, str | bytes) or not isinstance(ref, Sequence):
        return [ref if isinstance(ref, ModelEntry | HardwareEntry) else loader(ref)]
    return [r if isinstance(r, ModelEntry | HardwareEntry) else loader(r) for r in ref]


Variable = tuple[tuple[str, ...], np.ndarray, dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Grid:
    """An evaluation before it is a Dataset: each variable and coordinate as (dims, values,
    attrs), the dataset's attrs, and the dims to squeeze (a model or chip given alone, not as
    a list). Metric variables have dims ``(model, hardware, level, *axes)``."""

    variables: dict[str, Variable]
    coords: dict[str, Variable]
    attrs: dict[str, Any]
    squeeze: tuple[str, ...]
    configs: tuple[Config, ...] = ()  # per (model, hardware): the scalar knobs applied, not the axes

    @property
    def axes(self) -> tuple[str, ...]:
        """The grid's axes (the knobs given as lists), in order."""
        return next(dims for dims, _, _ in self.variables.values() if "level" in dims)[3:]


def evaluate_grid(
    model: str | ModelEntry | Sequence[str | ModelEntry],
    hardware: str | HardwareEntry | Sequence[str | HardwareEntry],
    *,
    levels: Sequence[str] = LEVELS,
    dtype: str | None = None,
    weight_dtype: str = DEFAULT_DTYPE,
    act_dtype: str = DEFAULT_DTYPE,
    kv_dtype: str = DEFAULT_DTYPE,
    economics: EconomicsSpec | None = None,
    uneven_heads: bool = False,
    platform: str | PlatformEntry | None = None,
    batching: str = "static",
    framework: str | None = None,
    labels: Labels | None = None,
    **knobs: Any,
) -> Grid:
    """Evaluate a grid of configurations: the arrays of :func:`dse.engine.evaluate`'s Dataset.

    Every keyword knob (``tp``, ``pp``, ``batch``, ``prompt_tokens``, ``output_tokens``, any
    SI leaf of the chip such as ``hbm_bandwidth_bytes_per_s``, of the model or of the
    economics) may be a scalar or a 1-D sequence; each sequence becomes a dimension of the
    result (outer product). ``model`` and ``hardware`` may be lists: they become the
    ``model`` and ``hardware`` dimensions, one compiled program per static structure.
    Knob values are checked (:func:`check_values`); ``uneven_heads`` admits a tp that does
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
    Every knob value is checked once (:func:`check_values`); ``labels`` names knobs in its
    errors as the caller's user wrote them (a flag and its units).
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
            labels=labels,
            **base,
        )
        biggest = np.prod([np.max(np.asarray(knobs.get(k, 1), dtype=float)) for k in ("tp", "pp", "ep", "sp")])
        check_placement(f"{m.id} on {platform.id if platform else h.id}", network_of(h, platform), float(biggest))
        check_values(cfg, {**rest, **axes}, f"{m.id} on {h.id}", uneven_heads=uneven_heads, labels=labels)
        check_context(
            m, axes.get("prompt_tokens", base["prompt_tokens"]), axes.get("output_tokens", base["output_tokens"]), m.id
        )
        cfg = with_knobs(cfg, {k: np.asarray(float(v)) for k, v in rest.items()})
        results.append(run_designs(cfg, flat, software_levels(h, levels, framework)))
        sources.append(calibration_source(h))
        profiles.append(framework_of(h, framework) if "calibrated" in levels else "none")
        configs.append(cfg)
    dims = ("level", *axes)
    data_vars: dict[str, Variable] = {}
    for name in Metrics._fields:
        arr = np.stack([r[name].reshape((len(levels), *shape)) for r in results])
        arr = arr.reshape((len(models), len(hws), len(levels), *shape))
        if name in BOOL_METRICS:
            arr = arr.astype(bool)
        elif name in (*CODE_METRICS, "n_chips"):
            arr = np.rint(arr).astype(np.int32)
        data_vars[name] = (("model", "hardware", *dims), arr, metric_attrs(name))
    level_doc = "; ".join(f"{k}: {LEVEL_DESCRIPTIONS[k]}" for k in levels)
    table = knob_keys(configs[0])
    coords: dict[str, Variable] = {
        "model": (("model",), np.asarray([m.id for m in models]), {}),
        "hardware": (("hardware",), np.asarray([h.id for h in hws]), {}),
        "level": (("level",), np.asarray(list(levels)), {"description": level_doc}),
    }
    coords |= {k: ((k,), v, {"units": table[k].key.si_unit}) for k, v in axes.items()}
    per_hardware = {
        "calibration": (
            sources,
            "where the calibrated level comes from: fitted (this chip's own fit), "
            "transferred (the A100 software fit on this chip's datasheet) or "
            "datasheet (no fit: calibrated = achievable)",
        ),
        "precision": (
            [gemm_precision(h, weight_dtype, act_dtype) for h in hws],
            "tensor rate the GEMMs run at for the weight and activation dtypes (fallback if noted)",
        ),
        "framework": (profiles, "software profile (framework overheads) of the calibrated level; none without a fit"),
        "silicon": (
            [silicon_source(h, knobs) for h in hws],
            "where price, TDP and die area come from: modelled (the chip's published silicon: they follow the "
            "knobs), given (set with the design) or datasheet (no published die area and node: the price stays)",
        ),
    }
    for name, (values, doc) in per_hardware.items():
        data_vars[name] = (("hardware",), np.asarray(values[: len(hws)], dtype=object), {"description": doc})
    attrs: dict[str, Any] = {k: float(knobs.get(k, v)) for k, v in base_defaults.items() if k not in axes}
    attrs |= {"weight_dtype": weight_dtype, "act_dtype": act_dtype, "kv_dtype": kv_dtype}
    hosts = {h.id: float(network_of(h, platform).get("host_power_w", 0.0)) for h in hws}
    counted = ", ".join(f"{w:.0f} W per chip on {k}" for k, w in hosts.items() if w > 0)
    missing = [k for k, w in hosts.items() if w == 0]
    attrs["energy_scope"] = (
        "chips and their links"
        + (f"; hosts, switches and NICs of the system: {counted}" if counted else "")
        + (f"; no system power known for {', '.join(missing)} (its hosts are not counted)" if missing else "")
    )
    squeeze = tuple(
        d for d, ref in (("model", model), ("hardware", hardware)) if isinstance(ref, str | ModelEntry | HardwareEntry)
    )
    return Grid(data_vars, coords, attrs, squeeze, tuple(configs))
