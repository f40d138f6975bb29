"""The sweep's zarr v3 store: layout, chunk writes, progress flags, state.

Crash safety: a chunk's data are written first (each chunk file atomically: temporary file +
rename), then the checksums of its files in ``_sweep_chunk_crc32c``, then its flag in
``_sweep_chunk_done``. A restart skips flagged chunks and recomputes the others, so no chunk
is lost or written twice. When every chunk is flagged the flag array is removed,
``sweep_complete`` is set and the metadata are consolidated.

Integrity: every chunk file ends in a CRC-32C of its bytes (zarr v3's ``crc32c`` codec, so
any zarr reader checks it too), and the same checksum is recorded for the chunk's place in
``_sweep_chunk_crc32c`` (one row per chunk of the data arrays, one column per variable):
a bit flip, a cut, a chunk moved to another place or variable, a chunk file that is not the
tool's, and a temporary file where a chunk should be are all found by :func:`verify_store`,
which every reader (``pareto``, ``plot``, ``report``) and every resume runs before it trusts
a store (the design the RAID and ZFS literature calls end-to-end checksums: the record lives
apart from the data it checks).

Metrics are computed and stored in float32 (7 significant digits, within 1e-6 of a float64
evaluation; half the bytes to compute, compress and write), flags as bool and codes as int8. Sampled knob
values are rounded to float32 *before* evaluation, so the stored coordinates are exactly
the evaluated designs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask.array as da
import google_crc32c
import numpy as np
import xarray as xr
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, Crc32cCodec

from dse._version import __version__
from dse.engine import metric_attrs, storage_dtype
from dse.specs import SpecError, checksummed, consolidate, note_input

from ._plan import Plan

DONE = "_sweep_chunk_done"
# Per chunk, the CRC-32C each variable's chunk file ends with: an array in a subgroup of the
# store, which xarray (reading the root group's arrays) does not show as a result.
SUMS = "_sweep_checksums/crc32c"


def _metric_attrs(name: str) -> dict[str, Any]:
    if name == "meets_constraints":
        return {"units": "1", "description": "feasible and every constraint of the sweep holds"}
    return metric_attrs(name)


def _var_dtype(name: str) -> str:
    return "bool" if name == "meets_constraints" else storage_dtype(name)


def axis_units(plan: Plan, key: str) -> str:
    """Units of an axis's stored values: the spec-file unit of a spec key, the SI unit of an SI name."""
    knob = plan.groups[0].knobs[key]
    return knob.key.unit if key == knob.key.key else knob.key.si_unit


def _compressors() -> list[Any]:
    # LZ4 at level 1 with byte shuffle: ~2.5 M designs/s for 35 float32 metrics on one core;
    # then a CRC-32C of the compressed frame (4 bytes a chunk, GB/s in hardware).
    return [BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"), Crc32cCodec()]


def create_store(plan: Plan, store: Path) -> None:
    """Write the store's metadata: every variable, coordinate and attribute; no data yet."""
    spec = plan.spec
    data_vars = {}
    enc: dict[str, dict[str, Any]] = {}
    for name in (*spec.outputs, "meets_constraints"):
        data_vars[name] = (
            plan.dims,
            da.empty(plan.shape, chunks=plan.shape, dtype=_var_dtype(name)),  # one task: only metadata is written here
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
                da.empty(n, chunks=n, dtype=np.float32),
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
        da.zeros((len(plan.groups), plan.chunks_per_group), chunks=-1, dtype=np.uint8),
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
    for name in coords:
        enc.setdefault(name, checksummed())
    ds.to_zarr(store, mode="w", compute=False, encoding=enc, zarr_format=3, consolidated=False)
    grid = tuple(-(-n // c) for n, c in zip(plan.shape, plan.chunks, strict=True))
    names = record_names(plan)
    zarr.open_group(store, mode="r+").create_array(
        SUMS,
        shape=(*grid, len(names)),
        chunks=(*(1,) * len(grid), len(names)),
        dtype="uint32",
        fill_value=0,
        compressors=[Crc32cCodec()],
        dimension_names=(*(f"chunk_{d}" for d in plan.dims), "variable"),
        attributes={
            "description": "the CRC-32C each variable's chunk file ends with, by the chunk's place (0: not written)",
            "variables": list(names),
        },
    )


def record_names(plan: Plan) -> tuple[str, ...]:
    """The variables a chunk writes, in the order of their checksums in ``SUMS``."""
    return (*plan.spec.outputs, "meets_constraints", *(a.key for a in plan.spec.sampled))


class ChunkCodec:
    """Encodes and checks chunk files of an array whose codecs are (bytes little-endian,
    [blosc], [crc32c]) without zarr's ~1.5 ms per call (39 variables per chunk would make it
    dominate a sweep); the blosc frame is self-describing, so zarr reads it back unchanged."""

    def __init__(self, blosc: Any | None, crc: bool, itemsize: int, chunk_elems: int):
        self.blosc, self.crc, self.nbytes = blosc, crc, itemsize * chunk_elems

    @classmethod
    def of(cls, meta: dict[str, Any]) -> ChunkCodec | None:
        """From an array's zarr.json; None for any other codec pipeline."""
        try:
            codecs = meta["codecs"]
            names = [c["name"] for c in codecs]
            chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
            itemsize = np.dtype(meta["data_type"]).itemsize
        except (KeyError, TypeError, ValueError):
            return None
        if (
            not names
            or names[0] != "bytes"
            or (codecs[0].get("configuration") or {}).get("endian", "little") != "little"
        ):
            return None
        rest = names[1:]
        blosc = None
        if rest[:1] == ["blosc"]:
            c = codecs[1]["configuration"]
            shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
            blosc = Blosc(cname=c["cname"], clevel=c["clevel"], shuffle=shuffle[c["shuffle"]], blocksize=c["blocksize"])
            rest = rest[1:]
        if rest not in ([], ["crc32c"]):
            return None
        return cls(blosc, rest == ["crc32c"], itemsize, int(np.prod(chunk, dtype=np.int64)))

    def encode(self, value: np.ndarray) -> bytes:
        raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        # The array, not its bytes: blosc shuffles by the item size it is given.
        frame = self.blosc.encode(raw) if self.blosc is not None else raw.tobytes()
        return frame + np.uint32(google_crc32c.value(frame)).tobytes() if self.crc else frame

    def problem(self, data: bytes) -> str | None:
        """Why a chunk file cannot be what was written (None when it can): cut, bit flips, size."""
        frame = data[:-4] if self.crc else data
        if self.crc and (len(data) < 4 or np.frombuffer(data[-4:], "<u4")[0] != google_crc32c.value(frame)):
            cut = self.blosc is not None and _blosc_sizes(frame)[1] > len(frame)
            return "checksum mismatch, shorter than its header says (truncated)" if cut else "checksum mismatch"
        if self.blosc is not None:
            nbytes, cbytes = _blosc_sizes(frame)
            if cbytes != len(frame):
                return "truncated"
            if nbytes != self.nbytes:
                return f"holds {nbytes} bytes, not the chunk's {self.nbytes}"
        elif len(frame) != self.nbytes:
            return f"holds {len(frame)} bytes, not the chunk's {self.nbytes}"
        return None

    @staticmethod
    def tag(data: bytes) -> int:
        """What ``SUMS`` records for a chunk file: its trailing CRC-32C (0 means 'not written')."""
        return int(np.frombuffer(data[-4:], "<u4")[0]) or 0xFFFFFFFF


SUMS_CODEC = ChunkCodec(None, True, 4, 0)  # encodes a row of SUMS: raw little-endian uint32, then its CRC-32C


def _row_path(store: Path, row: tuple[int, ...]) -> Path:
    return Path(store) / SUMS / "c" / "/".join(map(str, (*row, 0)))


def _blosc_sizes(frame: bytes) -> tuple[int, int]:
    """(uncompressed, frame) sizes from a blosc header (bytes 4-8 and 12-16); (-1, -1) if too short."""
    if len(frame) < 16:
        return -1, -1
    return int.from_bytes(frame[4:8], "little"), int.from_bytes(frame[12:16], "little")


def write_atomic(path: Path, data: bytes) -> None:
    """A chunk file written whole or not at all: a hidden temporary beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class StoreWriter:
    """Writes evaluated chunks into their zarr regions, records their checksums, then flags
    them done (:class:`ChunkCodec` encodes; anything it does not know goes through zarr)."""

    def __init__(self, plan: Plan, store: Path, mode: str = "r+"):
        self.plan, self.store = plan, Path(store)
        check_layout(plan, store)
        root = zarr.open_group(store, mode=mode)
        names = (*plan.spec.outputs, "meets_constraints")
        self.arrays = {k: root[k] for k in names}
        self.coords = {a.key: root[a.key] for a in plan.spec.sampled}
        self.done = root[DONE] if DONE in root else None
        self.sums = dict(root[SUMS].attrs) if SUMS in root else None  # stores written before checksums have none
        self.codecs = {k: ChunkCodec.of(a.metadata.to_dict()) for k, a in {**self.arrays, **self.coords}.items()}
        self.pool = ThreadPoolExecutor(2)

    def _put(self, name: str, arr: Any, value: np.ndarray, region: tuple[slice, ...]) -> int:
        codec = self.codecs[name]
        chunks = arr.metadata.chunk_grid.chunk_shape
        if codec is None:
            arr[region] = value
            return 0
        shape = tuple(r.stop - r.start for r in region)
        if shape != tuple(chunks):  # edge chunk: zarr stores the full chunk shape
            full = np.full(chunks, arr.metadata.fill_value, dtype=value.dtype)
            full[tuple(slice(0, n) for n in shape)] = value
            value = full
        data = codec.encode(value)
        write_atomic(chunk_path(self.store, arr, region), data)
        return ChunkCodec.tag(data) if codec.crc else 0

    def regions(self, g: int, ci: int) -> list[tuple[str, Any, tuple[slice, ...]]]:
        """(name, array, region) of every variable chunk that chunk ``ci`` of group ``g`` writes."""
        inner = self.plan.chunk_region(ci)[0]
        region = tuple(slice(i, i + 1) for i in self.plan.groups[g].index) + inner
        out = [(k, a, region) for k, a in self.arrays.items()]
        if g == 0:  # the sampled coordinates are written once, with the first group
            out += [(k, a, (inner[-1],)) for k, a in self.coords.items()]
        return out

    def row(self, g: int, ci: int) -> tuple[int, ...]:
        """The chunk coordinates of chunk ``ci`` of group ``g`` (its row of ``SUMS``)."""
        inner = self.plan.chunk_region(ci)[0]
        region = tuple(slice(i, i + 1) for i in self.plan.groups[g].index) + inner
        return tuple(r.start // c for r, c in zip(region, self.plan.chunks, strict=True))

    def write(self, g: int, ci: int, data: dict[str, np.ndarray], coords: dict[str, np.ndarray]) -> None:
        jobs = []
        for k, arr, region in self.regions(g, ci):
            value = data[k] if k in data else coords.get(k) if coords else None
            if value is None:
                continue
            jobs.append((k, arr, value.reshape(tuple(s.stop - s.start for s in region)), region))
        tags = dict(zip([j[0] for j in jobs], [f.result() for f in [self.pool.submit(self._put, *j) for j in jobs]]))
        if self.sums is not None:  # after every chunk file, before the flag: a flagged chunk has its record
            record = np.array([tags.get(k, 0) for k in self.sums["variables"]], dtype=np.uint32)
            write_atomic(_row_path(self.store, self.row(g, ci)), SUMS_CODEC.encode(record))
        self.done[g, ci] = 1  # only after every variable of the chunk is on disk

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


@dataclasses.dataclass(frozen=True)
class Damage:
    """One chunk file of a store that cannot be trusted."""

    var: str
    where: str  # the file, relative to the store
    problem: str
    row: tuple[int, ...] | None  # its row of SUMS (a data chunk's coordinates); None: no place

    def __str__(self) -> str:
        return f"{self.var} ({self.problem}: {self.where})"


_TEMPORARY = re.compile(r"^\..+\.tmp$|\.[0-9a-f]{32}\.partial$")  # this module's and zarr's own


def _array_metas(store: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for meta_path in sorted(Path(store).glob("*/zarr.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if isinstance(meta, dict) and meta.get("node_type") == "group":
            continue  # the checksums' group
        out[meta_path.parent.name] = meta if isinstance(meta, dict) else {}
    return out


def _chunk_files(folder: Path, grid: tuple[int, ...]) -> tuple[dict[tuple[int, ...], Path], list[Path], list[Path]]:
    """({chunk coordinates: file}, temporaries, files that are no chunk of this grid) under ``folder/c``."""
    files: dict[tuple[int, ...], Path] = {}
    temporaries, strays = [], []
    for d, _, names in os.walk(folder / "c"):
        for n in names:
            f = Path(d) / n
            if _TEMPORARY.search(n):
                temporaries.append(f)
                continue
            parts = f.relative_to(folder / "c").parts
            try:
                key = tuple(int(x) for x in parts)
            except ValueError:
                key = ()
            if len(key) != len(grid) or any(not 0 <= k < n for k, n in zip(key, grid, strict=True)):
                strays.append(f)
            else:
                files[key] = f
    return files, temporaries, strays


def _grid(meta: dict[str, Any]) -> tuple[int, ...]:
    shape, chunks = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]
    return tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))


@dataclasses.dataclass
class _Check:
    """What a verification has found so far: damage, leftover files, the checksum records."""

    store: Path
    damage: list[Damage] = dataclasses.field(default_factory=list)
    temporaries: list[Path] = dataclasses.field(default_factory=list)  # a killed run's: never chunks
    strays: list[Path] = dataclasses.field(default_factory=list)  # files that are no chunk of their array
    records: dict[tuple[int, ...], np.ndarray] = dataclasses.field(default_factory=dict)
    names: list[str] = dataclasses.field(default_factory=list)  # the variables with a record column
    grid: tuple[int, ...] = ()  # the records' grid (the data arrays' chunk grid)

    def rel(self, f: Path) -> str:
        return str(f.relative_to(self.store))

    def files(self, name: str, grid: tuple[int, ...]) -> dict[tuple[int, ...], Path]:
        files, temporaries, strays = _chunk_files(self.store / name, grid)
        self.temporaries += temporaries
        self.strays += strays
        self.damage += [Damage(name, self.rel(f), "not a chunk of this store", None) for f in strays]
        return files


def _read_records(check: _Check) -> bool:
    """Read the checksum records into ``check`` (False when their description is unreadable)."""
    try:
        info = json.loads((check.store / SUMS / "zarr.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return True  # a store written before checksums were recorded
    except (OSError, ValueError):
        info = {}
    try:
        check.names, check.grid = list(info["attributes"]["variables"]), _grid(info)
    except (KeyError, TypeError, ValueError):
        check.damage.append(Damage(SUMS, f"{SUMS}/zarr.json", "unreadable metadata", None))
        return False
    row_codec = ChunkCodec(None, True, 4, len(check.names))
    for key, f in check.files(SUMS, check.grid).items():
        data = f.read_bytes()
        if row_codec.problem(data) is not None:  # the record is gone: the whole chunk is recomputed
            check.damage.append(Damage(SUMS, check.rel(f), "checksum mismatch", key[:-1]))
        else:
            check.records[key[:-1]] = np.frombuffer(data[:-4], "<u4")
    return True


def _verify_static(check: _Check, name: str, meta: dict[str, Any], files: dict[tuple[int, ...], Path]) -> None:
    """An array written once by xarray at creation: its codec's checksum only; in a store
    written before checksums were recorded, every result chunk must be there."""
    codec, grid = ChunkCodec.of(meta), _grid(meta)
    for f in files.values():
        why = codec.problem(f.read_bytes()) if codec is not None and codec.crc else None
        if why:
            check.damage.append(Damage(name, check.rel(f), why, None))
    if not check.names and meta.get("dimension_names") and codec is not None and codec.blosc is not None:
        check.damage += [
            Damage(name, check.rel(check.store / name / "c" / "/".join(map(str, k))), "missing", k)
            for k in np.ndindex(*grid)
            if k not in files and len(grid) > 1
        ]


def _verify_recorded(
    check: _Check, name: str, meta: dict[str, Any], files: dict[tuple[int, ...], Path], rows: set[tuple[int, ...]]
) -> None:
    """A variable with a record column: each chunk there, whole, and the one written at its place."""
    codec, grid, column = ChunkCodec.of(meta), _grid(meta), check.names.index(name)
    # {chunk: (the rows that wrote it, the tags they recorded)}: a data variable has one row
    # per chunk; a sampled coordinate's chunk k is written by the rows whose last index is k.
    expected: dict[tuple[int, ...], list[tuple[tuple[int, ...], int | None]]] = {}
    for row in sorted(rows):
        key = row if len(grid) == len(row) else (row[-1],)
        tag = int(check.records[row][column]) if row in check.records else None
        if len(key) == 1 and len(row) > 1 and tag == 0:
            continue  # a coordinate is written by the first group's rows only
        expected.setdefault(key, []).append((row, tag))
    for key, writers in expected.items():
        f, row = files.get(key), writers[0][0]
        where = check.rel(check.store / name / "c" / "/".join(map(str, key)))
        if f is None:
            check.damage.append(Damage(name, where, "missing", row))
            continue
        data = f.read_bytes()
        why = codec.problem(data) if codec is not None else None
        recorded = {t for _, t in writers if t is not None}
        if why is None and codec is not None and codec.crc:
            if not recorded:
                why = "no checksum recorded for it"
            elif ChunkCodec.tag(data) not in recorded:
                why = "not the chunk written at this place"
        if why:
            check.damage.append(Damage(name, where, why, row))


def verify_store(
    store: Path,
    rows: set[tuple[int, ...]] | None = None,
    *,
    recorded_only: bool = False,
    remove_temporaries: bool = False,
    remove_strays: bool = False,
) -> list[Damage]:
    """Every chunk file of a sweep store checked against its codec's CRC-32C, its size and the
    checksum recorded for its place; ``rows``: the chunks expected written (None: all; with
    ``recorded_only``, those with a record: what an unfinished store has written).

    Temporary files never count as chunks; the caller holding the store's lock may remove them
    (``remove_temporaries``) and the files in the chunk folders that are no chunk of their
    array (``remove_strays``, which ``--repair`` does: they are reported otherwise).
    """
    check = _Check(Path(store))
    if not _read_records(check):
        return check.damage
    if rows is None:
        rows = set(check.records) if recorded_only else set(np.ndindex(*check.grid[:-1])) if check.grid else set()
    for name, meta in _array_metas(check.store).items():
        if name == DONE:
            continue
        try:
            files = check.files(name, _grid(meta))
        except (KeyError, TypeError):
            check.damage.append(Damage(name, f"{name}/zarr.json", "unreadable metadata", None))
            continue
        if name in check.names:
            _verify_recorded(check, name, meta, files, rows)
        else:
            _verify_static(check, name, meta, files)
    removed = (check.temporaries if remove_temporaries else []) + (check.strays if remove_strays else [])
    for f in removed:
        with contextlib.suppress(OSError):
            f.unlink()
    return check.damage


def damaged_chunks(plan: Plan, store: Path, repair: bool = False) -> dict[tuple[int, int], list[str]]:
    """{(group, chunk): damaged variables} among the chunks a store says are written
    (a killed run's temporaries removed; with ``repair`` stray files too, else they are refused)."""
    done = read_done(store, plan)
    writer = StoreWriter(plan, store, mode="r")
    try:
        where = {writer.row(g, ci): (g, ci) for g in range(len(plan.groups)) for ci in range(plan.chunks_per_group)}
    finally:
        writer.close()
    flagged = {row for row, (g, ci) in where.items() if done[g, ci]}
    out: dict[tuple[int, int], list[str]] = {}
    for d in verify_store(store, flagged, remove_temporaries=True, remove_strays=repair):
        if d.row is not None and d.row in where:
            out.setdefault(where[d.row], []).append(str(d))
        elif d.row is None and not repair:  # a stray file or unreadable metadata: --repair removes strays
            raise SpecError(f"{store}: damaged: {d}: expected `inferbench sweep SPEC -o {store} --repair`")
    return out


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


def check_complete(store: Path, partial: bool = False) -> bool:
    """True for a finished store whose every chunk verifies; else refuse (or, with ``partial``,
    warn and return False: chunks not written read as missing). A chunk that is there but
    damaged is refused even with ``partial``: it cannot be read."""
    state, attrs = store_state(store)
    repair = f"`inferbench sweep SPEC -o {store} --repair` to recompute them"
    damage = verify_store(store, recorded_only=state == "partial")
    broken = [d for d in damage if d.problem != "missing"]
    if broken:
        more = f" and {len(broken) - 1} more chunk file(s)" if len(broken) > 1 else ""
        raise SpecError(f"{store}: damaged: {broken[0]}{more}: expected {repair}")
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
    if damage:
        more = f" and {len(damage) - 1} more chunk file(s)" if len(damage) > 1 else ""
        return _incomplete(
            f"{store}: damaged: {damage[0]}{more}",
            f"{repair}, or --partial to use what is readable",
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
    note_input(store)
    state, _ = store_state(store)
    if state in ("missing", "foreign"):
        raise SpecError(f"{store}: not an InferBench sweep store: expected the output of `inferbench sweep`")
    complete = check_complete(store, partial)
    ds = xr.open_zarr(store, consolidated=state == "complete", drop_variables=[DONE])
    ds.attrs["source_complete"] = complete  # False only when read with partial=True
    return ds
