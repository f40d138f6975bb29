"""InferBench engine: specs, the jit/vmap boundary, sweeps, analysis and the command line.

Layers, lowest first: :mod:`models` ← :mod:`dse.specs` ← :mod:`dse.engine` ←
:mod:`dse.sweep` and :mod:`dse.analysis` ← :mod:`calibration` ← :mod:`dse.cli`. Importing
``dse`` imports nothing heavy: its exports load on first use (so that a command forwarded to
a resident engine starts without JAX), and no global JAX setting changes.
"""

from ._lazy import lazy_exports
from ._version import __version__ as __version__

_EXPORTS = {
    "LEVELS": "engine",
    "Config": "engine",
    "evaluate": "engine",
    "make_config": "engine",
    "run_designs": "engine",
    "software_levels": "engine",
    "SpecError": "specs",
    "hardware_ids": "specs",
    "load_hardware": "specs",
    "load_model": "specs",
    "model_ids": "specs",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
