"""Catalog folders, and reading spec files (YAML or JSON) with one-line errors."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from ._errors import SpecError, suggest
from ._outputs import note_input

CATALOG = Path(__file__).resolve().parents[2] / "models" / "catalog"
HARDWARE_DIR = CATALOG / "hardware"
MODEL_DIR = CATALOG / "models"
PLATFORM_DIR = CATALOG / "platforms"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # the C parser where PyYAML has it
    """YAML 1.1 safe loading, with numbers written as people write them: ``1e300`` and ``5e9``
    are floats (YAML 1.1 reads an exponent without a dot as a string)."""


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    # YAML allows a repeated key and keeps the last; in a spec it is a mistake (two values for one knob).
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key) if isinstance(key, str | int | float | bool) else None
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text (safe: plain data only)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 — _Loader is a SafeLoader


# Inputs are read whole: a bound, so that a wrong path (a disk image, a log) fails at once.
MAX_INPUT_BYTES = 64 * 1024 * 1024
_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}  # fmt: skip


def read_input(path: Path, expected: str) -> str:
    """The text of an input file: a regular file (never a FIFO or device, which could block or
    never end) of at most :data:`MAX_INPUT_BYTES`, UTF-8 (a byte-order mark dropped)."""
    path = Path(path)
    note_input(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except OSError as e:
        raise SpecError(f"{path}: cannot read file ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _KINDS.items() if test(st.st_mode)), "not a regular file")
            raise SpecError(f"{path}: is {kind}: expected {expected}")
        if st.st_size > MAX_INPUT_BYTES:
            raise SpecError(
                f"{path}: {st.st_size / 1e6:,.0f} MB: expected {expected} of at most {MAX_INPUT_BYTES / 1e6:.0f} MB"
            )
        data = f.read(MAX_INPUT_BYTES + 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (not valid UTF-8): expected {expected}") from None


def read_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML (or ``.json``) file."""
    text = read_input(path, "a YAML or JSON spec")
    is_json = path.suffix == ".json"
    try:
        data = json.loads(text, object_pairs_hook=_object_without_duplicates) if is_json else load_yaml(text)
    except _DuplicateKey as e:
        raise SpecError(f"{path}: duplicate key '{e.args[0]}': expected each key once") from None
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", getattr(e, "lineno", None))
        where = f" (line {line + 1 if not is_json else line})" if isinstance(line, int) else ""
        if "duplicate key" in str(getattr(e, "problem", "")):
            where = f" (line {line + 1}: {e.problem}: expected each key once)"
        raise SpecError(f"{path}: not valid {'JSON' if is_json else 'YAML'}{where}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def ids(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def resolve(ref: str | Path, folder: Path, what: str, exts: tuple[str, ...]) -> Path:
    """A catalog id or a file path → the spec file."""
    p = Path(ref)
    if p.suffix in exts or p.exists() or "/" in str(ref):
        if not p.exists():
            raise SpecError(f"{p}: cannot read file (no such file)")
        if p.is_dir():
            raise SpecError(f"{p}: is a folder: expected a {what} spec file")
        return p
    cand = folder / f"{ref}.yaml"
    if not cand.exists():
        known = ids(folder)
        raise SpecError(
            f"models/catalog/{folder.name}: unknown {what} '{ref}'{suggest(str(ref), known)} "
            f"(known: {', '.join(known)})"
        )
    return cand


def shipped_folders(kind: str) -> tuple[Path, ...]:
    """Where the shipped ``sweeps`` or ``examples`` are: the checkout's folder (an editable
    install), or the copy an installed wheel carries under ``dse/_shipped``."""
    here = Path(__file__).resolve()
    return tuple(p for p in (here.parents[2] / kind, here.parents[1] / "_shipped" / kind) if p.is_dir())
