"""A configuration: the static structure plus the default value of every leaf (knob).

A knob is any continuous leaf of the model, chip, platform, scenario or economics, named by
its SI field (``hbm_bandwidth_bytes_per_s``) or its spec-file key (``hbm_bandwidth_tb_s``);
:func:`knob_keys` is the one table that maps both to the owning component and the factor
from file units to SI (derived from the dataclasses' ``spec_field`` metadata).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from dse.specs import HardwareEntry, KeyInfo, ModelEntry, SpecError, keys_of, suggest
from models import DTYPES, Chip, EconomicsSpec, Scenario, Workload, default_economics
from models.platform import PlatformSpec

COMPONENTS = ("model", "chip", "platform", "scenario", "economics")


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
            knob = Knob(comp, info.field, info)
            out.setdefault(info.field, knob)
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


def with_knobs(config: Config, knobs: Mapping[str, Any]) -> Config:
    """``config`` with the SI knobs ``knobs`` replaced (values of any array type)."""
    owner = knob_owner(config)
    parts: dict[str, dict[str, Any]] = {c: {} for c in COMPONENTS}
    for name, value in knobs.items():
        parts[owner[name]][name] = value
    return Config(
        **{
            c: dataclasses.replace(getattr(config, c), **parts[c]) if parts[c] else getattr(config, c)
            for c in COMPONENTS
        }
    )


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
    batch: float = 1,
    prompt_tokens: float = 2048,
    output_tokens: float = 256,
    weight_dtype: str = "bf16",
    act_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    economics: EconomicsSpec | None = None,
) -> Config:
    """The base configuration of one model on one hardware (scalar leaves)."""
    for key, dt in (("weight_dtype", weight_dtype), ("act_dtype", act_dtype), ("kv_dtype", kv_dtype)):
        check_dtype(key, dt)
    return Config(
        model=model.spec,
        chip=hardware.spec,
        platform=PlatformSpec(_leaf(tp), _leaf(pp)),
        scenario=Scenario(_leaf(batch), _leaf(prompt_tokens), _leaf(output_tokens), weight_dtype, act_dtype, kv_dtype),
        economics=economics or default_economics(),
    )
