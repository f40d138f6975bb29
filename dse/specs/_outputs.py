"""Writing results without touching what the tool did not write.

Every output goes through :func:`writing`: the result is written to a temporary sibling and
renamed into place only when complete, so a crash never leaves a half-written file under the
final name. An existing path is replaced only if it is the tool's own:

- a folder (a zarr store) is its own when its ``zarr.json`` carries ``inferbench_version`` in
  its attributes (every store the tool writes does);
- a file is its own when the hidden manifest beside it (``.inferbench-outputs.json``) lists it
  with the SHA-256 it had when written — a file the user has since edited is not.

Anything else is refused with a one-line error and left exactly as it was. Two things are
refused even when they are the tool's own, as xarray's ``mode="w-"`` and SQLite's journal
refuse to lose data by default: a path that the same command reads (:func:`note_input`; an
output never replaces its own input), and a sweep store (the result of an expensive run),
which only ``--overwrite`` replaces (:func:`invocation`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ._errors import SpecError

MARK_ATTR = "inferbench_version"
MANIFEST = ".inferbench-outputs.json"


# What the running command reads, and whether it may replace an expensive result: set per
# invocation by the command line (a resident engine serves one query at a time in a thread of
# its own context), read by every output check below.
_INPUTS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("inferbench_inputs", default=())
_OVERWRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("inferbench_overwrite", default=False)


@contextlib.contextmanager
def invocation(overwrite: bool = False) -> Iterator[None]:
    """The scope of one command: the inputs it reads start empty; ``overwrite`` is its --overwrite."""
    inputs, replace = _INPUTS.set(()), _OVERWRITE.set(overwrite)
    try:
        yield
    finally:
        _INPUTS.reset(inputs)
        _OVERWRITE.reset(replace)


def note_input(path: str | Path) -> None:
    """Record that the running command reads ``path``: no output of it may replace or enter it."""
    _INPUTS.set((*_INPUTS.get(), os.path.realpath(path)))


def _refuse_input(path: Path) -> None:
    real = os.path.realpath(path)
    for inp in _INPUTS.get():
        if real == inp or inp.startswith(real + os.sep) or real.startswith(inp + os.sep):
            how = "is" if real == inp else "contains" if inp.startswith(real + os.sep) else "is inside"
            raise SpecError(
                f"{path}: {how} an input of this command ({inp if real != inp else 'read above'}): "
                "expected an output path apart from the inputs (nothing was changed)"
            )


def _store_attrs(path: Path) -> dict | None:
    try:
        meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return attrs if isinstance(attrs, dict) else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ownership(path: Path, own: Callable[[Path], bool] | None = None) -> str:
    """'missing', 'own' (written by the tool and unchanged since) or 'foreign'.

    ``own`` recognises the tool's files of one format by their content (e.g. a header).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return "missing"
    if path.is_symlink():
        return "foreign"
    if own is not None and path.is_file() and own(path):
        return "own"
    if path.is_dir():
        attrs = _store_attrs(path)
        return "own" if attrs is not None and MARK_ATTR in attrs else "foreign"
    recorded = _manifest(path.parent).get(path.name)
    try:
        return "own" if recorded is not None and recorded == _sha256(path) else "foreign"
    except OSError:
        return "foreign"


def refuse_foreign(path: Path, own: Callable[[Path], bool] | None = None, overwrite: bool | None = None) -> None:
    """One-line error if ``path`` must not be written: it exists and is not the tool's own
    output, it is (or holds, or is inside) an input of this command, or it is a sweep store
    and ``overwrite`` (default: the command's --overwrite) is not given."""
    path = Path(path)
    _refuse_input(path)
    for parent in Path(os.path.abspath(path)).parents:  # nothing is written into a sweep store
        if _is_sweep_store(_store_attrs(parent)):
            raise SpecError(
                f"{path}: is inside the sweep store {parent}: expected an output path outside it "
                "(a store holds only what its sweep writes; nothing was changed)"
            )
    state = ownership(path, own)
    if state == "foreign":
        kind = "a folder" if path.is_dir() else "a file"
        raise SpecError(
            f"{path}: exists and is {kind} InferBench did not write: expected a new path or one of "
            "InferBench's own outputs (nothing was changed)"
        )
    attrs = _store_attrs(path) if state == "own" and path.is_dir() else None
    if _is_sweep_store(attrs) and not (_OVERWRITE.get() if overwrite is None else overwrite):
        done = "finished" if attrs.get("sweep_complete") else "unfinished"
        n = attrs.get("n_designs")
        size = f" of {n:,} designs" if isinstance(n, int) else ""
        raise SpecError(
            f"{path}: holds the {done} sweep store '{attrs.get('sweep_name', '?')}'{size}, which this would "
            "replace: expected a new path, or --overwrite to replace it (nothing was changed)"
        )


def _is_sweep_store(attrs: dict | None) -> bool:
    # A sweep store has both (a Pareto front written from one keeps the spec, not the progress).
    return bool(attrs) and "sweep_spec" in attrs and "sweep_complete" in attrs


def _record(path: Path) -> None:
    """Add ``path`` (a file just written) to the manifest of its folder."""
    entries = _manifest(path.parent)
    entries[path.name] = _sha256(path)
    entries = {k: v for k, v in entries.items() if (path.parent / k).is_file()}
    tmp = path.parent / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path.parent / MANIFEST)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def remove_own(path: Path, overwrite: bool | None = None) -> None:
    """Delete an output of the tool (refusing anything else): moved aside first, then removed."""
    path = Path(path)
    refuse_foreign(path, overwrite=overwrite)
    if not os.path.lexists(path):
        return
    aside = path.with_name(f".{path.name}.inferbench-{os.getpid()}.old")
    try:
        os.replace(path, aside)
    except OSError as e:
        raise SpecError(f"{path}: cannot remove ({e.strerror or e}): expected a writable path") from None
    _remove(aside)


def make_parent(path: Path) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecError(
            f"{path}: cannot create the folder {Path(path).parent} ({e.strerror or e}): expected a writable path"
        ) from None


@contextlib.contextmanager
def writing(path: str | Path, own: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """``with writing(path) as tmp:`` write the result to ``tmp`` (same suffix as ``path``).

    On success ``tmp`` replaces ``path``; on any failure ``tmp`` is removed and ``path`` is
    untouched. Refuses (before anything is written) a ``path`` the tool does not own.
    """
    path = Path(path)
    refuse_foreign(path, own)
    make_parent(path)
    tmp = path.with_name(f".{path.stem}.inferbench-{os.getpid()}.tmp{path.suffix}")
    _remove(tmp)
    try:
        yield tmp
        if os.path.lexists(path) and not (path.is_file() and tmp.is_file()):
            aside = path.with_name(f".{path.name}.inferbench-{os.getpid()}.old")
            os.replace(path, aside)
            os.replace(tmp, path)
            _remove(aside)
        else:
            os.replace(tmp, path)
        if path.is_file():
            _record(path)
    except OSError as e:
        _remove(tmp)
        raise SpecError(f"{path}: cannot write ({e.strerror or e}): expected a writable path") from None
    except BaseException:
        _remove(tmp)
        raise
