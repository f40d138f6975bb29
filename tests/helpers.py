"""Small builders shared by the tests."""

from __future__ import annotations

import jax.numpy as jnp

import dse
from dse._evaluate import make_config
from models.hardware import achievable_software


def f(x: float):
    return jnp.asarray(float(x))


def config(model: str = "llama-3-70b", hardware: str = "a100-sxm4-80gb", **kw):
    return make_config(dse.load_model(model), dse.load_hardware(hardware), **kw)


def seed_software():
    return achievable_software()
