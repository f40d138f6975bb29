"""Fits of a user's own measurements (``inferbench calibrate MEASUREMENTS.csv -o FIT.yaml``).

A fit file names the chip it was fitted for (its id and a digest of its datasheet values),
the software stack (``framework``), the complete software level (every ``SoftwareParams``
field), the chip fields it fitted (power model, a family's own efficiency parameters), the
validation (rows, cross-validated MAPE) and the held-out log-error quantiles that give
prediction intervals. A command given ``--fit FIT.yaml`` (or ``--framework NAME`` with a fit
of that name in the user's fits folder) uses it as the calibrated level of that chip:
:func:`fits_in_effect` scopes it to the command, :func:`user_fit` looks it up.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import yaml

from models import SoftwareParams

from ._errors import SpecError
from ._files import load_yaml
from ._fitted import _check_software, _check_value, _plain, software_from_mapping, starts_with, write_headed_yaml
from ._outputs import make_parent, note_input, refuse_foreign

FIT_HEADER = "# InferBench fit of "
FIT_KIND = "inferbench-fit"


@dataclasses.dataclass(frozen=True)
class UserFit:
    """A user's fit of one chip and one software stack, as read from its file."""

    path: Path
    hardware: str  # hardware id (the spec file's stem)
    hardware_digest: str  # of the datasheet values it was fitted with
    framework: str
    rows: int
    cv_mape_pct: float | None
    software: SoftwareParams
    chip: dict[str, float]
    intervals: dict[str, dict[str, float]]

    def interval(self, value: Any, quantity: str, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of a prediction at coverage ``level`` from the fit's cross-validated log
        errors of ``quantity`` (latency, ttft, tpot, throughput, energy, power): value·exp(μ ± z·σ);
        NaN where the fit had no rows of it."""
        v = np.asarray(value, dtype=float)
        stats = self.intervals.get(quantity)
        if not stats:
            return np.full_like(v, np.nan), np.full_like(v, np.nan)
        z = NormalDist().inv_cdf(0.5 + level / 2.0)
        mu, sd = stats["mean_log"], stats["sd_log"]
        return v * np.exp(mu - z * sd), v * np.exp(mu + z * sd)

    @property
    def label(self) -> str:
        """How every result names this calibration."""
        cv = f"CV MAPE {self.cv_mape_pct:.1f} %" if self.cv_mape_pct is not None else "no cross-validation"
        return f"fitted ({self.path.name}: {self.rows} rows, {cv})"


def spec_digest(raw: Mapping[str, Any]) -> str:
    """Digest of a hardware file's values (not its comments or layout)."""
    text = json.dumps(_plain(dict(raw)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fits_folder() -> Path:
    """Where named fits live: ``$INFERBENCH_FITS``, else ``<user config>/inferbench/fits``."""
    if os.environ.get("INFERBENCH_FITS"):
        return Path(os.environ["INFERBENCH_FITS"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "inferbench" / "fits"


def named_fit_path(framework: str, hardware_id: str) -> Path:
    return fits_folder() / framework / f"{hardware_id}.yaml"


def read_fit(path: str | Path) -> UserFit:
    """A fit file, checked: one-line error naming the file and key otherwise."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(
            f"{p}: cannot read file (no such file): expected a fit written by `inferbench calibrate`"
        ) from None
    except (OSError, UnicodeDecodeError):
        raise SpecError(f"{p}: not a readable fit file: expected YAML written by `inferbench calibrate`") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError:
        raise SpecError(f"{p}: not valid YAML: expected a fit written by `inferbench calibrate`") from None
    if not isinstance(data, dict) or data.get("kind") != FIT_KIND:
        raise SpecError(f"{p}: key 'kind': expected '{FIT_KIND}' (a file written by `inferbench calibrate -o`)")
    for key in ("hardware", "hardware_digest", "framework", "rows", "software"):
        if key not in data:
            raise SpecError(f"{p}: missing key '{key}': expected a fit written by `inferbench calibrate`")
    required = tuple(f.name for f in dataclasses.fields(SoftwareParams))
    _check_software(p, "software", data["software"], required)
    chip = data.get("chip") or {}
    if not isinstance(chip, dict):
        raise SpecError(f"{p}: chip: expected a mapping of chip fields (SI units)")
    for key, value in chip.items():
        _check_value(p, f"chip: {key}", value, 0.0, np.inf, "a finite number >= 0 (SI units)")
    cv = (data.get("validation") or {}).get("cv_mape_pct")
    intervals = data.get("intervals") or {}
    for name, q in intervals.items():
        for k in ("mean_log", "sd_log"):
            _check_value(p, f"intervals: {name}: {k}", (q or {}).get(k), -50.0, 50.0, "a finite log error")
    note_input(p)
    return UserFit(
        path=p,
        hardware=str(data["hardware"]),
        hardware_digest=str(data["hardware_digest"]),
        framework=str(data["framework"]),
        rows=int(data["rows"]),
        cv_mape_pct=float(cv) if isinstance(cv, int | float) else None,
        software=software_from_mapping(data["software"]),
        chip={str(k): float(v) for k, v in chip.items()},
        intervals={str(k): {kk: float(vv) for kk, vv in v.items() if isinstance(vv, int | float)}
                   for k, v in intervals.items()},
    )  # fmt: skip


def named_fits(framework: str) -> list[UserFit]:
    """Every fit of ``framework`` in the user's fits folder (none: [])."""
    folder = fits_folder() / framework
    if not folder.is_dir():
        return []
    return [read_fit(p) for p in sorted(folder.glob("*.yaml"))]


_FITS: contextvars.ContextVar[dict[str, UserFit]] = contextvars.ContextVar("inferbench_fits", default={})


@contextlib.contextmanager
def fits_in_effect(fits: Sequence[UserFit]) -> Iterator[None]:
    """The scope in which ``fits`` are the calibrated level of their chips (one per chip)."""
    by_chip: dict[str, UserFit] = {}
    for f in fits:
        if f.hardware in by_chip:
            raise SpecError(
                f"{f.path}: a second fit of {f.hardware} ({by_chip[f.hardware].path}): expected one per chip"
            )
        by_chip[f.hardware] = f
    token = _FITS.set({**_FITS.get(), **by_chip})
    try:
        yield
    finally:
        _FITS.reset(token)


def user_fit(hardware_id: str, raw: Mapping[str, Any]) -> UserFit | None:
    """The fit in effect for this chip, None if none; a fit of another spec of the same id
    (the hardware file changed since the fit) is refused in one line."""
    fit = _FITS.get().get(hardware_id)
    if fit is not None and fit.hardware_digest != spec_digest(raw):
        raise SpecError(
            f"{fit.path}: fitted for another spec of '{hardware_id}' (its datasheet values changed since): "
            "expected a fit of this hardware file (rerun `inferbench calibrate`)"
        )
    return fit


def write_fit(path: str | Path, content: Mapping[str, Any]) -> Path:
    """Write a fit file (refusing a path that holds what the tool did not write)."""
    p = Path(path)
    header = (
        f"{FIT_HEADER}{content['hardware']} under {content['framework']}, written by `inferbench calibrate`.\n"
        "# Do not edit by hand: rerun the calibration (the file records the rows and the split).\n"
    )
    return write_headed_yaml(p, header, content, FIT_HEADER)


def is_fit_file(path: Path) -> bool:
    return starts_with(path, FIT_HEADER)


def check_fit_writable(path: str | Path) -> None:
    """One-line error now if :func:`write_fit` would have to refuse later."""
    refuse_foreign(Path(path), own=is_fit_file)
    make_parent(Path(path))
