"""The ``inferbench`` command line (the top layer: it may import every other).

The console entry point (:func:`main_exit`) is light: it hands a query to a resident engine
when one runs (``inferbench daemon start``) and loads the full command line otherwise.
"""

from dse._lazy import lazy_exports

from ._resident import main_exit as main_exit

_EXPORTS = {"build_parser": "_main", "main": "_main"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*_EXPORTS, "main_exit"])
