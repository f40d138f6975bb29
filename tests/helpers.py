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


def serve_eager(model: str, hardware: str, level: str = "calibrated", platform=None, dtype: str = "bf16", **knobs):
    """Metrics of one configuration by calling ``models.serve`` eagerly (no compilation: a
    fraction of a second per call, where a new static structure through the engine compiles
    for several seconds). ``knobs`` are make_config arguments or SI leaves; ``batching`` too."""
    from dse.engine import calibrated_software, float64, with_knobs
    from dse.specs import load_platform
    from models import ideal_software, serve

    h = dse.load_hardware(hardware)
    structure = {
        k: knobs.pop(k)
        for k in ("tp", "pp", "ep", "sp", "dp", "batch", "prompt_tokens", "output_tokens", "batching")
        if k in knobs
    }
    plat = load_platform(platform) if isinstance(platform, str) else platform
    c = make_config(
        dse.load_model(model), h, weight_dtype=dtype, act_dtype=dtype, kv_dtype=dtype, platform=plat, **structure
    )
    c = with_knobs(c, {k: np.asarray(float(v)) for k, v in knobs.items()})
    sw = {"ideal": ideal_software, "achievable": achievable_software, "calibrated": lambda: calibrated_software(h)}[
        level
    ]()
    with float64():
        m = serve(c.model, c.chip, c.platform, c.scenario, c.economics, sw)
        return type(m)(*(float(x) for x in m))
