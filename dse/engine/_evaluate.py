"""``evaluate``: a labelled grid of configurations as an xarray Dataset (:mod:`._grid` computes it)."""

from __future__ import annotations

import inspect
from typing import Any

import xarray as xr

from ._grid import Grid, evaluate_grid


def to_dataset(grid: Grid) -> xr.Dataset:
    """The Dataset of a :class:`Grid`: its variables, coordinates (with units) and attrs."""
    ds = xr.Dataset(grid.variables, coords=grid.coords, attrs=grid.attrs)
    for dim in grid.squeeze:
        ds = ds.squeeze(dim, drop=False)
    return ds


def evaluate(*args: Any, **kwargs: Any) -> xr.Dataset:
    """Evaluate a grid of configurations and return a labelled dataset: the arrays of
    :func:`evaluate_grid` (which documents the arguments) as an xarray Dataset, with units.

    Examples:
        >>> ds = evaluate("llama-3-70b", "h100-sxm5-80gb", tp=8, batch=[1, 8, 32],
        ...               prompt_tokens=2048, output_tokens=256)
        >>> ds.tpot_s.sel(level="calibrated").dims
        ('batch',)
    """
    return to_dataset(evaluate_grid(*args, **kwargs))


# Same arguments as evaluate_grid: help() and inspect show them, returning a Dataset.
evaluate.__signature__ = inspect.signature(evaluate_grid).replace(return_annotation="xr.Dataset")  # type: ignore[attr-defined]
