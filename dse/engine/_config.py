"""A configuration: the static structure plus the default value of every leaf (knob).

A knob is any continuous leaf of the model, chip, platform, scenario or economics, named by
its SI field (``hbm_bandwidth_bytes_per_s``) or its spec-file key (``hbm_bandwidth_tb_s``);
:func:`knob_keys` is the one table that maps both to the owning component and the factor
from file units to SI (derived from the dataclasses' ``spec_field`` metadata).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from dse.specs import (
    HardwareEntry,
    KeyInfo,
    ModelEntry,
    PlatformEntry,
    SpecError,
    check_placement,
    keys_of,
    network_of,
    suggest,
)
from models import BATCHING, DEFAULT_DTYPE, DTYPES, Chip, EconomicsSpec, Scenario, Workload, default_economics
from models.platform import PlatformSpec

COMPONENTS = ("model", "chip", "platform", "scenario", "economics")
_PLATFORM_LEAVES = {f.name for f in dataclasses.fields(PlatformSpec) if not f.metadata.get("static")}


@dataclasses.dataclass(frozen=True)
class Config:
    """The base configuration: static structure plus default values of every leaf."""

    model: Workload
    chip: Chip
    platform: PlatformSpec
    scenario: Scenario
    economics: EconomicsSpec


jax.tree_util.register_dataclass(Config, data_fields=list(COMPONENTS), meta_fields=[])


@dataclasses.dataclass(frozen=True)
class Knob:
    """A knob of a configuration: the component that owns it, its SI field and its spec key."""

    component: str
    field: str
    key: KeyInfo


def knob_keys(config: Config) -> dict[str, Knob]:
    """Every name a knob of ``config`` answers to — SI field and spec-file key — → :class:`Knob`."""
    out: dict[str, Knob] = {}
    for comp in COMPONENTS:
        for key, info in keys_of(type(getattr(config, comp))).items():
            field = info.field or key  # every key of a component is a leaf's
            knob = Knob(comp, field, info)
            out.setdefault(field, knob)
            out.setdefault(key, knob)
    return out


def knob_owner(config: Config) -> dict[str, str]:
    """Map every SI knob (leaf) name to the component that owns it."""
    return {k.field: k.component for k in knob_keys(config).values()}


def resolve_knob(config: Config, name: str, where: str) -> Knob:
    """The knob a user names (SI field or spec key), or a one-line error naming ``where``."""
    table = knob_keys(config)
    if name not in table:
        keys = sorted({k.key.key for k in table.values()})
        raise SpecError(
            f"{where}: unknown key '{name}' for hardware family '{config.chip.family}'"
            f"{suggest(name, list(table))} (known: {', '.join(keys)})"
        )
    return table[name]


def with_arrivals(config: Config, knobs: Mapping[str, Any]) -> Config:
    """``config`` with the queue's model compiled in when ``knobs`` give a request rate (the
    static ``Scenario.arrivals``); unchanged otherwise."""
    if "rate_rps" not in knobs or config.scenario.arrivals:
        return config
    return dataclasses.replace(config, scenario=dataclasses.replace(config.scenario, arrivals=True))


def with_knobs(config: Config, knobs: Mapping[str, Any]) -> Config:
    """``config`` with the SI knobs ``knobs`` replaced (values of any array type)."""
    owner = knob_owner(config)
    parts: dict[str, dict[str, Any]] = {c: {} for c in COMPONENTS}
    for name, value in knobs.items():
        parts[owner[name]][name] = value
    if "tdp_w" in parts["chip"]:  # a TDP given for the design is kept (Chip.design_tdp_w)
        parts["chip"]["tdp_given"] = True
    if "price_usd" in parts["chip"]:  # as is a price (Chip.design_price_usd)
        parts["chip"]["price_given"] = True
    config = with_arrivals(config, knobs)
    return Config(
        **{
            c: dataclasses.replace(getattr(config, c), **parts[c]) if parts[c] else getattr(config, c)
            for c in COMPONENTS
        }
    )


# Physical ranges of bounded knobs. Converter resolutions: in-memory-compute macros use 1-8 bit
# ADCs and 1-4 bit DACs (docs/references.md#research-note, IMC); 16 bits bounds any converter fast enough to matter.
# PUE is facility energy over IT energy (The Green Grid): at least 1.
# The busiest expert group carries at least the mean load (1 = balanced routing); a share of
# the tokens is a fraction.
# An acceptance rate is a probability.
PHYSICAL_RANGE = {
    "adc_bits": (1, 16),
    "dac_bits": (1, 16),
    "pue": (1, np.inf),
    "expert_imbalance": (1, np.inf),
    "expert_hot_share": (0, 1),
    "acceptance": (0, 1),
    "prefill_share": (0, 1),
    # Coefficient of variation of the prompt lengths (log-normal, sigma^2 = ln(1 + c^2)): at 10
    # the lengths already span a factor of 10^4 between the 1st and 99th percentile.
    "prompt_tokens_cv": (0, 10),
}


# Largest count a knob may hold: GEMM dimensions, batch and tokens are 32-bit integers in BLAS
# interfaces (cuBLAS ``int m, n, k``), and nothing served comes near it.
MAX_COUNT = 2**31 - 1

# How a knob is named in an error: the flag, column or spec key the user wrote, and the factor
# from SI to the units they wrote it in (``{"kv_offload_bytes": ("--kv-offload-gb", 1e9)}``).
Labels = Mapping[str, tuple[str, float]]


def check_values(
    config: Config,
    values: Mapping[str, Any],
    where: str,
    *,
    uneven_heads: bool = False,
    labels: Labels | None = None,
) -> None:
    """The one check of knob values users give the engine, scalars and axes alike: the command
    line (which only parses), the Python API (:func:`dse.engine.evaluate`), predict's rows and
    sweeps' axes all come through here.

    Every name is a knob of ``config`` (SI field or spec key) with a number or a 1-D list of
    them; each value passes :func:`check_physics`; the platform's batch splits evenly over
    its dp replicas in every combination; serving knobs that only make sense together are
    given together. Errors name ``where`` and the knob as the user wrote it (``labels``).
    """
    table = knob_keys(config)
    for name, value in values.items():
        if name not in table:
            raise SpecError(f"{where}: unknown knob '{name}'{suggest(name, table)}")
        if np.ndim(value) > 1:
            raise SpecError(f"{where}: {_label(name, labels)}: expected a number or a 1-D list of numbers")
    check_physics(config, values, where, uneven_heads, labels)
    fields = {table[k].field: v for k, v in values.items()}
    _check_architecture(config, fields, where, labels)
    check_batch_split(fields.get("batch", config.scenario.batch), fields.get("dp", config.platform.dp), where, labels)
    _check_serving(config, fields, where, labels)


def _check_architecture(config: Config, fields: Mapping[str, Any], where: str, labels: Labels | None) -> None:
    """A GPU's SM count or clock scales its rates only from the ones its file quotes them at."""
    for field, ref, key in (("sm_count", "sm_ref", "sm_count"), ("clock_hz", "clock_ref_hz", "clock_ghz")):
        if field in fields and getattr(config.chip, ref, None) == 0.0:
            name = next((k for k in (key, field) if labels and k in labels), key)
            raise SpecError(
                f"{where}: {_label(name, labels)}: the hardware file states no {key} its rates are quoted at: "
                f"expected {key} in the file to vary it"
            )


def _label(name: str, labels: Labels | None) -> str:
    return labels[name][0] if labels and name in labels else f"'{name}'"


def _shown(name: str, value: float, labels: Labels | None) -> str:
    """``value`` (SI) in the units the user wrote ``name`` in."""
    return f"{value / (labels[name][1] if labels and name in labels else 1.0):g}"


def _check_serving(config: Config, fields: Mapping[str, Any], where: str, labels: Labels | None) -> None:
    """Serving knobs that only make sense together: a chunk within the prompt, a chunk budget
    for chunked prefill, a prefill pool for disaggregation."""
    batching = config.scenario.batching

    def given(name: str) -> np.ndarray:  # the values given, else the configuration's own
        knob = knob_keys(config)[name]
        value = fields.get(name, getattr(getattr(config, knob.component), knob.field))
        return np.atleast_1d(np.asarray(value, dtype=float))

    prompt = float(np.min(given("prompt_tokens")))
    chunk = given("chunk_tokens")
    label = _label("chunk_tokens", labels)
    if float(np.max(chunk)) > prompt:
        raise SpecError(f"{where}: {label} = {float(np.max(chunk)):g}: expected at most the prompt ({prompt:g} tokens)")
    if batching == "chunked" and float(np.min(chunk)) <= 0:
        raise SpecError(f"{where}: batching 'chunked' needs {label} > 0 (prefill tokens per iteration)")
    if batching == "disaggregated":
        if np.any(given("prefill_share") <= 0) or np.any(given("dp") < 2):
            raise SpecError(
                f"{where}: batching 'disaggregated' needs dp >= 2 replicas and 'prefill_share' in (0, 1) "
                "(the share of them that prefill)"
            )


def check_physics(
    config: Config, values: Mapping[str, Any], where: str, uneven_heads: bool = False, labels: Labels | None = None
) -> None:
    """Refuse knob values the physics cannot have, naming ``where`` and the knob.

    ``values`` maps knob names (SI fields or spec keys) to a number or an array of them.
    Counts (every key of kind ``int``: tp, pp, batch, tokens, chip counts, ADC bits …) are
    integers up to :data:`MAX_COUNT`; every value is finite; tp up to the head count splits
    the attention heads (and divides the KV heads or replicates them); pp is at most the
    number of layers. The engine itself takes any positive reals (a continuous relaxation,
    for gradients); this is the check of what users give. ``uneven_heads`` admits a tp that
    splits the heads unevenly (the engine charges the mean heads per chip), for studies that
    publish such splits.
    """
    table = knob_keys(config)
    model = config.model
    for name, value in values.items():
        knob = table.get(name)
        if knob is None:
            continue
        arr = np.atleast_1d(np.asarray(value, dtype=float))
        label = f"{where}: {_label(name, labels)}"

        def shown(x: float, name: str = name) -> str:
            return _shown(name, x, labels)

        if not np.all(np.isfinite(arr)):
            raise SpecError(f"{label} is not finite: expected numbers")
        zero_ok = knob.key.kind in ("fraction", "nonnegative")  # shares and offsets may be 0
        if np.any(arr < 0) or (not zero_ok and np.any(arr == 0)):
            bad = arr[(arr < 0) | (arr == 0)][0]
            raise SpecError(
                f"{label} = {shown(bad)}: expected a number {'>= 0' if zero_ok else '> 0'} ({knob.key.doc})"
            )
        if knob.key.kind == "int" and np.any((arr != np.round(arr)) | (arr > MAX_COUNT)):
            bad = arr[(arr != np.round(arr)) | (arr > MAX_COUNT)][0]
            what = knob.key.doc or "a count"
            raise SpecError(f"{label} = {shown(bad)}: expected an integer from 1 to {MAX_COUNT:,} ({what})")
        if knob.field == "tp" and hasattr(model, "n_heads") and not uneven_heads:
            _check_tp(model, arr, label)
        lo, hi = PHYSICAL_RANGE.get(knob.field, (-np.inf, np.inf))
        if np.any(arr < lo) or np.any(arr > hi):
            bad = arr[(arr < lo) | (arr > hi)][0]
            raise SpecError(f"{label} = {shown(bad)}: expected {shown(lo)} to {shown(hi)} ({knob.key.doc})")
        _check_against_config(config, knob, arr, label)


def _check_tp(model: Any, arr: np.ndarray, label: str) -> None:  # a model with attention heads
    heads, kv = float(model.n_heads), float(model.n_kv_heads)
    # tp beyond the heads is left to the engine: it flags such designs infeasible.
    for tp in np.unique(arr[arr <= heads]):
        if not splits_heads(model, tp):
            raise SpecError(
                f"{label} = {tp:g}: expected a divisor of the model's {heads:g} attention heads that "
                f"divides (or is a multiple of) its {kv:g} KV heads"
            )


def _check_against_config(config: Config, knob: Knob, arr: np.ndarray, label: str) -> None:
    """The limits a knob's value has in this configuration: TDP above the idle power, ep
    dividing the experts, overlap a share, pp at most the layers."""
    model = config.model
    if knob.field == "tdp_w" and hasattr(config.chip, "idle_w"):
        idle = float(config.chip.idle_w)
        if np.any(arr <= idle):
            raise SpecError(f"{label} = {arr.min():g}: expected more than the chip's idle power of {idle:.4g} W")
    if knob.field == "ep" and hasattr(model, "n_experts"):
        experts = float(model.n_experts) if getattr(model, "moe", False) else 1.0
        for ep in np.unique(arr):
            if experts % ep:
                what = (
                    f"a divisor of the model's {experts:g} experts"
                    if experts > 1
                    else "1 (a dense model has no experts)"
                )
                raise SpecError(f"{label} = {ep:g}: expected {what}")
    if knob.field == "overlap" and np.any((arr < 0) | (arr > 1)):
        raise SpecError(f"{label} = {arr[(arr < 0) | (arr > 1)][0]:g}: expected a share from 0 to 1 ({knob.key.doc})")
    if knob.field == "pp" and hasattr(model, "n_layers") and np.any(arr > float(model.n_layers)):
        raise SpecError(
            f"{label} = {arr.max():g}: expected at most the model's {float(model.n_layers):g} layers (one per stage)"
        )


def check_batch_split(batch: Any, dp: Any, where: str, labels: Labels | None = None) -> None:
    """Refuse a platform batch that its data-parallel replicas cannot split evenly (every
    pair of the given values: the combinations of a grid)."""
    batches = sorted({float(x) for x in np.atleast_1d(np.asarray(batch, dtype=float))})
    for d in sorted({float(x) for x in np.atleast_1d(np.asarray(dp, dtype=float))}):
        for b in batches:
            if d > 0 and b % d:
                raise SpecError(
                    f"{where}: {_label('dp', labels)} = {d:g}: expected a divisor of the batch {b:g} (the whole "
                    "platform's batch, split evenly over the dp replicas)"
                )


def splits_heads(model: Any, tp: float) -> bool:  # a model with attention heads
    """Whether ``tp`` splits the attention heads evenly and divides (or replicates) the KV heads."""
    heads, kv = float(model.n_heads), float(model.n_kv_heads)
    return heads % tp == 0 and (kv % tp == 0 or tp % kv == 0)


def check_context(model: ModelEntry, prompt_tokens: Any, output_tokens: Any, where: str) -> None:
    """Warn (one line) when a request is longer than the model's maximum context."""
    limit = model.raw.get("max_context_tokens")
    if limit is None:
        return
    longest = float(np.max(np.asarray(prompt_tokens, dtype=float)) + np.max(np.asarray(output_tokens, dtype=float)))
    if longest > float(limit):
        warnings.warn(
            f"{where}: {longest:,.0f} tokens exceed {model.id}'s maximum context of {float(limit):,.0f}: "
            "the results are an extrapolation of the model",
            ContextWarning,
            stacklevel=3,
        )


class ContextWarning(UserWarning):
    """A request longer than the model's maximum context (the model is extrapolated)."""


def _leaf(x: float) -> np.ndarray:
    return np.asarray(float(x), dtype=np.float64)


def check_dtype(where: str, dtype: str) -> str:
    if dtype not in DTYPES:
        raise SpecError(f"{where}: unknown dtype '{dtype}': expected one of {', '.join(DTYPES)}")
    return dtype


def make_config(
    model: ModelEntry,
    hardware: HardwareEntry,
    *,
    tp: float = 1,
    pp: float = 1,
    ep: float = 1,
    sp: float = 1,
    dp: float = 1,
    batch: float = 1,
    prompt_tokens: float = 2048,
    output_tokens: float = 256,
    weight_dtype: str = DEFAULT_DTYPE,
    act_dtype: str = DEFAULT_DTYPE,
    kv_dtype: str = DEFAULT_DTYPE,
    economics: EconomicsSpec | None = None,
    uneven_heads: bool = False,
    platform: PlatformEntry | None = None,
    batching: str = "static",
    labels: Labels | None = None,
) -> Config:
    """The base configuration of one model on one hardware (scalar leaves), on the network
    of ``platform`` (a platform file) or else of the chip's own system (its hardware file)."""
    for key, dt in (("weight_dtype", weight_dtype), ("act_dtype", act_dtype), ("kv_dtype", kv_dtype)):
        check_dtype(key, dt)
    if batching not in BATCHING:
        raise SpecError(f"batching: unknown mode '{batching}': expected one of {', '.join(BATCHING)}")
    network = network_of(hardware, platform)
    leaves: dict[str, Any] = {k: _leaf(v) for k, v in network.items() if k in _PLATFORM_LEAVES}
    static: dict[str, Any] = {k: v for k, v in network.items() if k.endswith("_topology")}
    chip = hardware.spec
    if platform is not None and platform.chip_links:
        links: dict[str, Any] = {k: _leaf(v) for k, v in platform.chip_links.items()}
        chip = dataclasses.replace(chip, **links)
    where = f"{model.id} on {platform.id if platform is not None else hardware.id}"
    check_placement(where, network, float(np.max(tp)) * float(np.max(pp)) * float(np.max(ep)) * float(np.max(sp)))
    config = Config(
        model=model.spec,
        chip=chip,
        platform=PlatformSpec(_leaf(tp), _leaf(pp), _leaf(ep), _leaf(sp), _leaf(dp), **leaves, **static),
        scenario=Scenario(
            _leaf(batch),
            _leaf(prompt_tokens),
            _leaf(output_tokens),
            weight_dtype,
            act_dtype,
            kv_dtype,
            batching=batching,
        ),
        economics=economics or default_economics(),
    )
    counts = {"tp": tp, "pp": pp, "ep": ep, "sp": sp, "dp": dp, "batch": batch}
    counts |= {"prompt_tokens": prompt_tokens, "output_tokens": output_tokens}
    # The base's counts, each alone (how they combine with the axes, and serving knobs that go
    # together, are checked with the rest of the knobs by :func:`check_values`).
    check_physics(config, counts, where, uneven_heads, labels)
    check_context(model, prompt_tokens, output_tokens, model.id)
    return config
