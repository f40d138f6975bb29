"""Silicon: process nodes, wafers, yield, die cost, HBM stacks, data converters and a die's
floorplan — what a design's area, power, parts and price follow from (pure functions, jit-, vmap- and grad-able)."""

from ._cost import SiliconCost as SiliconCost
from ._cost import silicon_cost_usd as silicon_cost_usd
from ._design import SiliconBase as SiliconBase
from ._design import variant_plan as variant_plan
from ._design import variant_silicon as variant_silicon
from ._floorplan import AREA_CLASS as AREA_CLASS
from ._floorplan import J_PER_FLOP_N7 as J_PER_FLOP_N7
from ._floorplan import MTR_PER_MAC as MTR_PER_MAC
from ._floorplan import NODE_ENERGY as NODE_ENERGY
from ._floorplan import AreaParts as AreaParts
from ._floorplan import Floorplan as Floorplan
from ._floorplan import PowerParts as PowerParts
from ._floorplan import floorplan_area as floorplan_area
from ._floorplan import floorplan_tdp as floorplan_tdp
from ._floorplan import sram_efficiency as sram_efficiency
from ._memory import ADC_REF_AREA_MM2 as ADC_REF_AREA_MM2
from ._memory import HBM as HBM
from ._memory import HBM_STACK_EDGE_MM as HBM_STACK_EDGE_MM
from ._memory import HbmGeneration as HbmGeneration
from ._memory import adc_area_mm2 as adc_area_mm2
from ._memory import adc_energy_j as adc_energy_j
from ._memory import hbm_cost_usd as hbm_cost_usd
from ._memory import hbm_sites as hbm_sites
from ._memory import hbm_stacks as hbm_stacks
from ._memory import stacks_needed as stacks_needed
from ._process import NODES as NODES
from ._process import RETICLE_MM2 as RETICLE_MM2
from ._process import WAFER_DIAMETER_MM as WAFER_DIAMETER_MM
from ._process import Node as Node
from ._process import die_yield as die_yield
from ._process import dies_per_wafer as dies_per_wafer
from ._process import good_die_cost_usd as good_die_cost_usd
from ._process import sram_mm2 as sram_mm2
