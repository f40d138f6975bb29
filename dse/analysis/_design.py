"""Inverse design: the chip knobs that meet the SLOs at the lowest cost, found by gradient.

The knobs (spec-file keys with bounds, e.g. ``hbm_bandwidth_tb_s=1:10``) are optimized on the
unit cube of their log-scaled box by projected Adam (optax), so bounds are reached exactly.
Constraints (``ttft_s <= 0.5`` and the memory fit, ``memory_fill <= 1``) enter an augmented
Lagrangian on log metrics (Hestenes-Powell; Nocedal & Wright, *Numerical Optimization*,
§17.4); several starts run at once (one vmapped evaluation with forward-mode elasticities per
step). Integer knobs (ADC bits, array sizes) are relaxed for the first 60 % of the steps, then
set to the best of their values evaluated exactly on every start's design while the rest move
on; at the end every start's design and the best design met so far are evaluated exactly with
each integer combination, and the result is the best that meets every constraint.
``--compare-random`` evaluates a random sweep of the same box with the same engine.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optax

from dse.engine import Config, level_of, log_metrics_and_jacobian, resolve_knob, run_designs
from dse.specs import SpecError
from dse.sweep._spec import Constraint, Objective
from models import SoftwareParams

_FIT = Constraint("memory_fill", "<=", 1.0)  # weights, KV cache and activations fit the chip
_DIE = Constraint("die_fill", "<=", 1.0)  # the die fits the reticle (or its wafer): where it is modelled
_HBM = Constraint("hbm_fill", "<=", 1.0)  # the HBM stacks fit along the dies' edges
_POWER = Constraint("power_density_fill", "<=", 1.0)  # the cooling removes the TDP from the dies
_TOL = 1e-6  # relative slack on a constraint met "exactly"
_EXACT_BLOCK = 64  # designs per compiled call of an exact evaluation


@dataclasses.dataclass(frozen=True)
class DesignKnob:
    """A knob the search moves: its spec key and SI field, bounds in SI units, integer or not."""

    key: str
    field: str
    low: float
    high: float
    integer: bool
    unit: str
    factor: float  # SI per file unit


def parse_knobs(config: Config, text: str, where: str = "--knobs") -> list[DesignKnob]:
    """``'hbm_bandwidth_tb_s=1:10,peak_bf16_tflops=200:5000'`` → knobs (file units → SI)."""
    out: list[DesignKnob] = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        name, _, bounds = item.partition("=")
        lo_text, _, hi_text = bounds.partition(":")
        knob = resolve_knob(config, name.strip(), where)
        if knob.key.kind not in ("positive", "int"):
            raise SpecError(f"{where}: '{name}' is not a positive number knob: expected a quantity such as a bandwidth")
        try:
            lo, hi = float(lo_text), float(hi_text)
        except ValueError:
            lo = hi = float("nan")
        if not (0 < lo < hi < float("inf")):
            raise SpecError(f"{where}: '{item}': expected KEY=LOW:HIGH with 0 < LOW < HIGH (in {knob.key.unit})")
        if any(k.field == knob.field for k in out):
            raise SpecError(f"{where}: '{name}' given twice: expected each knob once")
        f = knob.key.factor
        out.append(DesignKnob(knob.key.key, knob.field, lo * f, hi * f, knob.key.kind == "int", knob.key.unit, f))
    if not out:
        raise SpecError(f"{where}: no knobs: expected KEY=LOW:HIGH, e.g. hbm_bandwidth_tb_s=1:10")
    return out


@dataclasses.dataclass
class _Problem:
    config: Config
    software: SoftwareParams  # one level
    levels: SoftwareParams  # the same level, stacked, for run_designs
    knobs: list[DesignKnob]
    objective: Objective
    constraints: list[Constraint]
    evaluations: int = 0

    @property
    def metrics(self) -> list[str]:
        return [self.objective.metric] + [c.metric for c in self.constraints]

    @property
    def signs(self) -> np.ndarray:
        """+1 for an upper bound (≤), −1 for a lower bound (≥), per constraint."""
        return np.array([1.0 if c.op in ("<", "<=") else -1.0 for c in self.constraints])

    def slack(self, logs: np.ndarray) -> np.ndarray:
        """g ≤ 0 where each constraint holds: log(metric / limit), sign-flipped for ≥."""
        return self.signs * (logs[..., 1:] - np.log([c.value for c in self.constraints]))

    # Blocks of one size, whatever the number of designs: the starts, their integer variants
    # and the final design share one compiled program (was one per power of two).
    def exact(self, si: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric of designs [K, d] (SI values) at the search's level."""
        self.evaluations += len(si)
        knobs = {k.field: si[:, i] for i, k in enumerate(self.knobs)}
        res = run_designs(self.config, knobs, self.levels, chunk=_EXACT_BLOCK, fixed=True)
        return {name: v[0] for name, v in res.items()}

    def violation(self, res: dict[str, np.ndarray]) -> np.ndarray:
        """How far each design is from meeting the constraints: the sum of positive slacks."""
        logs = np.log(np.stack([res[m] for m in self.metrics], axis=1))
        return np.nansum(np.maximum(self.slack(logs), 0.0), axis=1)

    def meets(self, res: dict[str, np.ndarray]) -> np.ndarray:
        ok = res["feasible"].astype(bool)
        for c in self.constraints:
            ok &= c.holds(res[c.metric] * (1.0 - _TOL if c.op in ("<", "<=") else 1.0 + _TOL))
        return ok

    def score(self, res: dict[str, np.ndarray]) -> np.ndarray:
        """The objective as a quantity to minimize."""
        v = res[self.objective.metric]
        return -v if self.objective.maximize else v


def always(config: Config) -> list[Constraint]:
    """The constraints every design meets: the memory fit, and — where the base chip's silicon
    is modelled (its die and HBM follow the knobs) — a die that can be made and HBM stacks that
    fit along its edges."""
    base = config.chip.silicon
    if base is None:
        return [_FIT]
    return [_FIT, _DIE, _POWER, _HBM] if base.stack_bytes_per_s > 0 else [_FIT, _DIE, _POWER]


def design(
    config: Config,
    software: SoftwareParams,
    knobs: Sequence[DesignKnob],
    objective: Objective,
    constraints: Sequence[Constraint],
    starts: int = 8,
    steps: int = 100,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Minimize (or maximize) ``objective`` over the knobs' box subject to ``constraints`` and
    the memory fit. ``software``: one efficiency level, stacked as :func:`software_levels`
    returns it. Returns the design (SI), its metrics, the evaluations spent, the active
    constraints and the elasticities of the objective at the design."""
    prob = _Problem(
        config,
        level_of(software),
        software,
        list(knobs),
        objective,
        [*constraints, *always(config)],
    )
    lo = np.log([k.low for k in knobs])
    span = np.log([k.high for k in knobs]) - lo
    names = [k.field for k in knobs]
    relaxed = _relaxed(config)  # the gradient's: HBM stacks relaxed like integer knobs
    ints = [i for i, k in enumerate(knobs) if k.integer and len(_grid(k)) <= _FEW]  # set mid-search
    rng = np.random.default_rng(seed)
    # Projected Adam on the box's unit cube (log scale): bounds are reachable exactly. It starts
    # at the box's centre and at the best of a screen of random designs evaluated exactly: the
    # limits of buildable silicon (whole HBM stacks along a die's edges) split the feasible
    # region into pieces a gradient cannot cross.
    u = np.concatenate([np.full((1, len(knobs)), 0.5), _screen(prob, lo, span, starts - 1, rng)])
    screened = lo + u * span  # kept as candidates: the search never ends worse than its starts
    opt = optax.adam(0.05)
    state = opt.init(u)
    lam = np.zeros((starts, len(prob.constraints)))
    mu, outer = 10.0, 5
    sign = -1.0 if objective.maximize else 1.0
    sign_c = prob.signs
    fixed: dict[int, float] = {}  # integer knobs, set after the relaxed phase (log SI values)
    relaxed_best: tuple[float, np.ndarray] | None = None
    switch = int(0.6 * steps) if ints else -1
    for step in range(steps):
        if step == switch:
            fixed = _best_integers(prob, np.concatenate([lo + u * span, screened]), knobs, ints)
            relaxed_best = None  # from here on, designs with their integers
        logx = lo + u * span
        for i, v in fixed.items():
            logx[:, i] = v
        vals, jac = log_metrics_and_jacobian(relaxed, logx, names, prob.metrics, prob.software)
        prob.evaluations += starts
        g = prob.slack(vals)
        # ∂L/∂log x: the objective's elasticity plus each violated (or multiplier-held) constraint's.
        pull = np.maximum(0.0, mu * g + lam)  # [K, c]
        grad = (sign * jac[:, 0, :] + np.einsum("kc,kcd->kd", pull * sign_c, jac[:, 1:, :])) * span
        grad = np.where(np.isfinite(grad), grad, 0.0)
        grad[:, list(fixed)] = 0.0
        updates, state = opt.update(grad, state)
        u = np.clip(np.asarray(optax.apply_updates(u, updates)), 0.0, 1.0)
        ok = np.all(g <= np.log1p(_TOL), axis=1) & np.all(np.isfinite(vals), axis=1)
        for k in np.flatnonzero(ok):
            f = sign * vals[k, 0]
            if relaxed_best is None or f < relaxed_best[0]:
                relaxed_best = (f, np.exp(logx[k]))
        if (step + 1) % max(steps // outer, 1) == 0:
            lam = np.maximum(0.0, lam + mu * g)
            mu = min(mu * 2.0, 1e4)
        if progress:
            progress(step + 1, steps)
    # Candidates evaluated exactly: the best relaxed feasible design and every start's last
    # iterate, each with its integer knobs rounded both ways.
    logx = lo + u * span
    for i, v in fixed.items():
        logx[:, i] = v
    cands = [np.exp(logx), np.exp(screened)]
    if relaxed_best is not None:
        cands.insert(0, relaxed_best[1][None, :])
    si = _integer_variants(np.concatenate(cands), knobs)
    res = prob.exact(si)
    ok = prob.meets(res)
    if ok.any():  # a pattern search from the best few: whole stacks and integer knobs are steps
        top = np.flatnonzero(ok)[np.argsort(prob.score(res)[ok])][:_POLISH_STARTS]
        res, i, x = _polish(prob, si[top], knobs)
        ok = prob.meets(res)
    else:  # nothing feasible: the least-violating design, reported as such
        i = int(np.nanargmin(np.where(res["infeasible_reason"] > 1, np.inf, prob.violation(res))))
        x = si[i]
    final = {k: float(v[i]) for k, v in res.items()}
    vals, jac = log_metrics_and_jacobian(
        prob.config, np.log(x)[None, :], [k.field for k in knobs], prob.metrics, prob.software
    )
    g = prob.slack(vals)[0]
    return {
        "design": {k.field: float(v) for k, v in zip(knobs, x, strict=True)},
        "metrics": final,
        "feasible": bool(ok[i]),
        "objective": final[objective.metric],
        "evaluations": prob.evaluations,
        "active": [str(c) for c, gi in zip(prob.constraints, g, strict=True) if gi > -1e-3],
        "elasticities": {k.field: float(e) for k, e in zip(knobs, jac[0, 0, :], strict=True)},
        "at_bound": [k.key for k, v in zip(knobs, x, strict=True) if v <= k.low * 1.01 or v >= k.high / 1.01],
    }


def _relaxed(config: Config) -> Config:
    """``config`` with its chip's HBM stacks continuous (models.silicon.SiliconBase.whole_stacks):
    what the gradient sees; designs are evaluated exactly with whole stacks."""
    base = config.chip.silicon
    if base is None:
        return config
    chip = dataclasses.replace(config.chip, silicon=dataclasses.replace(base, whole_stacks=False))
    return dataclasses.replace(config, chip=chip)


_SCREEN = 64  # random designs screened per start
_POLISH_STEPS = (0.25, 0.1, 0.04, 0.015)  # relative steps of the pattern search, coarse to fine
_POLISH_STARTS = 4  # the best feasible designs it starts from


def _polish(
    prob: _Problem, xs: np.ndarray, knobs: Sequence[DesignKnob]
) -> tuple[dict[str, np.ndarray], int, np.ndarray]:
    """Pattern search from each feasible design of ``xs`` [n, d] at once: every knob, and every
    pair of knobs, up and down by a relative step (a pair moves along a constraint's edge: more
    bandwidth paid for by more die), evaluated exactly; each design moves to its best neighbour
    that improves and meets every constraint; when none moves, a smaller step. The metrics, row
    and design of the best it ends at."""
    lo, hi = np.array([k.low for k in knobs]), np.array([k.high for k in knobs])
    n, d = xs.shape
    moves = [np.eye(d)[j] * sign for j in range(d) for sign in (1.0, -1.0)]
    moves += [np.eye(d)[a] * sa + np.eye(d)[b] * sb for a, b in itertools.combinations(range(d), 2)
              for sa in (1.0, -1.0) for sb in (1.0, -1.0)]  # fmt: skip
    directions = np.array(moves)  # [m, d] in {-1, 0, 1}
    m = len(directions)
    res = prob.exact(xs)
    scores = np.where(prob.meets(res), prob.score(res), np.inf)
    i = int(np.argmin(scores))
    best: tuple[dict[str, np.ndarray], int, np.ndarray, float] = (res, i, xs[i], float(scores[i]))
    for step in _POLISH_STEPS:
        for _ in range(8):
            cand = xs[:, None, :] * (1.0 + step) ** directions[None, :, :]  # [n, m, d]
            for j, k in enumerate(knobs):
                if k.integer:  # at least one whole unit
                    f, v, up = k.factor, cand[:, :, j], directions[None, :, j]
                    v = np.where(up > 0, np.ceil(v / f - 1e-9), np.where(up < 0, np.floor(v / f + 1e-9), v / f)) * f
                    cand[:, :, j] = np.where((v == xs[:, None, j]) & (up != 0), xs[:, None, j] + up * f, v)
            cand = np.clip(cand, lo, hi).reshape(n * m, d)
            r = prob.exact(cand)
            s = np.where(prob.meets(r), prob.score(r), np.inf)
            per = s.reshape(n, m)
            pick = np.argmin(per, axis=1)
            moved = per[np.arange(n), pick] < scores * (1.0 - 1e-9)
            if not moved.any():
                break
            xs = np.where(moved[:, None], cand.reshape(n, m, d)[np.arange(n), pick], xs)
            scores = np.where(moved, per[np.arange(n), pick], scores)
            k = int(np.argmin(s))
            if s[k] < best[3]:
                best = (r, k, cand[k], float(s[k]))
    return best[0], best[1], best[2]


def _screen(prob: _Problem, lo: np.ndarray, span: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` starting points (unit cube): the best of ``_SCREEN`` x ``n`` random designs of the
    box by objective among those that meet every constraint, then by least violation."""
    if n <= 0:
        return np.zeros((0, len(lo)))
    si = _sample_box(prob.knobs, _SCREEN * n, rng)
    res = prob.exact(si)
    violation = prob.violation(res) + (res["feasible"] < 1)
    order = np.lexsort((prob.score(res), np.where(prob.meets(res), 0.0, 1.0 + violation)))
    return np.clip((np.log(si[order[:n]]) - lo) / span, 0.0, 1.0)


def _best_integers(prob: _Problem, logx: np.ndarray, knobs: Sequence[DesignKnob], ints: list[int]) -> dict[int, float]:
    """The integer values (log SI) of the best exactly-evaluated design among the integer
    variants of every start's relaxed design."""
    si = _integer_variants(np.exp(logx), knobs)
    res = prob.exact(si)
    score = np.where(prob.meets(res), prob.score(res), np.inf)
    if not np.isfinite(score).any():  # none meets the constraints: the least violating
        score = prob.violation(res)
    best = si[int(np.nanargmin(score))]
    return {i: float(np.log(best[i])) for i in ints}


_FEW = 16  # an integer knob with at most this many values is enumerated; more: rounded


def _grid(k: DesignKnob) -> np.ndarray:
    """The integer values (file units) of an integer knob within its bounds."""
    return np.arange(np.ceil(k.low / k.factor), np.floor(k.high / k.factor) + 1)


def _integer_variants(si: np.ndarray, knobs: Sequence[DesignKnob]) -> np.ndarray:
    """Each design with every value of its few-valued integer knobs (ADC bits) and each
    many-valued one (array sizes) rounded down and up, in file units."""
    ints = [i for i, k in enumerate(knobs) if k.integer]
    if not ints:
        return si
    rows = []
    for row in si:
        choices = []
        for i in ints:
            g, f = _grid(knobs[i]), knobs[i].factor
            near = np.clip([np.floor(row[i] / f), np.ceil(row[i] / f)], g[0], g[-1])
            choices.append(g if len(g) <= _FEW else np.unique(near))
        for combo in itertools.product(*choices):
            r = row.copy()
            r[ints] = np.asarray(combo) * [knobs[i].factor for i in ints]
            rows.append(r)
    return np.unique(np.array(rows), axis=0)


def _sample_box(knobs: Sequence[DesignKnob], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` log-uniform designs of the knobs' box (SI), integer knobs rounded as the engine
    takes them."""
    lo, hi = np.log([k.low for k in knobs]), np.log([k.high for k in knobs])
    si = np.exp(lo + rng.random((n, len(knobs))) * (hi - lo))
    for i, k in enumerate(knobs):
        if k.integer:
            si[:, i] = np.clip(np.rint(si[:, i] / k.factor), np.ceil(k.low / k.factor), np.floor(k.high / k.factor))
            si[:, i] *= k.factor
    return si


def random_search(
    config: Config,
    software: SoftwareParams,
    knobs: Sequence[DesignKnob],
    objective: Objective,
    constraints: Sequence[Constraint],
    n: int,
    seed: int = 0,
) -> dict[str, Any]:
    """The best design of ``n`` uniform samples of the box (log-uniform, integers rounded)."""
    prob = _Problem(config, level_of(software), software, list(knobs), objective, list(constraints))
    si = _sample_box(knobs, n, np.random.default_rng(seed + 1))
    res = prob.exact(si)
    ok = prob.meets(res)
    if not ok.any():
        return {"objective": None, "evaluations": n, "feasible_designs": 0}
    i = int(np.flatnonzero(ok)[np.argmin(prob.score(res)[ok])])
    return {
        "objective": float(res[objective.metric][i]),
        "evaluations": n,
        "feasible_designs": int(ok.sum()),
        "design": {k.field: float(si[i, j]) for j, k in enumerate(knobs)},
    }
