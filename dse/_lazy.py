"""Package exports loaded on first use (PEP 562 module ``__getattr__``).

Importing a package stays cheap and each command loads only what it runs: a single
``evaluate`` does not import the plotting, store and fitting stacks (about a second of
start-up on a laptop-class CPU).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a submodule
    name) when ``name`` is first looked up, and keeps the value on the package."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
