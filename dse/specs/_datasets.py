"""Datasets to files: a zarr v3 store or netCDF (kept apart from :mod:`._outputs` so that
commands that write no dataset never import zarr, 0.1-0.3 s of start-up)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from dse._version import __version__

from ._outputs import MARK_ATTR, writing


def consolidate(store: Path) -> None:
    """Consolidate the metadata of a zarr v3 store so that ``xarray.open_zarr`` opens it in one read."""
    # Consolidated metadata (one read to open the store) is a zarr-python extension to the v3
    # format that xarray reads by default; zarr warns that other implementations may not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(store)


def checksummed() -> dict[str, Any]:
    """The encoding of an array the tool writes whole: compressed, then a CRC-32C of each chunk
    (zarr v3's ``crc32c`` codec: any zarr reader then refuses a chunk that changed on disk)."""
    return {"compressors": [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"), Crc32cCodec()]}


def write_dataset(ds: Any, path: str | Path) -> Path:
    """An xarray Dataset to ``path``: netCDF for ``.nc``, else a consolidated zarr v3 store.

    Stamped with ``inferbench_version`` (which makes it the tool's own) and written through
    :func:`writing`.
    """
    path = Path(path)
    # Strings as variable-length UTF-8 (the fixed-width numpy kind has no zarr v3 spec).
    ds = ds.assign_coords({k: ds[k].astype(object) for k in ds.coords if ds[k].dtype.kind == "U"})
    ds = ds.assign_attrs({MARK_ATTR: __version__})
    with writing(path) as tmp:
        if path.suffix == ".nc":
            ds.to_netcdf(tmp)
        else:
            encoding = {k: checksummed() for k in (*ds.data_vars, *ds.coords)}
            ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False, encoding=encoding)
            consolidate(tmp)
    return path
