"""The sweep's zarr v3 store: layout, chunk writes, progress flags, state.

Crash safety: a chunk's data are written first (each chunk file atomically: temporary file +
rename), then its flag in ``_sweep_chunk_done``. A restart skips flagged chunks and
recomputes the others, so no chunk is lost or written twice. When every chunk is flagged the
flag array is removed, ``sweep_complete`` is set and the metadata are consolidated.

Metrics are computed and stored in float32 (7 significant digits, within 1e-6 of a float64
evaluation; half the bytes to compute, compress and write), flags as bool and codes as int8. Sampled knob
values are rounded to float32 *before* evaluation, so the stored coordinates are exactly
the evaluated designs.
"""

from __future__ import annotations

import json
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
from dse.specs import SpecError, consolidate

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
        **dict(spec.degrees),
        "platform": spec.platform_id or "each chip's own system",
        "batching": spec.batching,
        "calibration": "; ".join(dict.fromkeys(f"{g.hardware_id}: {g.calibration}" for g in plan.groups)),
        "constraints": [str(c) for c in spec.constraints],
        "objectives": [str(o) for o in spec.objectives],
        "n_designs": plan.n_designs,
        "storage": "metrics computed and stored in float32; flags bool; codes int8",
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

    def __init__(self, plan: Plan, store: Path, mode: str = "r+"):
        self.plan, self.store = plan, Path(store)
        check_layout(plan, store)
        root = zarr.open_group(store, mode=mode)
        names = (*plan.spec.outputs, "meets_constraints")
        self.arrays = {k: root[k] for k in names}
        self.coords = {a.key: root[a.key] for a in plan.spec.sampled}
        self.done = root[DONE] if DONE in root else None
        self.codecs = {k: _fast_codec(a) for k, a in {**self.arrays, **self.coords}.items()}
        self.pool = ThreadPoolExecutor(2)

    def _put(self, name: str, arr: Any, value: np.ndarray, region: tuple[slice, ...]) -> None:
        codec = self.codecs[name]
        chunks = arr.metadata.chunk_grid.chunk_shape
        if codec is None:
            arr[region] = value
            return
        shape = tuple(r.stop - r.start for r in region)
        if shape != tuple(chunks):  # edge chunk: zarr stores the full chunk shape
            full = np.full(chunks, arr.metadata.fill_value, dtype=value.dtype)
            full[tuple(slice(0, n) for n in shape)] = value
            value = full
        path = chunk_path(self.store, arr, region)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(codec.encode(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))))
        os.replace(tmp, path)

    def regions(self, g: int, ci: int) -> list[tuple[str, Any, tuple[slice, ...]]]:
        """(name, array, region) of every variable chunk that chunk ``ci`` of group ``g`` writes."""
        inner = self.plan.chunk_region(ci)[0]
        region = tuple(slice(i, i + 1) for i in self.plan.groups[g].index) + inner
        out = [(k, a, region) for k, a in self.arrays.items()]
        if g == 0:  # the sampled coordinates are written once, with the first group
            out += [(k, a, (inner[-1],)) for k, a in self.coords.items()]
        return out

    def write(self, g: int, ci: int, data: dict[str, np.ndarray], coords: dict[str, np.ndarray]) -> None:
        jobs = []
        for k, arr, region in self.regions(g, ci):
            value = data[k] if k in data else coords.get(k) if coords else None
            if value is None:
                continue
            jobs.append((k, arr, value.reshape(tuple(s.stop - s.start for s in region)), region))
        for f in [self.pool.submit(self._put, *job) for job in jobs]:
            f.result()
        self.done[g, ci] = 1  # only after every variable of the chunk is on disk

    def damaged(self, g: int, ci: int, decode: bool) -> list[str]:
        """Variables of chunk (g, ci) whose chunk file is missing (or, with ``decode``, unreadable)."""
        bad = []
        for k, arr, region in self.regions(g, ci):
            path = chunk_path(self.store, arr, region)
            if not path.is_file():
                bad.append(f"{k} (missing {path.relative_to(self.store)})")
                continue
            if not decode:
                continue
            try:
                codec = self.codecs[k]
                if codec is None:
                    np.asarray(arr[region])
                else:
                    n = int(np.prod(arr.metadata.chunk_grid.chunk_shape)) * arr.dtype.itemsize
                    frame = path.read_bytes()
                    if not _whole_blosc_frame(path) or len(codec.decode(frame)) != n:
                        raise ValueError("wrong size")
            except Exception:  # noqa: BLE001 — any decoding failure means a damaged chunk
                bad.append(f"{k} (unreadable {path.relative_to(self.store)})")
        return bad

    def close(self) -> None:
        self.pool.shutdown()


def check_layout(plan: Plan, store: Path) -> None:
    """Refuse a plan whose dimensions are not the store's (the design index → label map)."""
    root = zarr.open_group(store, mode="r")
    name = plan.spec.outputs[0]
    dims = tuple(root[name].metadata.dimension_names or ())
    if dims != tuple(plan.dims):
        raise SpecError(
            f"{store}: laid out along ({', '.join(dims)}) but the sweep plans ({', '.join(plan.dims)}): "
            "expected the spec the store was written with"
        )


def chunk_path(store: Path, arr: Any, region: tuple[slice, ...]) -> Path:
    """The file of the zarr chunk that starts ``region`` (the one place chunk keys are made)."""
    chunks = arr.metadata.chunk_grid.chunk_shape
    coords = tuple(r.start // c for r, c in zip(region, chunks, strict=True))
    return Path(store) / arr.path / arr.metadata.encode_chunk_key(coords)


def damaged_chunks(plan: Plan, store: Path, decode: bool) -> dict[tuple[int, int], list[str]]:
    """{(group, chunk): damaged variables} among the chunks a store says are written."""
    done = read_done(store, plan)
    writer = StoreWriter(plan, store, mode="r")
    try:
        out = {}
        for g, ci in zip(*np.nonzero(done), strict=True):
            bad = writer.damaged(int(g), int(ci), decode)
            if bad:
                out[int(g), int(ci)] = bad
        return out
    finally:
        writer.close()


def reopen_store(store: Path, plan: Plan, redo: list[tuple[int, int]]) -> None:
    """Mark chunks ``redo`` as not written (so that a resume recomputes them); a complete store
    becomes partial again, its progress flags recreated."""
    root = zarr.open_group(store, mode="r+", use_consolidated=False)
    if DONE not in root:
        flags = root.create_array(
            DONE,
            shape=(len(plan.groups), plan.chunks_per_group),
            chunks=(1, 1),
            dtype="uint8",
            fill_value=1,
            compressors=None,
            dimension_names=("sweep_group", "sweep_chunk"),
        )
        flags[...] = 1
    for g, ci in redo:
        root[DONE][g, ci] = 0
    root.attrs["sweep_complete"] = False
    _drop_consolidated(store)


def _drop_consolidated(store: Path) -> None:
    meta_path = Path(store) / "zarr.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.pop("consolidated_metadata", None) is not None:
        tmp = meta_path.with_name(f".zarr.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp, meta_path)


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
    """Which chunks are written; all of them when the store has no progress flags (complete)."""
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    if DONE not in root:
        return np.ones((len(plan.groups), plan.chunks_per_group), bool)
    return np.asarray(root[DONE][:], dtype=bool)


def finalize_store(store: Path) -> None:
    """Drop the progress flags, mark the store complete and consolidate its metadata."""
    root = zarr.open_group(store, mode="r+")
    if DONE in root:
        del root[DONE]
    root.attrs["sweep_complete"] = True
    consolidate(store)


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


class IncompleteStoreWarning(UserWarning):
    """A store read with ``partial=True`` is unfinished or damaged: what is missing is left out."""


def array_gaps(store: Path) -> list[str]:
    """Variables of a store with chunk files missing: ``"name (k of n chunks missing)"``."""
    gaps = []
    for meta_path in sorted(Path(store).glob("*/zarr.json")):
        name = meta_path.parent.name
        if name == DONE:
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            shape, chunks = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]
        except (OSError, ValueError, KeyError, TypeError):
            gaps.append(f"{name} (unreadable metadata)")
            continue
        n = int(np.prod([-(-s // c) for s, c in zip(shape, chunks, strict=True)], dtype=np.int64))
        files = [Path(d) / f for d, _, fs in os.walk(meta_path.parent / "c") for f in fs]
        if len(files) < n:
            gaps.append(f"{name} ({n - len(files)} of {n} chunks missing)")
        elif any(c.get("name") == "blosc" for c in meta.get("codecs", [])):
            cut = [f for f in files if not _whole_blosc_frame(f)]
            if cut:
                gaps.append(f"{name} ({len(cut)} of {n} chunks truncated, e.g. {cut[0].relative_to(store)})")
    return gaps


def _whole_blosc_frame(path: Path) -> bool:
    """A blosc frame's header (bytes 12-16) holds its size; blosc does not always notice a cut."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
        return len(head) == 16 and int.from_bytes(head[12:16], "little") == path.stat().st_size
    except OSError:
        return False


def check_complete(store: Path, partial: bool = False) -> bool:
    """True for a finished, undamaged store; else refuse (or, with ``partial``, warn and False)."""
    state, attrs = store_state(store)
    if state == "partial":
        try:
            flags = np.asarray(zarr.open_group(store, mode="r", use_consolidated=False)[DONE][:])
            written = f"{int(flags.sum()):,} of {flags.size:,} chunks written"
        except Exception:  # noqa: BLE001 — flags missing or unreadable
            written = "progress unknown"
        return _incomplete(
            f"{store}: unfinished sweep ({written})",
            "a finished store (run the same `inferbench sweep` command to resume it), or --partial to use "
            "what is written",
            "designs not yet computed are left out",
            partial,
        )
    gaps = array_gaps(store)
    if gaps:
        more = f" and {len(gaps) - 1} more variables" if len(gaps) > 1 else ""
        return _incomplete(
            f"{store}: damaged: {gaps[0]}{more}",
            f"`inferbench sweep SPEC -o {store} --repair` to recompute them, or --partial to use what is readable",
            "those designs read as missing",
            partial,
        )
    return True


def _incomplete(problem: str, expected: str, consequence: str, partial: bool) -> bool:
    """Refuse an incomplete store, or (``partial``) warn in one line and go on."""
    if not partial:
        raise SpecError(f"{problem}: expected {expected}")
    warnings.warn(f"{problem}; {consequence}", IncompleteStoreWarning, stacklevel=4)
    return False


def open_sweep(store: str | Path, partial: bool = False) -> Any:
    """Open a sweep store as an xarray.Dataset (lazy).

    An unfinished or damaged store is refused, unless ``partial`` (then an
    :class:`IncompleteStoreWarning` says what is missing).
    """
    store = Path(store)
    state, _ = store_state(store)
    if state in ("missing", "foreign"):
        raise SpecError(f"{store}: not an InferBench sweep store: expected the output of `inferbench sweep`")
    complete = check_complete(store, partial)
    ds = xr.open_zarr(store, consolidated=state == "complete")
    ds.attrs["source_complete"] = complete  # False only when read with partial=True
    return ds
