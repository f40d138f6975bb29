"""Frozen dataclasses registered as JAX PyTrees (the pattern of jax-md's dataclasses).

Fields are array leaves by default, so they can be swept (vmap) and differentiated (grad).
Fields created with :func:`static_field` are part of the tree structure: changing one means
a different compiled program, which is what structure (family, dtype, operator list) is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, dataclass_transform

import jax
import numpy as np

T = TypeVar("T")

# A leaf of the models' PyTrees: a numpy float64 scalar as a spec file loads it, a JAX array
# inside the engine's traced programs (the one declaration of the models' array type).
Array = jax.Array | np.ndarray


def static_field(**kwargs: Any) -> Any:
    """A dataclass field that is static metadata of the PyTree, not a leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


@dataclass_transform(frozen_default=True)
def pytree_dataclass(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass and register it with JAX as a PyTree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    data = [f.name for f in fields if not f.metadata.get("static", False)]
    meta = [f.name for f in fields if f.metadata.get("static", False)]
    jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)
    return cls


def leaf_names(obj: Any) -> list[str]:
    """Names of the array (non-static) fields of a pytree dataclass instance."""
    return [f.name for f in dataclasses.fields(obj) if not f.metadata.get("static", False)]


def spec_field(
    key: str | None = None,
    unit: str = "1",
    *,
    required: bool = True,
    kind: str = "positive",
    doc: str = "",
    value: float | None = None,
    limit: float | None = None,
    **kwargs: Any,
) -> Any:
    """A leaf with its spec-file key: the one table of keys and units (docs/architecture.md#rules, rule 4).

    Args:
        key: the key in spec files (``hbm_bandwidth_tb_s``); defaults to the field name.
        unit: the unit of the spec-file value (``TB/s``); :mod:`dse.specs` converts it to SI once.
        required: whether a spec file must give it (else the loader derives a default).
        kind: ``positive``, ``int`` (integer > 0) or ``fraction`` (in [0, 1)).
        doc: what the value is, for error messages.
        value: the default SI value of an optional leaf (a float64 scalar array per instance).
        limit: the largest value in file units that can describe something real (a spec beyond
            it is a typo or an overflow, refused at load).
    """
    meta = {"key": key, "unit": unit, "required": required, "kind": kind, "doc": doc, "limit": limit}
    if value is not None:
        kwargs["default_factory"] = lambda: np.asarray(float(value), dtype=np.float64)
    return dataclasses.field(metadata={"spec": meta}, **kwargs)


def spec_keys(cls: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Spec-file key → (field name, metadata) of every leaf of ``cls`` declared with :func:`spec_field`."""
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("spec")
        if meta is not None:
            out[meta["key"] or f.name] = (f.name, meta)
    return out
