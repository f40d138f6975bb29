"""Platform spec files (GenZ Table VII): a catalog chip and how a model replica is laid out on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ._files import PLATFORM_DIR, ids, read_mapping, resolve
from ._hardware import load_hardware
from ._keys import KeyInfo, check, described

PLATFORM_KEYS: dict[str, KeyInfo] = {
    "name": described("name", "str", "a display name", required=True),
    "hardware": described("hardware", "str", "a catalog hardware id", required=True),
    "tp": described("tp", "int", "tensor-parallel degree, integer > 0", required=True),
    "pp": described("pp", "int", "pipeline stages, integer > 0 (omit: from capacity)"),
    "chips": described("chips", "int", "chips of the platform, integer > 0"),
    "memory_per_node": described("memory_per_node", "str", "a description"),
    "scale_up": described("scale_up", "str", "a description"),
    "scale_out": described("scale_out", "str", "a description"),
    "platform_power_kw": described("platform_power_kw", "positive", "kW > 0"),
}


@dataclasses.dataclass(frozen=True)
class PlatformEntry:
    id: str
    name: str
    hardware: str
    tp: int
    pp: int  # 1 when capacity decides (SRAM-only chips size their own pipeline)
    chips: int | None
    platform_power_kw: float | None


def platform_ids() -> list[str]:
    return ids(PLATFORM_DIR)


def load_platform(ref: str | Path) -> PlatformEntry:
    path = resolve(ref, PLATFORM_DIR, "platform", (".yaml", ".yml"))
    v = check(path, read_mapping(path), PLATFORM_KEYS)
    load_hardware(v["hardware"])  # the chip must exist
    return PlatformEntry(
        path.stem,
        v["name"],
        v["hardware"],
        int(v["tp"]),
        int(v.get("pp", 1)),
        v.get("chips"),
        v.get("platform_power_kw"),
    )
