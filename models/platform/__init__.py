"""Platforms: parallelism (TP/EP/PP/DP), the network hierarchy and its collectives, pipelines."""

from ._network import COLLECTIVES as COLLECTIVES
from ._network import TOPOLOGIES as TOPOLOGIES
from ._network import Level as Level
from ._network import collective_s as collective_s
from ._network import level_collective_s as level_collective_s
from ._network import smooth_min as smooth_min
from ._parallel import PlatformSpec as PlatformSpec
from ._parallel import pipeline_fill_factor as pipeline_fill_factor
