"""The sweep's zarr v3 store: layout, chunk writes, progress flags, state.

Crash safety: a chunk's data are written first (each chunk file atomically: temporary file +
rename), then its flag in ``_sweep_chunk_done``. A restart skips flagged chunks and
recomputes the others, so no chunk is lost or written twice. When every chunk is flagged the
flag array is removed, ``sweep_complete`` is set and the metadata are consolidated.

Metrics are computed in float64 and stored as float32 (7 significant digits; the cast
halves the bytes to compress and write), flags as bool and codes as int8. Sampled knob
values are rounded to float32 *before* evaluation, so the stored coordinates are exactly
the evaluated designs.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec

from dse._version import __version__
from dse.engine import BOOL_METRICS, CODE_METRICS, metric_attrs
from dse.specs import SpecError

from ._plan import Plan

DONE = "_sweep_chunk_done"


def _metric_attrs(name: str) -> dict[str, Any]:
    if name == "meets_constraints":
        return {"units": "1", "description": "feasible and every constraint of the sweep holds"}
    return metric_attrs(name)


def _var_dtype(name: str) -> str:
    if name in BOOL_METRICS or name == "meets_constraints":
        return "bool"
    return "int8" if name in CODE_METRICS else "float32"


def axis_units(plan: Plan, key: str) -> str:
    """Units of an axis's stored values: the spec-file unit of a spec key, the SI unit of an SI name."""
    knob = plan.groups[0].knobs[key]
    return knob.key.unit if key == knob.key.key else knob.key.si_unit


def _compressors() -> list[Any]:
    # LZ4 at level 1 with byte shuffle: ~2.5 M designs/s for 35 float32 metrics on one core.
    return [BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")]


def create_store(plan: Plan, store: Path) -> None:
    """Write the store's metadata: every variable, coordinate and attribute; no data yet."""
    spec = plan.spec
    data_vars = {}
    enc: dict[str, dict[str, Any]] = {}
    for name in (*spec.outputs, "meets_constraints"):
        data_vars[name] = (
            plan.dims,
            da.empty(plan.shape, chunks=plan.chunks, dtype=_var_dtype(name)),
            _metric_attrs(name),
        )
        enc[name] = {"chunks": plan.chunks, "compressors": _compressors()}
    coords: dict[str, Any] = {}
    labels = {
        "model": [g for g in spec.models],
        "hardware": [h for h in spec.hardware],
        "scenario": [s.name for s in spec.scenarios],
    }
    for d in plan.group_dims:
        coords[d] = (d, np.array([Path(x).stem if d != "scenario" else x for x in labels[d]], dtype=object))
    for a in spec.grid:
        attrs = (
            {"units": "1", "description": f"{a.key} relative to the hardware base"}
            if a.relative
            else {"units": axis_units(plan, a.key), "description": f"grid axis {a.key}"}
        )
        coords[a.dim] = (a.dim, np.asarray(a.values, dtype=np.float64), attrs)
    if spec.sampled:
        n = spec.sample_n
        dchunk = plan.chunk_shape[-1]
        for a in spec.sampled:
            coords[a.key] = (
                "design",
                da.empty(n, chunks=dchunk, dtype=np.float32),
                {
                    "units": axis_units(plan, a.key),
                    "description": f"sampled knob {a.key} ("
                    f"{'log' if a.log else 'linear'} in [{a.low:g}, {a.high:g}]"
                    f"{', integer' if a.integer else ''}, {spec.sample_method} seed {spec.sample_seed})",
                },
            )
            enc[a.key] = {"chunks": (dchunk,), "compressors": _compressors()}
    done = (
        ("sweep_group", "sweep_chunk"),
        da.zeros((len(plan.groups), plan.chunks_per_group), chunks=1, dtype=np.uint8),
        {"description": "1 when the chunk is written (removed when the sweep completes)"},
    )
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
        "tp": spec.tp,
        "pp": spec.pp,
        "constraints": [str(c) for c in spec.constraints],
        "objectives": [str(o) for o in spec.objectives],
        "n_designs": plan.n_designs,
        "storage": "metrics computed in float64, stored as float32; flags bool; codes int8",
    }
    if not spec.scenario_is_dim:
        ds.attrs |= {
            "prompt_tokens": scenario.prompt_tokens,
            "output_tokens": scenario.output_tokens,
            "batch": scenario.batch,
            "phase": scenario.phase,
        }
    if not spec.models_is_dim:
        ds.attrs["model"] = Path(spec.models[0]).stem
    if not spec.hardware_is_dim:
        ds.attrs["hardware"] = Path(spec.hardware[0]).stem
    ds.to_zarr(store, mode="w", compute=False, encoding=enc, zarr_format=3, consolidated=False)


class StoreWriter:
    """Writes evaluated chunks into their zarr regions, then flags them done.

    Fast path: a variable whose codecs are exactly (bytes little-endian, blosc) gets each
    chunk encoded with the same blosc settings and written to its chunk key atomically
    (temporary file + rename), as zarr's LocalStore does; the blosc frame is self-describing,
    so zarr reads it back unchanged. This avoids zarr's ~1.5 ms per-call overhead, which at
    39 variables per chunk would dominate the sweep. Anything else goes through zarr.
    """

    def __init__(self, plan: Plan, store: Path):
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
    codecs = arr.metadata.codecs
    if (
        getattr(arr.metadata, "zarr_format", 3) != 3
        or len(codecs) != 2
        or not isinstance(codecs[0], BytesCodec)
        or not isinstance(codecs[1], BloscCodec)
        or getattr(codecs[0].endian, "value", "little") != "little"
    ):
        return None
    b = codecs[1]
    shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}[b.shuffle.value]
    return Blosc(cname=b.cname.value, clevel=b.clevel, shuffle=shuffle, blocksize=b.blocksize)


def read_done(store: Path, plan: Plan) -> np.ndarray:
    del plan
    return np.asarray(zarr.open_group(store, mode="r")[DONE][:], dtype=bool)


def finalize_store(store: Path) -> None:
    """Drop the progress flags, mark the store complete and consolidate its metadata."""
    root = zarr.open_group(store, mode="r+")
    if DONE in root:
        del root[DONE]
    root.attrs["sweep_complete"] = True
    consolidate(store)


def consolidate(store: Path) -> None:
    """Consolidate the metadata of a zarr v3 store so that ``xarray.open_zarr`` opens it in one read."""
    # Consolidated metadata (one read to open the store) is a zarr-python extension to the v3
    # format that xarray reads by default; zarr warns that other implementations may not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(store)


def store_state(store: Path) -> tuple[str, dict[str, Any]]:
    """('missing' | 'partial' | 'complete' | 'foreign', attrs)."""
    if not store.exists():
        return "missing", {}
    try:
        attrs = dict(zarr.open_group(store, mode="r").attrs)
    except Exception:  # noqa: BLE001 — anything that is not a readable zarr group
        return "foreign", {}
    if "sweep_spec" not in attrs:
        return "foreign", attrs
    return ("complete" if attrs.get("sweep_complete") else "partial"), attrs


def open_sweep(store: str | Path) -> Any:
    """Open a sweep store as an xarray.Dataset (lazy)."""
    store = Path(store)
    state, _ = store_state(store)
    if state in ("missing", "foreign"):
        raise SpecError(f"{store}: not an InferBench sweep store: expected the output of `inferbench sweep`")
    return xr.open_zarr(store, consolidated=state == "complete")
