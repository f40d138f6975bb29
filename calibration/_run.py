"""The calibration workflow behind ``inferbench calibrate``, ``validate`` and ``bench --calibration``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import matplotlib
import numpy as np
import pandas as pd

from calibration import _data, _fit
from calibration._params import chip_from
from dse._version import __version__
from dse.engine import calibrated_software, in_float64
from dse.specs import (
    SpecError,
    check_fitted_writable,
    load_hardware,
    make_parent,
    read_fitted,
    software_from_mapping,
    software_to_mapping,
    write_fitted,
    writing,
)
from models import achievable_software

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402

CALIBRATABLE = (_fit.KERNEL_HARDWARE, _fit.SYSTEM_HARDWARE)
TARGETS_PCT = {  # held-out MAPE bounds stated by the issue (and checked by the tests)
    "kernel_gemm": 10.0,
    "allreduce": 15.0,
    "static_latency": 15.0,
    "serving_energy": 20.0,
}


def _chips():
    return (
        load_hardware(_fit.KERNEL_HARDWARE, calibrated=False).spec,
        load_hardware(_fit.SYSTEM_HARDWARE, calibrated=False).spec,
    )


@in_float64
def evaluate(prep: _fit.Prepared, software: Mapping[str, Any], chip_values: Mapping[str, float]) -> pd.DataFrame:
    """Every row with ``before`` (datasheet + seed derating) and ``after`` predictions."""
    k80, k40 = _chips()
    df = prep.meta
    df["before"] = _fit.predict_all(prep, {_fit.DEFAULT_FRAMEWORK: achievable_software()}, k80, k40)
    df["after"] = _fit.predict_all(prep, dict(software), chip_from(k80, chip_values), chip_from(k40, chip_values))
    return df


@in_float64
def shipped(prep: _fit.Prepared, hardware_id: str = _fit.SYSTEM_HARDWARE) -> pd.DataFrame:
    """Predictions of the shipped fitted file (no fitting)."""
    data = read_fitted(hardware_id)
    if data is None:
        raise SpecError(
            f"calibration/fitted/{hardware_id}.yaml: no fitted file: run `inferbench calibrate "
            f"--hardware {hardware_id} --write` first"
        )
    base = dict(data["software"])
    software = {fw: software_from_mapping(base | dict(v)) for fw, v in (data.get("frameworks") or {}).items()}
    software.setdefault(_fit.DEFAULT_FRAMEWORK, software_from_mapping(base))
    return evaluate(prep, software, {k: float(v) for k, v in (data.get("chip") or {}).items()})


def tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """MAPE tables: per data set, per operator kind/op, per phase (train and held-out)."""
    return {
        "dataset": _fit.mape_table(df, ("dataset", "framework", "split")),
        "op": _fit.mape_table(
            df[df["dataset"].str.startswith("kernel") | df["dataset"].isin(["allreduce", "send_recv"])],
            ("dataset", "op", "split"),
        ),
        "phase": _fit.mape_table(df, ("dataset", "phase", "split")),
    }


def interval_stats(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Held-out log errors log(measured / predicted) per data set (train rows if none held out);
    the rows of a framework other than its data set's main one under ``<dataset>@<framework>``."""
    out = {}
    df = df[~df["excluded"]]
    main = df.groupby("dataset")["framework"].agg(lambda f: f.value_counts().index[0])
    keys = np.where(df["framework"] == df["dataset"].map(main), df["dataset"], df["dataset"] + "@" + df["framework"])
    for name, g in df.groupby(keys):
        h = g[g["split"] == "held-out"]
        h = h if len(h) else g
        r = np.log(h["measured"].to_numpy() / h["after"].to_numpy())
        out[str(name)] = {
            "mean_log": float(r.mean()),
            "sd_log": float(r.std(ddof=1)) if len(r) > 1 else 0.0,
            "q05_log": float(np.quantile(r, 0.05)),
            "q95_log": float(np.quantile(r, 0.95)),
            "rows": "held-out" if (g["split"] == "held-out").any() else "train",
            "n": len(h),
        }
    return out


@in_float64
def compare_forms(prep: _fit.Prepared, steps: int, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Leave-one-model-out GEMM and elementwise MAPE of the two utilization forms."""
    rows = []
    for form in _fit.UTIL_FORMS:
        lomo = _fit.leave_one_model_out(prep, form, steps, progress)
        lomo = lomo[lomo["dataset"].str.startswith("kernel")]
        for ds, g in lomo.groupby("dataset"):
            e = _fit.ape(g)
            rows.append(
                {
                    "util_form": form,
                    "dataset": ds,
                    "n": len(g),
                    "lomo_mape_pct": 100 * e.mean(),
                    "lomo_median_ape_pct": 100 * float(np.median(e)),
                }
            )
    return pd.DataFrame(rows)


@in_float64
def calibrate(
    hardware_id: str,
    util_form: str | None = None,
    steps: int = 100,
    output_dir: Path | None = None,
    data_dir: Path | None = None,
    compare: bool = True,
    log=print,
) -> dict[str, Any]:
    """Fit from scratch, validate, and write ``calibration/fitted/<hardware_id>.yaml``.
    ``log`` receives the comparison table and a line as each stage starts (progress)."""
    check_fitted_writable(hardware_id, output_dir)  # before the fit, not after it
    t0 = time.perf_counter()
    stage = lambda what: log(f"calibrate: {time.perf_counter() - t0:5.1f} s  {what}")  # noqa: E731
    stage("loading the measurements")
    prep = _fit.prepare(data_dir)
    forms = None
    if compare:
        stage(f"comparing the utilization forms {', '.join(_fit.UTIL_FORMS)} (leave one model out)")
        forms = compare_forms(prep, steps, stage)
        log(forms.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
        if util_form is None:
            gemm = forms[forms["dataset"] == "kernel_gemm"].set_index("util_form")["lomo_mape_pct"]
            util_form = str(gemm.idxmin())
    util_form = util_form or "wave"
    stage(
        f"fitting kernels, collectives, frameworks and power (form '{util_form}'; L-BFGS steps: {steps} for the "
        f"kernels, {max(steps, _fit.SYSTEM_STEPS)} for the systems)"
    )
    result = _fit.fit(prep, util_form, steps)
    fit_s = time.perf_counter() - t0
    stage("evaluating every measurement with the fit")
    software = {fw: result.software(fw) for fw in _fit.FRAMEWORK_NAMES}
    df = evaluate(prep, software, result.chip_values())
    tab = tables(df)
    frameworks = {
        fw: {k.split("@")[0]: float(v) for k, v in result.system_values.items() if k.endswith(f"@{fw}")}
        for fw in _fit.FRAMEWORK_NAMES
    }
    sd = {**result.kernel_sd, **result.system_sd}
    content = {
        "hardware": hardware_id,
        "software_version": __version__,
        "util_form": util_form,
        "default_framework": _fit.DEFAULT_FRAMEWORK,
        "notes": _notes(hardware_id),
        "software": software_to_mapping(software[_fit.DEFAULT_FRAMEWORK]),
        "frameworks": frameworks,
        # The power model was measured on the 40 GB part only; other chips keep their datasheet.
        "chip": result.chip_values() if hardware_id == _fit.SYSTEM_HARDWARE else {},
        "uncertainty": {
            "method": "Laplace (jax.hessian of the NLL at the optimum; rows of one model are "
            "correlated, so these are lower bounds)",
            "sd": sd,
        },
        "intervals": interval_stats(df),
        "split": {
            "held_out_models": list(_fit.HELD_OUT_MODELS),
            "held_out_collective_gpus": _fit.HELD_OUT_COLLECTIVE_GPUS,
            "ml_energy_prompt_tokens": dict(_fit.ML_ENERGY_PROMPT_TOKENS),
            "excluded_static_rows_kv_overflow": int((df["excluded_why"] == "kv_overflow").sum()),
            "excluded_static_rows_below_roofline": int((df["excluded_why"] == "below_roofline").sum()),
            "excluded_static_rows_identical_prompts_moe": int((df["excluded_why"] == "identical_prompts_moe").sum()),
        },
        "data": {"digest": _fit.data_digest(prep.file_hashes), "files": prep.file_hashes},
        "fit": {
            "steps": steps,
            "optimizer": "optax.lbfgs (zoom line search), one jitted lax.scan per stage",
            "kernel_loss": result.kernel_loss,
            "system_loss": result.system_loss,
            "fit_s": round(fit_s, 1),
        },
        "util_form_comparison": forms.to_dict("records") if forms is not None else None,
        "mape": tab["dataset"].round(3).to_dict("records"),
    }
    path = write_fitted(hardware_id, content, output_dir)
    return {"path": path, "tables": tab, "df": df, "result": result, "fit_s": fit_s, "forms": forms}


# The baseline the kernel model must beat off its fitted shapes: a roofline at 80 % of the
# datasheet peak and bandwidth (two constants, no shape dependence).
ROOFLINE_SHARE = 0.8


@in_float64
def gemm_generalization(data_dir: Path | None = None, hardware_id: str = _fit.KERNEL_HARDWARE) -> pd.DataFrame:
    """The calibrated GEMM model and the two-constant roofline on public A100 GEMMs that no fit
    saw (``_data.load_public_gemms``): per shape, the measured and both predicted times."""
    hw = load_hardware(hardware_id)
    sw = calibrated_software(hw)
    df = _data.load_public_gemms(data_dir)
    m, n, k = (df[c].to_numpy(float) for c in ("m", "n", "k"))
    flops, bytes_ = 2.0 * m * n * k, 2.0 * (m * k + k * n + m * n)  # 16-bit operands, one pass
    d = {"flops": flops, "bytes": bytes_, "m": m, "n": n, "k": k, "is_gemm": np.ones(len(df), bool)}
    df["fitted_s"] = np.asarray(_fit.kernel_time_s(hw.spec, sw, {c: jnp.asarray(v) for c, v in d.items()}))
    peak, bw = float(hw.spec.peak_bf16_flops_per_s), float(hw.spec.memory_bandwidth_bytes_per_s)
    df["roofline_s"] = np.maximum(flops / (ROOFLINE_SHARE * peak), bytes_ / (ROOFLINE_SHARE * bw))
    return df


def _notes(hardware_id: str) -> str:
    common = (
        "Software (utilization curve, bandwidth efficiency, kernel and collective overheads) fitted on Vidur "
        "kernels and NCCL collectives of an A100 80 GB; framework overheads and the power model fitted on "
        "LLM-Inference-Bench and ML.ENERGY runs of the A100-SXM4-40GB, with the kernel-level software fixed."
    )
    if hardware_id == _fit.KERNEL_HARDWARE:
        return common + (
            " No power measurements of the 80 GB part: its power model stays the datasheet/seed one "
            "(the 40 GB fit of the same GA100 die is in a100-sxm4-40gb.yaml)."
        )
    return common


@in_float64
def validate(
    output_dir: Path,
    hardware_id: str = _fit.SYSTEM_HARDWARE,
    data_dir: Path | None = None,
    plots: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """MAPE tables of the shipped fit and parity plots (held-out points marked); ``log``
    receives a line as each stage starts (progress)."""
    if plots:
        make_parent(output_dir / "parity.png")  # before the work, not after it
    t0 = time.perf_counter()
    stage = lambda what: log(f"validate: {time.perf_counter() - t0:5.1f} s  {what}")  # noqa: E731
    stage("loading the measurements")
    prep = _fit.prepare(data_dir)
    rows = len(prep.kernel_meta) + len(prep.collective_meta) + len(prep.system_meta)
    stage(f"predicting {rows:,} measurements with the shipped fit of {hardware_id}")
    df = shipped(prep, hardware_id)
    tab = tables(df)
    if plots:
        stage(f"drawing parity plots under {output_dir}")
    written = parity_plots(df, output_dir) if plots else []
    return {"tables": tab, "df": df, "plots": written}


def parity_plots(df: pd.DataFrame, output_dir: Path) -> list[Path]:
    make_parent(output_dir / "parity.png")
    out = []
    for name, g in df[~df["excluded"]].groupby("dataset"):
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for split, marker, color in (("train", "o", "tab:blue"), ("held-out", "^", "tab:red")):
            h = g[g["split"] == split]
            if len(h) > 4000:  # thin dense scatter for the figure only
                h = h.iloc[:: len(h) // 4000 + 1]
            ax.scatter(h["measured"], h["after"], s=6, marker=marker, color=color, alpha=0.6, label=split)
        lo = float(min(g["measured"].min(), g["after"].min()))
        hi = float(max(g["measured"].max(), g["after"].max()))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        for f in (0.85, 1.15):
            ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        source, quantity, unit, _ = _fit.DATASETS[str(name)]
        ax.set_xlabel(f"measured {quantity} ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(f"{name} ({source})", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = output_dir / f"parity_{name}.png"
        try:
            with writing(path) as tmp:
                fig.savefig(tmp, dpi=120)
        finally:
            plt.close(fig)
        out.append(path)
    return out


def format_table(tab: pd.DataFrame) -> str:
    return tab.to_string(index=False, float_format=lambda x: f"{x:.1f}")


def against_shipped(refit: Mapping[str, Any], shipped_fit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each fitted parameter of a refit next to the shipped fit's value and its Laplace standard
    deviation: ``moved`` is the change in those deviations (|change| ≤ 2: the data do not tell
    the two apart; a parameter whose deviation is as large as its value, or zero at a bound, is
    poorly determined)."""
    sd = shipped_fit.get("uncertainty", {}).get("sd", {})
    rows = []
    sections = [("software", "", shipped_fit.get("software", {}), refit.get("software", {}))]
    sections += [
        ("frameworks", f"@{name}", params, refit.get("frameworks", {}).get(name, {}))
        for name, params in shipped_fit.get("frameworks", {}).items()
    ]
    sections.append(("chip", "", shipped_fit.get("chip", {}), refit.get("chip", {})))
    for section, suffix, old, new in sections:
        for key, value in old.items():
            if not isinstance(value, (int, float)) or key not in new or (section == "software" and key not in sd):
                continue
            s = sd.get(f"{key}{suffix}", sd.get(key))
            s = float(s) if isinstance(s, (int, float)) else float("nan")
            change = float(new[key]) - float(value)
            rows.append(
                {
                    "parameter": f"{key}{suffix}",
                    "shipped": float(value),
                    "refit": float(new[key]),
                    "sd": s,
                    "moved_sd": abs(change) / s if s > 0 else (0.0 if change == 0 else float("inf")),
                    # A deviation as large as the value, or none at all (the Laplace approximation is
                    # degenerate where a parameter sits at its bound): the data do not determine it.
                    "poorly_determined": bool(s >= abs(float(value)) or s == 0) if s == s else False,
                }
            )
    return rows
