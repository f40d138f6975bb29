"""Pure, single-configuration cost models: workloads, hardware families, platforms, economics.

Nothing here calls ``jax.jit`` or ``jax.vmap``: :mod:`dse` applies them in one place. The
interfaces between the parts (``Workload``, ``Chip``, ``SoftwareParams``, ``OpCost``) are in
:mod:`models._interface`.
"""

from ._economics import GRID_GCO2_PER_KWH as GRID_GCO2_PER_KWH
from ._economics import EconomicsSpec as EconomicsSpec
from ._economics import default_economics as default_economics
from ._interface import ATTENTION as ATTENTION
from ._interface import DEFAULT_DTYPE as DEFAULT_DTYPE
from ._interface import DTYPE_BITS as DTYPE_BITS
from ._interface import DTYPES as DTYPES
from ._interface import ELEMENTWISE as ELEMENTWISE
from ._interface import GATHER as GATHER
from ._interface import GEMM as GEMM
from ._interface import Chip as Chip
from ._interface import Footprint as Footprint
from ._interface import LayerComm as LayerComm
from ._interface import OpCost as OpCost
from ._interface import OperatorTable as OperatorTable
from ._interface import Scenario as Scenario
from ._interface import SoftwareParams as SoftwareParams
from ._interface import Split as Split
from ._interface import Workload as Workload
from ._interface import achievable_software as achievable_software
from ._interface import dtype_bytes as dtype_bytes
from ._interface import ideal_software as ideal_software
from ._interface import widest as widest
from ._metrics import BOUND_NAMES as BOUND_NAMES
from ._metrics import INFEASIBLE_REASONS as INFEASIBLE_REASONS
from ._metrics import METRIC as METRIC
from ._metrics import METRICS as METRICS
from ._metrics import Infeasible as Infeasible
from ._metrics import MetricInfo as MetricInfo
from ._metrics import Metrics as Metrics
from ._queueing import PERCENTILES as PERCENTILES
from ._queueing import Served as Served
from ._queueing import ServiceCurve as ServiceCurve
from ._queueing import open_queue as open_queue
from ._queueing import poisson_requests as poisson_requests
from ._queueing import simulate as simulate
from ._serve import BATCHING as BATCHING
from ._serve import gemm_cost as gemm_cost
from ._serve import serve as serve
from ._serve import sum_max_affine as sum_max_affine
