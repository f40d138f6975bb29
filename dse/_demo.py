"""``inferbench demo``: the embedded default study, a small sweep (see :mod:`dse._sweep_demo`)."""

from dse._sweep_demo import run_demo as run_demo
