"""InferBench engine: specs, the jit/vmap boundary, sweeps, analysis and the command line.

Layers, lowest first: :mod:`models` ← :mod:`dse.specs` ← :mod:`dse.engine` ←
:mod:`dse.sweep` and :mod:`dse.analysis` ← :mod:`calibration` ← :mod:`dse.cli`. Importing
``dse`` imports the specs and the engine only, and changes no global JAX setting.
"""

from ._version import __version__ as __version__
from .engine import LEVELS as LEVELS
from .engine import Config as Config
from .engine import evaluate as evaluate
from .engine import make_config as make_config
from .engine import run_designs as run_designs
from .engine import software_levels as software_levels
from .specs import SpecError as SpecError
from .specs import hardware_ids as hardware_ids
from .specs import load_hardware as load_hardware
from .specs import load_model as load_model
from .specs import model_ids as model_ids
