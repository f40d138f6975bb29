"""Disaggregated pools on different chips: prefill on one chip and layout, decode on another,
the prompt's KV cache sent between them over the scale-out network (DistServe, Zhong et al.
OSDI 2024; Splitwise, Patel et al. ISCA 2024).

Each pool is evaluated on its own chip, vectorized (one program per chip): a prefill replica
serves one prompt per pass (its TTFT and energy per prompt token), a decode replica runs
``batch`` sequences (its decode steps over the growing context and energy per output token).
Pools are sized so that prefill keeps up with decode (the fewest prefill replicas for the
decode pool's request rate) within the chips available; the KV cache of a prompt crosses the
slower of the two systems' NICs, one per chip of the smaller replica. Cost: both pools'
chips amortized and the energy of their work (idle power of a pool that waits is not counted).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from dse.engine import make_config, run_designs, software_levels, splits_heads
from dse.specs import HardwareEntry, ModelEntry, SpecError, load_hardware, load_model
from dse.specs._platforms import network_of
from models import DEFAULT_DTYPE, default_economics
from models._economics import J_PER_KWH, SECONDS_PER_YEAR
from models.workloads import kv_bytes_per_token

from ._plan import BATCH_LADDER, Slo, _powers_of_two

_POOL_METRICS = ("ttft_s", "tpot_s", "prefill_j_per_token", "decode_j_per_token", "n_chips", "chip_price_usd",
                 "feasible")  # fmt: skip


def _layouts(model: ModelEntry, max_chips: int) -> list[tuple[int, int]]:
    spec = model.spec
    tps = [t for t in _powers_of_two(min(max_chips, float(spec.n_heads))) if splits_heads(spec, t)]
    return [
        (tp, pp) for tp in tps for pp in _powers_of_two(min(max_chips, float(spec.n_layers))) if tp * pp <= max_chips
    ]


def _evaluate(model: ModelEntry, hw: HardwareEntry, cand: list[tuple[int, int, int]], prompt: int, output: int,
              dtype: str, level: str) -> dict[str, np.ndarray]:  # fmt: skip
    arr = np.asarray(cand, dtype=float)
    cfg = make_config(model, hw, weight_dtype=dtype, act_dtype=dtype, kv_dtype=dtype, prompt_tokens=prompt,
                      output_tokens=output)  # fmt: skip
    res = run_designs(cfg, {"tp": arr[:, 0], "pp": arr[:, 1], "batch": arr[:, 2]}, software_levels(hw, [level]))
    return {k: res[k][0] for k in _POOL_METRICS}


def plan_pools(
    model: str | ModelEntry,
    prefill_hardware: str | HardwareEntry,
    decode_hardware: str | HardwareEntry,
    max_chips: int,
    *,
    prompt_tokens: int,
    output_tokens: int,
    slo: Slo = Slo(),
    dtype: str = DEFAULT_DTYPE,
    level: str = "calibrated",
    top: int = 5,
) -> dict[str, Any]:
    """The cheapest ($/1M output tokens) disaggregated pools: prefill layouts of one chip ×
    decode layouts and batches of the other × pool sizes within ``max_chips``, under the SLOs
    (TTFT = the prompt's pass + its KV transfer; TPOT = the decode replica's mean step)."""
    m = model if isinstance(model, ModelEntry) else load_model(model)
    hp = prefill_hardware if isinstance(prefill_hardware, HardwareEntry) else load_hardware(prefill_hardware)
    hd = decode_hardware if isinstance(decode_hardware, HardwareEntry) else load_hardware(decode_hardware)
    if max_chips < 2:
        raise SpecError(f"--max-chips: {max_chips}: expected at least 2 for a prefill and a decode pool")
    lays = _layouts(m, max_chips - 1)
    pre = _evaluate(m, hp, [(tp, pp, 1) for tp, pp in lays], prompt_tokens, 2, dtype, level)
    dec_cand = [(tp, pp, b) for (tp, pp), b in itertools.product(lays, BATCH_LADDER)]
    dec = _evaluate(m, hd, dec_cand, prompt_tokens, output_tokens, dtype, level)
    econ = default_economics()
    life_s, overhead = float(econ.lifetime_years) * SECONDS_PER_YEAR, 1.0 + float(econ.capex_overhead)
    usd_per_j = float(econ.pue) * float(econ.usd_per_kwh) / J_PER_KWH
    kv_request = float(kv_bytes_per_token(m.spec, dtype)) * prompt_tokens
    nic = min(network_of(h, None).get("scale_out_bandwidth_bytes_per_s", 0.0) for h in (hp, hd))
    rows = []
    for i, j in itertools.product(range(len(lays)), range(len(dec_cand))):
        if not (pre["feasible"][i] and dec["feasible"][j]):
            continue
        chips_p, chips_d = int(pre["n_chips"][i]), int(dec["n_chips"][j])
        p1, tpot, b = float(pre["ttft_s"][i]), float(dec["tpot_s"][j]), dec_cand[j][2]
        send = kv_request / (nic * min(chips_p, chips_d)) if nic > 0 else math.inf
        ttft = p1 + send
        if (slo.ttft_s and ttft > slo.ttft_s) or (slo.tpot_s and tpot > slo.tpot_s):
            continue
        decode_rps = b / (output_tokens * tpot)  # requests/s one decode replica finishes
        for n_dec in range(1, max_chips // chips_d + 1):
            n_pre = math.ceil(n_dec * decode_rps * p1 - 1e-9)  # prefill keeps up
            if n_pre * chips_p + n_dec * chips_d > max_chips:
                break
            rps = min(n_pre / p1, n_dec * decode_rps)
            tokens_s = rps * output_tokens
            capex = (n_pre * chips_p * pre["chip_price_usd"][i] + n_dec * chips_d * dec["chip_price_usd"][j]) * overhead
            energy_w = rps * (
                pre["prefill_j_per_token"][i] * prompt_tokens + dec["decode_j_per_token"][j] * output_tokens
            )
            usd = (capex / life_s + energy_w * usd_per_j) / tokens_s * 1e6
            rows.append(dict(prefill_tp=lays[i][0], prefill_pp=lays[i][1], prefill_replicas=n_pre,
                             decode_tp=dec_cand[j][0], decode_pp=dec_cand[j][1], decode_replicas=n_dec, batch=b,
                             chips=n_pre * chips_p + n_dec * chips_d, ttft_s=ttft, kv_transfer_s=send, tpot_s=tpot,
                             requests_per_s=rps, tokens_per_s=tokens_s, usd_per_mtok=float(usd)))  # fmt: skip
    rows.sort(key=lambda r: (r["usd_per_mtok"], r["chips"]))
    return {"model": m.id, "prefill_hardware": hp.id, "decode_hardware": hd.id, "max_chips": max_chips,
            "candidates": len(rows), "best": rows[0] if rows else None, "others": rows[1 : 1 + top]}  # fmt: skip
