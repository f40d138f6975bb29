"""Running a sweep: the local pipeline, Dask workers, progress, resume."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zarr

from dse.engine import enable_compilation_cache
from dse.specs import SpecError, make_parent, remove_own

from ._lock import store_lock
from ._plan import BYTES_PER_DESIGN, Plan, available_memory_bytes, dispatch_chunk, finish_chunk, make_plan
from ._spec import SweepSpec, load_sweep, parse_sweep
from ._store import (
    DONE,
    StoreWriter,
    create_store,
    damaged_chunks,
    finalize_store,
    read_done,
    reopen_store,
    store_state,
    verify_store,
)


class Progress:
    """Progress on stderr: a one-line bar on a terminal; elsewhere (a log, a pipe, a batch
    job) a plain line every ``LOG_EVERY_S`` seconds, so long runs still say where they are."""

    LOG_EVERY_S = 10.0

    def __init__(self, total: int, done: int = 0, quiet: bool = False, stream: Any = None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = not quiet
        self.total, self.done, self.start_done = total, done, done
        self.t0 = time.perf_counter()
        self.last = self.t0 if not self.tty else 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        every = 0.1 if self.tty else self.LOG_EVERY_S
        if not self.enabled or not (now - self.last > every or (self.tty and self.done >= self.total)):
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        frac = self.done / max(self.total, 1)
        text = f"{frac:6.1%} {self.done:,}/{self.total:,} designs {rate:,.0f} designs/s ETA {eta:5.1f} s"
        if self.tty:
            self.stream.write(f"\r[{'#' * int(30 * frac):<30}] {text} ")
        else:
            self.stream.write(f"sweep: {text.strip()}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class SweepResult:
    store: Path
    status: str  # 'completed' | 'resumed' | 'already complete'
    n_designs: int
    n_chunks_run: int
    seconds: float

    @property
    def designs_per_s(self) -> float:
        return self.n_designs / self.seconds if self.seconds > 0 else float("inf")


def _prepare(
    spec: SweepSpec, store: Path, overwrite: bool, chunk: int | None, repair: bool = False, yes: bool = False
) -> tuple[Plan | None, str]:
    state, attrs = store_state(store)
    if state == "foreign":  # --overwrite never touches what the tool did not write
        raise SpecError(
            f"{store}: exists and is not an InferBench sweep store: expected a new path "
            "(nothing was changed; --overwrite only replaces InferBench's own stores)"
        )
    if state in ("partial", "complete") and not overwrite:
        if json.loads(attrs["sweep_spec"]) != json.loads(spec.to_json()):
            raise SpecError(
                f"{store}: was written by a different sweep spec: expected the same spec to resume, "
                f"or --overwrite to start again"
            )
        plan = make_plan(spec, int(attrs["sweep_chunk"]))
        if state == "partial" and not repair and not _has_flags(store):
            raise SpecError(
                f"{store}: is unfinished and its progress flags ({DONE}) are missing: "
                "expected --repair (recomputes what cannot be read) or --overwrite"
            )
        # Every chunk flagged as written is verified (checksum, size, place) and the damaged ones
        # recomputed; temporaries a killed run left behind are removed (with --repair, stray files
        # in the chunk folders too; without it they are refused, not removed).
        if state == "complete" and not repair:
            damage = verify_store(store, remove_temporaries=True)
            if damage:
                raise SpecError(f"{store}: finished but damaged: {damage[0]}: expected --repair to recompute it")
            return None, "already complete"
        bad = damaged_chunks(plan, store, repair=repair)
        if state == "complete" and not bad:
            return None, "already complete (every chunk verified)"
        if bad:
            reopen_store(store, plan, list(bad))
            names = sorted({v.split(" ")[0] for vs in bad.values() for v in vs})
            return plan, f"repaired {len(bad)} damaged chunk(s) of {', '.join(names)}"
        return plan, "resumed"
    plan = make_plan(spec, chunk)
    _check_size(plan, store, yes)
    remove_own(store, overwrite=overwrite)
    make_parent(store)
    create_store(plan, store)
    return plan, "completed"


# Chunks of one store: each is a file per variable (~50), a checksum row and a progress flag;
# beyond this a sweep is mostly file-system overhead (a million files). With the automatic
# chunk (up to 2^17 designs) this still holds 2.6e9 designs.
MAX_CHUNKS = 20_000


def _check_size(plan: Plan, store: Path, yes: bool) -> None:
    """Refuse, before anything is allocated, a sweep the disk (or the layout) cannot hold."""
    n_vars = len(plan.spec.outputs) + 1
    estimate = plan.n_designs * n_vars * 4 + plan.spec.sample_n * 4 * len(plan.spec.sampled)
    n_chunks = len(plan.groups) * plan.chunks_per_group
    what = f"{plan.n_designs:,} designs x {n_vars} variables"
    if n_chunks > MAX_CHUNKS:
        raise SpecError(
            f"{store}: {what} make {n_chunks:,} chunks of {plan.chunk_size:,} designs: expected at most "
            f"{MAX_CHUNKS:,} (fewer designs, or a larger --chunk)"
        )
    if plan.chunk_size * BYTES_PER_DESIGN > available_memory_bytes() // 2:
        raise SpecError(
            f"{store}: chunks of {plan.chunk_size:,} designs need about "
            f"{plan.chunk_size * BYTES_PER_DESIGN / 1e9:,.1f} GB in flight, more than half of the "
            f"{available_memory_bytes() / 1e9:,.1f} GB available: expected a smaller --chunk"
        )
    parent = store.parent.resolve()
    while not parent.exists():
        parent = parent.parent
    free = shutil.disk_usage(parent).free
    if estimate > free and not yes:
        raise SpecError(
            f"{store}: {what} are up to {estimate / 1e9:,.1f} GB (float32, before compression), more than the "
            f"{free / 1e9:,.1f} GB free: expected a smaller sweep, or --yes to go ahead"
        )


def _has_flags(store: Path) -> bool:
    return (store / DONE / "zarr.json").is_file()


def _todo(plan: Plan, store: Path) -> list[tuple[int, int]]:
    done = read_done(store, plan)
    return [(g, ci) for g in range(len(plan.groups)) for ci in range(plan.chunks_per_group) if not done[g, ci]]


def _designs_in(plan: Plan, todo: list[tuple[int, int]]) -> int:
    return sum(plan.chunk_region(ci)[2] - plan.chunk_region(ci)[1] for _, ci in todo)


def run_sweep(
    spec: SweepSpec | str | Path,
    store: str | Path,
    *,
    overwrite: bool = False,
    quiet: bool = False,
    chunk: int | None = None,
    dask: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    repair: bool = False,
    yes: bool = False,
    _stop_after: int | None = None,
) -> SweepResult:
    """Run (or resume) a sweep into ``store``.

    Args:
        spec: a :class:`SweepSpec` or the path of a sweep YAML file.
        store: the zarr store (a directory) to create or resume.
        overwrite: start again even if the store holds a finished or different sweep.
        quiet: no progress bar (it is also off when stderr is not a terminal).
        chunk: designs per chunk (default: chosen from the available memory).
        dask: evaluate on a local dask.distributed cluster of ``workers`` processes.
        scheduler: address of an existing dask.distributed scheduler.
        repair: decode every written chunk and recompute the damaged ones (a finished store too).
        yes: go ahead with a store larger than the free disk space.

    Returns:
        A :class:`SweepResult`.
    """
    spec = spec if isinstance(spec, SweepSpec) else load_sweep(spec)
    store = Path(store)
    with store_lock(store):  # one writer per store; released (even by a kill) with the process
        return _run_locked(spec, store, overwrite, quiet, chunk, dask, workers, scheduler, repair, yes, _stop_after)


def _run_locked(
    spec: SweepSpec,
    store: Path,
    overwrite: bool,
    quiet: bool,
    chunk: int | None,
    dask: bool,
    workers: int | None,
    scheduler: str | None,
    repair: bool,
    yes: bool,
    _stop_after: int | None,
) -> SweepResult:
    t0 = time.perf_counter()
    client = _connect(scheduler) if scheduler else None  # an address that does not answer changes nothing
    try:
        return _run_prepared(spec, store, overwrite, chunk, dask, workers, client, repair, yes, _stop_after, t0, quiet)
    finally:
        if client is not None:
            client.close()


def _run_prepared(
    spec: SweepSpec,
    store: Path,
    overwrite: bool,
    chunk: int | None,
    dask: bool,
    workers: int | None,
    client: Any,
    repair: bool,
    yes: bool,
    _stop_after: int | None,
    t0: float,
    quiet: bool,
) -> SweepResult:
    plan, status = _prepare(spec, store, overwrite, chunk, repair, yes)
    if plan is None:
        return SweepResult(store, status, 0, 0, 0.0)
    todo = _todo(plan, store)
    if _stop_after is not None:  # tests: simulate a crash after this many chunks
        todo = todo[:_stop_after]
    n = _designs_in(plan, todo)
    progress = Progress(plan.n_designs, plan.n_designs - _designs_in(plan, _todo(plan, store)), quiet)
    try:
        if dask or client is not None:
            _run_dask(plan, store, todo, progress, workers, client)
        else:
            _run_local(plan, store, todo, progress)
    finally:
        progress.close()
    if _stop_after is not None:
        return SweepResult(store, "stopped", n, len(todo), time.perf_counter() - t0)
    if not _todo(plan, store):
        finalize_store(store)
    return SweepResult(store, status, n, len(todo), time.perf_counter() - t0)


def _run_local(plan: Plan, store: Path, todo: list[tuple[int, int]], progress: Progress) -> None:
    """Pipeline: chunk i+1 evaluates (XLA, asynchronous) while chunk i is converted and
    chunk i−1 is compressed and written (threads; blosc releases the GIL). At most three
    chunks are alive, so memory does not grow with the sweep."""
    writer = StoreWriter(plan, store)
    io = ThreadPoolExecutor(1)
    pending_write = None
    try:
        it: Iterator[tuple[int, int]] = iter(todo)
        nxt = next(it, None)
        current = (nxt, *dispatch_chunk(plan, *nxt)) if nxt else None
        while current is not None:
            (g, ci), res, coords, n = current
            nxt = next(it, None)
            current = (nxt, *dispatch_chunk(plan, *nxt)) if nxt else None
            data = finish_chunk(plan, res, n)
            del res
            if pending_write is not None:
                pending_write.result()
            pending_write = io.submit(_write_and_count, writer, g, ci, data, coords, progress, n)
        if pending_write is not None:
            pending_write.result()
    finally:
        io.shutdown()
        writer.close()


def _write_and_count(writer: StoreWriter, g: int, ci: int, data, coords, progress: Progress, n: int) -> None:
    writer.write(g, ci, data, coords)
    progress.update(n)
    _crash_point()


# Fault injection for the crash-safety test: a real SIGKILL of this process right after the
# given number of chunks is on disk (deterministic, so the test waits on nothing).
_SIGKILL_AFTER = int(os.environ.get("INFERBENCH_TEST_SIGKILL_AFTER_CHUNKS", "0") or 0)
_WRITTEN = [0]


def _crash_point() -> None:
    if _SIGKILL_AFTER:
        _WRITTEN[0] += 1
        if _WRITTEN[0] >= _SIGKILL_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- Dask


_WORKER_CACHE: dict[tuple[str, str], tuple[Plan, StoreWriter]] = {}
_WORKER_LOCK = threading.Lock()


def dask_chunk_task(store: str, spec_json: str, g: int, ci: int) -> int:
    """A Dask task: evaluate chunk ``ci`` of group ``g`` and write it into its own region.

    Each worker process plans the sweep once from the spec stored with the task (cached) and
    compiles once per static group. Returns the number of designs written.
    """
    key = (store, spec_json)
    with _WORKER_LOCK:
        if key not in _WORKER_CACHE:
            enable_compilation_cache()  # a worker loads what another process compiled and traced
            chunk = int(zarr.open_group(store, mode="r").attrs["sweep_chunk"])
            spec = parse_sweep(json.loads(spec_json), source=f"{store} (sweep_spec)")
            plan = make_plan(spec, chunk)
            _WORKER_CACHE.clear()
            _WORKER_CACHE[key] = (plan, StoreWriter(plan, Path(store)))
        plan, writer = _WORKER_CACHE[key]
    res, coords, n = dispatch_chunk(plan, g, ci)
    writer.write(g, ci, finish_chunk(plan, res, n), coords)
    return n


def _connect(scheduler: str) -> Any:
    """A client of a running dask scheduler, connected before the store is touched."""
    try:
        from distributed import Client  # optional: only --dask pays its import
    except ImportError:
        raise SpecError(
            "--dask: dask.distributed is not installed: expected `pip install 'dask[distributed]'`"
        ) from None
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, ValueError, TypeError) as e:
        raise SpecError(
            f"--scheduler: cannot connect to '{scheduler}' ({e}): expected the address of a running "
            "dask scheduler, e.g. tcp://127.0.0.1:8786"
        ) from None


def _run_dask(
    plan: Plan, store: Path, todo: list[tuple[int, int]], progress: Progress, workers: int | None, client: Any
) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed  # optional: only --dask pays its import
    except ImportError:
        raise SpecError(
            "--dask: dask.distributed is not installed: expected `pip install 'dask[distributed]'`"
        ) from None
    cluster = None
    if client is None:
        n = workers or max(1, (os.cpu_count() or 2) // 2)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        spec_json = plan.spec.to_json()
        futures = [
            client.submit(
                dask_chunk_task,
                str(store.resolve()),
                spec_json,
                g,
                ci,
                pure=False,
                key=f"inferbench-{plan.spec.name}-{g}-{ci}-{time.time_ns()}",
            )
            for g, ci in todo
        ]
        for fut in as_completed(futures):
            progress.update(fut.result())
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def describe(result: SweepResult) -> str:
    if result.status.startswith("already complete"):
        return f"{result.store}: sweep {result.status} (use --overwrite to run it again)"
    return (
        f"{result.store}: {result.status}: {result.n_designs:,} designs in {result.seconds:.2f} s "
        f"({result.designs_per_s:,.0f} designs/s)"
    )
