"""Curve studies (``study: curves``): metrics of a few deployments along one knob.

A study names models, a hardware (and optionally a platform), fixed knobs, one ``x`` knob with
its values and a list of ``variants`` (each a mapping of knobs, optionally ``batching`` and a
``name`` for its label);
every (model, variant) is a line, every metric a panel. Used for the GenZ case studies in
``sweeps/`` (chunked prefill, speculative decoding, MoE parallelism, scale-up domain size,
three-level networks).
Writes ``results/NAME.{txt,zarr,png,svg}``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from dse.engine import METRIC_INFO, evaluate  # noqa: E402
from dse.specs import (  # noqa: E402
    SpecError,
    check,
    described,
    load_model,
    read_mapping,
    refuse_foreign,
    write_dataset,
    writing,
)
from models.workloads import active_params  # noqa: E402

from ._table import render  # noqa: E402

CURVE_KEYS = {
    "study": described("study", "choice", "the study kind", required=True, choices=("curves",)),
    "name": described("name", "str", "the output name (results/NAME.*)", required=True),
    "description": described("description", "str", "text"),
    "models": described("models", "list", "a list of catalog model ids", required=True),
    "hardware": described("hardware", "str", "a catalog hardware id", required=True),
    "platform": described("platform", "str", "a platform id"),
    "dtype": described("dtype", "str", "bf16, fp16, fp8, int8, int4 or fp4"),
    "batching": described("batching", "str", "static, continuous, chunked or disaggregated"),
    "level": described(
        "level", "choice", "ideal, achievable or calibrated", choices=("ideal", "achievable", "calibrated")
    ),
    "fixed": described("fixed", "str", "a mapping of knob (SI name) to value"),
    "draft_models": described("draft_models", "str", "a mapping of model id to its draft model id"),
    "x": described("x", "str", "a mapping of one knob (SI name) to its list of values", required=True),
    "variants": described("variants", "list", "a list of mappings of knobs (and batching, a name)", required=True),
    "metrics": described("metrics", "list", "a list of metric names", required=True),
    "uneven_heads": described("uneven_heads", "bool", "true to admit a tp that splits the heads unevenly (as GenZ)"),
}


def is_curve_study(data: Any) -> bool:
    return isinstance(data, dict) and data.get("study") == "curves"


def _mapping(path: Path, data: dict[str, Any], key: str) -> dict[str, Any]:
    v = data.get(key) or {}
    if not isinstance(v, dict):
        raise SpecError(f"{path}: key '{key}': expected a mapping")
    return v


def run_curve_study(spec_path: Path, outdir: Path, quiet: bool = False) -> xr.Dataset:
    """Evaluate the study, print its table, write the dataset, table and figure."""
    raw = read_mapping(spec_path)
    structured = {k: raw.get(k) for k in ("fixed", "draft_models", "x")}
    checked = check(spec_path, {k: v for k, v in raw.items() if k not in structured}, {
        k: v for k, v in CURVE_KEYS.items() if k not in structured
    })  # fmt: skip
    fixed, drafts, x = (_mapping(spec_path, raw, k) for k in ("fixed", "draft_models", "x"))
    if len(x) != 1 or not isinstance(next(iter(x.values())), list):
        raise SpecError(f"{spec_path}: key 'x': expected one knob with a list of values")
    ((x_key, x_vals),) = x.items()
    metrics = [str(m) for m in checked["metrics"]]
    for m in metrics:
        if m not in METRIC_INFO:
            raise SpecError(f"{spec_path}: metrics: unknown metric '{m}'")
    variants = checked["variants"]
    if not all(isinstance(v, dict) for v in variants):
        raise SpecError(f"{spec_path}: key 'variants': expected a list of mappings")
    models = [str(m) for m in checked["models"]]
    name = checked["name"]
    outputs = [outdir / f"{name}.{ext}" for ext in ("txt", "zarr", "png", "svg")]
    for p in outputs:
        refuse_foreign(p)
    labels = [str(var.get("name", "")) or ", ".join(f"{k}={v}" for k, v in var.items()) or "base" for var in variants]
    data = np.full((len(metrics), len(models), len(variants), len(x_vals)), np.nan)
    feasible = np.zeros((len(models), len(variants), len(x_vals)), dtype=bool)
    t0 = time.perf_counter()
    for i, m in enumerate(models):
        extra: dict[str, Any] = {}
        if m in drafts:  # a draft step costs its active parameters' share of a verify pass
            extra["draft_cost_ratio"] = float(
                active_params(load_model(drafts[m]).spec) / active_params(load_model(m).spec)
            )
        for j, var in enumerate(variants):
            knobs = {**fixed, **extra, **{k: v for k, v in var.items() if k not in ("batching", "name")}}
            ds = evaluate(
                m,
                checked["hardware"],
                levels=[checked.get("level", "calibrated")],
                dtype=checked.get("dtype", "bf16"),
                platform=checked.get("platform"),
                batching=var.get("batching", checked.get("batching", "static")),
                uneven_heads=checked.get("uneven_heads", False),
                **knobs,
                **{x_key: [float(v) for v in x_vals]},
            ).isel(level=0)
            for k, metric in enumerate(metrics):
                data[k, i, j] = ds[metric].values
            feasible[i, j] = ds.feasible.values
    coords = {"model": models, "variant": labels, x_key: [float(v) for v in x_vals]}
    out = xr.Dataset(
        {met: (("model", "variant", x_key), data[k], {"units": METRIC_INFO[met][0]}) for k, met in enumerate(metrics)},
        coords=coords,
    )
    out["feasible"] = (("model", "variant", x_key), feasible, {"units": "1"})
    out.attrs = {"study": name, "hardware": checked["hardware"], "spec": str(spec_path)}
    rows = []
    for i, m in enumerate(models):
        for j, lab in enumerate(labels):
            for n, xv in enumerate(x_vals):
                vals = [data[k, i, j, n] for k in range(len(metrics))]
                rows.append([m, lab, xv, *vals, bool(feasible[i, j, n])])
    head = ["model", "variant", x_key, *[f"{m} [{METRIC_INFO[m][0]}]" for m in metrics], "fits"]
    table = f"{checked.get('description', name)} ({checked['hardware']})\n" + render(head, rows)
    if not quiet:
        print(table)
        print(f"  evaluated in {time.perf_counter() - t0:.1f} s")
    with writing(outputs[0]) as tmp:
        tmp.write_text(table + "\n", encoding="utf-8")
    write_dataset(out, outputs[1])
    _figure(out, metrics, x_key, checked.get("description", name), outdir / name)
    if not quiet:
        print(f"wrote {', '.join(str(p) for p in outputs)}")
    return out


def _figure(ds: xr.Dataset, metrics: list[str], x_key: str, title: str, stem: Path) -> None:
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8), squeeze=False)
    for k, met in enumerate(metrics):
        ax = axes[0, k]
        for m in ds.model.values:
            for v in ds.variant.values:
                y = ds[met].sel(model=m, variant=v).where(ds.feasible.sel(model=m, variant=v))
                ax.plot(ds[x_key].values, y.values, marker="o", ms=3, label=f"{m}: {v}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(x_key)
        ax.set_ylabel(f"{met} [{METRIC_INFO[met][0]}]")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        for ext in ("png", "svg"):
            with writing(stem.with_suffix(f".{ext}")) as tmp:
                fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
