"""Fitted parameter files shipped with the catalog (``calibration/fitted/<hardware>.yaml``).

Sections: ``software`` (every ``SoftwareParams`` field: what the default calibrated level
uses), ``frameworks`` (framework overheads per framework), ``chip`` (``SimtSpec`` SI fields
that replace the datasheet-derived values), ``uncertainty`` (Laplace standard deviations),
``intervals`` (held-out log-error quantiles per data set, for prediction intervals),
``split``, ``data`` (file hashes), ``mape`` (the validation table) and ``software_version``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models import SoftwareParams, achievable_software
from models.hardware import SimtSpec

from ._errors import SpecError, suggest
from ._files import load_yaml
from ._outputs import make_parent, refuse_foreign, writing

# The fitted files live with the calibration that writes them (a data folder, not an import).
FITTED_DIR = Path(__file__).resolve().parents[2] / "calibration" / "fitted"

# GPUs without a fit of their own use the A100 software fit (software parameters transfer
# across GPUs of the same software stack; the chip's own numbers come from its datasheet).
FALLBACK = ("a100-sxm4-40gb", "a100-sxm4-80gb")


def fitted_path(hardware_id: str, folder: Path | None = None) -> Path:
    return (folder or FITTED_DIR) / f"{hardware_id}.yaml"


def read_fitted(hardware_id: str | None, folder: Path | None = None) -> dict[str, Any] | None:
    """The fitted file of ``hardware_id`` as a mapping, or None if there is none."""
    if not hardware_id:
        return None
    path = fitted_path(hardware_id, folder)
    try:
        stat = path.stat()
    except OSError:
        return None
    # A query reads the same file several times (chip, software, frameworks): parsed once per
    # version of the file (a rewrite is a new inode, an edit a new time: a resident engine
    # sees either at its next query).
    return copy.deepcopy(_parse_fitted(path, stat.st_ino, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _parse_fitted(path: Path, inode: int, mtime_ns: int, size: int) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise SpecError(
            f"{path}: not a readable fitted-parameter file: expected YAML written by `inferbench calibrate`"
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    check_fitted(path, data)
    return data


# What a fitted value may be, by SoftwareParams field: (low, high, what). Fractions of a peak
# cannot exceed it; times are not negative; a flag is 0 or 1 (a mix of both forms between).
_FRACTION = (0.0, 1.0, "a fraction in [0, 1]")
_SOFTWARE_RANGES: dict[str, tuple[float, float, str]] = {
    "util_knots": _FRACTION,
    "bw_efficiency": (1e-6, 1.0, "a fraction in (0, 1]"),
    "link_efficiency": (1e-6, 1.0, "a fraction in (0, 1]"),
    "reduce_efficiency": (1e-6, 1.0, "a fraction in (0, 1]"),
    "tile_efficiency": _FRACTION,
    "util_wave": _FRACTION,
    "structural_derating": _FRACTION,
    "direct_allreduce": _FRACTION,
    "k_half": (0.0, 1e9, "a reduction depth >= 0"),
    "elementwise_bw_factor": (1e-6, 10.0, "a factor in (0, 10]"),
    "compute_efficiency": (1e-6, 10.0, "a factor in (0, 10]"),
    "attention_efficiency": (1e-6, 1.0, "a fraction in (0, 1]"),
}
_SOFTWARE_SHAPES = {"util_knots": 4, "tile_efficiency": 4}
_TIME = (0.0, 60.0, "a time in seconds in [0, 60]")


def _check_value(path: Path, where: str, value: Any, low: float, high: float, what: str, n: int = 0) -> None:
    values = value if isinstance(value, list) else [value]
    ok = (len(values) == n if n else not isinstance(value, list)) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) and low <= v <= high for v in values
    )
    if not ok:
        shape = f"a list of {n} numbers, each " if n else ""
        raise SpecError(
            f"{path}: {where} = {value!r}: expected {shape}{what} (rerun `inferbench calibrate --write` to replace it)"
        )


def _check_software(path: Path, section: str, p: Any, required: tuple[str, ...]) -> None:
    if not isinstance(p, dict):
        raise SpecError(f"{path}: {section}: expected a mapping of SoftwareParams fields")
    names = {f.name for f in dataclasses.fields(SoftwareParams)}
    for key in p:
        if key not in names:
            raise SpecError(
                f"{path}: {section}: unknown key '{key}'{suggest(str(key), names)}: expected SoftwareParams fields"
            )
    missing = [k for k in required if k not in p]
    if missing:
        raise SpecError(f"{path}: {section}: missing key(s) {', '.join(missing)}")
    for key, value in p.items():
        low, high, what = _TIME if key.endswith("_s") else _SOFTWARE_RANGES.get(key, (0.0, 1e9, "a number >= 0"))
        _check_value(path, f"{section}: {key}", value, low, high, what, _SOFTWARE_SHAPES.get(key, 0))


def check_fitted(path: Path, data: dict[str, Any]) -> None:
    """Refuse a fitted file whose parameters the models cannot use: unknown or missing keys,
    values outside their physical range, NaN or infinity anywhere (one line naming the key)."""
    required = tuple(f.name for f in dataclasses.fields(SoftwareParams) if f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)  # fmt: skip
    if "software" not in data:
        raise SpecError(f"{path}: missing key 'software': expected a file written by `inferbench calibrate --write`")
    _check_software(path, "software", data["software"], required)
    frameworks = data.get("frameworks") or {}
    if not isinstance(frameworks, dict):
        raise SpecError(f"{path}: frameworks: expected a mapping of framework names to overheads")
    for name, p in frameworks.items():
        _check_software(path, f"frameworks: {name}", p, ())
    chip = data.get("chip") or {}
    fields = {f.name for f in dataclasses.fields(SimtSpec)}
    if not isinstance(chip, dict):
        raise SpecError(f"{path}: chip: expected a mapping of chip fields (SI units)")
    for key, value in chip.items():
        if key not in fields:
            raise SpecError(f"{path}: chip: unknown key '{key}'{suggest(str(key), fields)}: expected a SimtSpec field")
        _check_value(path, f"chip: {key}", value, 0.0, np.inf, "a finite number >= 0 (SI units)")

    def finite(where: str, node: Any) -> None:  # what the intervals use: no NaN or infinity
        if isinstance(node, dict):
            for k, v in node.items():
                finite(f"{where}: {k}" if where else str(k), v)
        elif isinstance(node, list):
            for v in node:
                finite(where, v)
        elif isinstance(node, float) and not np.isfinite(node):
            raise SpecError(f"{path}: {where} = {node}: expected a finite number")

    for section in ("uncertainty", "intervals"):  # ("data" holds file hashes, some of which read as numbers)
        finite(section, data.get(section))


def software_from_mapping(p: Mapping[str, Any]) -> SoftwareParams:
    names = {f.name for f in dataclasses.fields(SoftwareParams)}
    unknown = sorted(set(p) - names)
    if unknown:
        raise SpecError(f"software: unknown key(s) {', '.join(unknown)}: expected SoftwareParams fields")
    return SoftwareParams(**{k: np.asarray(v, dtype=np.float64) for k, v in p.items()})


def software_to_mapping(sw: SoftwareParams) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(sw):
        v = np.asarray(getattr(sw, f.name), dtype=float)
        out[f.name] = [float(x) for x in v] if v.ndim else float(v)
    return out


def fitted_source(hardware_id: str | None) -> str | None:
    """Which fitted file the calibrated level of ``hardware_id`` uses (None: seed derating)."""
    for name in (hardware_id, *FALLBACK):
        if name and fitted_path(name).exists():
            return name
    return None


def fitted_software(hardware_id: str | None, framework: str | None = None) -> SoftwareParams:
    """The calibrated level for a chip: its own fit, else the A100 fit (software parameters
    transfer across GPUs; chip parameters come from the datasheet), else the seed derating.

    ``framework`` selects another fitted framework's overheads (e.g. ``vllm-server``).
    """
    source = fitted_source(hardware_id)
    if source is None:
        return achievable_software()
    data = read_fitted(source) or {}
    p = dict(data["software"])
    if framework is not None:
        frameworks = data.get("frameworks") or {}
        if framework not in frameworks:
            raise SpecError(
                f"{fitted_path(source)}: no framework '{framework}': expected one of {', '.join(frameworks)}"
            )
        p |= frameworks[framework]
    return software_from_mapping(p)


def fitted_frameworks(hardware_id: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(default framework, every fitted framework) of the fit ``hardware_id`` uses; (None, ())
    when no fit applies."""
    source = fitted_source(hardware_id)
    data = (read_fitted(source) or {}) if source else {}
    names = tuple(data.get("frameworks") or ())
    return (data.get("default_framework") if source else None), names


def has_own_fit(hardware_id: str | None) -> bool:
    """Whether ``hardware_id`` has a fitted file of its own."""
    return bool(hardware_id) and fitted_path(hardware_id).exists()


def fitted_chip(hardware_id: str | None) -> dict[str, float]:
    """Chip parameters fitted for ``hardware_id`` (SI field → value), or {} if none."""
    data = read_fitted(hardware_id)
    if not data:
        return {}
    return {k: float(v) for k, v in (data.get("chip") or {}).items()}


def write_fitted(hardware_id: str, content: Mapping[str, Any], folder: Path | None = None) -> Path:
    path = fitted_path(hardware_id, folder)
    header = (
        f"{FITTED_HEADER}{hardware_id}, written by `inferbench calibrate --hardware {hardware_id} --write`.\n"
        "# Do not edit by hand: rerun the calibration. See calibration/_fit.py for the model and the split.\n"
    )
    return write_headed_yaml(path, header, content, FITTED_HEADER)


def write_headed_yaml(path: Path, header: str, content: Mapping[str, Any], mark: str) -> Path:
    """``content`` as YAML under a comment ``header`` that starts with ``mark``: the mark is
    how a later write knows the file as its own (any other file there is refused)."""
    with writing(path, own=lambda p: starts_with(p, mark)) as tmp:
        tmp.write_text(header + yaml.safe_dump(_plain(dict(content)), sort_keys=False, width=110), encoding="utf-8")
    return path


def check_fitted_writable(hardware_id: str, folder: Path | None = None) -> None:
    """One-line error now if :func:`write_fitted` would have to refuse later."""
    path = fitted_path(hardware_id, folder)
    refuse_foreign(path, own=_is_fitted_file)
    make_parent(path)


FITTED_HEADER = "# Calibrated parameters of "


def _is_fitted_file(path: Path) -> bool:
    """A fitted file the calibration wrote (its header says so), e.g. the shipped ones."""
    return starts_with(path, FITTED_HEADER)


def starts_with(path: Path, mark: str) -> bool:
    """Whether the file's first line starts with ``mark`` (False if it cannot be read)."""
    try:
        with Path(path).open(encoding="utf-8") as f:
            return f.readline().startswith(mark)
    except (OSError, UnicodeDecodeError):
        return False


def _plain(x: Any) -> Any:
    """numpy/jax values → plain Python for YAML."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, str):
        return str(x)  # numpy strings as plain ones
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, int | np.integer):
        return int(x)
    arr = np.asarray(x)
    if arr.dtype.kind in "fiu":
        return [float(v) for v in arr.ravel()] if arr.ndim else float(arr)
    return str(x)
