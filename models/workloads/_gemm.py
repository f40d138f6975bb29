"""A single GEMM as a workload: micro-benchmarks and kernel-level calibration."""

from __future__ import annotations

import jax.numpy as jnp

from models._interface import GEMM, OperatorTable, dtype_bytes
from models._pytree import Array


def gemm_operator(m: Array, n: Array, k: Array, dtype: str) -> OperatorTable:
    """A single GEMM C[m,n] = A[m,k]·B[k,n] as a one-row operator table (micro-benchmarks).

    FLOPs 2·m·n·k; bytes: B is the weight (k·n), A is read (m·k) and C written (m·n), all in
    ``dtype`` except that an 8-bit or narrower GEMM writes a 16-bit output.
    """
    e = dtype_bytes(dtype)
    out = max(e, 2.0)
    one = jnp.ones_like(m)

    def as_row(x: Array | float) -> Array:
        return jnp.reshape(jnp.asarray(x, dtype=jnp.result_type(float)), (1,))

    return OperatorTable(
        flops=as_row(2.0 * m * n * k),
        weight_bytes=as_row(k * n * e),
        act_bytes=as_row(m * k * e + m * n * out),
        kv_bytes=as_row(0.0 * one),
        m=as_row(m),
        n=as_row(n),
        k=as_row(k),
        repeat=as_row(one),
        stored_weight_bytes=as_row(k * n * e),
        names=("gemm",),
        kinds=(GEMM,),
        per_layer=(False,),
    )
