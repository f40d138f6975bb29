"""The engine: configurations, the one jit/vmap boundary, the efficiency levels, metrics, evaluate."""

from dse._lazy import lazy_exports

from ._boundary import EVAL_BLOCK as EVAL_BLOCK
from ._boundary import PRECISIONS as PRECISIONS
from ._boundary import SWEEP_PRECISION as SWEEP_PRECISION
from ._boundary import Pending as Pending
from ._boundary import block_size as block_size
from ._boundary import check_knobs as check_knobs
from ._boundary import compiled_programs as compiled_programs
from ._boundary import dispatch as dispatch
from ._boundary import enable_compilation_cache as enable_compilation_cache
from ._boundary import float64 as float64
from ._boundary import gemm_designs as gemm_designs
from ._boundary import in_float64 as in_float64
from ._boundary import kernel_rows as kernel_rows
from ._boundary import log_jacobian as log_jacobian
from ._boundary import log_metrics_and_jacobian as log_metrics_and_jacobian
from ._boundary import poisson_traces as poisson_traces
from ._boundary import program_cost as program_cost
from ._boundary import run_designs as run_designs
from ._boundary import serve_rows as serve_rows
from ._boundary import simulate_requests as simulate_requests
from ._config import COMPONENTS as COMPONENTS
from ._config import MAX_COUNT as MAX_COUNT
from ._config import Config as Config
from ._config import ContextWarning as ContextWarning
from ._config import Knob as Knob
from ._config import Labels as Labels
from ._config import check_batch_split as check_batch_split
from ._config import check_context as check_context
from ._config import check_dtype as check_dtype
from ._config import check_physics as check_physics
from ._config import check_values as check_values
from ._config import knob_keys as knob_keys
from ._config import knob_owner as knob_owner
from ._config import make_config as make_config
from ._config import resolve_knob as resolve_knob
from ._config import splits_heads as splits_heads
from ._config import with_knobs as with_knobs
from ._grid import Grid as Grid
from ._grid import evaluate_grid as evaluate_grid
from ._grid import silicon_source as silicon_source
from ._levels import LEVEL_DESCRIPTIONS as LEVEL_DESCRIPTIONS
from ._levels import LEVELS as LEVELS
from ._levels import calibrated_software as calibrated_software
from ._levels import calibration_source as calibration_source
from ._levels import framework_of as framework_of
from ._levels import level_of as level_of
from ._levels import software_levels as software_levels
from ._metrics import BOOL_METRICS as BOOL_METRICS
from ._metrics import CODE_METRICS as CODE_METRICS
from ._metrics import METRIC_INFO as METRIC_INFO
from ._metrics import column as column
from ._metrics import display_scale as display_scale
from ._metrics import metric_attrs as metric_attrs
from ._metrics import phase_metrics as phase_metrics
from ._metrics import storage_dtype as storage_dtype

# The Dataset (xarray) side of evaluate: loaded on first use (a printed query never needs it).
__getattr__ = lazy_exports(__name__, {"evaluate": "_evaluate", "to_dataset": "_evaluate"})
