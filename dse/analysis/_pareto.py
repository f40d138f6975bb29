"""Exact Pareto fronts of sweep stores: sort-based for 2 objectives, a vectorized filter for more.

Definitions (all objectives minimized; maximized ones are negated): p dominates q when
p ≤ q in every objective and p < q in at least one. The front is every feasible point that
no other feasible point dominates; equal points do not dominate each other, so duplicates
are all kept.

Two objectives: sort lexicographically by (f1, f2); a point is non-dominated iff it is the
first of its run of equal f1 values up to ties in f2, and its f2 is strictly below the
prefix minimum of f2 over the smaller f1 values. O(n log n).

More objectives: (1) prefilter — the minimizer of a strictly positive weighted sum is on the
front, and every point it dominates can go; a few such points remove most of a large random
cloud in a few vectorized passes. (2) The survivors, sorted lexicographically, can only be
dominated by points before them, so they are filtered in blocks against the front found so
far and against their own block (block × front × k comparisons, vectorized). Exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from dse.specs import SpecError, refuse_foreign, suggest, write_dataset, writing
from dse.sweep import open_sweep, parse_constraint, parse_objective
from dse.sweep._spec import Constraint, Objective

from ._table import render


def _front_2d(p: np.ndarray) -> np.ndarray:
    order = np.lexsort((p[:, 1], p[:, 0]))
    f1, f2 = p[order, 0], p[order, 1]
    new = np.ones(len(f1), dtype=bool)
    new[1:] = f1[1:] != f1[:-1]
    start = np.maximum.accumulate(np.where(new, np.arange(len(f1)), 0))  # start of each equal-f1 run
    prefix = np.minimum.accumulate(f2)
    before = np.where(start > 0, prefix[np.maximum(start - 1, 0)], np.inf)  # min f2 over smaller f1
    keep = (f2 == f2[start]) & (f2 < before)
    mask = np.zeros(len(f1), dtype=bool)
    mask[order[keep]] = True
    return mask


def _dominated_by(points: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """[n] bool: each point is dominated by at least one of ``refs`` [r, k]."""
    out = np.zeros(len(points), dtype=bool)
    for r in refs:
        le = np.all(r <= points, axis=1)
        out |= le & np.any(r < points, axis=1)
    return out


def _front_nd(p: np.ndarray, block: int = 512) -> np.ndarray:
    n, k = p.shape
    idx = np.arange(n)
    # (1) Prefilter with weighted-sum minimizers (each on the front).
    lo, hi = p.min(axis=0), p.max(axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    q = (p - lo) / scale
    rng = np.random.default_rng(0)
    weights = np.vstack(
        [np.full(k, 1.0 / k), np.eye(k) * 0.9 + 0.1 / k, rng.dirichlet(np.ones(k), 8) * 0.98 + 0.02 / k]
    )
    for w in weights:
        if len(idx) <= 4 * block:
            break
        best = idx[np.argmin(q[idx] @ w)]
        idx = idx[~_dominated_by(p[idx], p[best][None, :])]
    # (2) Lexicographic order, block filter.
    cand = p[idx]
    order = np.lexsort(cand.T[::-1])
    cand, idx = cand[order], idx[order]
    front_pts = np.empty((0, k))
    keep = []
    for s in range(0, len(cand), block):
        c = cand[s : s + block]
        ok = np.ones(len(c), dtype=bool)
        if len(front_pts):
            le = np.all(front_pts[None, :, :] <= c[:, None, :], axis=2)
            lt = np.any(front_pts[None, :, :] < c[:, None, :], axis=2)
            ok &= ~np.any(le & lt, axis=1)
        c2 = c[ok]
        le = np.all(c2[None, :, :] <= c2[:, None, :], axis=2)  # [i, j]: j ≤ i everywhere
        lt = np.any(c2[None, :, :] < c2[:, None, :], axis=2)
        inner = ~np.any(le & lt, axis=1)
        sel = np.flatnonzero(ok)[inner]
        keep.append(idx[s + sel])
        front_pts = np.vstack([front_pts, c[sel]])
    mask = np.zeros(n, dtype=bool)
    if keep:
        mask[np.concatenate(keep)] = True
    return mask


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``points`` [n, k] (every column minimized). Rows with a non-finite
    value are never on the front.

    Examples:
        >>> pareto_mask(np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0]])).tolist()
        [True, True, False]
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise SpecError(f"objectives: points of shape {p.shape}: expected [n, k] with k ≥ 1")
    finite = np.all(np.isfinite(p), axis=1)
    out = np.zeros(len(p), dtype=bool)
    sub = np.flatnonzero(finite)
    if len(sub) == 0:
        return out
    q = p[sub]
    if q.shape[1] == 1:
        m = q[:, 0] == q[:, 0].min()
    elif q.shape[1] == 2:
        m = _front_2d(q)
    else:
        m = _front_nd(q)
    out[sub[m]] = True
    return out


def _objectives(store_attrs: dict[str, Any], given: list[str] | None, src: str) -> list[Objective]:
    texts = given if given is not None else list(store_attrs.get("objectives", []))
    objs = [parse_objective(src, f"objectives[{i}]", t) for i, t in enumerate(texts)]
    if not 2 <= len(objs) <= 5:
        raise SpecError(
            f"{src}: objectives: {len(objs)} given: expected 2 to 5, e.g. "
            "--objectives max:throughput_tokens_per_s_per_chip,min:j_per_token"
        )
    if len({o.metric for o in objs}) != len(objs):
        raise SpecError(f"{src}: objectives: a metric appears twice: expected distinct metrics")
    return objs


def _reader(store: Path) -> Callable[[str], np.ndarray]:
    """A stored variable, flat, or a one-line error naming the damaged variable and the repair."""
    root = zarr.open_group(store, mode="r")

    def read(name: str) -> np.ndarray:
        try:
            return np.asarray(root[name][...]).reshape(-1)
        except Exception as e:  # noqa: BLE001 — a chunk that cannot be decoded
            raise SpecError(
                f"{store}: variable '{name}' cannot be read ({type(e).__name__}: {e}): expected "
                f"`inferbench sweep SPEC -o {store} --repair` to recompute the damaged chunks"
            ) from None

    return read


def store_pareto(
    store: Path, objectives: list[str] | None = None, constraints: list[str] | None = None, partial: bool = False
) -> tuple[Any, list[Objective], list[Constraint], dict[str, float]]:
    """The front of a sweep store among its feasible designs that meet ``constraints``.

    Objectives and constraints default to those of the sweep. Returns the front as an
    xarray.Dataset along ``front`` (every stored variable and every coordinate of each front
    design, best first by the first objective), the parsed objectives and constraints, and
    timings. An unfinished or damaged store is refused unless ``partial``.
    """
    ds = open_sweep(store, partial)
    src = f"{store}"
    objs = _objectives(ds.attrs, objectives, "--objectives" if objectives is not None else src)
    texts = constraints if constraints is not None else list(ds.attrs.get("constraints", []))
    cons = [
        c
        for i, t in enumerate(texts)
        if (c := parse_constraint("--constraints" if constraints is not None else src, f"constraints[{i}]", t))
    ]
    for name in [o.metric for o in objs] + [c.metric for c in cons] + ["feasible"]:
        if name not in ds.data_vars:
            raise SpecError(
                f"{store}: metric '{name}' is not in the store: expected one of its outputs "
                f"({', '.join(v for v in ds.data_vars if not v.startswith('_'))})"
            )
    t0 = time.perf_counter()
    read = _reader(store)
    feasible = read("feasible").astype(bool)
    ok = feasible.copy()
    for c in cons:
        ok &= c.holds(read(c.metric))
    cand = np.flatnonzero(ok)
    why_empty = "" if len(cand) else _why_empty(feasible, cons, read)
    pts = np.empty((len(cand), len(objs)))
    for j, o in enumerate(objs):
        v = read(o.metric)[cand].astype(np.float64)
        pts[:, j] = -v if o.maximize else v
    t1 = time.perf_counter()
    mask = pareto_mask(pts)
    t2 = time.perf_counter()
    flat = cand[mask]
    flat = flat[np.argsort(pts[mask, 0], kind="stable")]
    shape = tuple(ds.sizes[d] for d in ds[objs[0].metric].dims)
    pos = np.unravel_index(flat, shape)
    sel = {d: xr.DataArray(p, dims="front") for d, p in zip(ds[objs[0].metric].dims, pos, strict=True)}
    keep = [v for v in ds.data_vars if not v.startswith("_")]
    front = ds[keep].isel(sel).load()
    for d, p in zip(ds[objs[0].metric].dims, pos, strict=True):
        if d not in front.coords:
            front = front.assign_coords({d: ("front", p.astype(np.int64))})
    front.attrs = {k: v for k, v in ds.attrs.items() if k != "sweep_complete"}  # keeps source_complete
    front.attrs |= {
        "pareto_objectives": [str(o) for o in objs],
        "pareto_constraints": [str(c) for c in cons] + ["feasible"],
        "pareto_source": str(store),
    }
    if why_empty:
        front.attrs["pareto_empty"] = why_empty
    stats = {
        "n_designs": float(np.prod(shape)),
        "n_candidates": float(len(cand)),
        "n_front": float(len(flat)),
        "load_s": t1 - t0,
        "filter_s": t2 - t1,
        "front_s": time.perf_counter() - t2,
    }
    return front, objs, cons, stats


def _why_empty(feasible: np.ndarray, cons: list[Constraint], read: Callable[[str], np.ndarray]) -> str:
    """Why no design is on the front: how many designs each condition admits on its own and
    how close the feasible designs come to each constraint."""
    n = len(feasible)
    lines = [f"feasible (fits in memory, valid split): {int(feasible.sum()):,} of {n:,} designs"]
    blocking = []
    for c in cons:
        v = read(c.metric).astype(np.float64)
        meets = c.holds(v) & feasible
        pool = v[feasible & np.isfinite(v)]
        if len(pool):
            best = pool.min() if c.op in ("<", "<=") else pool.max()
            closest = f"; the best feasible design reaches {best:.4g}"
        else:
            closest = ""
        lines.append(f"{c}: {int(meets.sum()):,} feasible designs meet it{closest}")
        if not meets.any():
            blocking.append(str(c))
    if not feasible.any():
        head = "no design is feasible"
    elif blocking:
        head = f"excluded by {' and by '.join(blocking)} alone"
    else:
        head = "each constraint is met by some feasible design, but no design meets them all"
    return f"no design on the front: {head}\n  " + "\n  ".join(lines)


def pareto_table(
    front: Any, objs: list[Objective], cons: list[Constraint], stats: dict[str, float], limit: int = 20
) -> str:
    dims = [d for d in front.coords if front[d].dims == ("front",) and d not in [o.metric for o in objs]]
    rows = []
    for i in range(min(limit, front.sizes["front"])):
        row = []
        for d in dims:
            v = front[d].values[i]
            row.append(v if isinstance(v, str) else int(v) if np.issubdtype(type(v), np.integer) else float(v))
        row += [float(front[o.metric].values[i]) for o in objs]
        rows.append(row)
    head = [f"{'max' if o.maximize else 'min'} {o.metric}" for o in objs]
    cons_txt = ", ".join([str(c) for c in cons] + ["feasible"])
    title = (
        f"Pareto front: {int(stats['n_front']):,} of {int(stats['n_candidates']):,} designs meeting "
        f"{cons_txt} (of {int(stats['n_designs']):,}); filter {stats['filter_s']:.2f} s, load {stats['load_s']:.2f} s"
    )
    if front.attrs.get("calibration"):  # stores written before it was recorded have none
        title = f"{title}\ncalibration: {front.attrs['calibration']}"
    if front.attrs.get("pareto_empty"):
        return f"{title}\n{front.attrs['pareto_empty']}"
    if not front.attrs.get("source_complete", True):
        title = f"{title}\nfrom an UNFINISHED or DAMAGED store (--partial): designs not computed are left out"
    more = front.sizes["front"] - len(rows)
    tail = f"\n… {more:,} more front designs in the dataset" if more > 0 else ""
    return f"{title}\n{render(dims + head, rows)}{tail}"


def write_front(front: Any, prefix: Path) -> list[Path]:
    """Write the front as ``PREFIX.zarr`` (xarray) and ``PREFIX.csv``; returns the paths."""
    zpath, cpath = prefix.with_name(prefix.name + ".zarr"), prefix.with_name(prefix.name + ".csv")
    refuse_foreign(zpath)
    refuse_foreign(cpath)
    write_dataset(front, zpath)
    with writing(cpath) as tmp:
        front.to_dataframe().to_csv(tmp)
    return [zpath, cpath]


def store_points(
    store: Path, x: str, y: str, constraints: list[str] | None = None, limit: int = 20_000, seed: int = 0
) -> dict[str, Any]:
    """The designs of a sweep store as points for a chart: ``x`` and ``y`` of every feasible
    design meeting ``constraints`` (default the sweep's), the front of the two (with their
    senses from the sweep's objectives, else ``x`` maximized and ``y`` minimized) marked, at most
    ``limit`` points (every front point kept, the rest sampled). Each point is its flat index."""
    ds = open_sweep(store)
    sense = _senses(ds.attrs, str(store))
    for name in (x, y):
        if name not in ds.data_vars or name.startswith("_"):
            raise SpecError(f"{store}: metric '{name}' is not in the store{suggest(name, list(ds.data_vars))}")
    texts = constraints if constraints is not None else list(ds.attrs.get("constraints", []))
    cons = [c for i, t in enumerate(texts) if (c := parse_constraint("constraints", f"[{i}]", t))]
    read = _reader(store)
    ok = read("feasible").astype(bool)
    for c in cons:
        ok &= c.holds(read(c.metric))
    idx = np.flatnonzero(ok)
    xs, ys = (read(v)[idx].astype(np.float64) for v in (x, y))
    signs = [-1.0 if sense.get(x, True) else 1.0, -1.0 if sense.get(y, False) else 1.0]
    front = pareto_mask(np.column_stack([signs[0] * xs, signs[1] * ys])) if len(idx) else np.zeros(0, bool)
    keep = np.flatnonzero(front)
    rest = np.flatnonzero(~front)
    if len(keep) + len(rest) > limit:
        rest = np.sort(np.random.default_rng(seed).choice(rest, max(0, limit - len(keep)), replace=False))
    pick = np.concatenate([keep, rest])
    hw = ds["hardware"].values if "hardware" in ds.coords else None
    dims = ds[x].dims
    chip = None
    if hw is not None and "hardware" in dims:
        pos = np.unravel_index(idx[pick], tuple(ds.sizes[d] for d in dims))[dims.index("hardware")]
        chip = [str(hw[i]) for i in pos]
    return {
        "x": xs[pick].tolist(), "y": ys[pick].tolist(), "index": idx[pick].tolist(),
        "front": front[pick].tolist(), "hardware": chip, "n_total": int(ok.size), "n_meeting": int(len(idx)),
        "constraints": [str(c) for c in cons], "maximize": {x: signs[0] < 0, y: signs[1] < 0},
        "units": {v: ds[v].attrs.get("units", "") for v in (x, y)},
    }  # fmt: skip


def _senses(attrs: dict[str, Any], src: str) -> dict[str, bool]:
    """Metric → maximized, of the sweep's objectives (any number of them)."""
    objs = [parse_objective(src, f"objectives[{i}]", t) for i, t in enumerate(attrs.get("objectives", []))]
    return {o.metric: o.maximize for o in objs}


def store_summary(store: Path) -> dict[str, Any]:
    """What a chart of a store can show: its name, size, metrics with units, objectives, constraints."""
    ds = open_sweep(store)
    metrics = [v for v in ds.data_vars if not v.startswith("_") and ds[v].dtype.kind == "f"]
    return {
        "name": str(ds.attrs.get("sweep_name", Path(store).stem)),
        "designs": int(np.prod([ds.sizes[d] for d in ds.tpot_s.dims])),
        "metrics": {v: ds[v].attrs.get("units", "") for v in metrics},
        "objectives": [("max:" if up else "min:") + m for m, up in _senses(ds.attrs, str(store)).items()],
        "constraints": list(ds.attrs.get("constraints", [])),
    }
