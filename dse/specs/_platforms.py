"""Platform spec files: a catalog chip, its network levels and how a model replica is laid out.

A platform file names its hardware, the scale-up domain (chips, topology and optionally the
per-chip bandwidth and hop latency, which otherwise are the chip's ``link_*`` values), the
scale-out network (topology, bandwidth per chip, latency), optionally a third level between
pods of ``pod_chips`` chips (``inter_pod_*``: GenZ Table IX) and default parallel degrees.
Without a platform file a chip runs on its own system's network: the hardware file's
``scale_up_domain``, ``scale_up_topology``, ``scale_out_bandwidth_gb_s`` and
``scale_out_latency_us``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from models.platform import TOPOLOGIES, PlatformSpec

from ._errors import SpecError
from ._files import PLATFORM_DIR, ids, read_mapping, resolve
from ._hardware import HardwareEntry, load_hardware
from ._keys import KeyInfo, check, described, keys_of

_PLATFORM_LEAVES = keys_of(PlatformSpec)
_NETWORK_KEYS = ("scale_up_chips", "scale_out_bandwidth_gb_s", "scale_out_latency_us", "host_power_w", "pod_chips",
                 "inter_pod_bandwidth_gb_s", "inter_pod_latency_us")  # fmt: skip
_TOPOLOGY_KEYS = ("scale_up_topology", "scale_out_topology", "inter_pod_topology")
_TOPOLOGY = "one of " + ", ".join(TOPOLOGIES)

PLATFORM_KEYS: dict[str, KeyInfo] = {
    "name": described("name", "str", "a display name", required=True),
    "hardware": described("hardware", "str", "a catalog hardware id", required=True),
    "tp": described("tp", "int", "tensor-parallel degree, integer > 0", required=True),
    "pp": described("pp", "int", "pipeline stages, integer > 0 (omit: from capacity)"),
    "ep": described("ep", "int", "expert-parallel degree, integer > 0"),
    "dp": described("dp", "int", "data-parallel replicas, integer > 0"),
    "chips": described("chips", "int", "chips of the platform, integer > 0"),
    "memory_per_node": described("memory_per_node", "str", "a description"),
    **{
        k: described(k, "choice", f"the {k.removesuffix('_topology').replace('_', '-')} topology", choices=TOPOLOGIES)
        for k in _TOPOLOGY_KEYS
    },  # fmt: skip
    "scale_up_bandwidth_gb_s": described("scale_up_bandwidth_gb_s", "positive", "GB/s per chip and direction > 0"),
    "scale_up_latency_us": described("scale_up_latency_us", "positive", "us per hop > 0"),
    **{k: _PLATFORM_LEAVES[k] for k in _NETWORK_KEYS},
    "scale_out": described("scale_out", "choice", "'none' for a platform without a scale-out level", choices=("none",)),
    "platform_power_kw": described("platform_power_kw", "positive", "kW > 0"),
}

# Scale-out defaults for a hardware file that gives none. Estimate: one 400 Gb/s NIC per chip
# (NVIDIA DGX H100 datasheet: 8 x ConnectX-7 400 Gb/s for 8 GPUs) = 50 GB/s per direction, and
# a few us of NIC, switch and driver latency per hop.
DEFAULT_SCALE_OUT = {"scale_out_bandwidth_bytes_per_s": 50e9, "scale_out_latency_s": 5e-6}


@dataclasses.dataclass(frozen=True)
class PlatformEntry:
    id: str
    name: str
    hardware: str
    tp: int
    pp: int  # 1 when capacity decides (SRAM-only chips size their own pipeline)
    chips: int | None
    platform_power_kw: float | None
    ep: int = 1
    dp: int = 1
    network: dict[str, Any] = dataclasses.field(default_factory=dict)  # PlatformSpec fields (SI, topologies)
    chip_links: dict[str, float] = dataclasses.field(default_factory=dict)  # chip link_* overrides (SI)


def platform_ids() -> list[str]:
    return ids(PLATFORM_DIR)


def _network(values: dict[str, Any], where: str) -> dict[str, Any]:
    """PlatformSpec network fields (SI) from checked file values (``scale_up_domain`` or
    ``scale_up_chips`` for the domain size)."""
    out: dict[str, Any] = {}
    chips = values.get("scale_up_chips", values.get("scale_up_domain"))
    if chips is not None:
        out["scale_up_chips"] = float(chips)
    for k in _NETWORK_KEYS[1:]:
        if k in values:
            info = _PLATFORM_LEAVES[k]
            out[info.field] = float(values[k]) * info.factor
    for k in _TOPOLOGY_KEYS:
        if k in values:
            if values[k] not in TOPOLOGIES:
                raise SpecError(f"{where}: key '{k}' = {values[k]!r}: expected {_TOPOLOGY}")
            out[k] = values[k]
    return out


def hardware_network(hardware: HardwareEntry) -> dict[str, Any]:
    """The network a chip runs on without a platform file: its hardware file's system keys,
    the defaults above for what it does not give."""
    return {**DEFAULT_SCALE_OUT, **_network(hardware.raw, str(hardware.path))}


def network_of(hardware: HardwareEntry, platform: PlatformEntry | None) -> dict[str, Any]:
    """The network a chip runs on: the platform file's, else its own system's."""
    return platform.network if platform is not None else hardware_network(hardware)


def load_platform(ref: str | Path) -> PlatformEntry:
    path = resolve(ref, PLATFORM_DIR, "platform", (".yaml", ".yml"))
    v = check(path, read_mapping(path), PLATFORM_KEYS)
    hw = load_hardware(v["hardware"])  # the chip must exist
    links = {}
    if "scale_up_bandwidth_gb_s" in v:
        links["link_bandwidth_bytes_per_s"] = float(v["scale_up_bandwidth_gb_s"]) * 1e9
    if "scale_up_latency_us" in v:
        links["link_latency_s"] = float(v["scale_up_latency_us"]) * 1e-6
    network = {**hardware_network(hw), **_network(v, str(path)), "has_scale_out": v.get("scale_out") != "none"}
    if "platform_power_kw" in v and "chips" in v and "host_power_w" not in v:
        # Hosts, switches and NICs: the platform's peak power beyond its chips' TDP (GenZ Eq. 2's
        # platform terms; drawn whenever the platform serves).
        per_chip = float(v["platform_power_kw"]) * 1e3 / float(v["chips"])
        network["host_power_w"] = max(per_chip - float(hw.spec.tdp_w), 0.0)
    return PlatformEntry(
        path.stem,
        v["name"],
        v["hardware"],
        int(v["tp"]),
        int(v.get("pp", 1)),
        v.get("chips"),
        v.get("platform_power_kw"),
        int(v.get("ep", 1)),
        int(v.get("dp", 1)),
        network,
        links,
    )


def check_placement(where: str, network: dict[str, Any], chips: float) -> None:
    """Refuse a replica larger than one scale-up domain on a platform without scale-out."""
    domain = float(network.get("scale_up_chips", 8.0))
    if not network.get("has_scale_out", True) and chips > domain:
        raise SpecError(
            f"{where}: {chips:g} chips exceed the scale-up domain of {domain:g} and the platform has no scale-out level"
        )
