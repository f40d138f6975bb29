"""Shared test settings: float64 (the engine's precision, see dse.engine), one tolerance helper.

The models are dtype-agnostic; the engine evaluates in float64 inside its boundary. Tests
that call model functions directly run them in float64 too, so that hand-derived references
hold to 1e-9.
"""

from __future__ import annotations

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

RTOL = {np.dtype("float64"): 1e-9, np.dtype("float32"): 1e-5}


def assert_trees_all_close(a, b, rtol: float | None = None, atol: float = 0.0) -> None:
    """Leaf-wise closeness of two PyTrees with per-dtype default tolerances."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        tol = rtol if rtol is not None else RTOL.get(x.dtype, 1e-9)
        np.testing.assert_allclose(x, y, rtol=tol, atol=atol)
