"""The single jit + vmap boundary: many configurations of the pure cost model at once.

A configuration is a base PyTree (model, chip, platform, scenario, economics) plus a set of
*knobs*: named leaves that vary. Knobs are flat arrays of one length N (designs); the cost
model is vmapped over them and over the efficiency levels, jit-compiled once per static
structure (family, dtypes, FFN form, MoE, knob names), and run in fixed-size chunks so that
neither compile count nor memory grows with N.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from calibration._fitted import FITTED_DIR
from dse._specs import HardwareEntry, ModelEntry, SpecError, _suggest, load_hardware, load_model
from models import BOUND_NAMES, INFEASIBLE_REASONS, EconomicsSpec, Metrics, default_economics, serve
from models.hardware import SoftwareParams, achievable_software, ideal_software
from models.platform import PlatformSpec
from models.workloads import DTYPE_BYTES, Scenario

LEVELS = ("ideal", "achievable", "calibrated")
LEVEL_DESCRIPTIONS = {
    "ideal": "pure roofline: datasheet peaks, no derating, no overheads (algorithmic efficiency)",
    "achievable": "hardware-achievable: seed utilization and bandwidth derating (hardware capability)",
    "calibrated": "software-calibrated: fitted efficiencies and overheads (software maturity)",
}

# Units and descriptions of every output (CF-style attrs).
METRIC_INFO: dict[str, tuple[str, str]] = {
    "ttft_s": ("s", "time to first token: prefill of the whole batch, pipeline fill included"),
    "tpot_s": ("s", "time per output token: mean decode step over the output tokens"),
    "latency_s": ("s", "request latency: prefill plus all decode steps"),
    "prefill_latency_s": ("s", "prefill pass of the batch"),
    "decode_latency_s": ("s", "all decode steps of the batch"),
    "throughput_tokens_per_s": ("token/s", "output tokens per second of the replica"),
    "throughput_tokens_per_s_per_chip": ("token/s", "output tokens per second per chip"),
    "prefill_tokens_per_s": ("token/s", "prompt tokens per second during prefill"),
    "decode_tokens_per_s_per_chip": ("token/s", "output tokens per second per chip during decode"),
    "prefill_j_per_token": ("J/token", "prefill energy per prompt token"),
    "decode_j_per_token": ("J/token", "decode energy per output token"),
    "energy_j": ("J", "energy of the whole request batch, all chips"),
    "prefill_energy_j": ("J", "energy of the prefill pass, all chips"),
    "decode_energy_j": ("J", "energy of all decode steps, all chips"),
    "j_per_token": ("J/token", "energy per output token, prefill included"),
    "tokens_per_kwh": ("token/kWh", "output tokens per kWh, prefill included"),
    "average_power_w": ("W", "average power of the replica over the request"),
    "usd_per_mtok": ("USD/1M token", "TCO cost per million output tokens (capex amortized + energy × PUE)"),
    "memory_per_chip_bytes": ("B", "weights + KV cache + activations held by one chip"),
    "weight_bytes_per_chip": ("B", "weights held by one chip"),
    "kv_bytes_per_chip": ("B", "KV cache held by one chip at the end of the request"),
    "feasible": ("1", "the configuration fits and respects its constraints"),
    "infeasible_reason": ("1", "reason code, see flag_meanings"),
    "mfu": ("1", "model FLOPs utilization over the request"),
    "mbu": ("1", "memory bandwidth utilization over the request"),
    "prefill_mfu": ("1", "model FLOPs utilization of prefill"),
    "decode_mbu": ("1", "memory bandwidth utilization of decode"),
    "arithmetic_intensity_flop_per_byte": ("FLOP/B", "FLOPs per byte moved, whole request"),
    "prefill_arithmetic_intensity_flop_per_byte": ("FLOP/B", "FLOPs per byte moved, prefill"),
    "decode_arithmetic_intensity_flop_per_byte": ("FLOP/B", "FLOPs per byte moved, decode"),
    "flops": ("FLOP", "FLOPs of the request, all chips"),
    "prefill_flops": ("FLOP", "FLOPs of prefill, all chips"),
    "decode_flops": ("FLOP", "FLOPs of all decode steps, all chips"),
    "bound": ("1", "largest time component over the request, see flag_meanings"),
    "prefill_bound": ("1", "largest time component of prefill, see flag_meanings"),
    "decode_bound": ("1", "largest time component of decode, see flag_meanings"),
    "network_s": ("s", "time in TP all-reduces and PP transfers"),
    "n_chips": ("1", "chips of the replica (tp · pp)"),
}
assert set(METRIC_INFO) == set(Metrics._fields)


@dataclasses.dataclass(frozen=True)
class Config:
    """The base configuration: static structure plus default values of every leaf."""

    model: Any
    chip: Any
    platform: PlatformSpec
    scenario: Scenario
    economics: EconomicsSpec


_COMPONENTS = ("model", "chip", "platform", "scenario", "economics")


def knob_owner(config: Config) -> dict[str, str]:
    """Map every knob (leaf) name to the component that owns it."""
    out: dict[str, str] = {}
    for comp in _COMPONENTS:
        obj = getattr(config, comp)
        for f in dataclasses.fields(obj):
            if not f.metadata.get("static", False):
                out[f.name] = comp
    return out


def _with_knobs(config: Config, knobs: Mapping[str, jax.Array]) -> Config:
    owner = knob_owner(config)
    parts = {c: {} for c in _COMPONENTS}
    for name, value in knobs.items():
        parts[owner[name]][name] = value
    return Config(**{c: dataclasses.replace(getattr(config, c), **parts[c]) if parts[c] else getattr(config, c)
                     for c in _COMPONENTS})


def _serve_one(config: Config, knobs: dict[str, jax.Array], software: SoftwareParams) -> Metrics:
    c = _with_knobs(config, knobs)
    return serve(c.model, c.chip, c.platform, c.scenario, c.economics, software)


jax.tree_util.register_dataclass(Config, data_fields=list(_COMPONENTS), meta_fields=[])

# The one jit + vmap boundary (DESIGN rule 1): knobs vary along axis 0 (designs), software
# along the level axis; the base configuration is broadcast.
_serve_designs = jax.vmap(_serve_one, in_axes=(None, 0, None))
_serve_levels = jax.vmap(_serve_designs, in_axes=(None, None, 0))
serve_batch: Callable[..., Metrics] = jax.jit(_serve_levels)


def software_levels(hardware_id: str | None, levels: Sequence[str] = LEVELS, family: str = "simt") -> SoftwareParams:
    """Stack the efficiency levels along a leading axis.

    'calibrated' is the chip's own fit, else (GPU-class chips only) the A100 software fit
    with this chip's datasheet; families without measurements stay at 'achievable'.
    """
    from calibration import fitted_software  # deferred: calibration imports the engine

    def calibrated() -> SoftwareParams:
        if family == "simt" or (FITTED_DIR / f"{hardware_id}.yaml").exists():
            return fitted_software(hardware_id)
        return achievable_software()

    table = {"ideal": ideal_software, "achievable": achievable_software, "calibrated": calibrated}
    for lv in levels:
        if lv not in table:
            raise SpecError(f"levels: unknown level '{lv}': expected one of {', '.join(LEVELS)}")
    params = [table[lv]() for lv in levels]
    return jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v, dtype=float) for v in x]), *params)


def _pad_len(n: int, chunk: int) -> int:
    """Chunk length used for n designs: the next power of two, at most ``chunk``."""
    return min(chunk, 1 << max(0, (n - 1).bit_length()))


def run_designs(config: Config, knobs: Mapping[str, np.ndarray], software: SoftwareParams,
                chunk: int = 1 << 14, progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Evaluate N designs (flat knob arrays of equal length) in fixed-size chunks.

    Returns numpy arrays of shape [n_levels, N] per metric.
    """
    owner = knob_owner(config)
    for name in knobs:
        if name not in owner:
            raise SpecError(f"knobs: unknown knob '{name}'{_suggest_knob(name, owner)}")
    lengths = {len(np.atleast_1d(v)) for v in knobs.values()} or {1}
    if len(lengths) != 1:
        raise SpecError(f"knobs: arrays of different lengths {sorted(lengths)}: expected one length")
    n = lengths.pop()
    size = _pad_len(n, chunk)
    n_levels = len(jax.tree.leaves(software)[0])
    out = {k: np.empty((n_levels, n)) for k in Metrics._fields}
    flat = {k: np.asarray(np.broadcast_to(np.atleast_1d(v), (n,)), dtype=float) for k, v in knobs.items()}
    def launch(start: int):
        stop = min(start + size, n)
        block = {}
        for k, v in flat.items():
            part = v[start:stop]
            if stop - start < size:  # pad with the last value: same shape, no recompilation
                part = np.concatenate([part, np.full(size - (stop - start), part[-1])])
            block[k] = part
        return start, stop, serve_batch(config, block, software)  # asynchronous dispatch

    pending = launch(0)
    while pending is not None:
        start, stop, res = pending
        # Dispatch the next chunk before copying this one out, so both cores stay busy.
        pending = launch(stop) if stop < n else None
        for k, v in res._asdict().items():
            out[k][:, start:stop] = np.asarray(v)[:, : stop - start]
        if progress:
            progress(stop - start)
    return out


def _suggest_knob(name: str, owner: Mapping[str, str]) -> str:
    return _suggest(name, list(owner))


def make_config(model: ModelEntry, hardware: HardwareEntry, *, tp: float = 1, pp: float = 1,
                batch: float = 1, prompt_tokens: float = 2048, output_tokens: float = 256,
                weight_dtype: str = "bf16", act_dtype: str = "bf16", kv_dtype: str = "bf16",
                economics: EconomicsSpec | None = None) -> Config:
    """The base configuration of one model on one hardware (scalar leaves)."""
    for key, dt in (("weight_dtype", weight_dtype), ("act_dtype", act_dtype), ("kv_dtype", kv_dtype)):
        if dt not in DTYPE_BYTES:
            raise SpecError(f"{key}: unknown dtype '{dt}': expected one of {', '.join(DTYPE_BYTES)}")
    f = lambda x: jnp.asarray(float(x))  # noqa: E731
    return Config(
        model=model.spec,
        chip=hardware.spec,
        platform=PlatformSpec(f(tp), f(pp)),
        scenario=Scenario(f(batch), f(prompt_tokens), f(output_tokens), weight_dtype, act_dtype, kv_dtype),
        economics=economics or default_economics(),
    )


def _entries(ref: Any, loader: Callable[[Any], Any]) -> list[Any]:
    if isinstance(ref, str | bytes) or not isinstance(ref, Sequence):
        return [ref if isinstance(ref, ModelEntry | HardwareEntry) else loader(ref)]
    return [r if isinstance(r, ModelEntry | HardwareEntry) else loader(r) for r in ref]


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
    chunk: int = 1 << 14,
    **knobs: Any,
) -> xr.Dataset:
    """Evaluate a grid of configurations and return a labelled dataset.

    Every keyword knob (``tp``, ``pp``, ``batch``, ``prompt_tokens``, ``output_tokens``, any
    SI leaf of the chip such as ``hbm_bandwidth_bytes_per_s``, of the model or of the
    economics) may be a scalar or a 1-D sequence; each sequence becomes a dimension of the
    result (outer product). ``model`` and ``hardware`` may be lists: they become the
    ``model`` and ``hardware`` dimensions, one compiled program per static structure.

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
    base_defaults = dict(tp=1, pp=1, batch=1, prompt_tokens=2048, output_tokens=256)
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
    results = []
    for m, h in itertools.product(models, hws):
        cfg = make_config(m, h, weight_dtype=weight_dtype, act_dtype=act_dtype, kv_dtype=kv_dtype,
                          economics=economics, **base)
        cfg = _with_knobs(cfg, {k: jnp.asarray(float(v)) for k, v in _checked(cfg, rest).items()})
        sw = software_levels(h.id, levels, h.spec.family)
        res = run_designs(cfg, _checked(cfg, flat) or {"batch": np.asarray([float(cfg.scenario.batch)])},
                          sw, chunk=chunk)
        results.append(res)
    dims = ("level", *axes)
    data_vars = {}
    for name in Metrics._fields:
        arr = np.stack([r[name].reshape((len(levels), *shape)) for r in results])
        arr = arr.reshape((len(models), len(hws), len(levels), *shape))
        if name in ("feasible",):
            arr = arr.astype(bool)
        elif name in ("infeasible_reason", "bound", "prefill_bound", "decode_bound", "n_chips"):
            arr = np.rint(arr).astype(np.int32)
        units, desc = METRIC_INFO[name]
        attrs = {"units": units, "description": desc}
        if name.endswith("bound"):
            attrs |= {"flag_values": list(range(len(BOUND_NAMES))), "flag_meanings": " ".join(BOUND_NAMES)}
        if name == "infeasible_reason":
            attrs |= {"flag_values": list(range(len(INFEASIBLE_REASONS))),
                      "flag_meanings": " | ".join(INFEASIBLE_REASONS)}
        data_vars[name] = (("model", "hardware", *dims), arr, attrs)
    coords = {"model": [m.id for m in models], "hardware": [h.id for h in hws], "level": list(levels)}
    coords |= {k: v for k, v in axes.items()}
    ds = xr.Dataset(data_vars, coords=coords)
    ds["level"].attrs["description"] = "; ".join(f"{k}: {LEVEL_DESCRIPTIONS[k]}" for k in levels)
    for k in axes:
        ds[k].attrs["units"] = _knob_units(k)
    for k, v in base_defaults.items():
        if k not in axes:
            ds.attrs[k] = float(knobs.get(k, v))
    ds.attrs |= {"weight_dtype": weight_dtype, "act_dtype": act_dtype, "kv_dtype": kv_dtype}
    if isinstance(model, str | ModelEntry):
        ds = ds.squeeze("model", drop=False)
    if isinstance(hardware, str | HardwareEntry):
        ds = ds.squeeze("hardware", drop=False)
    return ds


def _checked(cfg: Config, knobs: Mapping[str, Any]) -> dict[str, Any]:
    owner = knob_owner(cfg)
    for k, v in knobs.items():
        if k not in owner:
            raise SpecError(f"knobs: unknown knob '{k}'{_suggest_knob(k, owner)}")
        arr = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise SpecError(f"knobs: '{k}' has values <= 0 or not finite: expected numbers > 0")
    return dict(knobs)


def _knob_units(name: str) -> str:
    for suffix, unit in (("_bytes_per_s", "B/s"), ("_flops_per_s", "FLOP/s"), ("_ops_per_s", "OP/s"),
                         ("_bytes", "B"), ("_s", "s"), ("_w", "W"), ("_j", "J"), ("_usd", "USD"),
                         ("_mm2", "mm2")):
        if name.endswith(suffix):
            return unit
    return "1"


def _gemm_one(chip: Any, software: SoftwareParams, m: jax.Array, n: jax.Array, k: jax.Array, dtype: str):
    from models.hardware import gemm_cost

    return gemm_cost(chip, software, m, n, k, dtype)


_gemm_batch = jax.jit(jax.vmap(_gemm_one, in_axes=(None, None, 0, 0, 0, None)), static_argnums=5)


def gemm_designs(hardware: HardwareEntry, m: np.ndarray, n: np.ndarray, k: np.ndarray, dtype: str,
                 level: str = "calibrated") -> tuple[np.ndarray, np.ndarray]:
    """Latency and energy of many single GEMMs on one chip (vectorized)."""
    if dtype not in DTYPE_BYTES:
        raise SpecError(f"dtype: unknown dtype '{dtype}': expected one of {', '.join(DTYPE_BYTES)}")
    sw = jax.tree.map(lambda x: x[0], software_levels(hardware.id, [level], hardware.spec.family))
    t, e = _gemm_batch(hardware.spec, sw, *(jnp.asarray(np.asarray(x, dtype=float)) for x in (m, n, k)), dtype)
    return np.asarray(t), np.asarray(e)
