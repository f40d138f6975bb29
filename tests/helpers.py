"""Small builders shared by the tests."""

from __future__ import annotations

import numpy as np

import dse
from dse.engine import make_config
from models import achievable_software


def f(x: float):
    """A scalar leaf as the spec loaders make them (float64, not weakly typed)."""
    return np.asarray(float(x), dtype=np.float64)


def config(model: str = "llama-3-70b", hardware: str = "a100-sxm4-80gb", **kw):
    return make_config(dse.load_model(model), dse.load_hardware(hardware), **kw)


def seed_software():
    return achievable_software()
