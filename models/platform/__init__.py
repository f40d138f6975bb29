"""Platforms: parallelism (TP/PP), collectives, pipelines."""

from ._parallel import PlatformSpec as PlatformSpec
from ._parallel import collective_s as collective_s
from ._parallel import pipeline_fill_factor as pipeline_fill_factor
from ._parallel import ring_allreduce_s as ring_allreduce_s
from ._parallel import send_recv_s as send_recv_s
