"""Pure, single-configuration cost models: workloads, hardware families, platforms, economics.

Nothing here calls ``jax.jit`` or ``jax.vmap``: :mod:`dse` applies them in one place.
"""

from ._economics import EconomicsSpec as EconomicsSpec
from ._economics import default_economics as default_economics
from ._serve import BOUND_NAMES as BOUND_NAMES
from ._serve import INFEASIBLE_REASONS as INFEASIBLE_REASONS
from ._serve import Metrics as Metrics
from ._serve import serve as serve
from ._serve import sum_max_affine as sum_max_affine
