"""Sweep execution: chunked evaluation streamed to a zarr v3 store, resumable, scalable with Dask.

A sweep is an outer product of static *groups* (model × hardware base × scenario, each a
fixed structure, compiled once) and, inside each group, an *inner space*: the grid axes
(one dimension each) followed by the ``design`` dimension of the sampled knobs. The inner
space is cut into chunks that are contiguous in C order, so that each evaluation chunk is
exactly one zarr chunk of every variable: the chunk shape is ``(1, …, 1, c, full, …, full)``.

Crash safety: a chunk's data are written first (zarr writes each chunk file atomically),
then its flag in ``_sweep_chunk_done``. A restart skips flagged chunks and recomputes the
others, so no chunk is lost or written twice. When every chunk is flagged the flag array is
removed, ``sweep_complete`` is set and the metadata are consolidated.

Metrics are computed in float64 and stored as float32 (7 significant digits; the cast
halves the bytes to compress and write), flags as bool and codes as int8. Sampled knob
values are rounded to float32 *before* evaluation, so the stored coordinates are exactly
the evaluated designs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dse._specs import SpecError, load_hardware, load_model, spec_key_to_knob
from dse._sweep_spec import SweepSpec, load_sweep, parse_sweep

DONE = "_sweep_chunk_done"
INT_METRICS = ("infeasible_reason", "bound", "prefill_bound", "decode_bound")
BOOL_METRICS = ("feasible",)
_SUFFIX_UNITS = (("_tb_s", "TB/s"), ("_gb_s", "GB/s"), ("_tflops", "TFLOP/s"), ("_tops", "TOP/s"),
                 ("_gb", "GB"), ("_mb", "MB"), ("_kb", "kB"), ("_us", "µs"), ("_ns", "ns"), ("_ghz", "GHz"),
                 ("_mhz", "MHz"), ("_w", "W"), ("_usd", "USD"), ("_mm2", "mm2"), ("_bits", "bit"),
                 ("_pj", "pJ"), ("_s", "s"))


def key_units(key: str) -> str:
    """Units of a spec-file key from its suffix (``hbm_bandwidth_tb_s`` → ``TB/s``)."""
    for suffix, unit in _SUFFIX_UNITS:
        if key.endswith(suffix):
            return unit
    return "1"


# --------------------------------------------------------------------------- planning


@dataclasses.dataclass
class Group:
    """One static group: a base configuration and how each axis key maps onto its knobs."""

    index: tuple[int, ...]
    config: Any
    hardware_id: str
    knobs: dict[str, tuple[str, float, float]]  # key → (SI knob, factor to SI, base value in file units)


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
    software: list[Any]

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
        slices = tuple(slice(int(i), int(i) + 1) for i in lead) + (slice(lo, hi),) + tuple(
            slice(0, n) for n in self.inner_shape[s + 1:])
        trail = int(np.prod(self.inner_shape[s + 1:], dtype=np.int64))
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
            return (1,) * s + (c,) + tuple(shape[s + 1:]), s
        trail *= shape[s]
    return tuple(shape), 0


def resolve_knob(spec: SweepSpec, family: str, owner: dict[str, str], key: str, where: str) -> tuple[str, float]:
    """Spec key → (SI knob, factor) for one hardware family; SI knob names map to themselves."""
    try:
        name, factor = spec_key_to_knob(family, key)
    except SpecError as e:
        if key in owner:
            return key, 1.0
        known = sorted(set(owner))
        raise SpecError(f"{spec.source}: {where}: unknown key '{key}' for hardware family '{family}' "
                        f"({str(e).split(': ', 1)[-1]}; SI knobs: {', '.join(known)})") from None
    if name not in owner:
        raise SpecError(f"{spec.source}: {where}: key '{key}' maps to '{name}', which is not a knob of family '{family}'")
    return name, factor


def make_plan(spec: SweepSpec, chunk: int | None = None) -> Plan:
    """Load every group's base configuration and cut the inner space into chunks."""
    import jax.numpy as jnp

    from dse._evaluate import _with_knobs, knob_owner, make_config, software_levels

    def entry(loader, ref: str, what: str):
        try:
            return loader(ref)
        except SpecError as e:
            raise SpecError(f"{spec.source}: {what}: {e}") from None

    models = [entry(load_model, m, "model") for m in spec.models]
    hws = [entry(load_hardware, h, "hardware") for h in spec.hardware]
    groups: list[Group] = []
    software = []
    for idx in itertools.product(range(len(models)), range(len(hws)), range(len(spec.scenarios))):
        m, h, sc = models[idx[0]], hws[idx[1]], spec.scenarios[idx[2]]
        cfg = make_config(m, h, tp=spec.tp, pp=spec.pp, batch=sc.batch, prompt_tokens=sc.prompt_tokens,
                          output_tokens=sc.output_tokens, weight_dtype=spec.dtype, act_dtype=spec.dtype,
                          kv_dtype=spec.dtype)
        owner = knob_owner(cfg)
        family = getattr(h.spec, "family", "simt")
        fixed = {}
        for key, value in spec.fixed:
            name, factor = resolve_knob(spec, family, owner, key, f"set.{key}")
            fixed[name] = jnp.asarray(value * factor)
        if fixed:
            cfg = _with_knobs(cfg, fixed)
        knobs = {}
        for key, where in [(a.key, f"grid.{a.key}") for a in spec.grid] + [(a.key, f"sample.axes.{a.key}") for a in spec.sampled]:
            name, factor = resolve_knob(spec, family, owner, key, where)
            base = float(getattr(getattr(cfg, owner[name]), name)) / factor
            knobs[key] = (name, factor, base)
        sel = tuple(i for i, isdim in zip(idx, (spec.models_is_dim, spec.hardware_is_dim, spec.scenario_is_dim),
                                          strict=True) if isdim)
        groups.append(Group(sel, cfg, h.id, knobs))
        software.append(software_levels(h.id, [spec.level]))
    group_dims = tuple(d for d, isdim in (("model", spec.models_is_dim), ("hardware", spec.hardware_is_dim),
                                           ("scenario", spec.scenario_is_dim)) if isdim)
    group_shape = tuple(n for n, isdim in ((len(models), spec.models_is_dim), (len(hws), spec.hardware_is_dim),
                                            (len(spec.scenarios), spec.scenario_is_dim)) if isdim)
    inner_dims = tuple(a.dim for a in spec.grid) + (("design",) if spec.sampled else ())
    inner_shape = tuple(len(a.values) for a in spec.grid) + ((spec.sample_n,) if spec.sampled else ())
    if not inner_shape:
        inner_dims, inner_shape = ("design",), (1,)
    target = chunk or spec.chunk or auto_chunk(_n_devices())
    chunk_shape, split = _inner_chunking(inner_shape, target)
    return Plan(spec, groups, group_dims, group_shape, inner_dims, inner_shape, chunk_shape, split, software)


def _n_devices() -> int:
    import jax

    return jax.local_device_count()


# --------------------------------------------------------------------------- sampling


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A stateless 64-bit hash (SplitMix64 finalizer): the same value for the same index,
    whatever the chunking, so sampled designs do not depend on the chunk size."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(seed: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """U[0, 1) for design indices ``idx`` in stream ``stream`` (one stream per knob)."""
    key = _splitmix64(np.array([seed * 1_000_003 + stream], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        h = _splitmix64(idx.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _permute(n: int, seed: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """A pseudo-random permutation of [0, n) evaluated at ``idx`` in O(1) memory: a 4-round
    Feistel network on the smallest even power of two ≥ n, with cycle walking."""
    half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    keys = [_splitmix64(np.array([seed * 7919 + stream * 104729 + r + 1], dtype=np.uint64))[0] for r in range(4)]
    x = idx.astype(np.uint64)
    todo = np.ones(len(x), dtype=bool)
    while True:
        left, right = x[todo] >> np.uint64(half), x[todo] & mask
        for k in keys:
            left, right = right, left ^ (_splitmix64(right ^ k) & mask)
        x[todo] = (left << np.uint64(half)) | right
        todo[todo] = x[todo] >= np.uint64(n)
        if not todo.any():
            return x.astype(np.int64)


def sample_unit(spec: SweepSpec, start: int, stop: int) -> np.ndarray:
    """Points [start, stop) of the unit hypercube, shape [stop − start, n_sampled]."""
    d, idx = len(spec.sampled), np.arange(start, stop, dtype=np.int64)
    if spec.sample_method == "sobol":
        import warnings

        from scipy.stats import qmc

        eng = qmc.Sobol(d, scramble=True, seed=spec.sample_seed)
        if start:
            eng.fast_forward(start)
        with warnings.catch_warnings():  # balance warning when n is not a power of two
            warnings.simplefilter("ignore")
            return eng.random(stop - start)
    cols = []
    for j in range(d):
        u = _uniform(spec.sample_seed, j, idx)
        if spec.sample_method == "latin_hypercube":  # one point per stratum, strata permuted
            u = (_permute(spec.sample_n, spec.sample_seed, j, idx) + u) / spec.sample_n
        cols.append(u)
    return np.stack(cols, axis=1) if cols else np.empty((len(idx), 0))


def sample_values(spec: SweepSpec, start: int, stop: int) -> dict[str, np.ndarray]:
    """Sampled knob values (file units, rounded to float32) of designs [start, stop)."""
    u = sample_unit(spec, start, stop)
    out = {}
    for j, a in enumerate(spec.sampled):
        if a.log:
            v = np.exp(np.log(a.low) + u[:, j] * (np.log(a.high) - np.log(a.low)))
        else:
            v = a.low + u[:, j] * (a.high - a.low)
        if a.integer:
            v = np.clip(np.rint(v), math.ceil(a.low), math.floor(a.high))
        out[a.key] = v.astype(np.float32)
    return out


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


# --------------------------------------------------------------------------- evaluation


def _put(block: dict[str, np.ndarray]) -> dict[str, Any]:
    """Shard the design axis over every local device when there are several."""
    import jax

    devices = jax.local_devices()
    if len(devices) == 1 or len(next(iter(block.values()))) % len(devices):
        return block
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    sharding = NamedSharding(Mesh(np.array(devices), ("d",)), PartitionSpec("d"))
    return {k: jax.device_put(v, sharding) for k, v in block.items()}


# One evaluation call covers this many designs: on CPU the cost model's working set stays in
# cache up to ~2^14 designs (measured: 2^14 ≈ 1.7 M designs/s per core, 2^16 ≈ 1.0 M), so a
# zarr chunk is evaluated as several calls of one compiled shape, all dispatched at once.
EVAL_BLOCK = 1 << 14


def dispatch_chunk(plan: Plan, g: int, ci: int) -> tuple[list[Any], dict[str, np.ndarray], int]:
    """Start the evaluation of chunk ``ci`` of group ``g`` (asynchronous); returns the
    pending metrics (one per evaluation block), the design coordinates to write and the
    chunk's length."""
    from dse._evaluate import serve_batch

    group = plan.groups[g]
    vals, coords, n = chunk_inputs(plan, ci)
    size = plan.chunk_size
    sub = min(EVAL_BLOCK, size)
    padded = -(-size // sub) * sub
    block = {}
    for key, v in vals.items():
        name, factor, base = group.knobs[key]
        si = v * factor * (base if _is_relative(plan.spec, key) else 1.0)
        if n < padded:  # pad with the last value: one shape per sweep, no recompilation
            si = np.concatenate([si, np.full(padded - n, si[-1])])
        block[name] = si
    if not block:  # a single point: vary a knob at its own value
        block["batch"] = np.full(padded, float(group.config.scenario.batch))
    pending = [serve_batch(group.config, _put({k: v[i:i + sub] for k, v in block.items()}), plan.software[g])
               for i in range(0, min(n, padded), sub)]
    return pending, coords, n


def _is_relative(spec: SweepSpec, key: str) -> bool:
    return any(a.key == key and a.relative for a in spec.grid)


def finish_chunk(plan: Plan, res: Any, n: int) -> dict[str, np.ndarray]:
    """Pending metrics → stored dtypes, plus ``meets_constraints``; flat arrays of length n."""
    spec = plan.spec
    names = set(spec.outputs) | {"feasible"} | {c.metric for c in spec.constraints}
    if len(res) == 1:
        full = {k: np.asarray(getattr(res[0], k))[0, :n] for k in names}
    else:
        full = {k: np.concatenate([np.asarray(getattr(r, k))[0] for r in res])[:n] for k in names}
    ok = full["feasible"] > 0.5
    for c in spec.constraints:
        ok &= c.holds(full[c.metric])
    out: dict[str, np.ndarray] = {}
    for k in spec.outputs:
        v = full[k]
        if k in BOOL_METRICS:
            out[k] = v > 0.5
        elif k in INT_METRICS:
            out[k] = np.rint(v).astype(np.int8)
        else:
            out[k] = v.astype(np.float32)
    out["meets_constraints"] = ok
    return out


# --------------------------------------------------------------------------- the store


def _metric_attrs(name: str) -> dict[str, Any]:
    from dse._evaluate import METRIC_INFO
    from models import BOUND_NAMES, INFEASIBLE_REASONS

    if name == "meets_constraints":
        return {"units": "1", "description": "feasible and every constraint of the sweep holds"}
    units, desc = METRIC_INFO[name]
    attrs: dict[str, Any] = {"units": units, "description": desc}
    if name.endswith("bound"):
        attrs |= {"flag_values": list(range(len(BOUND_NAMES))), "flag_meanings": " ".join(BOUND_NAMES)}
    if name == "infeasible_reason":
        attrs |= {"flag_values": list(range(len(INFEASIBLE_REASONS))), "flag_meanings": " | ".join(INFEASIBLE_REASONS)}
    return attrs


def _var_dtype(name: str) -> str:
    if name in BOOL_METRICS or name == "meets_constraints":
        return "bool"
    return "int8" if name in INT_METRICS else "float32"


def _compressors() -> list[Any]:
    from zarr.codecs import BloscCodec

    # LZ4 at level 1 with byte shuffle: ~2.5 M designs/s for 35 float32 metrics on one core.
    return [BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")]


def create_store(plan: Plan, store: Path) -> None:
    """Write the store's metadata: every variable, coordinate and attribute; no data yet."""
    import dask.array as da
    import xarray as xr
    import zarr

    from dse import __version__

    spec = plan.spec
    data_vars = {}
    enc: dict[str, dict[str, Any]] = {}
    for name in (*spec.outputs, "meets_constraints"):
        data_vars[name] = (plan.dims, da.empty(plan.shape, chunks=plan.chunks, dtype=_var_dtype(name)), _metric_attrs(name))
        enc[name] = {"chunks": plan.chunks, "compressors": _compressors()}
    coords: dict[str, Any] = {}
    labels = {"model": [g for g in spec.models], "hardware": [h for h in spec.hardware],
              "scenario": [s.name for s in spec.scenarios]}
    for d in plan.group_dims:
        coords[d] = (d, np.array([Path(x).stem if d != "scenario" else x for x in labels[d]], dtype=object))
    for a in spec.grid:
        attrs = {"units": "1", "description": f"{a.key} relative to the hardware base"} if a.relative else {
            "units": key_units(a.key), "description": f"grid axis {a.key} (spec-file units)"}
        coords[a.dim] = (a.dim, np.asarray(a.values, dtype=np.float64), attrs)
    if spec.sampled:
        n = spec.sample_n
        dchunk = plan.chunk_shape[-1]
        for a in spec.sampled:
            coords[a.key] = ("design", da.empty(n, chunks=dchunk, dtype=np.float32),
                             {"units": key_units(a.key), "description": f"sampled knob {a.key} (spec-file units, "
                              f"{'log' if a.log else 'linear'} in [{a.low:g}, {a.high:g}]"
                              f"{', integer' if a.integer else ''}, {spec.sample_method} seed {spec.sample_seed})"})
            enc[a.key] = {"chunks": (dchunk,), "compressors": _compressors()}
    done = (("sweep_group", "sweep_chunk"), da.zeros((len(plan.groups), plan.chunks_per_group), chunks=1, dtype=np.uint8),
            {"description": "1 when the chunk is written (removed when the sweep completes)"})
    data_vars[DONE] = done
    enc[DONE] = {"chunks": (1, 1), "compressors": None}
    ds = xr.Dataset(data_vars, coords=coords)
    scenario = spec.scenarios[0]
    ds.attrs = {
        "title": f"InferBench sweep {spec.name}",
        "description": spec.description,
        "inferbench_version": __version__,
        "sweep_name": spec.name,
        "sweep_spec": spec.to_json(),
        "sweep_chunk": plan.chunk_size,
        "sweep_complete": False,
        "level": spec.level,
        "dtype": spec.dtype,
        "tp": spec.tp, "pp": spec.pp,
        "constraints": [str(c) for c in spec.constraints],
        "objectives": [str(o) for o in spec.objectives],
        "n_designs": plan.n_designs,
        "storage": "metrics computed in float64, stored as float32; flags bool; codes int8",
    }
    if not spec.scenario_is_dim:
        ds.attrs |= {"prompt_tokens": scenario.prompt_tokens, "output_tokens": scenario.output_tokens,
                     "batch": scenario.batch, "phase": scenario.phase}
    if not spec.models_is_dim:
        ds.attrs["model"] = Path(spec.models[0]).stem
    if not spec.hardware_is_dim:
        ds.attrs["hardware"] = Path(spec.hardware[0]).stem
    ds.to_zarr(store, mode="w", compute=False, encoding=enc, zarr_format=3, consolidated=False)
    del zarr


class StoreWriter:
    """Writes evaluated chunks into their zarr regions, then flags them done.

    Fast path: a variable whose codecs are exactly (bytes little-endian, blosc) gets each
    chunk encoded with the same blosc settings and written to its chunk key atomically
    (temporary file + rename), as zarr's LocalStore does; the blosc frame is self-describing,
    so zarr reads it back unchanged. This avoids zarr's ~1.5 ms per-call overhead, which at
    39 variables per chunk would dominate the sweep. Anything else goes through zarr.
    """

    def __init__(self, plan: Plan, store: Path):
        import zarr

        self.plan, self.store = plan, Path(store)
        root = zarr.open_group(store, mode="r+")
        names = (*plan.spec.outputs, "meets_constraints")
        self.arrays = {k: root[k] for k in names}
        self.coords = {a.key: root[a.key] for a in plan.spec.sampled}
        self.done = root[DONE]
        self.codecs = {k: _fast_codec(a) for k, a in {**self.arrays, **self.coords}.items()}
        self.pool = ThreadPoolExecutor(2)

    def _put(self, name: str, arr: Any, value: np.ndarray, region: tuple[slice, ...]) -> None:
        codec = self.codecs[name]
        chunks = arr.metadata.chunk_grid.chunk_shape
        if codec is None:
            arr[region] = value
            return
        coords = tuple(r.start // c for r, c in zip(region, chunks, strict=True))
        shape = tuple(r.stop - r.start for r in region)
        if shape != tuple(chunks):  # edge chunk: zarr stores the full chunk shape
            full = np.full(chunks, arr.metadata.fill_value, dtype=value.dtype)
            full[tuple(slice(0, n) for n in shape)] = value
            value = full
        path = self.store / arr.path / arr.metadata.encode_chunk_key(coords)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(codec.encode(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))))
        os.replace(tmp, path)

    def write(self, g: int, ci: int, data: dict[str, np.ndarray], coords: dict[str, np.ndarray]) -> None:
        plan = self.plan
        inner, start, stop = plan.chunk_region(ci)
        region = tuple(slice(i, i + 1) for i in plan.groups[g].index) + inner
        shape = tuple(s.stop - s.start for s in region)
        jobs = [(k, self.arrays[k], v.reshape(shape), region) for k, v in data.items()]
        if coords and g == 0:
            jobs += [(k, self.coords[k], v, (inner[-1],)) for k, v in coords.items()]
        for f in [self.pool.submit(self._put, *job) for job in jobs]:
            f.result()
        self.done[g, ci] = 1  # only after every variable of the chunk is on disk

    def close(self) -> None:
        self.pool.shutdown()


def _fast_codec(arr: Any) -> Any:
    """The numcodecs Blosc equivalent of ``arr``'s codecs, or None if they are anything else."""
    from numcodecs import Blosc
    from zarr.codecs import BloscCodec, BytesCodec

    codecs = arr.metadata.codecs
    if (getattr(arr.metadata, "zarr_format", 3) != 3 or len(codecs) != 2 or not isinstance(codecs[0], BytesCodec)
            or not isinstance(codecs[1], BloscCodec) or getattr(codecs[0].endian, "value", "little") != "little"):
        return None
    b = codecs[1]
    shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}[b.shuffle.value]
    return Blosc(cname=b.cname.value, clevel=b.clevel, shuffle=shuffle, blocksize=b.blocksize)


def read_done(store: Path, plan: Plan) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_group(store, mode="r")[DONE][:], dtype=bool)


def finalize_store(store: Path) -> None:
    """Drop the progress flags, mark the store complete and consolidate its metadata."""
    import zarr

    root = zarr.open_group(store, mode="r+")
    if DONE in root:
        del root[DONE]
    root.attrs["sweep_complete"] = True
    consolidate(store)


def consolidate(store: Path) -> None:
    """Consolidate the metadata of a zarr v3 store so that ``xarray.open_zarr`` opens it in one read."""
    import warnings

    import zarr

    # Consolidated metadata (one read to open the store) is a zarr-python extension to the v3
    # format that xarray reads by default; zarr warns that other implementations may not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(store)


def store_state(store: Path) -> tuple[str, dict[str, Any]]:
    """('missing' | 'partial' | 'complete' | 'foreign', attrs)."""
    import zarr

    if not store.exists():
        return "missing", {}
    try:
        attrs = dict(zarr.open_group(store, mode="r").attrs)
    except Exception:  # noqa: BLE001 — anything that is not a readable zarr group
        return "foreign", {}
    if "sweep_spec" not in attrs:
        return "foreign", attrs
    return ("complete" if attrs.get("sweep_complete") else "partial"), attrs


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr: designs/s and ETA; silent when not a terminal."""

    def __init__(self, total: int, done: int = 0, quiet: bool = False, stream: Any = None):
        self.stream = stream or sys.stderr
        self.enabled = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.done, self.start_done = total, done, done
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
            self.last = now
            rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            frac = self.done / max(self.total, 1)
            bar = "#" * int(30 * frac)
            self.stream.write(f"\r[{bar:<30}] {frac:6.1%} {self.done:,}/{self.total:,} designs "
                              f"{rate:,.0f} designs/s ETA {eta:5.1f} s ")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class SweepResult:
    store: Path
    status: str  # 'completed' | 'resumed' | 'already complete'
    n_designs: int
    n_chunks_run: int
    seconds: float

    @property
    def designs_per_s(self) -> float:
        return self.n_designs / self.seconds if self.seconds > 0 else float("inf")


def _prepare(spec: SweepSpec, store: Path, overwrite: bool, chunk: int | None) -> tuple[Plan | None, str]:
    state, attrs = store_state(store)
    if state == "foreign" and not overwrite:
        raise SpecError(f"{store}: exists and is not an InferBench sweep store: expected a new path, or --overwrite")
    if state in ("partial", "complete") and not overwrite:
        if attrs["sweep_spec"] != spec.to_json():
            raise SpecError(f"{store}: was written by a different sweep spec: expected the same spec to resume, "
                            f"or --overwrite to start again")
        if state == "complete":
            return None, "already complete"
        return make_plan(spec, int(attrs["sweep_chunk"])), "resumed"
    if store.exists():
        shutil.rmtree(store) if store.is_dir() else store.unlink()
    plan = make_plan(spec, chunk)
    create_store(plan, store)
    return plan, "completed"


def _todo(plan: Plan, store: Path) -> list[tuple[int, int]]:
    done = read_done(store, plan)
    return [(g, ci) for g in range(len(plan.groups)) for ci in range(plan.chunks_per_group) if not done[g, ci]]


def _designs_in(plan: Plan, todo: list[tuple[int, int]]) -> int:
    return sum(plan.chunk_region(ci)[2] - plan.chunk_region(ci)[1] for _, ci in todo)


def run_sweep(spec: SweepSpec | str | Path, store: str | Path, *, overwrite: bool = False, quiet: bool = False,
              chunk: int | None = None, dask: bool = False, workers: int | None = None,
              scheduler: str | None = None, _stop_after: int | None = None) -> SweepResult:
    """Run (or resume) a sweep into ``store``.

    Args:
        spec: a :class:`SweepSpec` or the path of a sweep YAML file.
        store: the zarr store (a directory) to create or resume.
        overwrite: start again even if the store holds a finished or different sweep.
        quiet: no progress bar (it is also off when stderr is not a terminal).
        chunk: designs per chunk (default: chosen from the available memory).
        dask: evaluate on a local dask.distributed cluster of ``workers`` processes.
        scheduler: address of an existing dask.distributed scheduler.

    Returns:
        A :class:`SweepResult`.
    """
    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    store = Path(store)
    t0 = time.perf_counter()
    plan, status = _prepare(spec, store, overwrite, chunk)
    if plan is None:
        return SweepResult(store, status, 0, 0, 0.0)
    todo = _todo(plan, store)
    if _stop_after is not None:  # tests: simulate a crash after this many chunks
        todo = todo[:_stop_after]
    n = _designs_in(plan, todo)
    progress = Progress(plan.n_designs, plan.n_designs - _designs_in(plan, _todo(plan, store)), quiet)
    try:
        if dask or scheduler:
            _run_dask(plan, store, todo, progress, workers, scheduler)
        else:
            _run_local(plan, store, todo, progress)
    finally:
        progress.close()
    if _stop_after is not None:
        return SweepResult(store, "stopped", n, len(todo), time.perf_counter() - t0)
    if not _todo(plan, store):
        finalize_store(store)
    return SweepResult(store, status, n, len(todo), time.perf_counter() - t0)


def _run_local(plan: Plan, store: Path, todo: list[tuple[int, int]], progress: Progress) -> None:
    """Pipeline: chunk i+1 evaluates (XLA, asynchronous) while chunk i is converted and
    chunk i−1 is compressed and written (threads; blosc releases the GIL). At most three
    chunks are alive, so memory does not grow with the sweep."""
    writer = StoreWriter(plan, store)
    io = ThreadPoolExecutor(1)
    pending_write = None
    try:
        it: Iterator[tuple[int, int]] = iter(todo)
        nxt = next(it, None)
        current = (nxt, *dispatch_chunk(plan, *nxt)) if nxt else None
        while current is not None:
            (g, ci), res, coords, n = current
            nxt = next(it, None)
            current = (nxt, *dispatch_chunk(plan, *nxt)) if nxt else None
            data = finish_chunk(plan, res, n)
            del res
            if pending_write is not None:
                pending_write.result()
            pending_write = io.submit(_write_and_count, writer, g, ci, data, coords, progress, n)
        if pending_write is not None:
            pending_write.result()
    finally:
        io.shutdown()
        writer.close()


def _write_and_count(writer: StoreWriter, g: int, ci: int, data, coords, progress: Progress, n: int) -> None:
    writer.write(g, ci, data, coords)
    progress.update(n)


# --------------------------------------------------------------------------- Dask


_WORKER_CACHE: dict[tuple[str, str], tuple[Plan, StoreWriter]] = {}
_WORKER_LOCK = threading.Lock()


def dask_chunk_task(store: str, spec_json: str, g: int, ci: int) -> int:
    """A Dask task: evaluate chunk ``ci`` of group ``g`` and write it into its own region.

    Each worker process plans the sweep once from the spec stored with the task (cached) and
    compiles once per static group. Returns the number of designs written.
    """
    import json

    key = (store, spec_json)
    with _WORKER_LOCK:
        if key not in _WORKER_CACHE:
            import zarr

            chunk = int(zarr.open_group(store, mode="r").attrs["sweep_chunk"])
            spec = parse_sweep(json.loads(spec_json), source=f"{store} (sweep_spec)")
            plan = make_plan(spec, chunk)
            _WORKER_CACHE.clear()
            _WORKER_CACHE[key] = (plan, StoreWriter(plan, Path(store)))
        plan, writer = _WORKER_CACHE[key]
    res, coords, n = dispatch_chunk(plan, g, ci)
    writer.write(g, ci, finish_chunk(plan, res, n), coords)
    return n


def _run_dask(plan: Plan, store: Path, todo: list[tuple[int, int]], progress: Progress,
              workers: int | None, scheduler: str | None) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SpecError("--dask: dask.distributed is not installed: expected `pip install 'dask[distributed]'`") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as e:
            raise SpecError(f"--scheduler: cannot connect to '{scheduler}' ({e}): expected the address of a running "
                            "dask scheduler, e.g. tcp://127.0.0.1:8786") from None
    else:
        n = workers or max(1, (os.cpu_count() or 2) // 2)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        spec_json = plan.spec.to_json()
        futures = [client.submit(dask_chunk_task, str(store.resolve()), spec_json, g, ci, pure=False,
                                 key=f"inferbench-{plan.spec.name}-{g}-{ci}-{time.time_ns()}") for g, ci in todo]
        for fut in as_completed(futures):
            progress.update(fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def open_sweep(store: str | Path) -> Any:
    """Open a sweep store as an xarray.Dataset (lazy)."""
    import xarray as xr

    store = Path(store)
    state, _ = store_state(store)
    if state in ("missing", "foreign"):
        raise SpecError(f"{store}: not an InferBench sweep store: expected the output of `inferbench sweep`")
    return xr.open_zarr(store, consolidated=state == "complete")


def describe(result: SweepResult) -> str:
    if result.status == "already complete":
        return f"{result.store}: sweep already complete (use --overwrite to run it again)"
    return (f"{result.store}: {result.status}: {result.n_designs:,} designs in {result.seconds:.2f} s "
            f"({result.designs_per_s:,.0f} designs/s)")


Callback = Callable[[int], None]
