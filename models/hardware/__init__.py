"""Hardware families. Each answers the same question: time and energy of operators on a chip."""

from ._asic import CgraSpec as CgraSpec
from ._asic import DataflowSpec as DataflowSpec
from ._asic import ImcSpec as ImcSpec
from ._asic import SramChipletSpec as SramChipletSpec
from ._asic import SystolicSpec as SystolicSpec
from ._asic import reconfiguration_s_per_pass as reconfiguration_s_per_pass
from ._asic import systolic_utilization as systolic_utilization
from ._family import FAMILIES as FAMILIES
from ._family import gemm_cost as gemm_cost
from ._family import operator_cost as operator_cost
from ._family import operator_energy_j as operator_energy_j
from ._simt import GEMM_TILES_MN as GEMM_TILES_MN
from ._simt import SEED_UTIL as SEED_UTIL
from ._simt import UTIL_KNOTS_M as UTIL_KNOTS_M
from ._simt import OpCost as OpCost
from ._simt import SimtSpec as SimtSpec
from ._simt import SoftwareParams as SoftwareParams
from ._simt import achievable_software as achievable_software
from ._simt import gemm_utilization as gemm_utilization
from ._simt import ideal_software as ideal_software
from ._simt import operator_utilization as operator_utilization
from ._simt import tile_wave_utilization as tile_wave_utilization
