"""Calibrate to a user's own measurements: any chip, any serving stack, a few dozen rows.

The rows are ``predict``'s scenarios plus measured columns (:data:`MEASURED`). The fit is a
maximum a posteriori estimate: log-normal (or logit-normal, for shares) priors centred on
the level the chip uses without the fit (its own fit, the transferred A100 fit, or the
datasheet level), widths in :data:`PRIORS`, and Gaussian errors of the log of each measured
quantity. Minimized by Levenberg–Marquardt on the stacked residuals (data and prior) with
the Jacobian by forward-mode differentiation through ``serve`` itself, one jitted program
for every fold. At the optimum the Laplace approximation gives each parameter's posterior
width; a parameter whose width the data do not shrink below :data:`DETERMINED_SHRINK` of its
prior is reported as not determined (it stays near its prior), one no row depends on is not
fitted at all.

Validation is always k-fold cross-validation grouped by model (leave one model out with three
or more models, else by tp, else by batch): the held-out predictions of the fitted and of the
unfitted level, side by side. The held-out log errors give the prediction intervals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calibration._fit import INITIAL, fast_jit
from dse._version import __version__
from dse.analysis._scenarios import (
    PREDICT_OPTIONAL,
    PREDICT_REQUIRED,
    ROW_KNOBS,
    cell,
    parse_row,
    read_csv,
    row_labels,
)
from dse.engine import (
    calibrated_software,
    calibration_source,
    check_context,
    check_values,
    float64,
    framework_of,
    in_float64,
    make_config,
    serve_rows,
)
from dse.specs import (
    HardwareEntry,
    SpecError,
    fitted_software,
    load_hardware,
    load_model,
    software_to_mapping,
    spec_digest,
)
from models import DTYPES, SoftwareParams, gemm_cost, ideal_software

Array = jax.Array

# ---------------------------------------------------------------------------------------
# What a row may say it measured, and the metric that predicts it.
# ---------------------------------------------------------------------------------------

MEASURED: dict[str, tuple[str, str, str]] = {
    # column: (short name, unit, what)
    "measured_latency_s": ("latency", "s", "the whole request batch (phase request), the pass (prefill), the step (decode)"),
    "measured_ttft_s": ("ttft", "s", "time to first token"),
    "measured_tpot_s": ("tpot", "s", "time per output token"),
    "measured_throughput_tokens_per_s": ("throughput", "token/s", "output tokens per second, all sequences"),
    "measured_energy_j": ("energy", "J", "energy of what the latency times, all chips"),
    "measured_power_w": ("power", "W", "average power over it, all chips"),
    "measured_s": ("kernel", "s", "a kernel row's time (--ops)"),
}  # fmt: skip
COLUMNS = tuple(MEASURED)[:-1]  # a scenario row's measured columns
KERNEL_COLUMN = "measured_s"  # a kernel row's time (--ops OPS.csv)
NAMES = (*COLUMNS, KERNEL_COLUMN)  # every observation's column, by its index
PHASES = ("request", "prefill", "decode")
_LATENCY = {"request": "latency_s", "prefill": "prefill_latency_s", "decode": "decode_latency_s"}
_ENERGY = {"request": "energy_j", "prefill": "prefill_energy_j", "decode": "decode_energy_j"}
# A row faster than the ideal roofline of its work by more than this did not do that work.
ROOFLINE_SLACK = 1e-3


# ---------------------------------------------------------------------------------------
# The parameters: one table of priors.
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Prior:
    """A fitted parameter: a ``SoftwareParams`` field or a chip field, its transform, the
    prior width (standard deviation of the log, or of the logit for shares) and the chip
    families it applies to (None: all)."""

    name: str
    owner: str  # "software" or "chip"
    transform: str  # "log" (positive) or "logit" (a share in (0, 1))
    width: float
    unit: str
    what: str
    families: tuple[str, ...] | None = None


PRIORS: tuple[Prior, ...] = (
    Prior("compute_efficiency", "software", "log", 0.4, "1", "matrix rate reached (GEMM, attention, array fill) relative to the level"),
    Prior("attention_efficiency", "software", "logit", 1.5, "1", "share of its roofline the attention kernel reaches (compute and KV reads)", ("simt",)),
    Prior("bw_efficiency", "software", "logit", 1.0, "1", "share of the memory bandwidth streaming kernels reach"),
    Prior("kernel_overhead_s", "software", "log", 1.0, "s", "time per kernel launch"),
    Prior("step_overhead_s", "software", "log", 1.5, "s", "framework time per forward pass"),
    Prior("seq_overhead_s", "software", "log", 1.5, "s", "framework time per sequence per pass"),
    Prior("rank_overhead_s", "software", "log", 1.5, "s", "framework time per pass per chip beyond the first"),
    Prior("collective_latency_s", "software", "log", 1.0, "s", "software time per collective step"),
    Prior("reduce_efficiency", "software", "logit", 1.0, "1", "share of the link bandwidth all-reduces reach"),
    Prior("idle_w", "chip", "log", 0.3, "W", "idle power of a chip"),
    Prior("energy_per_flop_j", "chip", "log", 0.7, "J/FLOP", "energy per FLOP"),
    Prior("energy_per_byte_j", "chip", "log", 0.7, "J/B", "energy per byte of memory traffic"),
    Prior("link_latency_s", "chip", "log", 1.0, "s", "fabric hop latency", ("systolic", "dataflow", "sram_chiplet", "cgra", "imc")),
    Prior("reconfig_time_s", "chip", "log", 1.0, "s", "time of one reconfiguration", ("cgra",)),
    Prior("adc_freq_hz", "chip", "log", 0.5, "Hz", "effective ADC conversion rate (passes per second)", ("imc",)),
)  # fmt: skip
"""Prior widths: a log width of 1 allows a factor e either way at one standard deviation."""

MEASUREMENT_SD_LOG = 0.1  # first pass: 10 % per measurement; the second pass uses the residuals'
MIN_SD_LOG = 0.02  # a column's error is never taken below 2 % (timer noise, run-to-run spread)
DETERMINED_SHRINK = 0.5  # posterior width below half the prior's: the data determined it
LM_ITERATIONS = 60


def prior_of(p: Prior) -> Callable[[float], Array]:
    """Value -> unconstrained coordinate."""
    return (lambda v: jnp.log(v)) if p.transform == "log" else (lambda v: jnp.log(v) - jnp.log1p(-v))


def value_of(p: Prior, u: Array) -> Array:
    return jnp.exp(u) if p.transform == "log" else jax.nn.sigmoid(u)


# ---------------------------------------------------------------------------------------
# Rows -> a problem.
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Rows:
    """Measurement rows of one chip, as read and checked."""

    path: Path
    models: list[str]  # model id per row
    parsed: list[dict[str, Any]]
    measured: np.ndarray  # [n_rows, len(COLUMNS)], NaN where not measured
    line: list[int]  # CSV line of each row (header = 1)
    digest: str

    def __len__(self) -> int:
        return len(self.parsed)


def _measured(path: Path, i: int, row: dict[str, str], column: str) -> float:
    """A measured cell: a finite number > 0, or a one-line error naming the row and column."""
    raw = (row.get(column) or "").strip()
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise SpecError(
            f"{path}: row {i + 2}: column '{column}' = '{raw}': expected a number > 0 ({MEASURED[column][1]})"
        )
    return v


def _same_chip(path: Path, i: int, row: dict[str, str], hardware: HardwareEntry) -> None:
    """A row's optional ``hardware`` cell names the chip being fitted (one chip per fit)."""
    hw = (row.get("hardware") or "").strip()
    if hw and hw not in (hardware.id, str(hardware.path)) and Path(hw).stem != hardware.id:
        raise SpecError(
            f"{path}: row {i + 2}: column 'hardware' = '{hw}': expected the chip being fitted ({hardware.id}); "
            "fit one chip at a time"
        )


def read_measurements(path: str | Path, hardware: HardwareEntry) -> Rows:
    """The rows of a measurements CSV for ``hardware``: one-line errors naming the row and
    column for a missing, zero, negative or non-numeric measurement, an unknown model, or a
    row of another chip."""
    p = Path(path)
    optional = [c for c in PREDICT_OPTIONAL if c != "framework"] + ["framework", *COLUMNS]
    required = [c for c in PREDICT_REQUIRED if c != "hardware"]
    rows = read_csv(p, required, [*optional, "hardware"], ())
    present = [c for c in COLUMNS if c in rows[0]]
    if not present:
        raise SpecError(f"{p}: no measured column: expected one or more of {', '.join(COLUMNS)}")
    models, parsed, line = [], [], []
    measured = np.full((len(rows), len(COLUMNS)), np.nan)
    for i, r in enumerate(rows):
        _same_chip(p, i, r, hardware)
        mid = cell(p, i, r, "model", "str")
        try:
            models.append(load_model(mid).id)
        except SpecError as e:
            raise SpecError(f"{p}: row {i + 2}: column 'model': {e}") from None
        parsed.append(parse_row(p, i, r))
        line.append(i + 2)
        for j, c in enumerate(COLUMNS):
            if c in present and (r.get(c) or "").strip():
                measured[i, j] = _measured(p, i, r, c)
    empty = [line[i] for i in range(len(rows)) if not np.isfinite(measured[i]).any()]
    if empty:
        raise SpecError(f"{p}: row {empty[0]}: no measurement: expected a value in one of {', '.join(present)}")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    return Rows(p, models, parsed, measured, line, digest)


@dataclasses.dataclass
class Ops:
    """Kernel rows (``--ops OPS.csv``: ``hardware,op,m,n,k,dtype,measured_s``; GEMMs)."""

    dtype: list[str]
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    measured: np.ndarray


def read_ops(path: str | Path, hardware: HardwareEntry) -> Ops:
    p = Path(path)
    rows = read_csv(p, ["op", "m", "n", "k", "dtype", KERNEL_COLUMN], ["hardware"], ())
    dims: dict[str, list[float]] = {"m": [], "n": [], "k": [], KERNEL_COLUMN: []}
    dtypes = []
    for i, r in enumerate(rows):
        _same_chip(p, i, r, hardware)
        if cell(p, i, r, "op", "str") != "gemm":
            raise SpecError(f"{p}: row {i + 2}: column 'op' = '{r['op']}': expected gemm")
        dt = cell(p, i, r, "dtype", "str")
        if dt not in DTYPES:
            raise SpecError(f"{p}: row {i + 2}: column 'dtype' = '{dt}': expected one of {', '.join(DTYPES)}")
        dtypes.append(dt)
        for c in ("m", "n", "k"):
            dims[c].append(cell(p, i, r, c))
        dims[KERNEL_COLUMN].append(_measured(p, i, r, KERNEL_COLUMN))
    return Ops(dtypes, *(np.asarray(dims[c], dtype=float) for c in ("m", "n", "k", KERNEL_COLUMN)))


@dataclasses.dataclass
class Problem:
    """Everything the jitted residual needs: groups of rows (one per model structure, dtype and
    batching mode) and the observations (row, column, measured)."""

    groups: list[tuple[Any, dict[str, Any]]]  # (config, knobs) per group
    gemms: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]  # kernel rows: (dtype, m, n, k) per dtype
    order: np.ndarray  # group-concatenated rows -> row order
    phase: np.ndarray  # phase code per row
    obs_row: np.ndarray
    obs_col: np.ndarray
    obs_value: np.ndarray
    params: tuple[Prior, ...]
    u0: np.ndarray  # prior centres (unconstrained)
    base_software: SoftwareParams
    chip: Any = None  # the chip spec the chip parameters replace fields of


def _prior_centre(p: Prior, hw: HardwareEntry, sw: SoftwareParams) -> float:
    """The level's value of ``p``; an overhead the level sets to zero (no fit applies) is
    centred on the shipped A100 fit's value, else on the calibration's starting value."""
    if p.owner == "chip":
        return float(getattr(hw.spec, p.name, 0.0))
    v = float(np.asarray(getattr(sw, p.name)))
    if v <= 0.0 and p.transform == "log":
        v = float(np.asarray(getattr(fitted_software("a100-sxm4-40gb"), p.name)))
        v = v if v > 0 else float(INITIAL.get(p.name, 1e-6))
    if p.transform == "logit":  # a share at 1 (a kernel at its roofline) is centred just below it
        v = min(max(v, 1e-3), 0.95)
    return v


def build(rows: Rows, hw: HardwareEntry, sw: SoftwareParams, ops: Ops | None = None) -> Problem:
    """Group the rows for one vmapped ``serve`` each; check each row as ``predict`` does.
    Kernel rows (``ops``) follow the rows' observations, under the row index ``len(rows)``."""
    keys: dict[Any, list[int]] = {}
    specs = {mid: load_model(mid) for mid in set(rows.models)}
    for i, mid in enumerate(rows.models):
        r = rows.parsed[i]
        s = specs[mid].spec
        structure = jax.tree_util.tree_structure(dataclasses.replace(s, parts=()))
        keys.setdefault((structure, r["dtype"], r["batching"]), []).append(i)
    groups = []
    for (_, dtype, batching), idx in keys.items():
        members = [specs[rows.models[i]] for i in idx]
        parts = tuple(sorted(set().union(*(m.spec.parts for m in members))))
        cfg = make_config(members[0], hw, weight_dtype=dtype, act_dtype=dtype, kv_dtype=dtype, batching=batching)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, parts=parts))
        for i in idx:
            r, m = rows.parsed[i], specs[rows.models[i]]
            where = f"{rows.path}: row {rows.line[i]}"
            check_values(cfg, {k: r[src] for k, src in ROW_KNOBS}, where, labels=row_labels(r))
            check_context(m, r["tokens"], r["output"], where)
        model = jax.tree.map(
            lambda *x: np.stack([np.asarray(v, dtype=float) for v in x]),
            *[dataclasses.replace(specs[rows.models[i]].spec, parts=parts) for i in idx],
        )
        knobs = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if "spec" in f.metadata}
        knobs |= {k: np.array([rows.parsed[i][src] for i in idx], dtype=float) for k, src in ROW_KNOBS}
        groups.append((cfg, knobs))
    order = np.argsort(np.concatenate([np.asarray(idx) for idx in keys.values()]))
    params = tuple(p for p in PRIORS if p.families is None or hw.family in p.families)
    params = tuple(p for p in params if _prior_centre(p, hw, sw) > 0)
    u0 = np.array([float(prior_of(p)(_prior_centre(p, hw, sw))) for p in params])
    r_idx, c_idx = np.nonzero(np.isfinite(rows.measured))
    value = rows.measured[r_idx, c_idx]
    phase = np.array([PHASES.index(r["phase"]) for r in rows.parsed])
    gemms = []
    if ops is not None:
        for dt in sorted(set(ops.dtype)):
            sel = np.asarray(ops.dtype) == dt
            gemms.append((dt, ops.m[sel], ops.n[sel], ops.k[sel]))
            r_idx = np.append(r_idx, np.full(int(sel.sum()), len(rows)))
            c_idx = np.append(c_idx, np.full(int(sel.sum()), len(COLUMNS)))
            value = np.append(value, ops.measured[sel])
    return Problem(groups, gemms, order, phase, r_idx, c_idx, value, params, u0, sw, hw.spec)


def _quantities(
    problem: Problem, values: Mapping[str, Array], software: SoftwareParams, chip: Any
) -> tuple[Array, Array]:
    """[n_rows, len(COLUMNS) + 1] predictions of every measured quantity of every row (and
    whether it fits in memory), and the time of every kernel row."""
    chip_values = {p.name: values[p.name] for p in problem.params if p.owner == "chip"}
    sw = dataclasses.replace(software, **{p.name: values[p.name] for p in problem.params if p.owner == "software"})
    outs = []
    for cfg, knobs in problem.groups:
        n = len(next(iter(knobs.values())))
        k = dict(knobs) | {name: jnp.full((n,), v) for name, v in chip_values.items()}
        outs.append(serve_rows(cfg, k, sw))
    cat = {f: jnp.concatenate([getattr(m, f) for m in outs])[problem.order] for f in outs[0]._fields}
    phase = jnp.asarray(problem.phase)
    latency = jnp.select(
        [phase == 0, phase == 1], [cat["latency_s"], cat["prefill_latency_s"]], cat["decode_latency_s"]
    )
    energy = jnp.select([phase == 0, phase == 1], [cat["energy_j"], cat["prefill_energy_j"]], cat["decode_energy_j"])
    power = energy / latency
    quantities = jnp.stack(
        [latency, cat["ttft_s"], cat["tpot_s"], cat["throughput_tokens_per_s"], energy, power, cat["feasible"]], axis=1
    )
    fitted_chip = dataclasses.replace(chip, **{k: jnp.asarray(v) for k, v in chip_values.items()})
    kernels = [_gemm_rows(fitted_chip, sw, m, n, k, dt)[0] for dt, m, n, k in problem.gemms]
    return quantities, (jnp.concatenate(kernels) if kernels else jnp.zeros((0,)))


_gemm_rows = jax.vmap(gemm_cost, in_axes=(None, None, 0, 0, 0, None))


# ---------------------------------------------------------------------------------------
# The MAP fit: Levenberg–Marquardt on data and prior residuals.
# ---------------------------------------------------------------------------------------


class Fitter:
    """One compiled program for a problem: residuals, their Jacobian and every prediction at
    a point ``u``, for any row weights, measurement widths and base software."""

    @in_float64
    def __init__(self, problem: Problem):
        self.problem = problem
        params, u0 = problem.params, jnp.asarray(problem.u0)
        widths = jnp.asarray([p.width for p in params])
        obs_row, obs_col = jnp.asarray(problem.obs_row), jnp.asarray(problem.obs_col)

        def predictions(u, software, use_software):
            values = {}
            for i, p in enumerate(params):
                v = value_of(p, u[i])
                if p.owner == "software":  # use_software 0: the base software's own value
                    base = jnp.asarray(getattr(software, p.name), dtype=float)
                    v = base + use_software * (v - base)
                values[p.name] = v
            return _quantities(problem, values, software, problem.chip)

        n_rows_obs = int(np.sum(problem.obs_col < len(COLUMNS)))

        def program(u, weight, sd, software, use_software, log_measured):
            def residuals(x):
                q, kernels = predictions(x, software, use_software)
                pred = jnp.concatenate([q[obs_row[:n_rows_obs], obs_col[:n_rows_obs]], kernels])
                data = weight * (jnp.log(pred) - log_measured) / sd
                return jnp.concatenate([data, (x - u0) / widths]), (pred, q[:, -1])

            # Forward mode, one tangent per parameter, the value traced once with them.
            tangents = jnp.eye(len(params))
            (r, (pred, feasible)), (jac, _) = jax.vmap(
                lambda t: jax.jvp(residuals, (u,), (t,)), out_axes=((None, None), (1, 0))
            )(tangents)
            return r, jac, pred, feasible

        n = len(problem.obs_value)
        args = (u0, jnp.ones(n), jnp.ones(n), problem.base_software, jnp.ones(()), jnp.zeros(n))
        self._run = fast_jit(program, *args)
        self.n_obs = n

    def __call__(self, u, weight, sd, software=None, use_software=1.0, measured=None):
        software = self.problem.base_software if software is None else software
        measured = self.problem.obs_value if measured is None else measured
        with float64():
            r, jac, pred, feasible = self._run(
                jnp.asarray(u, dtype=float),
                jnp.asarray(weight, dtype=float),
                jnp.asarray(sd, dtype=float),
                software,
                jnp.asarray(use_software, dtype=float),
                jnp.log(jnp.asarray(measured, dtype=float)),
            )
        return np.asarray(r), np.asarray(jac), np.asarray(pred), np.asarray(feasible)

    def minimize(
        self, weight: np.ndarray, sd: np.ndarray, u_start: np.ndarray, measured: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Levenberg–Marquardt from ``u_start``; returns the optimum and the Jacobian there."""
        u = np.asarray(u_start, dtype=float)
        r, jac, _, _ = self(u, weight, sd, measured=measured)
        cost, lam = float(r @ r), 1e-3
        for _ in range(LM_ITERATIONS):
            a, g = jac.T @ jac, jac.T @ r
            step = np.linalg.solve(a + lam * np.diag(np.diag(a)) + 1e-12 * np.eye(len(u)), -g)
            r2, jac2, _, _ = self(u + step, weight, sd, measured=measured)
            cost2 = float(r2 @ r2) if np.all(np.isfinite(r2)) else np.inf
            if cost2 < cost:
                done = cost - cost2 < 1e-10 * max(cost, 1e-30)
                u, r, jac, cost, lam = u + step, r2, jac2, cost2, max(lam / 3.0, 1e-9)
                if done:
                    break
            else:
                lam *= 4.0
                if lam > 1e10:
                    break
        return u, jac

    def fit(self, weight: np.ndarray, measured: np.ndarray | None = None) -> dict[str, Any]:
        """Two passes: 10 % errors, then each measured column's own residual spread."""
        col = self.problem.obs_col
        measured = self.problem.obs_value if measured is None else np.asarray(measured, dtype=float)
        sd = np.full(self.n_obs, MEASUREMENT_SD_LOG)
        u, _ = self.minimize(weight, sd, self.problem.u0, measured)
        _, _, pred, _ = self(u, weight, sd, measured=measured)
        err = np.log(pred / measured)
        for c in np.unique(col):
            sel = (col == c) & (weight > 0)
            if sel.any():
                sd[col == c] = max(float(np.sqrt(np.mean(err[sel] ** 2))), MIN_SD_LOG)
        u, jac = self.minimize(weight, sd, u, measured)
        cov = np.linalg.pinv(jac.T @ jac)
        return {"u": u, "sd_u": np.sqrt(np.clip(np.diag(cov), 0.0, None)), "sd_obs": sd}

    def predict(self, u: np.ndarray) -> np.ndarray:
        return self(u, np.ones(self.n_obs), np.ones(self.n_obs))[2]


# ---------------------------------------------------------------------------------------
# Validation and the whole calibration.
# ---------------------------------------------------------------------------------------


def fold_groups(rows: Rows, train: np.ndarray) -> tuple[str, np.ndarray]:
    """The cross-validation scheme and each row's fold: leave one model out with three or more
    models among the training rows, else by tp, else by batch ('' and no folds if one group)."""
    models = np.asarray(rows.models)
    for scheme, key in (
        ("leave one model out", models),
        ("grouped by tp", np.array([f"tp {r['tp']:g}" for r in rows.parsed])),
        ("grouped by pp", np.array([f"pp {r['pp']:g}" for r in rows.parsed])),
        ("grouped by batch", np.array([f"batch {r['batch']:g}" for r in rows.parsed])),
        ("grouped by prompt length", np.array([f"prompt {r['tokens']:g}" for r in rows.parsed])),
    ):
        n = len(set(key[train]))
        if (scheme.startswith("leave") and n >= 3) or (not scheme.startswith("leave") and n >= 2):
            return scheme, key
    return "", np.full(len(rows), "")


def _errors(pred: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    ape = np.abs(pred / measured - 1.0)
    return {"mape_pct": 100 * float(np.mean(ape)), "median_ape_pct": 100 * float(np.median(ape))}


def _table(problem: Problem, sel: np.ndarray, fitted: np.ndarray, unfitted: np.ndarray) -> list[dict[str, Any]]:
    out = []
    for c in np.unique(problem.obs_col[sel]):
        s = sel & (problem.obs_col == c)
        f, u = _errors(fitted[s], problem.obs_value[s]), _errors(unfitted[s], problem.obs_value[s])
        out.append({"column": NAMES[c], "rows": int(s.sum()),
                    "fitted_mape_pct": f["mape_pct"], "fitted_median_ape_pct": f["median_ape_pct"],
                    "unfitted_mape_pct": u["mape_pct"], "unfitted_median_ape_pct": u["median_ape_pct"]})  # fmt: skip
    return out


@in_float64
def calibrate_user(
    measurements: str | Path,
    hardware: str | Path,
    framework: str,
    holdout_models: Sequence[str] = (),
    log: Callable[[str], None] = lambda line: None,
    ops: str | Path | None = None,
) -> dict[str, Any]:
    """Fit ``hardware`` under ``framework`` to the rows of ``measurements``; validate by grouped
    cross-validation (and on ``holdout_models``, never fitted). Returns the fit file's content
    and the tables to print."""
    t0 = time.perf_counter()
    stage = lambda what: log(f"calibrate: {time.perf_counter() - t0:5.1f} s  {what}")  # noqa: E731
    hw = load_hardware(hardware)
    base = _prior_framework(hw, framework)
    sw = calibrated_software(hw, base)
    rows = read_measurements(measurements, hw)
    held = set()
    for m in holdout_models:
        try:
            held.add(load_model(m).id)
        except SpecError as e:
            raise SpecError(f"--holdout-models: {e}") from None
    missing = sorted(held - set(rows.models))
    if missing:
        raise SpecError(f"--holdout-models: no row of {', '.join(missing)} in {rows.path}: expected models of its rows")
    stage(f"{len(rows)} rows of {len(set(rows.models))} model(s); compiling the model of every row")
    problem = build(rows, hw, sw, read_ops(ops, hw) if ops else None)
    fitter = Fitter(problem)
    n_obs = len(problem.obs_value)
    ones = np.ones(n_obs)
    # Rows faster than the ideal roofline of their stated work did not do that work.
    _, _, ideal, feasible = fitter(problem.u0, ones, ones, ideal_software(), 0.0)
    _refuse_below_roofline(rows, problem, ideal)
    # Kernel rows are row len(rows): always fitted, in every fold.
    infeasible = ~(np.append(feasible, 1.0)[problem.obs_row] > 0)
    row_held = np.append(np.isin(np.asarray(rows.models), sorted(held)), False)
    train_obs = ~row_held[problem.obs_row] & ~infeasible
    if not train_obs.any():
        raise SpecError(f"{rows.path}: no row to fit: expected rows of models not held out, that fit in memory")
    stage(f"fitting {len(problem.params)} parameters to {int(train_obs.sum())} measurements (MAP, Levenberg-Marquardt)")
    # The unfitted prediction is the chip's level as it is (the prior centre of an overhead
    # the level sets to zero is not the level).
    unfitted = fitter(problem.u0, ones, ones, None, 0.0)[2]
    final = fitter.fit(train_obs.astype(float))
    fitted_all = fitter.predict(final["u"])
    # Cross-validation over the training rows.
    scheme, key = fold_groups(rows, ~row_held[:-1])
    key = np.append(key, "")
    cv_pred = np.full(n_obs, np.nan)
    folds = sorted(set(key[:-1][~row_held[:-1]])) if scheme else []
    for k, g in enumerate(folds, start=1):
        stage(f"cross-validation ({scheme}): fold {k}/{len(folds)} without {g}")
        out = key[problem.obs_row] == g
        fold = fitter.fit((train_obs & ~out).astype(float))
        cv_pred[out & train_obs] = fitter.predict(fold["u"])[out & train_obs]
    cv_sel = train_obs & np.isfinite(cv_pred)
    cv_table = _table(problem, cv_sel, cv_pred, unfitted) if cv_sel.any() else []
    held_sel = row_held[problem.obs_row] & ~infeasible
    held_table = _table(problem, held_sel, fitted_all, unfitted) if held_sel.any() else []
    # Data Jacobian at the prior: which parameters any training row depends on.
    _, jac0, _, _ = fitter(problem.u0, train_obs.astype(float), np.full(n_obs, MEASUREMENT_SD_LOG))
    depends = np.abs(jac0[:n_obs]).max(axis=0) > 1e-6
    parameters = []
    for i, p in enumerate(problem.params):
        prior_v, post_v = float(value_of(p, problem.u0[i])), float(value_of(p, final["u"][i]))
        shrink = float(final["sd_u"][i]) / p.width
        status = "not fitted (no row depends on it)" if not depends[i] else (
            "determined" if shrink < DETERMINED_SHRINK else "not determined (stays near its prior)")  # fmt: skip
        parameters.append({
            "name": p.name, "owner": p.owner, "unit": p.unit, "what": p.what,
            "prior": prior_v, "prior_width": f"{p.transform} sd {p.width}",
            "posterior": post_v if depends[i] else prior_v,
            "posterior_sd_ratio": round(shrink, 3), "status": status,
        })  # fmt: skip
    u_final = np.where(depends, final["u"], problem.u0)
    values = {p.name: float(value_of(p, u_final[i])) for i, p in enumerate(problem.params)}
    software = dataclasses.replace(
        sw, **{p.name: np.asarray(values[p.name]) for p in problem.params if p.owner == "software"}
    )
    chip = {p.name: values[p.name] for p in problem.params if p.owner == "chip" and depends[p_index(problem, p.name)]}
    intervals = _intervals(problem, cv_sel, cv_pred, fitted_all, train_obs)
    cv_mape = 100 * float(np.mean(np.abs(cv_pred[cv_sel] / problem.obs_value[cv_sel] - 1))) if cv_sel.any() else None
    excluded = sorted({rows.line[r] for r in problem.obs_row[infeasible]})
    scenario_obs = problem.obs_col < len(COLUMNS)  # kernel rows count one each
    n_fitted_rows = len(set(problem.obs_row[train_obs & scenario_obs])) + int((train_obs & ~scenario_obs).sum())
    fit_s = time.perf_counter() - t0
    content = {
        "kind": "inferbench-fit",
        "hardware": hw.id,
        "hardware_file": str(hardware),
        "hardware_digest": spec_digest(hw.raw),
        "framework": framework,
        "software_version": __version__,
        "prior": {
            "calibration": calibration_source(hw),
            "framework": base,
            "widths": "calibration/_user.py PRIORS (log or logit standard deviations)",
        },  # fmt: skip
        "rows": n_fitted_rows,
        "measurements": {
            "file": rows.path.name,
            "digest": rows.digest,
            "columns": [NAMES[c] for c in np.unique(problem.obs_col)],
            "models": sorted(set(np.asarray(rows.models)[~row_held[:-1]])),
            "holdout_models": sorted(held),
            "excluded_rows_infeasible": excluded,
        },  # fmt: skip
        "validation": {
            "scheme": scheme or "none (one group of rows)",
            "folds": len(folds),
            "cv_mape_pct": cv_mape,
            "cv": cv_table,
            "holdout": held_table,
        },  # fmt: skip
        "parameters": parameters,
        "software": software_to_mapping(software),
        "chip": chip,
        "intervals": intervals,
        "fit": {
            "method": "MAP, Levenberg-Marquardt, forward-mode Jacobian through serve",
            "fit_s": round(fit_s, 1),
            "measurement_sd_log": {
                NAMES[c]: float(final["sd_obs"][problem.obs_col == c][0]) for c in np.unique(problem.obs_col)
            },
        },  # fmt: skip
    }
    return {"content": content, "fit_s": fit_s, "n_params": len(problem.params), "n_rows": content["rows"]}


def p_index(problem: Problem, name: str) -> int:
    return [p.name for p in problem.params].index(name)


def _prior_framework(hw: HardwareEntry, framework: str) -> str | None:
    """The software profile the prior starts from: ``framework`` if the chip's fit has it,
    else the fit's default (a new stack starts from the default stack)."""
    try:
        return framework_of(hw, framework) if calibration_source(hw) != "datasheet" else None
    except SpecError:
        return framework_of(hw, None) if calibration_source(hw) != "datasheet" else None


def _refuse_below_roofline(rows: Rows, problem: Problem, ideal: np.ndarray) -> None:
    """A time below, or a throughput above, the ideal roofline of the stated work: one line
    naming the first such row."""
    names = np.asarray(NAMES)[problem.obs_col]
    timed = np.isin(names, ["measured_latency_s", "measured_ttft_s", "measured_tpot_s"])
    rate = names == "measured_throughput_tokens_per_s"
    value = problem.obs_value
    beyond = (timed & (value < ideal * (1 - ROOFLINE_SLACK))) | (rate & (value > ideal * (1 + ROOFLINE_SLACK)))
    if beyond.any():
        j = int(np.argmax(beyond))
        name, unit = str(names[j]), MEASURED[str(names[j])][1]
        raise SpecError(
            f"{rows.path}: row {rows.line[problem.obs_row[j]]}: {name} = {value[j]:.4g} {unit} is beyond the ideal "
            f"roofline of the stated work ({ideal[j]:.4g} {unit}): expected a measurement of that work (check model, "
            "batch, tokens and tp)"
        )


def _intervals(problem, cv_sel, cv_pred, fitted, train) -> dict[str, dict[str, float]]:
    """Log errors per quantity: cross-validated where there are folds, else the training residuals."""
    out = {}
    for c in np.unique(problem.obs_col):
        s = cv_sel & (problem.obs_col == c)
        pred = cv_pred if s.sum() >= 2 else fitted
        s = s if s.sum() >= 2 else train & (problem.obs_col == c)
        r = np.log(problem.obs_value[s] / pred[s])
        out[MEASURED[NAMES[c]][0]] = {
            "mean_log": float(r.mean()), "sd_log": float(r.std(ddof=1)) if len(r) > 1 else 0.0,
            "n": int(len(r)), "rows": "cross-validated" if pred is cv_pred else "training",
        }  # fmt: skip
    return out


def format_fit(content: Mapping[str, Any]) -> str:
    """The fit as text: each parameter prior -> posterior and whether the data determined it,
    then the cross-validated and held-out errors of the fitted and the unfitted level."""
    lines = [
        f"fit of {content['hardware']} under {content['framework']}: {content['rows']} rows; prior: "
        f"{content['prior']['calibration']}, software {content['prior']['framework'] or 'none'}",
        "",
        f"{'parameter':<22}{'unit':>8}{'prior':>12}{'posterior':>12}{'sd/prior sd':>13}  status",
    ]
    for p in content["parameters"]:
        lines.append(
            f"{p['name']:<22}{p['unit']:>8}{p['prior']:>12.4g}{p['posterior']:>12.4g}{p['posterior_sd_ratio']:>13.2f}"
            f"  {p['status']}"
        )
    v = content["validation"]
    for title, table in ((f"cross-validation ({v['scheme']}, {v['folds']} folds)", v["cv"]),
                         (f"held-out models {', '.join(content['measurements']['holdout_models'])}", v["holdout"])):  # fmt: skip
        if not table:
            continue
        lines += ["", f"{title}: MAPE / median APE, fitted vs unfitted",
                  f"{'column':<34}{'rows':>6}{'fitted':>16}{'unfitted':>18}"]  # fmt: skip
        for t in table:
            lines.append(
                f"{t['column']:<34}{t['rows']:>6}{t['fitted_mape_pct']:>8.1f} /{t['fitted_median_ape_pct']:>5.1f} %"
                f"{t['unfitted_mape_pct']:>10.1f} /{t['unfitted_median_ape_pct']:>5.1f} %"
            )
    excluded = content["measurements"]["excluded_rows_infeasible"]
    if excluded:
        lines += ["", f"not fitted: rows {', '.join(map(str, excluded))} do not fit in memory by the model "
                      "(a run in waves or with preemption is not one batch)"]  # fmt: skip
    n_fitted = sum(p["status"] == "determined" for p in content["parameters"])
    if content["rows"] < len(content["parameters"]):
        lines.append(f"{content['rows']} rows < {len(content['parameters'])} parameters: the priors hold the rest")
    lines.append(f"{n_fitted} of {len(content['parameters'])} parameters determined by the rows")
    return "\n".join(lines)
