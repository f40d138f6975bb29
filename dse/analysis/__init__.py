"""Analysis of results: Pareto fronts, charts, the platform study, deployment search, terminal tables."""

from ._curves import run_curve_study as run_curve_study
from ._pareto import pareto_mask as pareto_mask
from ._pareto import pareto_table as pareto_table
from ._pareto import store_pareto as store_pareto
from ._pareto import write_front as write_front
from ._plan import OBJECTIVES as OBJECTIVES
from ._plan import Slo as Slo
from ._plan import plan as plan
from ._platforms import run_platform_study as run_platform_study
from ._plots import plot_store as plot_store
from ._plots import sensitivities as sensitivities
from ._table import fmt as fmt
from ._table import render as render
