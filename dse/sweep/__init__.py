"""Sweeps: specs, planning, sampling, the zarr store, local and Dask execution, resume."""

from ._plan import Group as Group
from ._plan import Plan as Plan
from ._plan import chunk_inputs as chunk_inputs
from ._plan import chunk_knobs as chunk_knobs
from ._plan import make_plan as make_plan
from ._run import SweepResult as SweepResult
from ._run import dask_chunk_task as dask_chunk_task
from ._run import describe as describe
from ._run import run_sweep as run_sweep
from ._sampling import sample_unit as sample_unit
from ._sampling import sample_values as sample_values
from ._spec import SweepSpec as SweepSpec
from ._spec import load_sweep as load_sweep
from ._spec import parse_constraint as parse_constraint
from ._spec import parse_objective as parse_objective
from ._spec import parse_sweep as parse_sweep
from ._store import IncompleteStoreWarning as IncompleteStoreWarning
from ._store import consolidate as consolidate
from ._store import open_sweep as open_sweep
from ._store import store_state as store_state
