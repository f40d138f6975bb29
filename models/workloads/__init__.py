"""Workload models: operator tables (FLOPs, bytes by class, GEMM dims) and memory footprints.

Each workload implements :class:`models.Workload`.
"""

from ._diffusion import DiffusionSpec as DiffusionSpec
from ._gemm import gemm_operator as gemm_operator
from ._rows import operator_table as operator_table
from ._shapes import distinct_experts as distinct_experts
from ._transformer import TransformerSpec as TransformerSpec
from ._transformer import active_params as active_params
from ._transformer import kv_bytes_per_token as kv_bytes_per_token
from ._transformer import memory_per_chip as memory_per_chip
from ._transformer import total_params as total_params
