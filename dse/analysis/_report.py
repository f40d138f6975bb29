"""One self-contained HTML report of a sweep store: the study's specification, the Pareto
front (chart and table), the roofline, the sensitivities, the best designs at the three
efficiency levels, the calibration status of each chip and prediction intervals.

Charts are the SVGs of :func:`plot_store`, inlined; no script, style sheet or font is fetched,
so the file opens without a network. Numbers in the tables are the store's own values.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from dse.engine import LEVELS, column, run_designs, software_levels
from dse.specs import load_hardware, refuse_foreign, writing
from dse.sweep import open_sweep

from ._breakdown import BREAKDOWN_HEADERS, breakdown_cells, operator_breakdown
from ._pareto import store_pareto
from ._plots import _design_knobs, _plan, _points, chosen_design, design_config, plot_latency_vs_rate, plot_store
from ._table import fmt

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f4f4f4; } td.t { text-align: left; }
pre { background: #f8f8f8; padding: 0.8em; font-size: 0.8em; overflow-x: auto; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
.note { color: #666; font-size: 0.85em; } .scroll { overflow-x: auto; }
ul.commands code { font-size: 0.8em; overflow-wrap: anywhere; }
"""

# Metrics shown for the best designs at each level: (metric, label, scale).
_LEVEL_METRICS = tuple(
    column(n) for n in ("ttft_s", "tpot_s", "throughput_tokens_per_s_per_chip", "j_per_token", "usd_per_mtok")
)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="t">{html.escape(v)}</td>' if isinstance(v, str) else f"<td>{html.escape(fmt(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><tr>{cells}</tr>{body}</table></div>'


def _unit(ds: Any, name: str) -> str:
    unit = ds[name].attrs.get("units", "") if name in ds.variables else ""
    return f"{name} [{unit}]" if unit and unit != "1" else name


def _svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: inline SVG


# (hardware id, value, quantity, coverage) → (low, high), NaN without a calibration: the
# calibration layer's prediction_interval, passed in from above (analysis sits below it).
Interval = Callable[[str, float, str, float], tuple[Any, Any]]


def write_report(store: Path, out: Path, interval: Interval | None = None, limit: int = 20) -> Path:
    """Write the report of ``store`` to ``out`` (an .html file); returns its path."""
    refuse_foreign(out)
    ds = open_sweep(store)
    plan = _plan(ds)
    spec = json.loads(ds.attrs["sweep_spec"])
    parts = [f"<h1>{html.escape(str(ds.attrs.get('sweep_name', store.name)))}</h1>"]
    parts.append(f"<p>{html.escape(str(spec.get('description', '')))}</p>")
    n = int(np.prod([ds.sizes[d] for d in ds.tpot_s.dims]))
    parts.append(
        f'<p class="note">{n:,} designs from <code>{html.escape(str(store))}</code>; '
        f"level {html.escape(str(spec.get('level', 'calibrated')))}; "
        f"InferBench {html.escape(str(ds.attrs.get('inferbench_version', '')))}</p>"
    )
    # Calibration status of each chip: fitted, transferred or datasheet-only.
    chips = sorted({g.hardware_id for g in plan.groups})
    status = [[c, next(g.calibration for g in plan.groups if g.hardware_id == c) or "datasheet"] for c in chips]
    parts.append("<h2>Calibration status</h2>" + _table(["chip", "calibration and software profile"], status))
    parts.append(
        '<p class="note">fitted: the chip\'s own measurements; transferred: the A100 fit carried over with the '
        "chip's datasheet; datasheet: no measurements, the achievable level.</p>"
    )
    with tempfile.TemporaryDirectory(prefix="inferbench-report-") as tmp:
        charts = Path(tmp)
        plot_store(store, charts)
        front, objs, cons, stats = (None, [], [], {})
        if len(ds.attrs.get("objectives", [])) >= 2:
            front, objs, cons, stats = store_pareto(store)
        parts.append("<h2>Pareto front</h2>")
        if front is not None:
            parts.append(_front(ds, front, objs, cons, stats, limit))
        for name, title in (("pareto", ""), ("roofline", "Roofline"), ("sensitivity", "Sensitivities"),
                            ("axes", "Metrics along the grid axes")):  # fmt: skip
            svg = charts / f"{name}.svg"
            if svg.exists():
                if title:
                    parts.append(f"<h2>{title}</h2>")
                parts.append(f'<figure id="{name}">{_svg(svg)}</figure>')
            if name == "roofline":
                parts.append(_breakdown(ds, plan, front))
        parts.append(_tail_latency(ds, front, charts))
    parts.append("<h2>Best designs at the three levels</h2>")
    parts.append(_levels(ds, plan, front, objs, interval))
    parts.append(
        "<h2>Study specification</h2><details><summary>the sweep as stored (axes, scenario, constraints, "
        "objectives)</summary><pre>" + html.escape(json.dumps(spec, indent=1)) + "</pre></details>"
    )
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(str(ds.attrs.get('sweep_name', 'InferBench report')))}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    with writing(out) as tmp_path:
        tmp_path.write_text(doc, encoding="utf-8")
    return out


def _tail_latency(ds: Any, front: Any, charts: Path) -> str:
    """A study with a request-rate axis: tail latency against the rate of up to four designs
    along the front (or the first design), the other grid axes at the design's values."""
    if "rate_rps" not in ds.tpot_s.dims or ds.sizes["rate_rps"] < 2:
        return ""
    names = ("p50_ttft_s", "p99_ttft_s", "p90_tpot_s", "p99_tpot_s", "saturation_rate_rps")
    lines, seen = [], set()
    for point in _points(ds, front, 16):  # the front holds each design at several rates: once each
        at = {d: point[d] for d in ds.tpot_s.dims if d != "rate_rps" and d in point}
        if tuple(at.items()) in seen or len(seen) == 4:
            continue
        seen.add(tuple(at.items()))
        sel = ds[list(names)].sel(at).load()
        label = ", ".join(f"{k} {fmt(v)}" for k, v in point.items() if k not in ("rate_rps", "level")) or "the design"
        line = {n: sel[n].values for n in names} | {"label": label, "rate_rps": ds.rate_rps.values}
        line["saturation_rate_rps"] = float(np.nanmax(sel["saturation_rate_rps"].values))
        lines.append(line)
    plot_latency_vs_rate(lines, charts)
    return (
        "<h2>Tail latency against the request rate</h2>"
        f'<figure id="latency_vs_rate">{_svg(charts / "latency_vs_rate.svg")}</figure>'
        '<p class="note">the analytic queue (Poisson arrivals) of the designs above; dotted: each one\'s saturation '
        "rate, beyond which the queue grows without bound.</p>"
    )


def _breakdown(ds: Any, plan: Any, front: Any) -> str:
    """The roofline's design, operator by operator: time and energy of its prompt pass and of a
    decode step (GenZ Fig. 9)."""
    rows = operator_breakdown(*design_config(ds, plan, chosen_design(ds, front)))
    cells = breakdown_cells(rows)
    return (
        "<h2>Operators of the roofline's design</h2>"
        + _table(BREAKDOWN_HEADERS, cells)
        + "<p class=\"note\">one chip of one replica at the study's level; x: executions per pass; the network's "
        "collectives and the framework's time per pass are not operators.</p>"
    )


def _front(ds: Any, front: Any, objs: list[Any], cons: list[Any], stats: dict[str, float], limit: int) -> str:
    if front.attrs.get("pareto_empty"):
        return "<pre>" + html.escape(front.attrs["pareto_empty"]) + "</pre>"
    dims = [d for d in front.coords if front[d].dims == ("front",) and d not in [o.metric for o in objs]]
    rows = []
    for i in range(min(limit, front.sizes["front"])):
        row = [v.item() if hasattr(v, "item") else v for v in (front[d].values[i] for d in dims)]
        rows.append(row + [float(front[o.metric].values[i]) for o in objs])
    head = [_unit(ds, d) for d in dims] + [f"{'max' if o.maximize else 'min'} {_unit(ds, o.metric)}" for o in objs]
    cons_txt = ", ".join([str(c) for c in cons] + ["feasible"])
    more = front.sizes["front"] - len(rows)
    return (
        f"<p>{int(stats['n_front']):,} front designs of {int(stats['n_candidates']):,} meeting "
        f"{html.escape(cons_txt)}{f'; the first {len(rows)} shown' if more > 0 else ''}.</p>" + _table(head, rows)
    )


def _levels(ds: Any, plan: Any, front: Any, objs: list[Any], interval: Interval | None) -> str:
    """The best front design of each objective at ideal, achievable and calibrated, with the
    calibrated level's prediction intervals where the chip has a calibration."""
    picks: list[tuple[str, dict[str, Any]]] = []
    if front is not None and front.sizes.get("front", 0):
        for o in objs:
            i = int(np.argmax(front[o.metric].values) if o.maximize else np.argmin(front[o.metric].values))
            point = {c: (front[c].values[i].item() if hasattr(front[c].values[i], "item") else front[c].values[i])
                     for c in front.coords}  # fmt: skip
            picks.append((f"best {o.metric}", point))
    else:
        picks.append(("first design", _points(ds, None, 1)[0]))
    rows = []
    for label, point in picks:
        hw, res = _at_levels(ds, plan, point)
        for j, lv in enumerate(LEVELS):
            row: list[Any] = [label, hw.id, lv]
            row += [float(res[m][j, 0]) * s for m, _, s in _LEVEL_METRICS]
            row.append("yes" if res["feasible"][j, 0] else "no")
            row.append(_interval(interval, hw.id, res, j, lv))
            rows.append(row)
    head = ["design", "chip", "level", *(label for _, label, _ in _LEVEL_METRICS), "fits", "90 % interval (TPOT ms)"]
    return _table(head, rows) + (
        '<p class="note">ideal: the roofline; achievable: the hardware\'s efficiencies; calibrated: fitted '
        "software overheads (equal to achievable for a datasheet-only chip). Intervals from the calibration's "
        "held-out error, where the chip has one.</p>"
    )


def _at_levels(ds: Any, plan: Any, point: dict[str, Any]) -> tuple[Any, dict[str, np.ndarray]]:
    """One stored design (its coordinates) evaluated again at the three levels."""
    g, knobs = _design_knobs(plan, ds, point)
    group = plan.groups[g]
    hw = load_hardware(group.hardware_id)
    return hw, run_designs(group.config, {k: np.array([v]) for k, v in knobs.items()}, software_levels(hw, LEVELS))


def design_levels(store: Path, index: int) -> dict[str, Any]:
    """Design ``index`` (flat, in the store's design order) of a sweep store: its coordinates
    and its metrics at the ideal, achievable and calibrated levels (the report's table, one row)."""
    ds = open_sweep(store)
    dims = ds.tpot_s.dims
    pos = np.unravel_index(int(index), tuple(ds.sizes[d] for d in dims))
    at = ds.isel(dict(zip(dims, pos, strict=True)))
    point = {c: (at[c].values.item() if hasattr(at[c].values, "item") else at[c].values) for c in at.coords}
    hw, res = _at_levels(ds, _plan(ds), point)
    levels = {
        lv: {m: float(res[m][j, 0]) for m, _, _ in _LEVEL_METRICS} | {"feasible": bool(res["feasible"][j, 0])}
        for j, lv in enumerate(LEVELS)
    }
    units = {m: label for m, label, _ in _LEVEL_METRICS}
    return {"design": {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in point.items()},
            "hardware": hw.id, "levels": levels, "labels": units,
            "scales": {m: s for m, _, s in _LEVEL_METRICS}}  # fmt: skip


def _interval(interval: Interval | None, hw_id: str, res: dict[str, np.ndarray], j: int, level: str) -> str:
    if level != "calibrated" or interval is None:
        return ""
    lo, hi = (float(x) for x in interval(hw_id, float(res["tpot_s"][j, 0]), "tpot", 0.9))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "none (not calibrated)"
    return f"{lo * 1e3:.4g} - {hi * 1e3:.4g}"


def write_answer_page(results: list[dict[str, Any]], question: Any, curves_svg: Path, out: Path) -> Path:
    """The page of a question put to several chips (``inferbench demo``): the answer for the real
    chips first, the curves, the hypothetical variants, the command of every row."""
    from ._headline import ANSWER_HEADER, answer_rows

    refuse_foreign(out)
    q = question
    slo = f"TTFT &le; {q.slo.ttft_s * 1e3:g} ms, TPOT &le; {q.slo.tpot_s * 1e3:g} ms"
    title = f"{q.model}: {q.prompt_tokens} prompt + {q.output_tokens} output tokens"
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append(
        f"<p>The cheapest deployment ({html.escape(q.objective)}) on up to {q.max_chips} chips of each kind meeting "
        f"{slo}: <code>inferbench plan</code>'s search over batching (continuous, chunked prefill), TP, PP, EP, DP, "
        "running sequences and chunk size, at the calibrated level.</p>"
    )
    real = [r for r in results if r["kind"] == "real"]
    hypo = [r for r in results if r["kind"] != "real"]
    rows, notes = answer_rows(real)
    parts.append('<h2 id="answer">Answer: real chips at their datasheet specs</h2>')
    parts.append(_table(["hardware", *ANSWER_HEADER, "calibration"], rows))
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    parts.append(
        '<p class="note">running: sequences in flight over all replicas; chunk: prefill tokens per iteration; '
        "fitted: the chip's own measurements; transferred: the A100 fit carried over with the chip's datasheet; "
        "datasheet: no measurements (the achievable level).</p>"
    )
    parts.append('<h2 id="curves">Throughput per chip and cost against tokens/s per user</h2>')
    parts.append(f'<figure id="curves-figure">{_svg(curves_svg)}</figure>')
    parts.append(
        '<p class="note">Each line is a chip: the deployments (any layout, batch and chunk) that meet the TTFT SLO '
        "and that no other serves faster per user with more tokens per chip. Right of the dotted line the TPOT SLO "
        "holds; the ring is the answer above. Dashed lines: hypothetical variants.</p>"
    )
    if hypo:
        rows, notes = answer_rows(hypo, price=True)
        parts.append('<h2 id="hypothetical">Hypothetical variants (designs, not products)</h2>')
        parts.append(_table(["variant", *ANSWER_HEADER, "price $", "calibration"], rows))
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    commands = "".join(f"<li><code>{html.escape(r['command'])}</code></li>" for r in results)
    parts.append(f'<h2 id="commands">Each row\'s command</h2><ul class="commands">{commands}</ul>')
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    with writing(out) as tmp_path:
        tmp_path.write_text(doc, encoding="utf-8")
    return out


CURVE_VARIABLES = {
    "tokens_per_s_per_user": ("tokens/s", "tokens per second each user sees (1 / TPOT)"),
    "throughput_tokens_per_s_per_chip": ("tokens/s", "output tokens per second per chip"),
    "usd_per_mtok": ("USD/Mtoken", "dollars per million output tokens"),
    "ttft_s": ("s", "time to first token"),
    "tpot_s": ("s", "time per output token"),
    "j_per_token": ("J/token", "energy per output token"),
}


def curves_dataset(results: list[dict[str, Any]], question: Any) -> Any:
    """The curves as one table (dim ``point``): which chip (or variant), its layout, its metrics."""
    pts = [(res, p) for res in results for p in res["curve"]]
    coords = {
        "entry": ("point", [res["label"] for res, _ in pts]),
        "hardware": ("point", [res["hardware"] for res, _ in pts]),
        "kind": ("point", [res["kind"] for res, _ in pts]),
        "batching": ("point", [p["batching"] for _, p in pts]),
        **{
            k: ("point", np.array([p[k] for _, p in pts], dtype=np.int64))
            for k in ("tp", "pp", "ep", "dp", "chips", "batch")
        },
        "chunk_tokens": ("point", np.array([p["chunk_tokens"] or 0 for _, p in pts], dtype=np.int64)),
    }
    data = {
        k: ("point", np.array([p[k] for _, p in pts], dtype=float), {"units": u, "long_name": d})
        for k, (u, d) in CURVE_VARIABLES.items()
    }
    q = question
    return xr.Dataset(data, coords=coords).assign_attrs(
        description="inferbench demo: the throughput-per-chip vs tokens/s-per-user frontier of each chip's deployments "
        f"meeting TTFT <= {q.slo.ttft_s:g} s (chunk_tokens 0: whole prompts)",
        model=q.model, prompt_tokens=q.prompt_tokens, output_tokens=q.output_tokens,
    )  # fmt: skip
