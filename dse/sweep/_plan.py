"""Sweep planning: static groups, the inner space cut into chunks, and the knobs of each chunk.

A sweep is an outer product of static *groups* (model × hardware base × scenario, each a
fixed structure, compiled once) and, inside each group, an *inner space*: the grid axes
(one dimension each) followed by the ``design`` dimension of the sampled knobs. The inner
space is cut into chunks that are contiguous in C order, so that each evaluation chunk is
exactly one zarr chunk of every variable: the chunk shape is ``(1, …, 1, c, full, …, full)``.

Axis keys resolve through the engine's one key table (:func:`dse.engine.knob_keys`) for the
group's chip; values go from spec-file units to SI once (relative axes multiply the base's
SI value).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import numpy as np

from dse.engine import (
    EVAL_BLOCK,
    SWEEP_PRECISION,
    Config,
    Knob,
    Pending,
    calibration_source,
    check_physics,
    check_values,
    dispatch,
    framework_of,
    make_config,
    resolve_knob,
    software_levels,
    storage_dtype,
    with_knobs,
)
from dse.specs import SpecError, load_hardware, load_model, load_platform
from models import SoftwareParams

from ._sampling import sample_values
from ._spec import PLATFORM_DEGREES, SweepSpec


@dataclasses.dataclass
class Group:
    """One static group: a base configuration and how each axis key maps onto its knobs."""

    index: tuple[int, ...]
    config: Config
    hardware_id: str
    knobs: dict[str, Knob]  # axis key → the knob it sets
    software: SoftwareParams  # the sweep's level for this group's chip
    calibration: str = ""  # where that level comes from and its software profile

    def si_values(self, key: str, values: np.ndarray, relative: bool) -> np.ndarray:
        """Axis values in spec-file units (or factors of the base, ``relative``) → SI."""
        knob = self.knobs[key]
        if relative:
            base = float(getattr(getattr(self.config, knob.component), knob.field))
            return np.asarray(values, dtype=np.float64) * base
        return np.asarray(values, dtype=np.float64) * knob.key.factor


@dataclasses.dataclass
class Plan:
    spec: SweepSpec
    groups: list[Group]
    group_dims: tuple[str, ...]
    group_shape: tuple[int, ...]
    inner_dims: tuple[str, ...]
    inner_shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]  # inner chunk shape
    split_axis: int  # inner axis cut into pieces of chunk_shape[split_axis]

    @property
    def dims(self) -> tuple[str, ...]:
        return self.group_dims + self.inner_dims

    @property
    def shape(self) -> tuple[int, ...]:
        return self.group_shape + self.inner_shape

    @property
    def chunks(self) -> tuple[int, ...]:
        return (1,) * len(self.group_dims) + self.chunk_shape

    @property
    def chunk_size(self) -> int:
        return int(np.prod(self.chunk_shape, dtype=np.int64))

    @property
    def chunks_per_group(self) -> int:
        s = self.split_axis
        return int(np.prod(self.inner_shape[:s], dtype=np.int64)) * math.ceil(self.inner_shape[s] / self.chunk_shape[s])

    @property
    def n_chunks(self) -> int:
        return len(self.groups) * self.chunks_per_group

    @property
    def n_designs(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def chunk_region(self, ci: int) -> tuple[tuple[slice, ...], int, int]:
        """Inner slices of chunk ``ci`` of a group and its flat inner range [start, stop)."""
        s = self.split_axis
        n_split = math.ceil(self.inner_shape[s] / self.chunk_shape[s])
        outer, piece = divmod(ci, n_split)
        lead = np.unravel_index(outer, self.inner_shape[:s]) if s else ()
        lo = piece * self.chunk_shape[s]
        hi = min(lo + self.chunk_shape[s], self.inner_shape[s])
        slices = (
            tuple(slice(int(i), int(i) + 1) for i in lead)
            + (slice(lo, hi),)
            + tuple(slice(0, n) for n in self.inner_shape[s + 1 :])
        )
        trail = int(np.prod(self.inner_shape[s + 1 :], dtype=np.int64))
        start = (int(np.ravel_multi_index(lead, self.inner_shape[:s])) if s else 0) * self.inner_shape[s] * trail
        return slices, start + lo * trail, start + hi * trail


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else a conservative 4 GB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


# Memory of one design in flight: its inputs, its outputs in float64 (from the evaluation)
# and in storage dtypes, for three chunks alive at once (one evaluating, one converting, one
# being written), rounded up (estimate; the evaluation's own working set is per EVAL_BLOCK,
# not per chunk, so it does not grow with the chunk).
BYTES_PER_DESIGN = 4 << 10


def auto_chunk(n_devices: int = 1) -> int:
    """Designs per chunk: a power of two using ≤ 2 % of available memory, in [2^12, 2^17].

    Large chunks amortize the per-file cost of the store; 2^17 designs × 39 float32
    variables is 20 MB per chunk in flight.
    """
    budget = available_memory_bytes() // 50
    c = 1 << max(12, min(17, (budget // BYTES_PER_DESIGN).bit_length() - 1))
    return c * n_devices if n_devices > 1 else c


def _inner_chunking(shape: tuple[int, ...], target: int) -> tuple[tuple[int, ...], int]:
    """Chunk shape (1, …, 1, c, full, …) of at most ``target`` elements (≥ 1 element)."""
    trail = 1
    for s in range(len(shape) - 1, -1, -1):
        if trail * shape[s] > target:
            c = max(1, target // trail)
            return (1,) * s + (c,) + tuple(shape[s + 1 :]), s
        trail *= shape[s]
    return tuple(shape), 0


def _check_axes(spec: SweepSpec, group: Group, where: str) -> None:
    """The listed axes' values through the engine's one check (:func:`dse.engine.check_values`:
    integral counts, tp splitting the heads, ranges, the batch split evenly over the dp
    replicas in every combination of the grid); each sampled axis' bounds through its
    per-value part."""
    cfg = group.config
    listed = {group.knobs[a.key].field: group.si_values(a.key, np.asarray(a.values), a.relative) for a in spec.grid}
    labels = {group.knobs[a.key].field: (f"grid.{a.key}", group.knobs[a.key].key.factor) for a in spec.grid}
    check_values(cfg, listed, where, labels=labels)
    for a in spec.sampled:
        knob = group.knobs[a.key]
        label = f"{where}: sample.axes.{a.key}"
        if knob.field in PLATFORM_DEGREES:
            raise SpecError(f"{label}: expected a grid axis ({a.key} must split the model evenly; list its values)")
        if knob.key.kind == "int" and not a.integer:
            raise SpecError(f"{label}: expected integer: true ({a.key} is a count: {knob.key.doc})")
        bounds = {knob.field: group.si_values(a.key, np.asarray([a.low, a.high]), False)}
        check_physics(cfg, bounds, where, labels={knob.field: (f"sample.axes.{a.key}", knob.key.factor)})


def make_plan(spec: SweepSpec, chunk: int | None = None) -> Plan:
    """Load every group's base configuration and cut the inner space into chunks."""

    def entry(loader, ref: str, what: str):
        try:
            return loader(ref)
        except SpecError as e:
            raise SpecError(f"{spec.source}: {what}: {e}") from None

    models = [entry(load_model, m, "model") for m in spec.models]
    hws = [entry(load_hardware, h, "hardware") for h in spec.hardware]
    platform = entry(load_platform, spec.platform_id, "platform.id") if spec.platform_id else None
    groups: list[Group] = []
    for idx in itertools.product(range(len(models)), range(len(hws)), range(len(spec.scenarios))):
        m, h, sc = models[idx[0]], hws[idx[1]], spec.scenarios[idx[2]]
        cfg = entry(
            lambda _: make_config(
                m,
                h,
                **dict(spec.degrees),
                platform=platform,
                batching=spec.batching,
                batch=sc.batch,
                prompt_tokens=sc.prompt_tokens,
                output_tokens=sc.output_tokens,
                weight_dtype=spec.dtype,
                act_dtype=spec.dtype,
                kv_dtype=spec.dtype,
            ),
            None,
            "platform and scenario",
        )
        fixed = {}
        for key, value in spec.fixed:
            knob = resolve_knob(cfg, key, f"{spec.source}: set.{key}")
            fixed[knob.field] = np.asarray(value * knob.key.factor)
        if fixed:
            cfg = with_knobs(cfg, fixed)
        knobs = {}
        for key, where in [(a.key, f"grid.{a.key}") for a in spec.grid] + [
            (a.key, f"sample.axes.{a.key}") for a in spec.sampled
        ]:
            knobs[key] = resolve_knob(cfg, key, f"{spec.source}: {where}")
        group = Group((), cfg, h.id, knobs, None)  # type: ignore[arg-type]
        _check_axes(spec, group, f"{spec.source}: {m.id} on {h.id}")
        sel = tuple(
            i
            for i, isdim in zip(idx, (spec.models_is_dim, spec.hardware_is_dim, spec.scenario_is_dim), strict=True)
            if isdim
        )
        software = entry(lambda _: software_levels(h, [spec.level], spec.framework), None, "framework")
        source = calibration_source(h) if spec.level == "calibrated" else f"level {spec.level}"
        profile = f"{source}, software {framework_of(h, spec.framework)}" if spec.level == "calibrated" else source
        groups.append(Group(sel, cfg, h.id, knobs, software, profile))
    group_dims = tuple(
        d
        for d, isdim in (
            ("model", spec.models_is_dim),
            ("hardware", spec.hardware_is_dim),
            ("scenario", spec.scenario_is_dim),
        )
        if isdim
    )
    group_shape = tuple(
        n
        for n, isdim in (
            (len(models), spec.models_is_dim),
            (len(hws), spec.hardware_is_dim),
            (len(spec.scenarios), spec.scenario_is_dim),
        )
        if isdim
    )
    inner_dims = tuple(a.dim for a in spec.grid) + (("design",) if spec.sampled else ())
    inner_shape = tuple(len(a.values) for a in spec.grid) + ((spec.sample_n,) if spec.sampled else ())
    if not inner_shape:
        inner_dims, inner_shape = ("design",), (1,)
    target = chunk or spec.chunk or auto_chunk(_n_devices())
    chunk_shape, split = _inner_chunking(inner_shape, target)
    return Plan(spec, groups, group_dims, group_shape, inner_dims, inner_shape, chunk_shape, split)


def _n_devices() -> int:
    return jax.local_device_count()


def chunk_inputs(plan: Plan, ci: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """File-unit values of every axis key over chunk ``ci``'s flat range, and the design
    coordinates it owns (if it starts a run of designs), and its length."""
    spec = plan.spec
    _, start, stop = plan.chunk_region(ci)
    idx = np.arange(start, stop, dtype=np.int64)
    pos = np.unravel_index(idx, plan.inner_shape)
    vals = {a.key: np.asarray(a.values)[pos[i]] for i, a in enumerate(spec.grid)}
    design_coords: dict[str, np.ndarray] = {}
    if spec.sampled:
        d = pos[len(spec.grid)]
        d0, d1 = int(d.min()), int(d.max()) + 1
        sv = sample_values(spec, d0, d1)
        for k, v in sv.items():
            vals[k] = v[d - d0].astype(np.float64)
        if start < spec.sample_n:  # the first grid point's run writes the coordinates
            design_coords = sv
    return vals, design_coords, stop - start


def chunk_knobs(plan: Plan, g: int, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Axis values (spec-file units) of designs of group ``g`` → SI knobs."""
    group = plan.groups[g]
    return {group.knobs[key].field: group.si_values(key, v, _is_relative(plan.spec, key)) for key, v in values.items()}


def dispatch_chunk(plan: Plan, g: int, ci: int) -> tuple[Pending, dict[str, np.ndarray], int]:
    """Start the evaluation of chunk ``ci`` of group ``g`` (asynchronous, through the engine's
    boundary); returns the pending metrics, the design coordinates to write and the length."""
    vals, coords, n = chunk_inputs(plan, ci)
    group = plan.groups[g]
    block = min(EVAL_BLOCK, plan.chunk_size)
    knobs = chunk_knobs(plan, g, vals)
    return dispatch(group.config, knobs, group.software, block, fixed=True, precision=SWEEP_PRECISION), coords, n


def _is_relative(spec: SweepSpec, key: str) -> bool:
    return any(a.key == key and a.relative for a in spec.grid)


def finish_chunk(plan: Plan, res: Pending, n: int) -> dict[str, np.ndarray]:
    """Pending metrics → stored dtypes, plus ``meets_constraints``; flat arrays of length n."""
    spec = plan.spec
    names = set(spec.outputs) | {"feasible"} | {c.metric for c in spec.constraints}
    full = {k: v[0, :n] for k, v in res.collect(sorted(names)).items()}
    ok = full["feasible"] > 0.5
    for c in spec.constraints:
        ok &= c.holds(full[c.metric])
    out: dict[str, np.ndarray] = {}
    for k in spec.outputs:
        v, dtype = full[k], storage_dtype(k)
        out[k] = v > 0.5 if dtype == "bool" else np.rint(v).astype(dtype) if dtype == "int8" else v.astype(dtype)
    out["meets_constraints"] = ok
    return out
