"""Platform specs (GenZ Table VII) and the platform comparison study (the shape of GenZ Fig. 17).

A platform spec names a catalog chip and how a model replica is laid out on it (TP, PP; no
PP for SRAM-only chips means "as many stages as capacity demands"). The study evaluates
models × platforms at prefill and decode and reports throughput and throughput per joule,
each normalized to the best platform of its row, with out-of-memory marked.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import xarray as xr

from dse.engine import evaluate
from dse.specs import (
    KeyInfo,
    PlatformEntry,
    SpecError,
    check,
    described,
    load_hardware,
    load_platform,
    read_mapping,
    refuse_foreign,
    suggest,
    write_dataset,
    writing,
)
from models import DTYPES, INFEASIBLE_REASONS

from ._table import render

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402

STUDY_KEYS: dict[str, KeyInfo] = {
    "study": described("study", "choice", "the study kind", required=True, choices=("platforms",)),
    "description": described("description", "str", "text"),
    "models": described("models", "list", "a list of catalog model ids", required=True),
    "platforms": described("platforms", "list", "a list of platform ids or {hardware, tp, pp} mappings", required=True),
    "batch": described("batch", "int", "an integer > 0", required=True),
    "prompt_tokens": described("prompt_tokens", "int", "an integer > 0", required=True),
    "output_tokens": described("output_tokens", "int", "an integer > 0", required=True),
    "dtype": described("dtype", "str", "bf16, fp16, fp8, int8, int4 or fp4"),
}


def _study_platforms(path: Path, items: list[Any]) -> list[PlatformEntry]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            try:
                out.append(load_platform(item))
            except SpecError as e:
                raise SpecError(f"{path}: platforms[{i}]: {e}") from None
        elif isinstance(item, dict) and "hardware" in item:
            unknown = set(item) - {"hardware", "tp", "pp", "name"}
            if unknown:
                k = sorted(unknown)[0]
                raise SpecError(f"{path}: platforms[{i}]: unknown key '{k}'{suggest(k, ['hardware', 'tp', 'pp'])}")
            for k in ("tp", "pp"):
                if not isinstance(item.get(k, 1), int) or item.get(k, 1) <= 0:
                    raise SpecError(f"{path}: platforms[{i}]: key '{k}': expected an integer > 0")
            try:
                load_hardware(item["hardware"])
            except SpecError as e:
                raise SpecError(f"{path}: platforms[{i}]: {e}") from None
            hid = item["hardware"]
            out.append(
                PlatformEntry(
                    item.get("name", hid), item.get("name", hid), hid, item.get("tp", 1), item.get("pp", 1), None, None
                )
            )
        else:
            raise SpecError(f"{path}: platforms[{i}]: expected a platform id or a mapping with 'hardware'")
    return out


def run_platform_study(spec_path: Path, outdir: Path, quiet: bool = False) -> xr.Dataset:
    """Evaluate the study, print the normalized table, write the dataset, table and figure."""
    data = read_mapping(spec_path)
    raw_lists = {k: data.get(k) for k in ("models", "platforms")}
    for k, v in raw_lists.items():
        if not isinstance(v, list) or not v:
            raise SpecError(f"{spec_path}: key '{k}': expected a non-empty list")
    checked = check(
        spec_path,
        {k: v for k, v in data.items() if k not in raw_lists},
        {k: v for k, v in STUDY_KEYS.items() if k not in raw_lists},
    )
    dtype = checked.get("dtype", "bf16")
    if dtype not in DTYPES:
        raise SpecError(f"{spec_path}: key 'dtype' = {dtype!r}: expected one of {', '.join(DTYPES)}")
    platforms = _study_platforms(spec_path, raw_lists["platforms"])
    models = [str(m) for m in raw_lists["models"]]
    b, s, d = checked["batch"], checked["prompt_tokens"], checked["output_tokens"]
    shape = (len(models), len(platforms))
    arrays = {
        k: np.zeros(shape)
        for k in (
            "prefill_tokens_per_s",
            "decode_tokens_per_s",
            "prefill_tokens_per_j",
            "decode_tokens_per_j",
            "n_chips",
        )
    }
    feasible = np.zeros(shape, dtype=bool)
    reason = np.zeros(shape, dtype=np.int8)
    tty = sys.stdout.isatty() and not quiet
    t0 = time.perf_counter()
    for i, m in enumerate(models):
        for j, p in enumerate(platforms):
            ds = evaluate(
                m,
                p.hardware,
                platform=p if p.network else None,
                levels=["calibrated"],
                dtype=dtype,
                tp=p.tp,
                pp=p.pp,
                batch=b,
                prompt_tokens=s,
                output_tokens=d,
                uneven_heads=True,  # GenZ's TP 64 for SRAM chipsets splits GPT-3's 96 heads unevenly
            ).isel(level=0)
            arrays["prefill_tokens_per_s"][i, j] = float(ds.prefill_tokens_per_s)
            arrays["decode_tokens_per_s"][i, j] = b * d / float(ds.decode_latency_s)
            arrays["prefill_tokens_per_j"][i, j] = b * s / float(ds.prefill_energy_j)
            arrays["decode_tokens_per_j"][i, j] = b * d / float(ds.decode_energy_j)
            arrays["n_chips"][i, j] = float(ds.n_chips)
            feasible[i, j] = bool(ds.feasible)
            reason[i, j] = int(ds.infeasible_reason)
            if tty:
                print(f"\r  evaluated {i * len(platforms) + j + 1}/{np.prod(shape)}", end="", flush=True)
    if not quiet:
        print(
            f"{chr(13) if tty else ''}  evaluated {np.prod(shape)} model × platform pairs in {time.perf_counter() - t0:.1f} s"
        )
    units = {
        "prefill_tokens_per_s": "token/s",
        "decode_tokens_per_s": "token/s",
        "prefill_tokens_per_j": "token/J",
        "decode_tokens_per_j": "token/J",
        "n_chips": "1",
    }
    coords = {"model": np.array(models, dtype=object), "platform": np.array([p.id for p in platforms], dtype=object)}
    ds = xr.Dataset({k: (("model", "platform"), v, {"units": units[k]}) for k, v in arrays.items()}, coords=coords)
    ds["feasible"] = (("model", "platform"), feasible, {"units": "1", "description": "fits and respects constraints"})
    ds["infeasible_reason"] = (
        ("model", "platform"),
        reason,
        {"units": "1", "flag_meanings": " | ".join(INFEASIBLE_REASONS)},
    )
    for k in ("prefill_tokens_per_s", "decode_tokens_per_s", "prefill_tokens_per_j", "decode_tokens_per_j"):
        best = ds[k].where(ds.feasible).max("platform")
        ds[f"normalized_{k}"] = (ds[k] / best).where(ds.feasible)
        ds[f"normalized_{k}"].attrs = {"units": "1", "description": f"{k} / best feasible platform of the model"}
    ds.attrs = {"batch": b, "prompt_tokens": s, "output_tokens": d, "dtype": dtype, "spec": str(spec_path)}
    outputs = [outdir / f"platforms.{ext}" for ext in ("txt", "zarr", "png", "svg")]
    for p in outputs:
        refuse_foreign(p)  # all checked before any is written
    table = _table(ds)
    print(table)
    with writing(outputs[0]) as tmp:
        tmp.write_text(table + "\n", encoding="utf-8")
    write_dataset(ds, outputs[1])
    _figure(ds, outdir)
    print(f"wrote {outdir / 'platforms.zarr'}, {outdir / 'platforms.txt'}, {outdir / 'platforms.png'} and .svg")
    return ds


_X_LABEL = {1: "X (OOM)", 2: "X (tp>heads)", 3: "X (pp>layers)", 4: "X (undefined)"}


def _table(ds: xr.Dataset) -> str:
    rows = []
    for m in ds.model.values:
        for stage in ("prefill", "decode"):
            row: list[Any] = [str(m), stage]
            for p in ds.platform.values:
                c = ds.sel(model=m, platform=p)
                if not bool(c.feasible):
                    row.append(_X_LABEL.get(int(c.infeasible_reason), "X"))
                else:
                    tput = float(c[f"normalized_{stage}_tokens_per_s"])
                    eff = float(c[f"normalized_{stage}_tokens_per_j"])
                    row.append(f"{tput:.2f} / {eff:.2f}")
            rows.append(row)
    head = ["model", "stage", *[str(p) for p in ds.platform.values]]
    return (
        "Normalized throughput / throughput per joule (1.00 = best feasible platform of the row; "
        f"batch {ds.attrs['batch']}, prompt {ds.attrs['prompt_tokens']}, {ds.attrs['output_tokens']} output "
        f"tokens, {ds.attrs['dtype']})\n" + render(head, rows)
    )


def _figure(ds: xr.Dataset, outdir: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharey=True)
    plats = [str(p) for p in ds.platform.values]
    x = np.arange(ds.sizes["model"])
    width = 0.8 / len(plats)
    for r, stage in enumerate(("prefill", "decode")):
        for c, (metric, label) in enumerate(
            (("tokens_per_s", "normalized throughput"), ("tokens_per_j", "normalized throughput / energy"))
        ):
            ax = axes[r, c]
            vals = ds[f"normalized_{stage}_{metric}"]
            for k, p in enumerate(plats):
                v = vals.sel(platform=p).values
                ok = ds.feasible.sel(platform=p).values
                pos = x + (k - len(plats) / 2 + 0.5) * width
                ax.bar(pos, np.where(ok, v, 0.0), width, label=p)
                for xx in pos[~ok]:
                    ax.text(xx, 0.02, "X", ha="center", va="bottom", fontsize=8, color="crimson")
            ax.set_xticks(x, [str(m) for m in ds.model.values], fontsize=8)
            ax.set_title(f"{stage}: {label}", fontsize=10)
            ax.set_ylim(0, 1.1)
            ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"Platforms (after GenZ Fig. 17): batch {ds.attrs['batch']}, prompt {ds.attrs['prompt_tokens']}, "
        f"{ds.attrs['output_tokens']} output tokens; X = out of memory",
        fontsize=11,
    )
    fig.tight_layout()
    try:
        for ext in ("png", "svg"):
            with writing(outdir / f"platforms.{ext}") as tmp:
                fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
