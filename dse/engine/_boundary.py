"""The one jit / vmap / grad boundary of the engine (docs/architecture.md#rules, rule 1).

Every compiled evaluation of the cost model goes through this module: whole configurations
(:func:`run_designs`, and :func:`dispatch` / :func:`collect` for the sweep's pipeline), single
GEMMs (:func:`gemm_designs`), sensitivities (:func:`log_jacobian`) and, for calibration, the
same functions vmapped over measurement rows (:func:`serve_rows`, :func:`kernel_rows`) so
that the fit differentiates exactly what the engine evaluates.

A configuration is a base PyTree (:class:`Config`) plus *knobs*: named SI leaves that vary,
flat arrays of one length N (designs). The cost model is vmapped over them and over the
efficiency levels, jit-compiled once per static structure (family, dtypes, FFN form, MoE,
knob names), and run in fixed-size blocks, padded with the last design, so that neither the
compile count nor memory grows with N; with several local devices a block is sharded over
them.

Precision: the engine evaluates in float64 (``jax.enable_x64`` around every call, not a
global flag): token counts, FLOPs (1e18+) and the closed-form decode sums stay exact to 1e-9,
what the tests' hand-derived references check. Sweeps, whose stores keep float32 (7 digits),
evaluate in float32 (``precision="float32"``): it differs from float64 by < 1e-6 relative
(README, Precision) and runs about twice as fast on CPUs (half the bytes, twice the lanes).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import export
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dse.specs import SpecError, suggest
from models import Chip, Metrics, Served, ServiceCurve, SoftwareParams, gemm_cost, poisson_requests, serve, simulate
from models.workloads import gemm_operator

from ._config import Config, knob_keys, knob_owner, with_arrivals, with_knobs

# One evaluation call covers at most this many designs, so that neither memory nor the compile
# count grows with N: larger requests are split into blocks of one compiled shape, dispatched at
# once. Measured on 2 cores (standard scenario, compiled block alone): 2^15 designs run at
# 5.3 M designs/s in float32 and 3.1 M in float64; 2^14 at 4.0 and 2.3 (a fixed cost per call
# of ~0.4 ms and XLA splitting only large loops over both cores); 2^16 at 5.3-5.7 and 1.3
# (float64 no longer fits in the caches).
EVAL_BLOCK = 1 << 15


PRECISIONS = ("float64", "float32")
# Sweeps and their benchmark: stored as float32, evaluated so (see the module doc).
SWEEP_PRECISION = "float32"


def _precision(precision: str) -> Any:
    """The context of an evaluation in ``precision``: under float32 JAX narrows the float64
    leaves and knobs as they are passed in."""
    if precision not in PRECISIONS:
        raise SpecError(f"precision: '{precision}': expected one of {', '.join(PRECISIONS)}")
    return jax.enable_x64(precision == "float64")


def float64() -> Any:
    """The precision of every engine evaluation but sweeps' (a context manager; see the module doc)."""
    return _precision("float64")


def in_float64(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run in the engine's precision (for entry points above the engine, e.g. calibration)."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with float64():
            return fn(*args, **kwargs)

    return wrapped


def _serve_one(config: Config, knobs: Mapping[str, jax.Array], software: SoftwareParams) -> Metrics:
    c = with_knobs(config, knobs)
    return serve(c.model, c.chip, c.platform, c.scenario, c.economics, software)


# Knobs vary along axis 0 (designs), software along the level axis; the base is broadcast.
serve_rows: Callable[..., Metrics] = jax.vmap(_serve_one, in_axes=(None, 0, None))
"""Metrics of N designs (knobs [N]) at one software level: pure, for use inside a fit's jit."""
# XLA's CPU backend hands small reductions to an XNNPACK fusion that needs its operands
# stored; its own loops fuse them (measured: ~10 % more designs/s). Its older loop emitters
# for fusions compile these wide programs of scalar formulas a quarter faster at the same
# designs/s (measured: the bench's cold single query 6.5 s -> 4.8 s; 3.6 M designs/s either
# way). Both ignored on other backends.
_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_use_fusion_emitters": False}
# A block of at most this many designs (a single query, a table of a few rows, a plan's
# candidates) is compiled without LLVM's optimizations: its compile is what the user waits for
# (measured: 4.5 s instead of 5.9 s for the tour's first `evaluate`; 2.5 s instead of 3.6 s
# for a plan's 2,048-candidate block), its run takes milliseconds either way.
QUICK_COMPILE_BLOCK = 2048
_QUICK_OPTIONS = {**_COMPILER_OPTIONS, "xla_backend_optimization_level": 0}
_serve_levels = jax.vmap(serve_rows, in_axes=(None, None, 0))
_serve_batch = jax.jit(_serve_levels, compiler_options=_COMPILER_OPTIONS)
_serve_batch_quick = jax.jit(_serve_levels, compiler_options=_QUICK_OPTIONS)


# Traced programs kept on disk (jax.export) once :func:`enable_compilation_cache` names a folder:
# a later run of the same structure skips tracing and lowering, and its compilation comes from
# JAX's compilation cache. Keyed by the code, the static structure and the shapes.
_program_dir: Path | None = None
_programs: dict[str, Callable[..., Any]] = {}


@functools.cache
def _code_fingerprint() -> str:
    """Hash of the cost model's and the engine's sources, the JAX version and the backend."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256(f"{jax.__version__} {jax.default_backend()}".encode())
    for path in sorted([*(root / "models").rglob("*.py"), *(root / "dse" / "engine").glob("*.py")]):
        h.update(path.read_bytes())
    return h.hexdigest()


def _stored(fn: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any], label: str) -> tuple[Any, ...]:
    """``jax.jit(fn)(*args)`` through the on-disk program cache: the traced program is kept
    with ``jax.export``, keyed by the code, ``label`` (what is static in ``fn``), the tree of
    ``args`` and their shapes. Returns ``fn``'s outputs as a flat tuple of arrays."""
    leaves, tree = jax.tree.flatten(args)
    signature = repr(
        (
            label,
            str(tree),
            getattr(jax.config, "jax_enable_x64"),
            [(np.shape(x), np.dtype(getattr(x, "dtype", None) or np.result_type(x)).str) for x in leaves],
        )
    )
    key = hashlib.sha256((_code_fingerprint() + signature).encode()).hexdigest()[:40]
    program = _programs.get(key)
    if program is None:
        assert _program_dir is not None
        path = _program_dir / f"{key}.jaxexport"
        try:
            exported = export.deserialize(bytearray(path.read_bytes()))
        except Exception:  # absent, unreadable or from another version: trace it again
            flat = lambda *lv: tuple(jax.tree.leaves(fn(*jax.tree.unflatten(tree, lv))))  # noqa: E731
            exported = export.export(jax.jit(flat))(*leaves)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(exported.serialize())
                os.replace(tmp, path)
            except OSError:
                pass  # a cache that cannot be written costs the next run a trace, nothing more
        program = _programs[key] = jax.jit(exported.call, compiler_options=options)
    return tuple(program(*leaves))


def _stores_programs() -> bool:
    """Programs go through the disk cache once it is on, on one device (sharded blocks are
    compiled for their devices)."""
    return _program_dir is not None and len(jax.local_devices()) == 1


def _serve_block(config: Config, knobs: dict[str, np.ndarray], software: SoftwareParams) -> Metrics:
    """:data:`_serve_batch` of one block, through the on-disk program cache when it is on."""
    quick = len(next(iter(knobs.values()))) <= QUICK_COMPILE_BLOCK
    if not _stores_programs():
        metrics: Metrics = (_serve_batch_quick if quick else _serve_batch)(config, _shard(knobs), software)
        return metrics
    options = _QUICK_OPTIONS if quick else _COMPILER_OPTIONS
    return Metrics(*_stored(_serve_levels, (config, knobs, software), options, "serve"))


def _shard(block: dict[str, np.ndarray]) -> dict[str, Any]:
    """Shard the design axis over every local device when there are several."""
    devices = jax.local_devices()
    if len(devices) == 1 or len(next(iter(block.values()))) % len(devices):
        return block
    sharding = NamedSharding(Mesh(np.array(devices), ("d",)), PartitionSpec("d"))
    return {k: jax.device_put(v, sharding) for k, v in block.items()}


# Small requests share one compiled shape: a query of 1 to 16 designs (a table row, a few
# batch sizes, a predict file) pads to 16 rather than compiling once per count.
MIN_BLOCK = 16


def block_size(n: int, block: int = EVAL_BLOCK) -> int:
    """Designs per compiled call for n designs: the next power of two, at least ``MIN_BLOCK``
    and at most ``block``."""
    return min(block, max(MIN_BLOCK, 1 << max(0, (n - 1).bit_length())))


class Pending:
    """Evaluations in flight (asynchronous dispatch): the blocks of one request of n designs."""

    def __init__(self, results: list[Metrics], n: int):
        self.results, self.n = results, n

    def collect(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Metrics as numpy arrays of shape [n_levels, n] (waits for the devices)."""
        names = Metrics._fields if names is None else names
        out = {
            k: np.empty((len(self.results[0].ttft_s), self.n), np.asarray(getattr(self.results[0], k)).dtype)
            for k in names
        }
        self.collect_into(out, 0)
        return out

    def collect_into(self, out: dict[str, np.ndarray], start: int) -> None:
        """Copy the metrics into ``out[k][:, start:start + n]`` block by block (one copy)."""
        at = start
        for r in self.results:
            size = min(r.ttft_s.shape[-1], start + self.n - at)  # the shape, not an index (a device op)
            for k, dest in out.items():
                dest[:, at : at + size] = np.asarray(getattr(r, k))[:, :size]
            at += size


def dispatch(
    config: Config,
    knobs: Mapping[str, np.ndarray],
    software: SoftwareParams,
    block: int = EVAL_BLOCK,
    fixed: bool = False,
    precision: str = "float64",
) -> Pending:
    """Start evaluating n designs (SI knob arrays of one length n) at every level of ``software``.

    The designs are cut into blocks of :func:`block_size` — exactly ``block`` with ``fixed``,
    so that every call of a sweep has one shape — the last padded with its last design (no
    recompilation), and dispatched without waiting. ``precision``: one of :data:`PRECISIONS`.
    """
    config = with_arrivals(config, knobs)
    with _precision(precision):
        flat = {k: np.asarray(v, dtype=precision).reshape(-1) for k, v in knobs.items()}
        if not flat:  # a single point: vary a knob at its own value
            flat = {"batch": np.asarray([float(config.scenario.batch)], dtype=precision)}
        n = len(next(iter(flat.values())))
        size = block if fixed else block_size(n, block)
        results = []
        for start in range(0, n, size):
            part = {}
            for k, v in flat.items():
                p = v[start : start + size]
                if len(p) < size:
                    p = np.concatenate([p, np.full(size - len(p), p[-1])])
                part[k] = p
            results.append(_serve_block(config, part, software))
    return Pending(results, n)


def program_cost(
    config: Config, knobs: Mapping[str, Any], software: SoftwareParams, block: int, precision: str = "float64"
) -> dict[str, float]:
    """XLA's own cost analysis of one compiled block of ``block`` designs, per design: the
    floating-point operations and the bytes its memory traffic moves (intermediates included)."""
    with _precision(precision):
        part = {k: jnp.full(block, float(np.atleast_1d(v)[0])) for k, v in knobs.items()}
        analysis = _serve_batch.lower(config, part, software).compile().cost_analysis()
    analysis = (analysis[0] if isinstance(analysis, list) else analysis) or {}
    return {
        "flops_per_config": float(analysis.get("flops", np.nan)) / block,
        "bytes_per_config": float(analysis.get("bytes accessed", np.nan)) / block,
    }


def check_knobs(config: Config, knobs: Mapping[str, Any]) -> int:
    """Validate SI knob names and values (finite, > 0, one length); returns the length."""
    owner = knob_owner(config)
    table = knob_keys(config)
    lengths = set()
    for name, v in knobs.items():
        if name not in owner:
            raise SpecError(f"knobs: unknown knob '{name}'{suggest(name, owner)}")
        arr = np.atleast_1d(np.asarray(v, dtype=float))
        if arr.ndim != 1:
            raise SpecError(f"knobs: '{name}': expected a scalar or a 1-D array of values")
        zero_ok = table[name].key.kind in ("fraction", "nonnegative")  # shares and offsets may be 0
        if not np.all(np.isfinite(arr)) or np.any(arr < 0) or (not zero_ok and np.any(arr == 0)):
            expected = "numbers >= 0" if zero_ok else "numbers > 0"
            raise SpecError(f"knobs: '{name}' has values out of range or not finite: expected {expected}")
        lengths.add(len(arr))
    if len(lengths) > 1:
        raise SpecError(f"knobs: arrays of different lengths {sorted(lengths)}: expected one length")
    return lengths.pop() if lengths else 1


def run_designs(
    config: Config,
    knobs: Mapping[str, Any],
    software: SoftwareParams,
    chunk: int = 4 * EVAL_BLOCK,
    progress: Callable[[int], None] | None = None,
    precision: str = "float64",
    fixed: bool = False,
) -> dict[str, np.ndarray]:
    """Evaluate N designs (flat SI knob arrays of equal length, or scalars) at every level.

    Chunks of ``chunk`` designs are dispatched one ahead of the copy-out, so the devices stay
    busy. Returns numpy arrays of shape [n_levels, N] per metric, of the ``precision`` of the
    evaluation (one of :data:`PRECISIONS`). With ``fixed`` every compiled call has exactly
    ``min(chunk, EVAL_BLOCK)`` designs (padded): one program for calls of any N.
    """
    n = check_knobs(config, knobs)
    flat = {k: np.asarray(np.broadcast_to(np.atleast_1d(np.asarray(v, dtype=float)), (n,))) for k, v in knobs.items()}
    n_levels = len(jax.tree.leaves(software)[0])
    with _precision(precision):  # the base and the levels go to the device once, before any block
        config, software = jax.device_put((config, software))
    out = {k: np.empty((n_levels, n), dtype=precision) for k in Metrics._fields}

    def chunks() -> Iterator[tuple[int, int, Pending]]:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            part = {k: v[start:stop] for k, v in flat.items()} or {
                "batch": np.full(stop - start, float(config.scenario.batch))
            }
            yield start, stop, dispatch(config, part, software, min(chunk, EVAL_BLOCK), fixed, precision)

    it = chunks()
    current = next(it, None)
    while current is not None:
        start, stop, pending = current
        current = next(it, None)  # dispatch the next chunk before copying this one out
        pending.collect_into(out, start)
        if progress:
            progress(stop - start)
    return out


# --- requests through the scheduler, exactly ---------------------------------------------


@functools.partial(jax.jit, static_argnums=(4, 5))
def _simulate_batch(
    curve: ServiceCurve, arrival: jax.Array, prompt: jax.Array, output: jax.Array, window: int | None, reserve: bool
) -> Served:
    return jax.vmap(functools.partial(simulate, window=window, reserve=reserve))(curve, arrival, prompt, output)


def simulate_requests(
    curves: Mapping[str, np.ndarray],
    arrival_s: np.ndarray,
    prompt_tokens: np.ndarray,
    output_tokens: np.ndarray,
    reserve: bool = True,
) -> dict[str, np.ndarray]:
    """The exact discrete-event simulation (:func:`models.simulate`) of M traces of N
    requests ([M, N] arrays, sorted by arrival), each on its service curve (M-vectors of the
    :class:`models.ServiceCurve` fields); ``reserve``: KV admission reserving the whole
    request (else on demand, with preemption). Per request: ``ttft_s``, ``tpot_s``,
    ``latency_s``, ``queue_s`` ([M, N]; inf where a request did not finish), ``preemptions``."""
    arrays = [np.asarray(x, float) for x in (arrival_s, prompt_tokens, output_tokens)]
    n = arrays[0].shape[1]
    # A window of twice the slots (a power of two: few programs) holds the running and the
    # next to admit unless requests finish far out of order; traces where it did not (NaN)
    # run again over all N.
    slots = np.broadcast_to(np.asarray(curves["slots"], float), arrays[0].shape[:1])
    windows = 1 << np.maximum(6, np.ceil(np.log2(2.0 * np.maximum(slots, 1.0)))).astype(int)
    windows = np.where(windows < n, windows, 0)
    out = {k: np.empty(arrays[0].shape) for k in Served._fields}
    with _precision("float64"):
        curve = ServiceCurve(
            **{k: np.broadcast_to(np.asarray(curves[k], float), slots.shape) for k in ServiceCurve._fields}
        )

        def run(rows: np.ndarray, window: int | None) -> None:
            part = ServiceCurve(*(jnp.asarray(x[rows]) for x in curve))
            served = _simulate_batch(part, *(jnp.asarray(x[rows]) for x in arrays), window, reserve)
            for k, v in served._asdict().items():
                out[k][rows] = np.asarray(v)

        for window in np.unique(windows):
            run(np.flatnonzero(windows == window), int(window) or None)
        again = np.flatnonzero(np.isnan(out["ttft_s"][:, 0]))
        if len(again):
            run(again, None)
    return out


_traces_batch = jax.jit(jax.vmap(poisson_requests, in_axes=(0, None, 0, 0, 0, 0)), static_argnums=1)


def poisson_traces(
    keys: Any, n_requests: int, rate_rps: np.ndarray, prompt_tokens: np.ndarray, prompt_cv: np.ndarray,
    output_tokens: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """M synthetic traces of ``n_requests`` (:func:`models.poisson_requests`), one per key and
    M-vector entry: (arrival_s, prompt_tokens, output_tokens), each [M, N]."""
    # JAX's default precision (the README's check was drawn with these traces).
    out = _traces_batch(keys, n_requests, rate_rps, prompt_tokens, prompt_cv, output_tokens)
    arrival, prompt, output = (np.asarray(x) for x in out)
    return arrival, prompt, output


# --- single GEMMs -------------------------------------------------------------------------

_gemm_batch = jax.jit(jax.vmap(gemm_cost, in_axes=(None, None, 0, 0, 0, None)), static_argnums=5)


def gemm_designs(
    chip: Chip, software: SoftwareParams, m: np.ndarray, n: np.ndarray, k: np.ndarray, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """Latency (s) and energy (J) of many single GEMMs on one chip at one software level."""
    with float64():
        t, e = _gemm_batch(chip, software, *(np.asarray(x, dtype=np.float64) for x in (m, n, k)), dtype)
        return np.asarray(t), np.asarray(e)


def _kernel_time_s(
    chip: Chip,
    software: SoftwareParams,
    flops: jax.Array,
    bytes_: jax.Array,
    m: jax.Array,
    n: jax.Array,
    k: jax.Array,
    kind: str,
    dtype: str,
) -> jax.Array:
    """Time of one kernel (a one-row operator table of ``kind``) on the chip's own roofline."""
    ops = gemm_operator(m, n, k, dtype)
    ops = ops._replace(
        flops=jnp.reshape(flops, (1,)), weight_bytes=jnp.zeros(1), act_bytes=jnp.reshape(bytes_, (1,)), kinds=(kind,)
    )
    c = chip.operator_cost(software, ops, dtype, dtype, dtype)
    return (jnp.maximum(c.compute_s, c.memory_s) + c.overhead_s)[0]


kernel_rows: Callable[..., jax.Array] = jax.vmap(_kernel_time_s, in_axes=(None, None, 0, 0, 0, 0, 0, None, None))
"""Kernel times of N measured kernels of one kind (arrays [N]): pure, for use inside a fit's jit."""


# --- sensitivities ------------------------------------------------------------------------


def _log_metrics(
    config: Config, log_knobs: jax.Array, names: tuple[str, ...], metrics: tuple[str, ...], software: SoftwareParams
) -> jax.Array:
    res = _serve_one(config, {k: jnp.exp(log_knobs[i]) for i, k in enumerate(names)}, software)
    return jnp.stack([jnp.log(getattr(res, m)) for m in metrics])


def _log_metrics_twice(
    log_knobs: jax.Array, config: Config, names: tuple[str, ...], metrics: tuple[str, ...], software: SoftwareParams
) -> tuple[jax.Array, jax.Array]:
    v = _log_metrics(config, log_knobs, names, metrics, software)
    return v, v


def _design_jacobian_fn(
    log_knobs: jax.Array, config: Config, software: SoftwareParams, names: tuple[str, ...], metrics: tuple[str, ...]
) -> tuple[jax.Array, jax.Array]:
    """K designs at once, each with its forward-mode Jacobian (a design search has a few knobs)."""
    jac = jax.vmap(jax.jacfwd(_log_metrics_twice, has_aux=True), in_axes=(0, None, None, None, None))
    out: tuple[jax.Array, jax.Array] = jac(log_knobs, config, names, metrics, software)
    return out


# Its blocks are small: compiled as quickly as a single query's (12.3 s instead of 15.4 s for
# five knobs; a design search's 800 evaluations take 2.5 s either way).
_design_jacobian = jax.jit(_design_jacobian_fn, static_argnums=(3, 4), compiler_options=_QUICK_OPTIONS)


def log_metrics_and_jacobian(
    config: Config, log_knobs: np.ndarray, names: Sequence[str], metrics: Sequence[str], software: SoftwareParams
) -> tuple[np.ndarray, np.ndarray]:
    """Log metrics [K, m] of K designs given as log SI knob values [K, d], and their
    elasticities ∂ log metric / ∂ log knob [K, m, d], at one software level (for gradient
    design search; forward mode, one pass per knob)."""
    names, metrics = tuple(names), tuple(metrics)
    with float64():
        logs = jnp.asarray(log_knobs, dtype=jnp.float64)
        if _stores_programs():  # traced once per structure, names and metrics, kept on disk
            fn = functools.partial(_design_jacobian_fn, names=names, metrics=metrics)
            jac, val = _stored(fn, (logs, config, software), _QUICK_OPTIONS, repr(("jacobian", names, metrics)))
        else:
            jac, val = _design_jacobian(logs, config, software, names, metrics)
        return np.asarray(val), np.asarray(jac)


def log_jacobian(
    config: Config, knobs: Mapping[str, float], software: SoftwareParams, metrics: Sequence[str]
) -> np.ndarray:
    """Elasticities ∂ log metric / ∂ log knob at one design: [n_metrics, n_knobs].

    Forward mode, the design search's program: a design has a few knobs, and reverse mode
    through ``serve`` compiled 3x slower (measured: 40 s against 13 s for five knobs).
    """
    names = tuple(knobs)
    logs = np.log([[float(knobs[k]) for k in names]])
    jacobians: np.ndarray = log_metrics_and_jacobian(config, logs, names, metrics, software)[1]
    return np.asarray(jacobians[0])


def compiled_programs() -> int:
    """How many programs the design evaluation has compiled (for the no-recompilation test)."""
    return sum(getattr(f, "_cache_size")() for f in (_serve_batch, _serve_batch_quick, *_programs.values()))


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk between runs (compiling a group costs seconds).

    Off with ``INFERBENCH_JAX_CACHE=0``; a cache directory already configured is kept.
    """
    if os.environ.get("INFERBENCH_JAX_CACHE", "1") == "0" or getattr(jax.config, "jax_compilation_cache_dir"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    jax.config.update("jax_compilation_cache_dir", str(base / "inferbench" / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    global _program_dir
    _program_dir = base / "inferbench" / "programs"
