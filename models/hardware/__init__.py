"""Hardware families. Each answers the same question: time and energy of operators on a chip."""

from ._asic import CgraSpec as CgraSpec
from ._asic import DataflowSpec as DataflowSpec
from ._asic import ImcSpec as ImcSpec
from ._asic import SramChipletSpec as SramChipletSpec
from ._asic import SystolicSpec as SystolicSpec
from ._asic import reconfiguration_s_per_pass as reconfiguration_s_per_pass
from ._asic import systolic_utilization as systolic_utilization
from ._family import FAMILIES as FAMILIES
from ._simt import GEMM_TILES_MN as GEMM_TILES_MN
from ._simt import RATE_FALLBACK as RATE_FALLBACK
from ._simt import RATE_FIELDS as RATE_FIELDS
from ._simt import SimtSpec as SimtSpec
from ._simt import gemm_utilization as gemm_utilization
from ._simt import operator_utilization as operator_utilization
from ._simt import simt_rate_class as simt_rate_class
from ._simt import tile_wave_utilization as tile_wave_utilization
