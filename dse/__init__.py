"""InferBench engine: specs, the jit/vmap boundary, sweeps, export and the command line."""

import jax

# Token counts, FLOPs (1e18+) and closed-form sums need float64 to stay exact.
jax.config.update("jax_enable_x64", True)

from ._evaluate import LEVELS as LEVELS  # noqa: E402
from ._evaluate import Config as Config  # noqa: E402
from ._evaluate import evaluate as evaluate  # noqa: E402
from ._evaluate import make_config as make_config  # noqa: E402
from ._evaluate import run_designs as run_designs  # noqa: E402
from ._evaluate import software_levels as software_levels  # noqa: E402
from ._specs import SpecError as SpecError  # noqa: E402
from ._specs import hardware_ids as hardware_ids  # noqa: E402
from ._specs import load_hardware as load_hardware  # noqa: E402
from ._specs import load_model as load_model  # noqa: E402
from ._specs import model_ids as model_ids  # noqa: E402

__version__ = "0.1.0"
