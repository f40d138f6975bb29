"""Charts of a sweep store, PNG and SVG: Pareto front, roofline, sensitivity, axis curves.

- Pareto: the feasible designs as a density (hexagonal bins, grey: dominated) and the front
  on top, coloured by the third objective when there is one.
- Roofline: the operators of the scenario (prefill pass and one decode step) of a chosen
  design on its chip's roofline, min(peak, AI · bandwidth) (docs/references.md#research-note, SIMT roofline), with the
  memory-bound region (left of the ridge point) shaded.
- Sensitivity: the elasticity ∂ log objective / ∂ log knob of each swept knob at chosen front
  designs, from the engine boundary's ``log_jacobian`` (forward mode through the same cost model) (integer knobs are relaxed to reals).
- Axis curves: each grid axis one at a time, the other axes at their middle value (or at
  scale 1 for relative axes), e.g. GenZ Fig. 16 from ``sweeps/hw_scaling.yaml``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.patches
import numpy as np

from dse.engine import float64, level_of, log_jacobian, with_knobs
from dse.specs import SpecError, refuse_foreign, writing
from dse.sweep import chunk_knobs, make_plan, open_sweep, parse_sweep
from models import widest

from ._pareto import store_pareto
from ._plan import OBJECTIVES

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402

PHASE_METRIC = {"prefill": "prefill_latency_s", "decode": "tpot_s", "request": "latency_s"}


CHARTS = ("pareto", "roofline", "sensitivity", "axes")


def save_figure(fig: Any, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    for p in paths:
        refuse_foreign(p)  # both checked before either is written
    try:
        for p in paths:
            with writing(p) as tmp:
                fig.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return paths


def _label(ds: Any, name: str) -> str:
    units = ds[name].attrs.get("units", "") if name in ds.variables else ""
    return f"{name} [{units}]" if units and units != "1" else name


def _plan(ds: Any) -> Any:
    plan = make_plan(parse_sweep(json.loads(ds.attrs["sweep_spec"]), source="sweep_spec"), int(ds.attrs["sweep_chunk"]))
    if tuple(ds[plan.spec.outputs[0]].dims) != tuple(plan.dims):  # the labels must not drift
        raise SpecError(f"sweep_spec: plans dimensions {plan.dims}, the store has {ds[plan.spec.outputs[0]].dims}")
    return plan


def plot_pareto(ds: Any, front: Any, objs: list[Any], out: Path, max_points: int = 2_000_000) -> list[Path]:
    x, y = objs[0].metric, objs[1].metric
    ok = np.asarray(ds.meets_constraints.values if "meets_constraints" in ds else ds.feasible.values).reshape(-1)
    empty = front.attrs.get("pareto_empty", "")
    if empty:  # nothing meets the constraints: show the feasible designs and say why
        ok = np.asarray(ds.feasible.values).reshape(-1)
    xs, ys = (np.asarray(ds[v].values).reshape(-1)[ok] for v in (x, y))
    keep = np.isfinite(xs) & np.isfinite(ys) & (xs > 0) & (ys > 0)  # log axes
    xs, ys = xs[keep], ys[keep]
    if len(xs) > max_points:
        pick = np.random.default_rng(0).choice(len(xs), max_points, replace=False)
        xs, ys = xs[pick], ys[pick]
    fig, ax = plt.subplots(figsize=(7, 5))
    if len(xs):
        ax.hexbin(xs, ys, gridsize=80, bins="log", cmap="Greys", mincnt=1, xscale="log", yscale="log", linewidths=0)
    fx, fy = front[x].values, front[y].values
    c = front[objs[2].metric].values if len(objs) > 2 else None
    style = {"c": c, "cmap": "viridis"} if c is not None else {"color": "tab:red"}
    # One marker per chip, so each streak of the front says whose it is.
    chips = np.asarray(front["hardware"].values).astype(str) if "hardware" in front.coords else np.full(len(fx), "")
    norm = matplotlib.colors.Normalize(np.nanmin(c), np.nanmax(c)) if c is not None and len(c) else None
    sc = None
    for marker, chip in zip("osD^vP*Xph<>", dict.fromkeys(chips), strict=False):
        sel = chips == chip
        part = {**style, "c": c[sel], "norm": norm} if c is not None else style
        label = f"{chip}: front ({int(sel.sum()):,})" if chip else f"Pareto front ({len(fx):,})"
        sc = ax.scatter(fx[sel], fy[sel], s=16, marker=marker, edgecolors="k", linewidths=0.3, zorder=3,
                        label=label, **part)  # fmt: skip
    if c is not None and sc is not None:
        fig.colorbar(sc, ax=ax, label=_label(ds, objs[2].metric))
    if len(xs) or len(fx):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"{'↑' if objs[0].maximize else '↓'} {_label(ds, x)}")
    ax.set_ylabel(f"{'↑' if objs[1].maximize else '↓'} {_label(ds, y)}")
    shown = empty.splitlines()[0] if empty else f"{len(xs):,} designs meeting the constraints"
    ax.set_title(f"{ds.attrs.get('sweep_name', '')}: {shown}", fontsize=9)
    shade = "feasible designs" if empty else "designs meeting the constraints, dominated"
    handles, labels = ax.get_legend_handles_labels()
    handles.append(matplotlib.patches.Patch(color="0.55"))
    labels.append(f"grey: {shade} (darker: more per cell, log)")
    ax.legend(handles, labels, loc="best", fontsize=7)
    return save_figure(fig, out, "pareto")


def _design_knobs(plan: Any, ds: Any, point: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """Group index and SI knob values of one design given its coordinates (file units)."""
    idx = tuple(list(ds[d].values).index(point[d]) for d in plan.group_dims)
    g = next(i for i, grp in enumerate(plan.groups) if grp.index == idx)
    values = {a.key: np.asarray([float(point[a.dim])]) for a in plan.spec.grid}
    values |= {a.key: np.asarray([float(point[a.key])]) for a in plan.spec.sampled}
    return g, {k: float(v[0]) for k, v in chunk_knobs(plan, g, values).items()}


def _points(ds: Any, front: Any, n: int) -> list[dict[str, Any]]:
    """Up to n designs spread along the front (or the first design of the store)."""
    if front is not None and front.sizes.get("front", 0):
        k = front.sizes["front"]
        picks = sorted({int(round(i)) for i in np.linspace(0, k - 1, min(n, k))})
        return [
            {
                c: front[c].values[i].item() if hasattr(front[c].values[i], "item") else front[c].values[i]
                for c in front.coords
            }
            for i in picks
        ]
    first = ds.isel({d: 0 for d in ds.dims if d in ds.tpot_s.dims})
    return [{c: first[c].values.item() for c in first.coords}]


def design_config(ds: Any, plan: Any, point: dict[str, Any]) -> tuple[Any, Any]:
    """(configuration, software level) of one design of a store, given its coordinates."""
    g, knobs = _design_knobs(plan, ds, point)
    cfg = with_knobs(plan.groups[g].config, {k: np.asarray(v) for k, v in knobs.items()})
    return cfg, level_of(plan.groups[g].software)


def chosen_design(ds: Any, front: Any) -> dict[str, Any]:
    """The design the roofline and the operator breakdown show: the front's first, else the first."""
    return _points(ds, front, 1)[0]


def plot_roofline(ds: Any, plan: Any, point: dict[str, Any], out: Path) -> list[Path]:
    cfg, sw = design_config(ds, plan, point)
    chip, sc, model, tp = cfg.chip, cfg.scenario, cfg.model, cfg.platform.tp
    dtypes = (sc.weight_dtype, sc.act_dtype, sc.kv_dtype)
    peak = float(chip.peak_flops_per_s(widest(sc.weight_dtype, sc.act_dtype)))
    bw = float(chip.memory_bandwidth_bytes_per_s)
    fig, ax = plt.subplots(figsize=(7, 5))
    all_ai: list[float] = []
    labels: list[tuple[str, float, float]] = []
    for label, new, past, marker in (
        ("prefill", sc.prompt_tokens, np.zeros_like(sc.prompt_tokens), "o"),
        ("decode step", np.ones_like(sc.batch), sc.prompt_tokens, "s"),
    ):
        # One configuration's operator table, eager (a chart, not a sweep: nothing to compile).
        with float64():
            ops = model.operator_table(sc, tp, new, past)
            cost = chip.operator_cost(sw, ops, *dtypes)
        t = np.maximum(np.asarray(cost.compute_s), np.asarray(cost.memory_s))
        flops, byts = np.asarray(ops.flops), np.asarray(ops.bytes)
        good = (flops > 0) & (byts > 0) & (t > 0)
        ai, perf = flops[good] / byts[good], flops[good] / t[good]
        all_ai += list(ai)
        ax.scatter(ai, perf, marker=marker, s=30, label=label, zorder=3)
        labels += list(zip(np.asarray(ops.names)[good], ai, perf, strict=True))
    ridge = peak / bw
    lo, hi = min([ridge / 100, *all_ai]) / 2, max([ridge * 100, *all_ai]) * 2
    xs = np.geomspace(lo, hi, 200)
    ax.plot(
        xs, np.minimum(peak, xs * bw), "k-", lw=1.5, label=f"roofline: {peak / 1e12:,.0f} TFLOP/s, {bw / 1e12:.2f} TB/s"
    )
    ax.axvspan(lo, ridge, color="tab:blue", alpha=0.08, label="memory-bound")
    ax.axvspan(ridge, hi, color="tab:red", alpha=0.05, label="compute-bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity [FLOP/B]")
    ax.set_ylabel("attained [FLOP/s]")
    where = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in point.items()
        if (k in plan.dims or k in {a.key for a in plan.spec.sampled}) and k != "design"
    )
    ax.set_title(textwrap.fill(f"roofline of the chosen design ({where})", 90), fontsize=7)
    ax.legend(fontsize=7, loc="lower right")
    place_labels(ax, labels)
    return save_figure(fig, out, "roofline")


def place_labels(ax: Any, points: list[tuple[str, float, float]], fontsize: float = 6) -> None:
    """Label data points without two labels (or a label and the legend) overlapping: points
    closer than a few pixels share one label; each label takes the first free spot of eight
    around its point; a label with no free spot is left out and named in a note under the axes."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    groups: list[tuple[list[str], Any]] = []
    for name, x, y in points:
        xy = ax.transData.transform((x, y))
        for names, at in groups:
            if np.hypot(*(xy - at)) < 4:
                if str(name) not in names:
                    names.append(str(name))
                break
        else:
            groups.append(([str(name)], xy))
    legend = ax.get_legend()
    taken = [legend.get_window_extent(renderer)] if legend is not None else []
    offsets = ((3, 3), (3, -9), (-3, 3), (-3, -9), (6, -3), (-6, -3), (0, 8), (0, -14))
    left = []
    for names, at in groups:
        text = ", ".join(names)
        point = ax.transData.inverted().transform(at)
        for dx, dy in offsets:
            t = ax.annotate(text, point, fontsize=fontsize, xytext=(dx, dy), textcoords="offset points",
                            ha="left" if dx >= 0 else "right")  # fmt: skip
            box, frame = t.get_window_extent(renderer), ax.get_window_extent(renderer)
            if (
                frame.contains(box.x0, box.y0)
                and frame.contains(box.x1, box.y1)
                and not any(box.overlaps(b) for b in taken)
            ):
                taken.append(box)
                break
            t.remove()
        else:
            left += names
    if left:
        ax.text(0.0, -0.16, textwrap.fill("not labelled (no free space): " + ", ".join(left), 110),
                transform=ax.transAxes, fontsize=fontsize, va="top")  # fmt: skip


def sensitivities(plan: Any, ds: Any, points: list[dict[str, Any]], metrics: list[str]) -> dict[str, np.ndarray]:
    """Elasticities ∂ log metric / ∂ log knob at each point: {metric: [n_points, n_knobs]}.

    One forward-mode Jacobian of the log metrics in the log knobs per point, through the
    engine's boundary (a gradient, not a sweep: no vmap).
    """
    rows = []
    for point in points:
        g, knobs = _design_knobs(plan, ds, point)
        sw = level_of(plan.groups[g].software)
        rows.append(log_jacobian(plan.groups[g].config, knobs, sw, metrics))
    return {m: np.stack([r[j] for r in rows]) for j, m in enumerate(metrics)}


def plot_sensitivity(ds: Any, plan: Any, points: list[dict[str, Any]], objs: list[Any], out: Path) -> list[Path]:
    metrics = [o.metric for o in objs] or ["tpot_s"]
    sens = sensitivities(plan, ds, points, metrics)
    keys = [a.key for a in plan.spec.grid] + [a.key for a in plan.spec.sampled]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 0.35 * len(keys) + 2), squeeze=False,
                             sharey=True, layout="constrained")  # fmt: skip
    for ax, m in zip(axes[0], metrics, strict=True):
        e = sens[m]
        h = 0.8 / len(points)
        for i in range(len(points)):
            ax.barh(np.arange(len(keys)) + i * h, e[i], height=h, label=f"front design {i + 1}")
        ax.set_yticks(np.arange(len(keys)) + 0.4 - h / 2, keys, fontsize=7)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel(f"∂ log {m}\n/ ∂ log knob", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("sensitivity (elasticity, forward-mode derivative) at chosen designs", fontsize=9)
    return save_figure(fig, out, "sensitivity")


def plot_axes(ds: Any, plan: Any, out: Path) -> list[Path]:
    """Each grid axis one at a time (others at scale 1 or their middle value)."""
    grid = plan.spec.grid
    if not grid:
        return []
    base_sel = {}
    for a in grid:
        vals = list(a.values)
        base_sel[a.dim] = 1.0 if a.relative and 1.0 in vals else vals[len(vals) // 2]
    if plan.spec.sampled:
        base_sel["design"] = 0
    panels = [("metric", m) for m in _axis_metrics(ds, plan)]
    fig, axes = plt.subplots(len(panels), len(grid), figsize=(4 * len(grid), 3 * len(panels)), squeeze=False)
    for j, a in enumerate(grid):
        sel = {k: v for k, v in base_sel.items() if k != a.dim}
        isel = {"design": sel.pop("design")} if "design" in sel else {}
        sub = ds.sel(sel).isel(isel)
        for i, (_, m) in enumerate(panels):
            ax = axes[i][j]
            da = sub[m]
            others = [d for d in da.dims if d != a.dim]
            if others:
                st = da.stack(line=others)
                for k in range(st.sizes["line"]):
                    lab = ", ".join(str(v) for v in np.atleast_1d(st.line.values[k]))
                    ax.plot(st[a.dim].values, st.isel(line=k).values, "o-", ms=3, label=lab)
                ax.legend(fontsize=6)
            else:
                ax.plot(da[a.dim].values, da.values, "o-", ms=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(_label(ds, a.dim))
            ax.set_ylabel(_label(ds, m), fontsize=7)
    fig.suptitle(f"{ds.attrs.get('sweep_name', '')}: one axis at a time", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, "axes")


def _axis_metrics(ds: Any, plan: Any) -> list[str]:
    phases = {s.phase for s in plan.spec.scenarios}
    if phases == {"decode"}:
        wanted = ["decode_flops", "decode_arithmetic_intensity_flop_per_byte", "tpot_s", "decode_mbu"]
    elif len(phases) > 1 or phases == {"prefill"}:
        wanted = ["prefill_latency_s", "tpot_s"]
    else:
        wanted = ["latency_s", "throughput_tokens_per_s_per_chip", "j_per_token", "usd_per_mtok"]
    return [m for m in wanted if m in ds.data_vars]


def plot_store(
    store: Path,
    out: Path,
    objectives: list[str] | None = None,
    constraints: list[str] | None = None,
    n_designs: int = 3,
    partial: bool = False,
) -> list[Path]:
    """Every chart that applies to the store; returns the files written under ``out``."""
    if n_designs <= 0:
        raise SpecError(f"--designs: {n_designs}: expected an integer > 0")
    for name in CHARTS:  # every file it may write is checked before any is written
        for ext in ("png", "svg"):
            refuse_foreign(out / f"{name}.{ext}")
    ds = open_sweep(store, partial)
    plan = _plan(ds)
    paths: list[Path] = []
    front, objs = None, []
    if len(objectives or ds.attrs.get("objectives", [])) >= 2:
        front, objs, _, _ = store_pareto(store, objectives, constraints, partial)
        paths += plot_pareto(ds, front, objs, out)
    points = _points(ds, front, n_designs)
    paths += plot_roofline(ds, plan, chosen_design(ds, front), out)
    if plan.spec.grid or plan.spec.sampled:
        paths += plot_sensitivity(ds, plan, points, objs, out)
    if plan.spec.grid and (not plan.spec.sampled or front is None):
        paths += plot_axes(ds, plan, out)
    return paths


def plot_curves(results: Sequence[dict[str, Any]], question: Any) -> Any:
    """Throughput per chip and $/1M tokens against tokens/s per user, one line per chip
    (hypothetical variants dashed), labelled in the legend; the TPOT SLO
    is a vertical line and each chip's best deployment a ring. Returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    colours = plt.get_cmap("tab10")
    reals = [r for r in results if r["kind"] == "real"]
    colour_of = {r["hardware"]: colours(i % 10) for i, r in enumerate(reals)}
    for r in results:
        if not r["curve"]:
            continue
        x = np.array([p["tokens_per_s_per_user"] for p in r["curve"]])
        style = dict(color=colour_of.get(r["hardware"], "grey"), marker="o", markersize=3, linewidth=1.4)
        if r["kind"] != "real":
            style |= dict(linestyle="--", marker="^", alpha=0.8)
        for ax, metric in zip(axes, ("throughput_tokens_per_s_per_chip", "usd_per_mtok"), strict=True):
            ax.plot(x, [p[metric] for p in r["curve"]], label=r["label"], **style)
            best = r["best"]
            if best is not None:
                ax.plot(1.0 / best["tpot_s"], best[metric], marker="o", markersize=9, markerfacecolor="none",
                        markeredgecolor=style["color"], linestyle="none")  # fmt: skip
    for ax, title in zip(axes, ("tokens/s per chip", "$ per 1M tokens"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens/s per user (1 / TPOT)")
        ax.set_ylabel(title)
        ax.grid(True, which="major", alpha=0.3)
        if question.slo.tpot_s:
            ax.axvline(1.0 / question.slo.tpot_s, color="black", linewidth=0.8, linestyle=":")
    axes[0].set_title(f"{question.model}: throughput vs interactivity", fontsize=10)
    axes[1].set_title(f"cost ({OBJECTIVES['usd_per_mtok'][2]}) vs interactivity", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    if question.slo.tpot_s:
        handles.append(plt.Line2D([], [], color="black", linewidth=0.8, linestyle=":"))
        labels.append(f"TPOT SLO {question.slo.tpot_s * 1e3:g} ms")
    handles.append(plt.Line2D([], [], color="grey", marker="o", markersize=9, markerfacecolor="none", linestyle="none"))
    labels.append(f"cheapest meeting the SLOs ({question.objective})")
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig


def text_overlaps(fig: Any) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of ``fig`` whose drawn boxes intersect (a layout check)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            if ba.overlaps(bb) and ba.intersection(ba, bb) is not None:
                inter = ba.intersection(ba, bb)
                if inter.width > 1 and inter.height > 1:
                    out.append((a, b))
    return out


def plot_latency_vs_rate(lines: list[dict[str, Any]], out: Path) -> list[Path]:
    """Tail latency against the request rate, a line per deployment: p50 (dashed) and p99 TTFT,
    p90 (dashed) and p99 TPOT, each deployment's saturation rate dotted. ``lines``: dicts of
    ``label``, ``rate_rps`` and the metrics' arrays along it, and ``saturation_rate_rps``."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, line in enumerate(lines):
        colour = f"C{i % 10}"
        rate = np.asarray(line["rate_rps"])
        for ax, (lo, hi) in zip(axes, (("p50_ttft_s", "p99_ttft_s"), ("p90_tpot_s", "p99_tpot_s")), strict=True):
            ax.plot(rate, np.asarray(line[hi]) * 1e3, "-", color=colour, marker="o", ms=3, label=line["label"])
            ax.plot(rate, np.asarray(line[lo]) * 1e3, "--", color=colour, lw=1)
            ax.axvline(line["saturation_rate_rps"], color=colour, ls=":", lw=1)
    for ax, name in zip(axes, ("TTFT [ms]: p99 (solid), p50 (dashed)", "TPOT [ms]: p99 (solid), p90 (dashed)"),
                        strict=True):  # fmt: skip
        ax.set_xlabel("requests arriving [request/s] (dotted: saturation)")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, out, "latency_vs_rate")
