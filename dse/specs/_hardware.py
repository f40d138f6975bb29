"""Hardware spec files → validated chips in SI units (one class per family, ``models.hardware``).

The keys of a family are those its chip class declares (``spec_field``) plus the descriptive
keys below; values are converted to SI once, here. With ``calibrated`` the chip parameters
fitted to measurements (``calibration/fitted/<id>.yaml``, section ``chip``) replace the
datasheet-derived ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from models import DTYPE_BITS, Chip, widest
from models.hardware import FAMILIES, RATE_FALLBACK, RATE_FIELDS, simt_rate_class
from models.platform import TOPOLOGIES
from models.silicon import (
    AREA_CLASS,
    HBM,
    MTR_PER_MAC,
    NODES,
    RETICLE_MM2,
    Floorplan,
    SiliconBase,
    floorplan_area,
    floorplan_tdp,
    silicon_cost_usd,
)

from ._errors import SpecError, suggest
from ._files import HARDWARE_DIR, ids, read_mapping, resolve
from ._fitted import FALLBACK, fitted_chip
from ._keys import KeyInfo, check, described, keys_of, to_si_values
from ._userfit import UserFit, user_fit

# Keys every hardware file may carry that fill no leaf.
DESCRIPTIVE_KEYS: dict[str, KeyInfo] = {
    "name": described("name", "str", "a display name", required=True),
    "interconnect": described("interconnect", "str", "a name"),
    "scale_up_domain": described("scale_up_domain", "int", "chips per scale-up domain, integer > 0"),
    "scale_up_topology": described("scale_up_topology", "choice", "the scale-up topology", choices=TOPOLOGIES),
    "scale_out_bandwidth_gb_s": described(
        "scale_out_bandwidth_gb_s", "positive", "scale-out GB/s per chip and direction > 0"
    ),
    "scale_out_latency_us": described("scale_out_latency_us", "positive", "scale-out latency per hop in us > 0"),
    "host_power_w": described(
        "host_power_w", "nonnegative", "W per chip of the chip's own system's hosts, switches and NICs, >= 0"
    ),
    "vendor": described("vendor", "str", "a name"),
    "release_year": described("release_year", "int", "a year"),
    # Silicon (models.silicon): what the chip is built from, for its modelled cost.
    "process_node": described("process_node", "choice", "the logic process node", choices=tuple(NODES)),
    "dies": described("dies", "int", "logic dies of die_area_mm2 each per package, integer > 0"),
    "hbm_generation": described("hbm_generation", "choice", "the HBM generation", choices=tuple(HBM)),
    "hbm_stacks": described("hbm_stacks", "int", "HBM stacks in the package, integer > 0"),
    "datapath_macs": described(
        "datapath_macs", "positive", "16-bit multiply-accumulate units of the datapath, spares included, > 0"
    ),
    "cores_on_die": described("cores_on_die", "int", "cores (SMs, CUs, tiles) of the silicon, integer > 0"),
    "dense_bf16_tflops": described(
        "dense_bf16_tflops", "positive", "the datapath's dense 16-bit rate where the quoted peak is not, TFLOP/s > 0"
    ),
}


def hardware_keys(family: str) -> dict[str, KeyInfo]:
    """Every key a hardware file of ``family`` accepts."""
    if family not in FAMILIES:
        raise SpecError(f"family: unknown family '{family}': expected one of {', '.join(FAMILIES)}")
    fam = described("family", "choice", "the hardware family", required=True, choices=(family,))
    return {**DESCRIPTIVE_KEYS, "family": fam, **keys_of(FAMILIES[family])}


# Defaults of optional leaves, per family (functions of the SI values given). Estimates, stated.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "simt": {
        # Missing low-precision rates run at the next wider supported rate (RATE_FALLBACK).
        **{RATE_FIELDS[cls]: (lambda si, wider=RATE_FIELDS[wider]: si[wider]) for cls, wider in RATE_FALLBACK.items()},
        # Non-tensor rate: A100 BF16 vector 39 TFLOP/s = 1/8 of its tensor rate (A100 datasheet);
        # the same ratio is assumed where a datasheet gives none (estimate).
        "peak_vector_flops_per_s": lambda si: si["peak_bf16_flops_per_s"] / 8.0,
        "sram_capacity_bytes": 0.0,
        "sm_count": 0.0,
        "clock_hz": 0.0,  # not stated: the rates do not scale with a clock knob
    },
    "systolic": {
        "int8_speedup": 1.0,
        # Vector units at 1/8 of the array rate where no figure is given (estimate, as GPUs).
        "peak_vector_flops_per_s": lambda si: si["n_arrays"] * si["array_size"] ** 2 * 2.0 * si["clock_hz"] / 8.0,
    },
    "imc": {
        # Murmann, ADC Performance Survey: high-speed SAR ADCs reach ≈ 5–50 fJ/conv-step
        # (Walden FoM); 20 fJ is a mid value (estimate).
        "walden_fom_j": 20e-15,
        # Analog MAC energy in SRAM compute arrays ≈ 1–10 fJ/op (Verma et al., IEEE SSC-M
        # 2019 survey of IMC macros); 2 fJ (estimate). Digital shift-add and accumulate per
        # pass ≈ 3 fJ/op (estimate, 7–5 nm adders).
        "analog_energy_per_op_j": 2e-15,
        "digital_energy_per_op_j": 3e-15,
        "sram_bandwidth_bytes_per_s": lambda si: 100.0 * si["memory_bandwidth_bytes_per_s"],
    },
    "dataflow": {},
    "sram_chiplet": {"peak_int8_ops_per_s": lambda si: si["peak_bf16_flops_per_s"]},
    "cgra": {},
}

# Power shares (see :func:`power_shares`) of chips whose datasheet gives no coefficients and
# that no fit covers: the seed's A100 model (docs/references.md#research-note, SIMT power: 60 W idle, 0.2 mW per
# GFLOP/s, 50 mW per GB/s) at the A100 SXM4's 312 TFLOP/s, 2.039 TB/s and 400 W TDP. Estimate:
# a chip's full-load dynamic power splits between compute and memory in the A100's ratio and
# scales with its TDP − idle budget.
_SEED_SHARES = {"compute": 0.2e-12 * 312e12 / (400.0 - 60.0), "memory": 50e-12 * 2.039e12 / (400.0 - 60.0)}


@dataclasses.dataclass(frozen=True)
class HardwareEntry:
    """A loaded hardware spec: id, display name, source file, SI chip and the raw values."""

    id: str
    name: str
    path: Path
    spec: Chip
    raw: dict[str, Any]
    calibrated: bool = True  # fitted chip parameters applied (when the chip has a fit)
    fit: UserFit | None = None  # a user's fit in effect for this chip (``--fit``)

    @property
    def family(self) -> str:
        return self.spec.family


def hardware_ids() -> list[str]:
    return ids(HARDWARE_DIR)


def _leaf(x: float) -> np.ndarray:
    return np.asarray(float(x), dtype=np.float64)


def chip_from(path: Path | str, data: dict[str, Any]) -> Chip:
    """Validate a hardware mapping and build its chip (datasheet values, SI units)."""
    family = data.get("family", "simt")
    if family not in FAMILIES:
        raise SpecError(f"{path}: key 'family' = {family!r}: expected one of {', '.join(FAMILIES)}")
    schema = hardware_keys(family)
    values = check(path, {"family": family, **data}, schema)
    si = to_si_values(values, schema)
    area = values.get("die_area_mm2")
    if area is not None and float(area) > RETICLE_MM2 and family != "dataflow":
        raise SpecError(
            f"{path}: key 'die_area_mm2' = {area}: expected at most the reticle's {RETICLE_MM2:g} mm^2 per die "
            "(a package of several dies states 'dies'; only a dataflow wafer-scale engine may exceed it)"
        )
    if si["idle_w"] >= si["tdp_w"]:
        raise SpecError(f"{path}: key 'idle_w' = {values['idle_w']}: expected less than tdp_w = {values['tdp_w']}")
    for k, default in _DEFAULTS[family].items():
        si.setdefault(k, default(si) if callable(default) else default)
    si.setdefault("die_area_mm2", 0.0)
    given = {k: si.pop(k) for k in ("energy_per_flop_j", "energy_per_byte_j") if k in si}
    chip = FAMILIES[family](
        **{k: _leaf(v) for k, v in si.items()}, energy_per_flop_j=_leaf(np.nan), energy_per_byte_j=_leaf(np.nan)
    )
    chip = dataclasses.replace(chip, **{k: _leaf(v) for k, v in _power_coefficients(chip, given).items()})
    # The design this file's TDP and silicon belong to: a variant's follow from here.
    if family == "simt":  # the SMs and clock the rates are quoted at (0: not stated)
        chip = dataclasses.replace(chip, sm_ref=float(chip.sm_count), clock_ref_hz=float(chip.clock_hz))  # type: ignore[call-arg]
    chip = dataclasses.replace(
        chip,
        tdp_ref_flops_per_s=float(chip.peak_flops_per_s("bf16")),
        tdp_ref_bytes_per_s=float(chip.memory_bandwidth_bytes_per_s),  # type: ignore[attr-defined]
    )
    return dataclasses.replace(chip, silicon=silicon_base(chip, data))


def floorplan_of(chip: Chip, data: dict[str, Any]) -> Floorplan | None:
    """The microarchitecture a hardware file states (models.silicon.Floorplan): its node, its
    datapath's MAC units (``datapath_macs``, or the family's knobs), SRAM, HBM stacks and links;
    None where the node or the MAC units are not stated."""
    node, macs = data.get("process_node"), data.get("datapath_macs") or chip.datapath_macs
    if node is None or macs is None:
        return None
    sram = float(getattr(chip, "sram_capacity_bytes", 0.0))
    parts = {k: float(v) for k, v in chip.floorplan_parts().items()}
    return Floorplan(
        node=node,
        area_class=AREA_CLASS[chip.family],
        macs=float(macs),
        sram_macro_bytes=sram / float(data.get("cores_on_die", 1)),
        hbm_stacks=float(data.get("hbm_stacks", 0)),
        **parts,
    )


def silicon_base(chip: Chip, data: dict[str, Any]) -> SiliconBase | None:
    """The silicon a hardware file describes: its published die area where there is one, else
    the floorplan model's from its microarchitecture (``floorplan_of``); None where neither
    (or, for a chip with HBM, its generation and stacks) is stated."""
    plan = floorplan_of(chip, data)
    area, node = data.get("die_area_mm2"), data.get("process_node")
    hbm_bytes = float(getattr(chip, "hbm_capacity_bytes", 0.0))
    generation, stacks = data.get("hbm_generation"), data.get("hbm_stacks")
    if node is None or (not area and plan is None) or (hbm_bytes > 0 and (generation is None or not stacks)):
        return None
    dies = float(data.get("dies", 1))
    if plan is None:  # a published die without its MAC count: the datapath is what the rest leaves
        parts = {k: float(v) for k, v in chip.floorplan_parts().items()}
        plan = Floorplan(
            node, AREA_CLASS[chip.family], 0.0, sram_macro_bytes=4e6, hbm_stacks=float(stacks or 0), **parts
        )
        datapath_mm2 = max(float(area) * dies - float(floorplan_area(plan).total_mm2), 0.1 * float(area) * dies)
        plan = plan._replace(macs=datapath_mm2 * NODES[node].logic_mtr_per_mm2 / MTR_PER_MAC[plan.area_class])
    source = "published" if area else "modelled"
    die_mm2 = float(area) if area else float(floorplan_area(plan).total_mm2) / dies
    wafer_scale = die_mm2 > RETICLE_MM2
    usd_per_gb = HBM[generation].usd_per_gb if generation else 0.0
    dram_bytes = float(chip.offchip_dram_bytes)
    cost = silicon_cost_usd(die_mm2, NODES[node], dies, hbm_bytes, usd_per_gb, wafer_scale, dram_bytes)
    silicon = float(cost.total_usd)
    dense, dram = power_inputs(chip, data)
    return SiliconBase(
        node=NODES[node],
        die_mm2=die_mm2,
        dies=dies,
        plan=plan,
        macs=float(chip.mac_units),
        # A stack of the base's kind runs at least at its generation's top pin rate in a variant
        # (a faster bin before another stack); the base itself is capacity-bound at that rate.
        stack_bytes_per_s=max(
            float(getattr(chip, "hbm_bandwidth_bytes_per_s", 0.0)) / float(stacks or 1),
            HBM[generation].bandwidth_bytes_per_s if generation else 0.0,
        ),
        stack_bytes=hbm_bytes / float(stacks or 1),
        usd_per_gb=usd_per_gb,
        wafer_scale=wafer_scale,
        silicon_usd=silicon,
        margin=(float(chip.price_usd) - float(cost.dram_usd)) / (silicon - float(cost.dram_usd)),
        dram_usd=float(cost.dram_usd),
        area_source=source,
        density_w_mm2=float(chip.tdp_w) / (die_mm2 * dies),
        dense_flops_per_s=dense,
        datapath_flops_per_s=float(chip.datapath_flops_per_s),
        tdp_model_w=float(floorplan_tdp(plan, dense, dram, die_mm2 * dies, float(chip.converter_power_w)).tdp_w),
    )


def _power_coefficients(chip: Chip, given: dict[str, float]) -> dict[str, float]:
    """α and β where the spec gives none: the seed A100's shares of the TDP − idle budget
    (estimate; see ``_SEED_SHARES``)."""
    return {**_from_shares(chip, _SEED_SHARES), **given}


def _from_shares(chip: Chip, shares: dict[str, float]) -> dict[str, float]:
    """α and β of ``chip`` from shares of its dynamic budget (the inverse of :func:`power_shares`)."""
    budget = float(chip.tdp_w) - float(chip.idle_w)
    return {
        "energy_per_flop_j": shares["compute"] * budget / float(chip.peak_bf16_flops_per_s),
        "energy_per_byte_j": shares["memory"] * budget / float(chip.memory_bandwidth_bytes_per_s),
    }


def load_hardware(ref: str | Path, calibrated: bool = True) -> HardwareEntry:
    """Load a hardware spec by catalog id or YAML path.

    With ``calibrated`` (the default) chip parameters fitted to measurements (power model)
    in ``calibration/fitted/<id>.yaml`` replace the datasheet-derived ones.
    """
    path = resolve(ref, HARDWARE_DIR, "hardware", (".yaml", ".yml"))
    data = read_mapping(path)
    spec = chip_from(path, data)
    fit = user_fit(path.stem, data) if calibrated else None
    if calibrated:
        overrides = fitted_chip(path.stem) or (transferred_power(spec) if spec.family == "simt" else {})
        if fit is not None:
            fields = {f.name for f in dataclasses.fields(spec)}
            unknown = sorted(set(fit.chip) - fields)
            if unknown:
                raise SpecError(
                    f"{fit.path}: chip: unknown key(s) {', '.join(unknown)}: expected {spec.family} chip fields"
                )
            overrides = {**overrides, **fit.chip}
        if overrides:
            spec = dataclasses.replace(spec, **{k: _leaf(v) for k, v in overrides.items()})
    return HardwareEntry(path.stem, str(data["name"]), path, spec, data, calibrated, fit)


def power_shares(chip: Chip) -> dict[str, float]:
    """A GPU's power model as properties of any chip: the shares of its dynamic budget
    (TDP − idle) drawn at full compute (``compute``, per unit of FLOPs at the peak BF16 rate)
    and at full memory bandwidth (``memory``)."""
    budget = float(chip.tdp_w) - float(chip.idle_w)
    return {
        "compute": float(chip.energy_per_flop_j) * float(chip.peak_bf16_flops_per_s) / budget,
        "memory": float(chip.energy_per_byte_j) * float(chip.memory_bandwidth_bytes_per_s) / budget,
    }


def transferred_power(chip: Chip) -> dict[str, float]:
    """α and β of a GPU without power measurements of its own: the fitted A100's shares of the
    dynamic budget (:func:`power_shares`) applied to this chip's TDP, idle power, peak and
    bandwidth from its datasheet ({} when no fit has a power model)."""
    for source in FALLBACK:
        fitted = fitted_chip(source)
        if fitted:
            ref = load_hardware(source, calibrated=False).spec
            return _from_shares(
                chip, power_shares(dataclasses.replace(ref, **{k: _leaf(v) for k, v in fitted.items()}))
            )
    return {}


# The datasheet key of each tensor-core rate class of a GPU-class chip.
_SIMT_KEY_OF_FIELD = {info.field: key for key, info in keys_of(FAMILIES["simt"]).items()}
_RATE_KEYS = {cls: _SIMT_KEY_OF_FIELD[field] for cls, field in RATE_FIELDS.items()}


def gemm_precision(hardware: HardwareEntry, weight_dtype: str, act_dtype: str) -> str:
    """What rate a chip's GEMMs run at for these dtypes, and whether that is a fallback: a
    GEMM computes in the wider of its operands' dtypes, at the chip's rate for that class, or
    at the next wider class its datasheet has (the result says so)."""
    dtype = widest(weight_dtype, act_dtype)
    family, raw = hardware.family, hardware.raw
    if family == "simt":
        want = simt_rate_class(dtype)
        used = want
        while used in RATE_FALLBACK and _RATE_KEYS[used] not in raw:
            used = RATE_FALLBACK[used]
        if used == want:
            return f"{dtype} GEMMs at the {want.upper()} rate"
        return f"{dtype} GEMMs at the {used.upper()} rate (no {want.upper()} rate in the datasheet: fallback)"
    if family == "systolic" and DTYPE_BITS[dtype] <= 8:
        if "int8_speedup" in raw:
            return f"{dtype} GEMMs at the 8-bit rate"
        return f"{dtype} GEMMs at the 16-bit rate (no 8-bit rate in the datasheet: fallback)"
    if family == "sram_chiplet" and DTYPE_BITS[dtype] <= 8:
        return f"{dtype} GEMMs at the INT8 rate"
    if family in ("dataflow", "cgra") and DTYPE_BITS[dtype] < 16:
        return f"{dtype} GEMMs at the 16-bit rate (one rate: narrower dtypes save bytes only)"
    return f"{dtype} GEMMs at the chip's {dtype} rate"


def knob_of_hardware_key(family: str, key: str) -> KeyInfo:
    """The KeyInfo of a leaf key of ``family`` (one-line error naming the family otherwise)."""
    schema = hardware_keys(family)
    info = schema.get(key)
    if info is None or info.field is None:
        known = [k for k, v in schema.items() if v.field]
        raise SpecError(
            f"unknown key '{key}' for hardware family {family}{suggest(key, known)} (known: {', '.join(known)})"
        )
    return info


def power_inputs(chip: Chip, data: dict[str, Any]) -> tuple[float, float]:
    """(dense 16-bit FLOP/s of the datapath, off-chip DRAM bytes/s) a file states, for the
    floorplan model's TDP: ``dense_bf16_tflops`` where the quoted peak is not a dense rate."""
    dense = float(data.get("dense_bf16_tflops", 0.0)) * 1e12 or float(chip.datapath_flops_per_s)
    return dense, float(chip.dram_bytes_per_s)


def silicon_of(entry: HardwareEntry) -> dict[str, Any]:
    """A catalog chip's silicon as its file states it and what it costs (models.silicon): good
    logic dies at the published (else modelled) die area on the stated node, plus the HBM at
    its generation's price per GB; and the floorplan model's own area and TDP beside the
    published ones. Costs are None, with ``missing`` naming what is not stated, when the file
    lacks the node, or both the die area and the microarchitecture (``datapath_macs``), or the
    HBM generation and stacks of a chip with HBM."""
    raw = entry.raw
    area = float(raw["die_area_mm2"]) * float(raw.get("dies", 1)) if raw.get("die_area_mm2") else None
    node, generation = raw.get("process_node"), raw.get("hbm_generation")
    hbm_bytes = float(getattr(entry.spec, "hbm_capacity_bytes", 0.0))
    plan = floorplan_of(entry.spec, raw)
    modelled_area = float(floorplan_area(plan).total_mm2) if plan is not None else None
    modelled_tdp = None
    if plan is not None and modelled_area is not None:
        converters = float(entry.spec.converter_power_w)
        modelled_tdp = float(floorplan_tdp(plan, *power_inputs(entry.spec, raw), modelled_area, converters).tdp_w)
    out: dict[str, Any] = {
        "process_node": node,
        "dies": int(raw.get("dies", 1)),
        "die_area_mm2": area,
        "modelled_die_area_mm2": modelled_area,
        "modelled_tdp_w": modelled_tdp,
        "area_source": None,
        "hbm_generation": generation,
        "hbm_stacks": raw.get("hbm_stacks"),
        "silicon_cost_usd": None,
        "modelled_cost_usd": None,
        "logic_cost_usd": None,
        "hbm_cost_usd": None,
        "dram_cost_usd": None,
        "price_over_silicon": None,
    }
    base = entry.spec.silicon  # the one judgement of what is stated (silicon_base)
    if base is None:
        missing = [k for k, v in (("process_node", node),) if v is None]
        if area is None and plan is None:
            missing.append("die_area_mm2 or datapath_macs")
        if hbm_bytes > 0 and (generation is None or not raw.get("hbm_stacks")):
            missing.append("hbm_generation and hbm_stacks")
        return out | {"missing": missing}
    dram_bytes = float(entry.spec.offchip_dram_bytes)
    memory = (hbm_bytes, base.usd_per_gb, base.wafer_scale, dram_bytes)
    cost = silicon_cost_usd(base.die_mm2, base.node, base.dies, *memory)
    modelled_cost = None
    if modelled_area is not None:
        modelled_cost = float(silicon_cost_usd(modelled_area / base.dies, base.node, base.dies, *memory).total_usd)
    return out | {
        "area_source": base.area_source,
        "silicon_cost_usd": base.silicon_usd,
        "modelled_cost_usd": modelled_cost,
        "logic_cost_usd": float(cost.logic_usd),
        "hbm_cost_usd": float(cost.hbm_usd),
        "dram_cost_usd": float(cost.dram_usd),
        "price_over_silicon": base.margin,  # off-package DRAM apart (it passes at its cost)
        "missing": [],
    }
