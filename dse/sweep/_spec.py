"""Sweep specifications: YAML → a validated :class:`SweepSpec`. Every error is one line.

A sweep file names the fixed parts (model, hardware base, scenario, platform), the axes
(grid axes become dimensions; sampled axes share one ``design`` dimension), the discrete
axes (lists of models, hardware bases or scenarios: an outer product of static groups), the
constraints and the objectives. Axis keys are spec-file keys in their file units
(``hbm_bandwidth_tb_s``) or SI knob names (``usd_per_kwh``, ``batch``); they are resolved
per hardware family when the sweep is planned (:mod:`dse.sweep`).

Example::

    name: example
    model: llama-3-70b
    hardware: h100-sxm5-80gb
    scenario: {prompt_tokens: 3000, output_tokens: 1000, batch: 16}
    platform: {id: dgx-h100, tp: 8}   # degrees tp, pp, ep, sp, dp; id: a platform file
    batching: continuous              # static (default), continuous, chunked, disaggregated
    grid:
      hbm_bandwidth_tb_s: {start: 1, stop: 8, num: 8, scale: log}
    sample:
      method: sobol
      n: 65536
      seed: 0
      axes:
        peak_bf16_tflops: {low: 200, high: 2500, scale: log}
    constraints: [ttft_s <= 0.5, tpot_s <= 0.02]
    objectives: [maximize throughput_tokens_per_s_per_chip, minimize j_per_token]
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from dse.engine import LEVELS
from dse.specs import SpecError, read_mapping, shipped_folders, suggest
from models import BATCHING, DTYPES, Metrics

METRICS: tuple[str, ...] = Metrics._fields
SAMPLE_METHODS = ("random", "sobol", "latin_hypercube")
# Parallel degrees of the platform mapping (each splits the model evenly: fixed, or a grid
# axis); ``id`` names a platform file whose network levels the chips run on.
PLATFORM_DEGREES = ("tp", "pp", "ep", "sp", "dp")
SCENARIO_KEYS = ("name", "phase", "prompt_tokens", "output_tokens", "batch")
PHASES = ("request", "prefill", "decode")
TOP_KEYS = (
    "name",
    "description",
    "model",
    "hardware",
    "scenario",
    "platform",
    "batching",
    "framework",
    "fit",
    "dtype",
    "level",
    "set",
    "grid",
    "sample",
    "constraints",
    "objectives",
    "outputs",
    "chunk",
)
_OPS = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater, "==": np.equal}


@dataclasses.dataclass(frozen=True)
class GridAxis:
    """A grid axis: a dimension of the dataset. ``relative``: values multiply the base value."""

    key: str
    values: tuple[float, ...]
    relative: bool = False

    @property
    def dim(self) -> str:
        return f"{self.key}_scale" if self.relative else self.key


@dataclasses.dataclass(frozen=True)
class SampledAxis:
    """A sampled knob: one coordinate of the ``design`` dimension."""

    key: str
    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    name: str
    phase: str
    prompt_tokens: float
    output_tokens: float
    batch: float


@dataclasses.dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def holds(self, values: np.ndarray) -> np.ndarray:
        return _OPS[self.op](values, self.value)


@dataclasses.dataclass(frozen=True)
class Objective:
    metric: str
    maximize: bool

    def __str__(self) -> str:
        return f"{'maximize' if self.maximize else 'minimize'} {self.metric}"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep. ``raw`` is the normalized spec (JSON-able), stored in the zarr attrs."""

    source: str
    name: str
    description: str
    models: tuple[str, ...]
    models_is_dim: bool
    hardware: tuple[str, ...]
    hardware_is_dim: bool
    scenarios: tuple[ScenarioSpec, ...]
    scenario_is_dim: bool
    degrees: tuple[tuple[str, float], ...]  # (tp, …), every one of PLATFORM_DEGREES
    platform_id: str | None
    batching: str
    framework: str | None
    dtype: str
    level: str
    fixed: tuple[tuple[str, float], ...]
    grid: tuple[GridAxis, ...]
    sample_method: str | None
    sample_n: int
    sample_seed: int
    sampled: tuple[SampledAxis, ...]
    constraints: tuple[Constraint, ...]
    objectives: tuple[Objective, ...]
    outputs: tuple[str, ...]
    chunk: int | None
    raw: dict[str, Any]
    fit: str | None = None  # a user's fit file (path resolved against the sweep file's folder)

    @property
    def tp(self) -> float:
        return dict(self.degrees)["tp"]

    @property
    def pp(self) -> float:
        return dict(self.degrees)["pp"]

    @property
    def n_designs(self) -> int:
        n = int(np.prod([len(a.values) for a in self.grid], dtype=np.int64)) if self.grid else 1
        n *= self.sample_n if self.sampled else 1
        return n * len(self.models) * len(self.hardware) * len(self.scenarios)

    def to_json(self) -> str:
        # Key order kept: the order of the grid keys is the order of the store's dimensions.
        return json.dumps(self.raw)


def _num(src: str, where: str, v: Any, *, positive: bool = True, integer: bool = False, zero: bool = False) -> float:
    """A finite number; ``positive``: > 0 (≥ 0 with ``zero``, for knobs whose kind allows it,
    which the engine checks per knob)."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (not positive or v > 0 or (zero and v == 0)) and (not integer or float(v) == int(v))
    if not ok:
        what = "an integer" if integer else "a number"
        bound = (" >= 0" if zero else " > 0") if positive else ""
        raise SpecError(f"{src}: {where} = {v!r}: expected {what}{bound}")
    return float(v)


def _mapping(src: str, where: str, v: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise SpecError(f"{src}: {where}: expected a mapping with keys {', '.join(allowed)}")
    for k in v:
        if k not in allowed:
            raise SpecError(
                f"{src}: {where}: unknown key '{k}'{suggest(k, allowed)} (expected one of {', '.join(allowed)})"
            )
    return v


def _names(src: str, key: str, v: Any) -> tuple[tuple[str, ...], bool]:
    if isinstance(v, str) and v:
        return (v,), False
    if isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
        if len(set(v)) != len(v):
            raise SpecError(f"{src}: {key}: duplicate entries: expected distinct ids")
        return tuple(v), True
    raise SpecError(f"{src}: {key} = {v!r}: expected a catalog id, a file path, or a list of them")


def _grid_axis(src: str, key: str, v: Any) -> GridAxis:
    where = f"grid.{key}"
    if isinstance(v, list):
        v = {"values": v}
    v = _mapping(src, where, v, ("values", "start", "stop", "num", "scale", "factors"))
    forms = [f for f in ("values", "factors", "start") if f in v]
    if len(forms) != 1:
        raise SpecError(f"{src}: {where}: expected exactly one of 'values', 'factors' or 'start'/'stop'/'num'")
    if forms[0] in ("values", "factors"):
        vals = v[forms[0]]
        if not isinstance(vals, list) or not vals:
            raise SpecError(f"{src}: {where}.{forms[0]}: expected a non-empty list of numbers > 0")
        out = tuple(_num(src, f"{where}.{forms[0]}[{i}]", x, zero=True) for i, x in enumerate(vals))
        extra = set(v) - {forms[0]}
        if extra:
            raise SpecError(f"{src}: {where}: key '{sorted(extra)[0]}' not allowed with '{forms[0]}'")
    else:
        for k in ("stop", "num"):
            if k not in v:
                raise SpecError(f"{src}: {where}: missing key '{k}': expected start, stop and num")
        start, stop = _num(src, f"{where}.start", v["start"]), _num(src, f"{where}.stop", v["stop"])
        num = int(_num(src, f"{where}.num", v["num"], integer=True))
        scale = v.get("scale", "linear")
        if scale not in ("linear", "log"):
            raise SpecError(f"{src}: {where}.scale = {scale!r}: expected linear or log")
        arr = np.geomspace(start, stop, num) if scale == "log" else np.linspace(start, stop, num)
        out = tuple(float(x) for x in arr)
    if len(set(out)) != len(out):
        raise SpecError(f"{src}: {where}: repeated values: expected distinct values")
    return GridAxis(key, out, relative=forms[0] == "factors")


def _sampled_axis(src: str, key: str, v: Any) -> SampledAxis:
    where = f"sample.axes.{key}"
    if isinstance(v, list) and len(v) == 2:
        v = {"low": v[0], "high": v[1]}
    v = _mapping(src, where, v, ("low", "high", "scale", "integer"))
    for k in ("low", "high"):
        if k not in v:
            raise SpecError(f"{src}: {where}: missing key '{k}': expected low and high (numbers > 0)")
    low, high = _num(src, f"{where}.low", v["low"]), _num(src, f"{where}.high", v["high"])
    if not high > low:
        raise SpecError(f"{src}: {where}: high = {high:g}: expected greater than low = {low:g}")
    scale = v.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise SpecError(f"{src}: {where}.scale = {scale!r}: expected linear or log")
    integer = v.get("integer", False)
    if not isinstance(integer, bool):
        raise SpecError(f"{src}: {where}.integer = {integer!r}: expected true or false")
    return SampledAxis(key, low, high, scale == "log", integer)


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*(\S+)\s*$")


def parse_constraint(src: str, where: str, text: Any) -> Constraint | None:
    """``'ttft_s <= 0.5'`` → Constraint; ``'feasible'`` (memory feasible) → None (always applied)."""
    if isinstance(text, str) and text.strip() in ("feasible", "memory feasible", "memory_feasible"):
        return None
    m = _CONSTRAINT_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise SpecError(
            f"{src}: {where} = {text!r}: expected 'METRIC OP VALUE' such as 'ttft_s <= 0.5' (OP one of <=, <, >=, >, ==)"
        )
    metric, op, value = m.groups()
    if metric not in METRICS:
        raise SpecError(
            f"{src}: {where}: unknown metric '{metric}'{suggest(metric, METRICS)} (known: {', '.join(METRICS)})"
        )
    try:
        val = float(value)
    except ValueError:
        raise SpecError(f"{src}: {where}: '{value}' is not a number: expected 'METRIC OP NUMBER'") from None
    if not math.isfinite(val):
        raise SpecError(f"{src}: {where}: '{value}': expected a finite number")
    return Constraint(metric, op, val)


_OBJ_RE = re.compile(r"^\s*(maximize|minimize|max|min)\s*[: ]\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def parse_objective(src: str, where: str, text: Any) -> Objective:
    """``'maximize throughput_tokens_per_s_per_chip'`` / ``'min:j_per_token'`` → Objective."""
    m = _OBJ_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise SpecError(
            f"{src}: {where} = {text!r}: expected 'maximize METRIC' or 'minimize METRIC' (or max:METRIC, min:METRIC)"
        )
    sense, metric = m.groups()
    if metric not in METRICS:
        raise SpecError(
            f"{src}: {where}: unknown metric '{metric}'{suggest(metric, METRICS)} (known: {', '.join(METRICS)})"
        )
    return Objective(metric, sense.startswith("max"))


def _scenario(src: str, where: str, v: Any, index: int | None) -> ScenarioSpec:
    v = _mapping(src, where, v, SCENARIO_KEYS)
    phase = v.get("phase", "request")
    if phase not in PHASES:
        raise SpecError(f"{src}: {where}.phase = {phase!r}: expected one of {', '.join(PHASES)}")
    for k in ("prompt_tokens", "batch"):
        if k not in v:
            raise SpecError(f"{src}: {where}: missing key '{k}': expected a number > 0")
    if "output_tokens" not in v and phase != "prefill":
        raise SpecError(f"{src}: {where}: missing key 'output_tokens': expected a number > 0")
    name = v.get("name", phase if index is None else None)
    if not isinstance(name, str) or not name:
        raise SpecError(f"{src}: {where}: missing key 'name': expected a name for each scenario of a list")
    return ScenarioSpec(
        name,
        phase,
        _num(src, f"{where}.prompt_tokens", v["prompt_tokens"], integer=True),
        _num(src, f"{where}.output_tokens", v.get("output_tokens", 1), integer=True),
        _num(src, f"{where}.batch", v["batch"], integer=True),
    )


def _scenarios(src: str, sc: Any) -> tuple[ScenarioSpec, ...]:
    if not isinstance(sc, list):
        return (_scenario(src, "scenario", sc, None),)
    if not sc:
        raise SpecError(f"{src}: scenario: expected a mapping or a non-empty list of mappings")
    scenarios = tuple(_scenario(src, f"scenario[{i}]", s, i) for i, s in enumerate(sc))
    if len({s.name for s in scenarios}) != len(scenarios):
        raise SpecError(f"{src}: scenario: duplicate names: expected distinct scenario names")
    return scenarios


def _platform(src: str, raw: Any) -> tuple[tuple[tuple[str, float], ...], str | None]:
    """(parallel degrees, platform id or path) of ``platform:``."""
    plat = _mapping(src, "platform", raw, ("id", *PLATFORM_DEGREES))
    degrees = tuple((k, _num(src, f"platform.{k}", plat.get(k, 1), integer=True)) for k in PLATFORM_DEGREES)
    platform_id = plat.get("id")
    if platform_id is not None and (not isinstance(platform_id, str) or not platform_id):
        raise SpecError(f"{src}: platform.id = {platform_id!r}: expected a platform catalog id or YAML path")
    return degrees, platform_id


def _choice(src: str, data: dict[str, Any], key: str, default: str, options: Any) -> str:
    value = data.get(key, default)
    if value not in options:
        raise SpecError(f"{src}: {key} = {value!r}: expected one of {', '.join(options)}")
    return value


def _sample(src: str, sample: Any) -> tuple[str | None, int, int, tuple[SampledAxis, ...]]:
    """(method, n, seed, axes) of ``sample:`` (None, 0, 0, () without one)."""
    if sample is None:
        return None, 0, 0, ()
    sample = _mapping(src, "sample", sample, ("method", "n", "seed", "axes"))
    method = sample.get("method", "random")
    if method not in SAMPLE_METHODS:
        raise SpecError(f"{src}: sample.method = {method!r}: expected one of {', '.join(SAMPLE_METHODS)}")
    if "n" not in sample:
        raise SpecError(f"{src}: sample: missing key 'n': expected the number of designs (integer > 0)")
    n = int(_num(src, "sample.n", sample["n"], integer=True))
    seed = int(_num(src, "sample.seed", sample.get("seed", 0), positive=False, integer=True))
    axes = sample.get("axes")
    if not isinstance(axes, dict) or not axes:
        raise SpecError(f"{src}: sample.axes: expected a mapping of knob keys to {{low, high, scale, integer}}")
    return method, n, seed, tuple(_sampled_axis(src, str(k), v) for k, v in axes.items())


def _check_axis_keys(src: str, keys: list[str], fixed: set[str]) -> None:
    dup = {k for k in keys if keys.count(k) > 1} | (fixed & set(keys))
    if dup:
        raise SpecError(f"{src}: key '{sorted(dup)[0]}' appears in more than one of grid, sample.axes and set")
    bad = {"model", "hardware", "scenario", "design", "level"} & set(keys)
    if bad:
        raise SpecError(
            f"{src}: axis '{sorted(bad)[0]}': expected a knob; list models, hardware or scenarios under their own keys"
        )


def _goals(src: str, data: dict[str, Any]) -> tuple[tuple[Constraint, ...], tuple[Objective, ...]]:
    cons_raw = data.get("constraints", []) or []
    if isinstance(cons_raw, str):
        cons_raw = [cons_raw]
    if not isinstance(cons_raw, list):
        raise SpecError(f"{src}: constraints: expected a list such as ['ttft_s <= 0.5', 'tpot_s <= 0.02']")
    constraints = tuple(c for i, t in enumerate(cons_raw) if (c := parse_constraint(src, f"constraints[{i}]", t)))
    obj_raw = data.get("objectives", []) or []
    if not isinstance(obj_raw, list):
        raise SpecError(f"{src}: objectives: expected a list such as ['maximize throughput_tokens_per_s_per_chip']")
    objectives = tuple(parse_objective(src, f"objectives[{i}]", t) for i, t in enumerate(obj_raw))
    if len({o.metric for o in objectives}) != len(objectives):
        raise SpecError(f"{src}: objectives: a metric appears twice: expected distinct metrics")
    return constraints, objectives


def _outputs(
    src: str, raw: Any, constraints: tuple[Constraint, ...], objectives: tuple[Objective, ...]
) -> tuple[str, ...]:
    """The metrics a store keeps: ``outputs:`` (and what the constraints and objectives need), else all."""
    if raw is None:
        return METRICS
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{src}: outputs: expected a non-empty list of metric names")
    for i, m in enumerate(raw):
        if m not in METRICS:
            raise SpecError(f"{src}: outputs[{i}]: unknown metric {m!r}{suggest(str(m), METRICS)}")
    needed = {"feasible"} | {c.metric for c in constraints} | {o.metric for o in objectives}
    return tuple(m for m in METRICS if m in set(raw) | needed)


def parse_sweep(data: Any, source: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """Validate a sweep mapping (as read from YAML). ``source`` names it in errors."""
    src = source
    if not isinstance(data, dict):
        raise SpecError(f"{src}: expected a mapping of keys to values at the top level")
    for k in data:
        if k not in TOP_KEYS:
            raise SpecError(
                f"{src}: unknown key '{k}'{suggest(str(k), TOP_KEYS)} (expected one of {', '.join(TOP_KEYS)})"
            )
    for k in ("model", "hardware", "scenario"):
        if k not in data:
            raise SpecError(f"{src}: missing key '{k}'")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SpecError(f"{src}: name = {name!r}: expected letters, digits, '_', '-' or '.'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SpecError(f"{src}: description: expected text")

    def ref(x: str) -> str:  # paths are taken relative to the spec file
        if base_dir is not None and ("/" in x or x.endswith((".yaml", ".yml", ".json"))):
            p = Path(x)
            return str(p if p.is_absolute() or p.exists() else (base_dir / p))
        return x

    models, models_dim = _names(src, "model", data["model"])
    hardware, hw_dim = _names(src, "hardware", data["hardware"])
    models, hardware = tuple(ref(m) for m in models), tuple(ref(h) for h in hardware)
    sc = data["scenario"]
    scenarios = _scenarios(src, sc)
    degrees, platform_id = _platform(src, data.get("platform", {}) or {})
    platform_id = ref(platform_id) if platform_id is not None else None
    framework = data.get("framework")
    if framework is not None and (not isinstance(framework, str) or not framework):
        raise SpecError(f"{src}: framework = {framework!r}: expected a software profile name such as tensorrt-llm")
    fit = data.get("fit")
    if fit is not None and (not isinstance(fit, str) or not fit.endswith((".yaml", ".yml"))):
        raise SpecError(f"{src}: fit = {fit!r}: expected the path of a fit file (FIT.yaml from `inferbench calibrate`)")
    fit = ref(fit) if fit is not None else None
    batching = _choice(src, data, "batching", "static", BATCHING)
    dtype = _choice(src, data, "dtype", "bf16", DTYPES)
    level = _choice(src, data, "level", "calibrated", LEVELS)
    fixed_raw = data.get("set", {}) or {}
    if not isinstance(fixed_raw, dict):
        raise SpecError(f"{src}: set: expected a mapping of spec keys to numbers")
    fixed = tuple((str(k), _num(src, f"set.{k}", v)) for k, v in fixed_raw.items())

    grid_raw = data.get("grid", {}) or {}
    if not isinstance(grid_raw, dict):
        raise SpecError(f"{src}: grid: expected a mapping of knob keys to axes")
    grid = tuple(_grid_axis(src, str(k), v) for k, v in grid_raw.items())
    method, n, seed, sampled = _sample(src, data.get("sample"))
    _check_axis_keys(src, [a.key for a in grid] + [a.key for a in sampled], {k for k, _ in fixed})
    constraints, objectives = _goals(src, data)
    outputs = _outputs(src, data.get("outputs"), constraints, objectives)
    chunk = data.get("chunk")
    if chunk is not None:
        chunk = int(_num(src, "chunk", chunk, integer=True))
    raw = {
        "name": name,
        "description": description,
        "model": list(models) if models_dim else models[0],
        "hardware": list(hardware) if hw_dim else hardware[0],
        "scenario": [dataclasses.asdict(s) for s in scenarios]
        if isinstance(sc, list)
        else dataclasses.asdict(scenarios[0]),
        "platform": {**({"id": platform_id} if platform_id else {}), **dict(degrees)},
        "batching": batching,
        "framework": framework,
        **({"fit": fit} if fit else {}),
        "dtype": dtype,
        "level": level,
        "set": dict(fixed),
        "grid": {a.key: ({"factors" if a.relative else "values": list(a.values)}) for a in grid},
        "sample": None
        if not sampled
        else {
            "method": method,
            "n": n,
            "seed": seed,
            "axes": {
                a.key: {"low": a.low, "high": a.high, "scale": "log" if a.log else "linear", "integer": a.integer}
                for a in sampled
            },
        },
        "constraints": [str(c) for c in constraints],
        "objectives": [str(o) for o in objectives],
        "outputs": list(outputs),
        "chunk": chunk,
    }
    return SweepSpec(
        src,
        name,
        description,
        models,
        models_dim,
        hardware,
        hw_dim,
        scenarios,
        isinstance(sc, list),
        degrees,
        platform_id,
        batching,
        framework,
        dtype,
        level,
        fixed,
        grid,
        method,
        n,
        seed,
        sampled,
        constraints,
        objectives,
        outputs,
        chunk,
        raw,
        fit,
    )


# The shipped studies: the checkout's sweeps/ (editable install), or the copy a wheel carries.
STUDY_DIRS = (
    Path(__file__).resolve().parents[2] / "sweeps",
    Path(__file__).resolve().parents[1] / "_shipped" / "sweeps",
)


def shipped_studies() -> dict[str, str]:
    """Name -> the opening sentence of every shipped study."""
    out: dict[str, str] = {}
    for folder in shipped_folders("sweeps"):
        for path in sorted(folder.glob("*.yaml")):
            if path.stem in out:
                continue
            out[path.stem] = _summary(path.read_text(encoding="utf-8"))
    return out


_SENTENCE_END = re.compile(r"(?<!Fig)(?<!al)(?<!Eq)(?<!vs)(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z])")


def _summary(text: str, width: int = 100) -> str:
    """A study file's opening comment, to its first sentence (at most ``width`` characters)."""
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words += line[1:].split()
    summary = " ".join(words)
    end = _SENTENCE_END.search(summary)
    summary = summary[: end.start() + 1] if end else summary
    return summary if len(summary) <= width else summary[: width - 1].rsplit(" ", 1)[0] + " …"


def study_path(ref: str | Path) -> Path:
    """A sweep file: ``ref`` itself when it is a path that exists (or looks like one), else the
    shipped study of that name, from any working folder."""
    p = Path(ref)
    if p.exists() or p.suffix in (".yaml", ".yml") and (os.sep in str(ref) or "/" in str(ref)):
        return p
    name = p.stem if p.suffix in (".yaml", ".yml") else str(ref)
    for folder in shipped_folders("sweeps"):
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    if p.suffix in (".yaml", ".yml"):
        return p  # load_sweep names the missing file
    names = sorted(shipped_studies())
    raise SpecError(
        f"sweep: unknown study '{ref}'{suggest(str(ref), names)}: expected a YAML path or one of {', '.join(names)}"
    )


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file (or a shipped study by name)."""
    p = study_path(path)
    return parse_sweep(read_mapping(p), str(p), p.parent)
