"""Spec files → validated, SI-unit PyTrees. Every user error is a one-line :class:`SpecError`.

Hardware and model specs are YAML files in ``models/catalog/``; keys carry their units
(``hbm_bandwidth_tb_s``) and are converted to SI here, once. A model may also be any
Hugging Face ``config.json`` (parsed offline).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import yaml

from dse import units
from models.hardware import SimtSpec
from models.workloads import TransformerSpec

CATALOG = Path(__file__).resolve().parent.parent / "models" / "catalog"
HARDWARE_DIR = CATALOG / "hardware"
MODEL_DIR = CATALOG / "models"


class SpecError(ValueError):
    """A user error in a spec or an argument: one line naming the file, the key, what is expected."""


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclasses.dataclass(frozen=True)
class Key:
    """A spec key: SI field it fills, unit factor, whether required, accepted kind."""

    field: str | None
    factor: float = 1.0
    required: bool = True
    kind: str = "positive"  # positive | nonnegative | int | str | bool | choice
    choices: tuple[str, ...] = ()
    expected: str = ""


_POS = "a number > 0"

SIMT_KEYS: dict[str, Key] = {
    "name": Key(None, kind="str", expected="a display name"),
    "family": Key(None, kind="choice", choices=("simt",), expected="the hardware family"),
    "peak_bf16_tflops": Key("peak_bf16_flops_per_s", units.TERA, expected="dense BF16 TFLOP/s > 0"),
    "peak_fp8_tflops": Key("peak_fp8_flops_per_s", units.TERA, False, expected="dense FP8 TFLOP/s > 0"),
    "peak_int8_tops": Key("peak_int8_ops_per_s", units.TERA, False, expected="dense INT8 TOP/s > 0"),
    "peak_fp4_tflops": Key("peak_fp4_flops_per_s", units.TERA, False, expected="dense FP4 TFLOP/s > 0"),
    "peak_vector_tflops": Key("peak_vector_flops_per_s", units.TERA, False, expected="non-tensor TFLOP/s > 0"),
    "hbm_bandwidth_tb_s": Key("hbm_bandwidth_bytes_per_s", units.TERA, expected="TB/s (decimal) > 0"),
    "hbm_capacity_gb": Key("hbm_capacity_bytes", units.GIGA, expected="GB (decimal) > 0"),
    "sram_mb": Key("sram_capacity_bytes", units.MEGA, False, expected="MB (decimal) > 0"),
    "tdp_w": Key("tdp_w", expected="watts > 0"),
    "idle_w": Key("idle_w", expected="watts > 0"),
    "price_usd": Key("price_usd", expected="US dollars > 0"),
    "link_bandwidth_gb_s": Key("link_bandwidth_bytes_per_s", units.GIGA, expected="GB/s per direction > 0"),
    "link_latency_us": Key("link_latency_s", units.MICRO, expected="microseconds > 0"),
    "power_w_per_tflops": Key("energy_per_flop_j", 1.0 / units.TERA, False, expected="W per TFLOP/s > 0"),
    "power_w_per_tb_s": Key("energy_per_byte_j", 1.0 / units.TERA, False, expected="W per TB/s > 0"),
    "sm_count": Key("sm_count", required=False, kind="int", expected="an integer > 0"),
    "die_area_mm2": Key("die_area_mm2", required=False, expected="mm² > 0"),
    "interconnect": Key(None, required=False, kind="str", expected="a name"),
    "scale_up_domain": Key(None, required=False, kind="int", expected="chips per scale-up domain, integer > 0"),
    "vendor": Key(None, required=False, kind="str", expected="a name"),
    "release_year": Key(None, required=False, kind="int", expected="a year"),
}

# Keys every non-GPU family shares.
_COMMON_KEYS: dict[str, Key] = {
    k: SIMT_KEYS[k] for k in ("name", "tdp_w", "idle_w", "price_usd", "link_bandwidth_gb_s", "link_latency_us",
                              "power_w_per_tflops", "power_w_per_tb_s", "die_area_mm2", "interconnect",
                              "scale_up_domain", "vendor", "release_year")
}


def _family_keys(family: str, keys: dict[str, Key]) -> dict[str, Key]:
    fam = {"family": Key(None, kind="choice", choices=(family,), expected="the hardware family")}
    return {**_COMMON_KEYS, **fam, **keys}


_INT = dict(kind="int", expected="an integer > 0")
SYSTOLIC_KEYS = _family_keys("systolic", {
    "array_size": Key("array_size", **_INT),
    "n_arrays": Key("n_arrays", **_INT),
    "clock_ghz": Key("clock_hz", units.GIGA, expected="GHz > 0"),
    "int8_speedup": Key("int8_speedup", required=False, expected="8-bit rate / 16-bit rate > 0"),
    "sram_mb": Key("sram_capacity_bytes", units.MEGA, expected="MB (decimal) > 0"),
    "hbm_bandwidth_tb_s": SIMT_KEYS["hbm_bandwidth_tb_s"],
    "hbm_capacity_gb": SIMT_KEYS["hbm_capacity_gb"],
    "peak_vector_tflops": SIMT_KEYS["peak_vector_tflops"],
})
IMC_KEYS = _family_keys("imc", {
    "n_tiles": Key("n_tiles", **_INT),
    "adcs_per_tile": Key("adcs_per_tile", **_INT),
    "adc_freq_ghz": Key("adc_freq_hz", units.GIGA, expected="GHz > 0"),
    "array_rows": Key("array_rows", **_INT),
    "adc_bits": Key("adc_bits", **_INT),
    "dac_bits": Key("dac_bits", **_INT),
    "weight_bits": Key("weight_bits", **_INT),
    "input_bits": Key("input_bits", **_INT),
    "imc_capacity_mb": Key("imc_capacity_bytes", units.MEGA, expected="MB (decimal) > 0"),
    "digital_tflops": Key("digital_flops_per_s", units.TERA, expected="TFLOP/s > 0"),
    "memory_bandwidth_tb_s": Key("memory_bandwidth_bytes_per_s", units.TERA, expected="TB/s > 0"),
    "memory_capacity_gb": Key("memory_capacity_bytes", units.GIGA, expected="GB > 0"),
    "sram_bandwidth_tb_s": Key("sram_bandwidth_bytes_per_s", units.TERA, False, expected="TB/s > 0"),
    "walden_fom_fj": Key("walden_fom_j", 1e-15, False, expected="fJ per conversion-step > 0"),
    "analog_energy_fj_per_op": Key("analog_energy_per_op_j", 1e-15, False, expected="fJ > 0"),
    "digital_energy_fj_per_op": Key("digital_energy_per_op_j", 1e-15, False, expected="fJ > 0"),
})
DATAFLOW_KEYS = _family_keys("dataflow", {
    "peak_bf16_tflops": SIMT_KEYS["peak_bf16_tflops"],
    "sram_capacity_gb": Key("sram_capacity_bytes", units.GIGA, expected="GB > 0"),
    "sram_bandwidth_pb_s": Key("sram_bandwidth_bytes_per_s", units.PETA, expected="PB/s > 0"),
    "external_bandwidth_tb_s": Key("external_bandwidth_bytes_per_s", units.TERA, expected="TB/s > 0"),
    "external_capacity_tb": Key("external_capacity_bytes", units.TERA, expected="TB > 0"),
})
SRAM_CHIPLET_KEYS = _family_keys("sram_chiplet", {
    "peak_bf16_tflops": SIMT_KEYS["peak_bf16_tflops"],
    "peak_int8_tops": SIMT_KEYS["peak_int8_tops"],
    "sram_mb": Key("sram_capacity_bytes", units.MEGA, expected="MB (decimal) > 0"),
    "sram_bandwidth_tb_s": Key("sram_bandwidth_bytes_per_s", units.TERA, expected="TB/s > 0"),
})
CGRA_KEYS = _family_keys("cgra", {
    "peak_bf16_tflops": SIMT_KEYS["peak_bf16_tflops"],
    "sram_mb": Key("sram_capacity_bytes", units.MEGA, expected="MB (decimal) > 0"),
    "hbm_bandwidth_tb_s": SIMT_KEYS["hbm_bandwidth_tb_s"],
    "hbm_capacity_gb": SIMT_KEYS["hbm_capacity_gb"],
    "ddr_bandwidth_tb_s": Key("ddr_bandwidth_bytes_per_s", units.TERA, expected="TB/s > 0"),
    "ddr_capacity_gb": Key("ddr_capacity_bytes", units.GIGA, expected="GB > 0"),
    "reconfig_time_us": Key("reconfig_time_s", units.MICRO, expected="microseconds > 0"),
    "config_groups_per_layer": Key("config_groups_per_layer", expected="configurations per layer > 0"),
    "fusion_fraction": Key("fusion_fraction", kind="nonnegative", expected="a fraction in [0, 1)"),
})

# Spec-key tables by family.
HARDWARE_SCHEMAS: dict[str, dict[str, Key]] = {
    "simt": SIMT_KEYS, "systolic": SYSTOLIC_KEYS, "imc": IMC_KEYS, "dataflow": DATAFLOW_KEYS,
    "sram_chiplet": SRAM_CHIPLET_KEYS, "cgra": CGRA_KEYS,
}

# Reference for deriving power coefficients of chips whose datasheet gives none: the seed's
# A100 model (seeds/000, SIMT power: 60 W idle, 0.2 mW per GFLOP/s, 50 mW per GB/s) at the
# A100 SXM4's 312 TFLOP/s, 2.039 TB/s and 400 W TDP. Estimate: a chip's full-load dynamic
# power is assumed to split between compute and memory in the A100's ratio and to scale with
# its TDP − idle budget.
_A100_REF = {"alpha": 0.2e-12, "beta": 50e-12, "peak": 312e12, "bw": 2.039e12, "budget": 400.0 - 60.0}

MODEL_KEYS: dict[str, Key] = {
    "name": Key(None, kind="str", expected="a display name"),
    "n_layers": Key("n_layers", kind="int", expected="an integer > 0"),
    "d_model": Key("d_model", kind="int", expected="an integer > 0"),
    "n_heads": Key("n_heads", kind="int", expected="an integer > 0"),
    "n_kv_heads": Key("n_kv_heads", kind="int", expected="an integer > 0 dividing n_heads"),
    "head_dim": Key("head_dim", required=False, kind="int", expected="an integer > 0"),
    "d_ff": Key("d_ff", kind="int", expected="an integer > 0 (per expert for MoE)"),
    "vocab_size": Key("vocab_size", kind="int", expected="an integer > 0"),
    "ffn": Key(None, kind="choice", choices=("gated", "plain"), expected="the FFN form"),
    "n_experts": Key("n_experts", required=False, kind="int", expected="an integer > 0"),
    "top_k": Key("top_k", required=False, kind="int", expected="an integer > 0, ≤ n_experts"),
    "tied_embeddings": Key(None, required=False, kind="bool", expected="true or false"),
    "max_context_tokens": Key(None, required=False, kind="int", expected="an integer > 0"),
    "hf_id": Key(None, required=False, kind="str", expected="a Hugging Face repo id"),
    "total_params_b": Key(None, required=False, expected="billions > 0"),
    "source": Key(None, required=False, kind="str", expected="a citation"),
}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read file ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", getattr(e, "lineno", None))
        where = f" (line {line + 1})" if isinstance(line, int) else ""
        raise SpecError(f"{path}: not valid {'YAML' if path.suffix != '.json' else 'JSON'}{where}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def _check(path: Path, data: dict[str, Any], schema: dict[str, Key]) -> dict[str, Any]:
    """Validate ``data`` against ``schema``; returns the values (not yet converted)."""
    for key in data:
        if key not in schema:
            raise SpecError(f"{path}: unknown key '{key}'{_suggest(str(key), list(schema))}")
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if key not in data or data[key] is None:
            if spec.required:
                raise SpecError(f"{path}: missing key '{key}': expected {spec.expected}")
            continue
        v = data[key]
        bad = f"{path}: key '{key}' = {v!r}: expected {spec.expected}"
        if spec.kind in ("str", "choice"):
            if not isinstance(v, str) or (spec.kind == "choice" and v not in spec.choices):
                if spec.kind == "choice":
                    bad = f"{bad}, one of {', '.join(spec.choices)}"
                raise SpecError(bad)
        elif spec.kind == "bool":
            if not isinstance(v, bool):
                raise SpecError(bad)
        else:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SpecError(bad)
            if spec.kind == "int" and v != int(v):
                raise SpecError(bad)
            if v < 0 or (v == 0 and spec.kind != "nonnegative") or (spec.kind == "nonnegative" and v >= 1):
                raise SpecError(bad)
        out[key] = v
    return out


def _as_leaf(x: float) -> Any:
    return jnp.asarray(float(x))


@dataclasses.dataclass(frozen=True)
class HardwareEntry:
    """A loaded hardware spec: id, display name, source file, SI PyTree and the raw values."""

    id: str
    name: str
    path: Path
    spec: SimtSpec
    raw: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    path: Path
    spec: TransformerSpec
    raw: dict[str, Any]


def _resolve(ref: str | Path, folder: Path, what: str, exts: tuple[str, ...]) -> Path:
    p = Path(ref)
    if p.suffix in exts or p.exists() or "/" in str(ref):
        if not p.exists():
            raise SpecError(f"{p}: cannot read file (no such file)")
        return p
    cand = folder / f"{ref}.yaml"
    if not cand.exists():
        known = ids(folder)
        raise SpecError(f"models/catalog/{folder.name}: unknown {what} '{ref}'{_suggest(str(ref), known)} (known: {', '.join(known)})")
    return cand


def ids(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def hardware_ids() -> list[str]:
    return ids(HARDWARE_DIR)


def model_ids() -> list[str]:
    return ids(MODEL_DIR)


def load_hardware(ref: str | Path, calibrated: bool = True) -> HardwareEntry:
    """Load a hardware spec by catalog id or YAML path.

    With ``calibrated`` (the default) chip parameters fitted to measurements (power model)
    in ``calibration/fitted/<id>.yaml`` replace the datasheet-derived ones.
    """
    path = _resolve(ref, HARDWARE_DIR, "hardware", (".yaml", ".yml"))
    data = _read_yaml(path)
    family = data.get("family", "simt")
    loaders: dict[str, Callable[[Path, dict[str, Any]], Any]] = {"simt": _simt_from, **_ASIC_LOADERS}
    if family not in loaders:
        raise SpecError(f"{path}: key 'family' = {family!r}: expected one of {', '.join(loaders)}")
    spec = loaders[family](path, data)
    if calibrated:
        from calibration import fitted_chip

        overrides = fitted_chip(path.stem)
        if overrides:
            spec = dataclasses.replace(spec, **{k: _as_leaf(v) for k, v in overrides.items()})
    return HardwareEntry(path.stem, str(data["name"]), path, spec, data)


def spec_key_to_knob(family: str, key: str) -> tuple[str, float]:
    """A hardware spec key in file units (``hbm_bandwidth_tb_s``) → (SI knob name, factor).

    Scenario and platform knobs (``batch``, ``prompt_tokens``, ``output_tokens``, ``tp``,
    ``pp``) map to themselves with factor 1.
    """
    if key in ("batch", "prompt_tokens", "output_tokens", "tp", "pp"):
        return key, 1.0
    table = HARDWARE_SCHEMAS.get(family)
    if table is None:
        raise SpecError(f"family: unknown family '{family}': expected one of {', '.join(HARDWARE_SCHEMAS)}")
    spec = table.get(key)
    if spec is None or spec.field is None:
        known = [k for k, v in table.items() if v.field]
        raise SpecError(f"axes: unknown key '{key}' for family {family}{_suggest(key, known)}")
    return spec.field, spec.factor


def _simt_from(path: Path, data: dict[str, Any]) -> SimtSpec:
    v = _check(path, data, SIMT_KEYS)
    si = {SIMT_KEYS[k].field: x * SIMT_KEYS[k].factor for k, x in v.items() if SIMT_KEYS[k].field}
    if si["idle_w"] >= si["tdp_w"]:
        raise SpecError(f"{path}: key 'idle_w' = {v['idle_w']}: expected less than tdp_w = {v['tdp_w']}")
    bf16 = si["peak_bf16_flops_per_s"]
    # Missing low-precision rates run at the next wider supported rate.
    si.setdefault("peak_fp8_flops_per_s", bf16)
    si.setdefault("peak_int8_ops_per_s", si["peak_fp8_flops_per_s"])
    si.setdefault("peak_fp4_flops_per_s", si["peak_fp8_flops_per_s"])
    # Non-tensor rate: A100 BF16 vector 39 TFLOP/s = 1/8 of its tensor rate (A100 datasheet);
    # the same ratio is assumed where a datasheet gives none (estimate).
    si.setdefault("peak_vector_flops_per_s", bf16 / 8.0)
    si.setdefault("sram_capacity_bytes", 0.0)
    si.setdefault("sm_count", 0.0)
    si.setdefault("die_area_mm2", 0.0)
    _power_coefficients(si, bf16, si["hbm_bandwidth_bytes_per_s"])
    return SimtSpec(**{k: _as_leaf(x) for k, x in si.items()})


def load_model(ref: str | Path) -> ModelEntry:
    """Load a model by catalog id, catalog-style YAML path, or Hugging Face config.json path."""
    path = _resolve(ref, MODEL_DIR, "model", (".yaml", ".yml", ".json"))
    data = _read_yaml(path)
    if path.suffix == ".json":
        data = _from_hf_config(path, data)
    v = _check(path, data, MODEL_KEYS)
    head_dim = v.get("head_dim", v["d_model"] / v["n_heads"])
    if v["n_heads"] % v["n_kv_heads"]:
        raise SpecError(f"{path}: key 'n_kv_heads' = {v['n_kv_heads']}: expected a divisor of n_heads = {v['n_heads']}")
    n_experts, top_k = v.get("n_experts", 1), v.get("top_k", 1)
    if top_k > n_experts:
        raise SpecError(f"{path}: key 'top_k' = {top_k}: expected at most n_experts = {n_experts}")
    leaves = dict(
        n_layers=v["n_layers"], d_model=v["d_model"], n_heads=v["n_heads"], n_kv_heads=v["n_kv_heads"],
        head_dim=head_dim, d_ff=v["d_ff"], vocab_size=v["vocab_size"], n_experts=n_experts, top_k=top_k,
    )
    spec = TransformerSpec(
        **{k: _as_leaf(x) for k, x in leaves.items()},
        gated_ffn=v["ffn"] == "gated",
        moe=n_experts > 1,
        tied_embeddings=bool(v.get("tied_embeddings", False)),
    )
    return ModelEntry(path.stem if path.suffix != ".json" else str(v["name"]), str(v["name"]), path, spec, v)


# Hugging Face model types whose MLP is two matrices with a plain activation.
_PLAIN_FFN_TYPES = {"gpt2", "gpt_neox", "gptj", "bloom", "opt", "phi", "falcon", "gpt_bigcode", "mpt", "starcoder2"}


def _from_hf_config(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Map a Hugging Face ``config.json`` onto the catalog's model keys."""

    def first(*names: str, default: Any = None, what: str) -> Any:
        for n in names:
            if cfg.get(n) is not None:
                return cfg[n]
        if default is None:
            raise SpecError(f"{path}: missing key '{names[0]}': expected {what}")
        return default

    d = first("hidden_size", "n_embd", "d_model", what="the model width (integer > 0)")
    heads = first("num_attention_heads", "n_head", "num_heads", what="the attention heads (integer > 0)")
    kv = first("num_key_value_heads", "n_head_kv", default=1 if cfg.get("multi_query") else heads,
               what="the KV heads")
    out = {
        "name": str(cfg.get("_name_or_path") or path.parent.name or path.stem),
        "n_layers": first("num_hidden_layers", "n_layer", "num_layers", what="the layer count (integer > 0)"),
        "d_model": d,
        "n_heads": heads,
        "n_kv_heads": kv,
        "d_ff": first("moe_intermediate_size", "intermediate_size", "n_inner", "ffn_dim",
                      default=4 * d if isinstance(d, int) else None, what="the FFN width"),
        "vocab_size": first("vocab_size", what="the vocabulary size (integer > 0)"),
        "ffn": "plain" if cfg.get("model_type") in _PLAIN_FFN_TYPES else "gated",
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", True)),
    }
    if cfg.get("head_dim"):
        out["head_dim"] = cfg["head_dim"]
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    if experts:
        out["n_experts"] = experts
        out["top_k"] = cfg.get("num_experts_per_tok", 2)
    return out


def _power_coefficients(si: dict[str, float], peak: float, bandwidth: float) -> None:
    """Fill α and β where the spec gives none: the A100's full-load split scaled by this
    chip's TDP − idle budget (estimate; see ``_A100_REF``)."""
    scale = (si["tdp_w"] - si["idle_w"]) / _A100_REF["budget"]
    si.setdefault("energy_per_flop_j", _A100_REF["alpha"] * _A100_REF["peak"] * scale / peak)
    si.setdefault("energy_per_byte_j", _A100_REF["beta"] * _A100_REF["bw"] * scale / bandwidth)


def _asic_from(family: str, cls: type, defaults: dict[str, float],
               peak_of: Callable[[dict[str, float]], float], bw_of: Callable[[dict[str, float]], float]):
    def load(path: Path, data: dict[str, Any]) -> Any:
        schema = HARDWARE_SCHEMAS[family]
        v = _check(path, data, schema)
        si = {schema[k].field: x * schema[k].factor for k, x in v.items() if schema[k].field}
        if si["idle_w"] >= si["tdp_w"]:
            raise SpecError(f"{path}: key 'idle_w' = {v['idle_w']}: expected less than tdp_w = {v['tdp_w']}")
        for k, x in defaults.items():
            si.setdefault(k, x(si) if callable(x) else x)
        _power_coefficients(si, peak_of(si), bw_of(si))
        return cls(**{k: _as_leaf(x) for k, x in si.items()})
    return load


def _systolic_peak(si: dict[str, float]) -> float:
    return si["n_arrays"] * si["array_size"] ** 2 * 2.0 * si["clock_hz"]


def _imc_peak(si: dict[str, float]) -> float:
    return si["n_tiles"] * si["adcs_per_tile"] * si["adc_freq_hz"] * 2.0 * si["array_rows"]


from models.hardware import CgraSpec, DataflowSpec, ImcSpec, SramChipletSpec, SystolicSpec  # noqa: E402

_ASIC_LOADERS: dict[str, Callable[[Path, dict[str, Any]], Any]] = {
    "systolic": _asic_from("systolic", SystolicSpec, {
        "int8_speedup": 1.0, "die_area_mm2": 0.0,
        # Vector units at 1/8 of the array rate where no figure is given (estimate, as GPUs).
        "peak_vector_flops_per_s": lambda si: _systolic_peak(si) / 8.0,
    }, _systolic_peak, lambda si: si["hbm_bandwidth_bytes_per_s"]),
    "imc": _asic_from("imc", ImcSpec, {
        "die_area_mm2": 0.0,
        # Murmann, ADC Performance Survey: high-speed SAR ADCs reach ≈ 5–50 fJ/conv-step
        # (Walden FoM); 20 fJ is a mid value (estimate).
        "walden_fom_j": 20e-15,
        # Analog MAC energy in SRAM compute arrays ≈ 1–10 fJ/op (Verma et al., IEEE SSC-M
        # 2019 survey of IMC macros); 2 fJ (estimate). Digital shift-add and accumulate per
        # pass ≈ 3 fJ/op (estimate, 7–5 nm adders).
        "analog_energy_per_op_j": 2e-15, "digital_energy_per_op_j": 3e-15,
        "sram_bandwidth_bytes_per_s": lambda si: 100.0 * si["memory_bandwidth_bytes_per_s"],
    }, _imc_peak, lambda si: si["memory_bandwidth_bytes_per_s"]),
    "dataflow": _asic_from("dataflow", DataflowSpec, {"die_area_mm2": 0.0},
                           lambda si: si["peak_bf16_flops_per_s"], lambda si: si["sram_bandwidth_bytes_per_s"]),
    "sram_chiplet": _asic_from("sram_chiplet", SramChipletSpec, {
        "die_area_mm2": 0.0, "peak_int8_ops_per_s": lambda si: si["peak_bf16_flops_per_s"],
    }, lambda si: si["peak_bf16_flops_per_s"], lambda si: si["sram_bandwidth_bytes_per_s"]),
    "cgra": _asic_from("cgra", CgraSpec, {"die_area_mm2": 0.0},
                       lambda si: si["peak_bf16_flops_per_s"], lambda si: si["hbm_bandwidth_bytes_per_s"]),
}
