"""The floorplan model (models.silicon) against published dies: its per-class constants fitted
on the oldest die of each class, checked on every other die with a published area and TDP.

The dies are the catalog chips whose files state a die area and their microarchitecture, and
the three of ``data/silicon/dies.yaml``. One die appears once (A100 40 GB and 80 GB, H100 and
H200 share theirs). ``fit_floorplan`` reproduces the constants the model ships with
(``MTR_PER_MAC``, ``J_PER_FLOP_N7``); ``check_floorplan`` gives the table of
``inferbench catalog --silicon``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dse.specs import floorplan_of, hardware_ids, load_hardware, power_inputs, read_mapping
from models.silicon import NODE_ENERGY, NODES, Floorplan, floorplan_area, floorplan_tdp
from models.silicon._floorplan import BOARD_EFFICIENCY

DIES_FILE = Path(__file__).parent / "data" / "silicon" / "dies.yaml"
# The oldest published die of each class: the fit set (the rest are held out).
FIT_ON = {"simt": "nvidia-v100", "array": "groq-lpu", "tile": "cerebras-wse-2"}


@dataclasses.dataclass(frozen=True)
class Die:
    id: str
    name: str
    plan: Floorplan
    area_mm2: float  # published, all dies of the package
    tdp_w: float | None  # board (or system) TDP; None: not stated
    tdp_published: bool  # False: the file's TDP is an estimate (fits, is not checked)
    dense_flops_per_s: float
    dram_bytes_per_s: float

    @property
    def role(self) -> str:
        return "fitted" if FIT_ON.get(self.plan.area_class) == self.id else "held out"


def published_dies() -> list[Die]:
    """Every die with a published area and a stated microarchitecture, once each."""
    dies: dict[tuple[float, float], Die] = {}
    for hid in hardware_ids():
        entry = load_hardware(hid, calibrated=False)
        plan, area = floorplan_of(entry.spec, entry.raw), entry.raw.get("die_area_mm2")
        if plan is None or not area or "datapath_macs" not in entry.raw:
            continue
        total = float(area) * float(entry.raw.get("dies", 1))
        published = "estimate" not in _comment(entry.path, "tdp_w")
        die = Die(hid, entry.name, plan, total, entry.raw["tdp_w"], published, *power_inputs(entry.spec, entry.raw))
        dies.setdefault((total, plan.macs), die)  # the first file of a shared die names it
    for did, raw in read_mapping(DIES_FILE).items():
        plan = floorplan_of(_Reference.of(raw), raw)
        assert plan is not None, did
        dies[(float(raw["die_area_mm2"]), plan.macs)] = Die(
            did,
            raw["name"],
            plan,
            float(raw["die_area_mm2"]) * float(raw.get("dies", 1)),
            raw.get("tdp_w"),
            "tdp_w" in raw,
            float(raw.get("dense_bf16_tflops", 0.0)) * 1e12,
            float(raw.get("dram_bandwidth_tb_s", 0.0)) * 1e12,
        )
    return list(dies.values())


def _comment(path: Path, key: str) -> str:
    """The comment on ``key``'s line of a hardware file (where its source is stated)."""
    for line in path.read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.partition("#")[2]
    return ""


@dataclasses.dataclass(frozen=True)
class _Reference:
    """A reference die's stand-in chip: the fields its floorplan reads (SRAM, links)."""

    sram_capacity_bytes: float
    link_bandwidth_bytes_per_s: float
    family: str
    datapath_macs: None = None  # stated in the file

    @classmethod
    def of(cls, raw: dict[str, object]) -> _Reference:
        sram, link = float(raw.get("sram_mb", 0.0)), float(raw.get("link_bandwidth_gb_s", 0.0))  # type: ignore[arg-type]
        return cls(sram * 1e6, link * 1e9, str(raw["family"]))

    def floorplan_parts(self) -> dict[str, float]:
        return {"sram_bytes": self.sram_capacity_bytes, "link_bytes_per_s": self.link_bandwidth_bytes_per_s}


def fit_floorplan(dies: list[Die]) -> tuple[dict[str, float], dict[str, float]]:
    """(million transistors per MAC, J per FLOP at N7) by class, from the fit set: the area the
    published die leaves beyond SRAM, PHYs and converters over its MACs, and the TDP its memory,
    links and leakage leave over its dense rate."""
    mtr, joules = {}, {}
    for die in dies:
        if die.role != "fitted":
            continue
        parts = floorplan_area(die.plan)
        rest = die.area_mm2 - float(parts.total_mm2 - parts.datapath_mm2)
        mtr[die.plan.area_class] = rest * NODES[die.plan.node].logic_mtr_per_mm2 / float(die.plan.macs)
        if die.tdp_w is not None:
            power = floorplan_tdp(die.plan, 0.0, die.dram_bytes_per_s, die.area_mm2)
            left = float(die.tdp_w) * BOARD_EFFICIENCY - float(power.tdp_w) * BOARD_EFFICIENCY
            joules[die.plan.area_class] = left / die.dense_flops_per_s / NODE_ENERGY[die.plan.node]
    return mtr, joules


def check_floorplan() -> list[dict[str, object]]:
    """Per published die: modelled area and TDP against the published, and the fit role."""
    rows = []
    for die in published_dies():
        area = float(floorplan_area(die.plan).total_mm2)
        tdp = float(floorplan_tdp(die.plan, die.dense_flops_per_s, die.dram_bytes_per_s, area).tdp_w)
        rows.append(
            {
                "die": die.id,
                "name": die.name,
                "class": die.plan.area_class,
                "node": die.plan.node,
                "role": die.role,
                "die_area_mm2": die.area_mm2,
                "modelled_die_area_mm2": area,
                "area_error": area / die.area_mm2 - 1.0,
                "tdp_w": die.tdp_w if die.tdp_published else None,
                # A wafer's published power is its system's (CS-2, CS-3: fans, pumps, supplies).
                "tdp_scope": "system" if die.plan.area_class == "tile" else "board",
                "modelled_tdp_w": tdp if die.dense_flops_per_s > 0 else None,
                "tdp_error": tdp / float(die.tdp_w) - 1.0 if die.tdp_published and die.tdp_w else None,
            }
        )
    return rows


def held_out_mape(rows: list[dict[str, object]], error: str, scope: str | None = None) -> float:
    """Mean absolute error of the held-out dies (``scope``: only TDPs of that scope)."""
    errors = [
        abs(float(r[error]))  # type: ignore[arg-type]
        for r in rows
        if r["role"] == "held out" and r[error] is not None and scope in (None, r["tdp_scope"])
    ]
    return float(np.mean(errors))


__all__ = ["check_floorplan", "fit_floorplan", "held_out_mape", "published_dies"]
