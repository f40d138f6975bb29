"""Frozen dataclasses registered as JAX PyTrees (the pattern of jax-md's dataclasses).

Fields are array leaves by default, so they can be swept (vmap) and differentiated (grad).
Fields created with :func:`static_field` are part of the tree structure: changing one means
a different compiled program, which is what structure (family, dtype, operator list) is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

T = TypeVar("T")


def static_field(**kwargs: Any) -> Any:
    """A dataclass field that is static metadata of the PyTree, not a leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


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
