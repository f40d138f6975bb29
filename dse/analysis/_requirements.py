"""Platform requirements of a use case (GenZ §VI): the memory capacity, compute, memory
bandwidth and interconnect bandwidth a platform needs to meet the use case's SLOs.

Each requirement is solved in isolation, assuming the other resources are not the bottleneck
(GenZ §VI): capacity = weights + KV cache of B·(τp + beam·τd) tokens + the prefill
activations; compute = the prompt pass's FLOPs / TTFT (GenZ: prefill sets it); memory
bandwidth = the bytes of the last decode step (weights, the whole KV cache, activations) /
TPOT; interconnect (tensor parallelism over ``tp`` chips) = what one chip sends in the ring
all-reduces of a pass, 2·(tp − 1)/tp of each message, over the same time budget, the larger
of prefill and decode; the link latency = the TPOT over the decode step's ring steps
(2·(tp − 1) per all-reduce), each paying it once (GenZ §VI's network latency); memory in whole
HBM stacks of a generation (the larger of capacity and bandwidth). Numbers are the platform's totals (the interconnect is per chip), from
the same operator tables the engine evaluates; no sweep.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dse.engine import float64
from dse.specs import ModelEntry, SpecError, UseCase
from models import DEFAULT_DTYPE, Scenario, Split
from models.silicon import HBM, hbm_stacks


def _total(table: Any, field: str) -> float:
    return float(jnp.sum(getattr(table, field) * table.repeat))


def requirements(
    model: ModelEntry, case: UseCase, batch: int = 1, dtype: str = DEFAULT_DTYPE, tp: int = 1, hbm: str = "hbm3e"
) -> dict[str, Any]:
    """What a platform needs for ``case`` (its prompt, output, beam and SLOs) at ``batch``;
    memory also as whole HBM stacks of generation ``hbm`` (models.silicon.HBM)."""
    if hbm not in HBM:
        raise SpecError(f"--hbm: unknown generation '{hbm}': expected one of {', '.join(HBM)}")
    generation = HBM[hbm]
    if case.ttft_s is None or case.tpot_s is None:
        raise SpecError(f"--use-case {case.id}: expected TTFT and TPOT SLOs to size a platform for")
    spec = model.spec
    if getattr(spec, "output_unit", "token") != "token":
        raise SpecError(f"--model {model.id}: requirements are sized for token workloads (TTFT and TPOT)")
    prompt, output, beam = float(case.prompt_tokens), float(case.output_tokens), float(case.beam)
    with float64():
        f = lambda x: jnp.asarray(float(x), dtype=jnp.float64)  # noqa: E731
        sc = Scenario(f(batch), f(prompt), f(output), weight_dtype=dtype, act_dtype=dtype, kv_dtype=dtype, beam=f(beam))
        whole = Split.of(f(1))
        fp = spec.footprint(sc, whole, f(1))
        # KV of B·(τp + beam·τd) tokens: the footprint holds B·(τp + τd); beams share the prompt.
        kv = float(fp.kv_bytes) * (prompt + beam * output) / (prompt + output)
        prefill = spec.operator_table(sc, whole, f(prompt), f(0))
        decode = spec.operator_table(
            dataclasses.replace(sc, batch=f(batch * beam)), whole, f(1), f(prompt + output - 1)
        )
        flops, step_bytes = _total(prefill, "flops"), _total(decode, "bytes")
        link, latency = 0.0, float("inf")
        if tp > 1:
            split = Split.of(f(tp))
            factor = 2.0 * (tp - 1) / tp  # ring all-reduce: each chip sends 2(n-1)/n of the message
            sent = []
            for new, sc_, budget in ((prompt, sc, case.ttft_s), (1.0, dataclasses.replace(sc, batch=f(batch * beam)),
                                                                  case.tpot_s)):  # fmt: skip
                comm = spec.layer_comm(sc_, split, f(new))
                per_pass = spec.n_layers * comm.allreduces * comm.allreduce_bytes * factor
                sent.append(float(per_pass) / budget)
                if new == 1.0:  # decode: 2(tp − 1) ring steps per all-reduce, each paying the link latency
                    latency = budget / float(spec.n_layers * comm.allreduces * 2 * (tp - 1))
            link = max(sent)
    capacity = float(fp.weight_bytes) + kv + float(fp.act_bytes)
    out = {
        "model": model.id,
        "use_case": case.id,
        "batch": batch,
        "beam": int(beam),
        "prompt_tokens": int(prompt),
        "output_tokens": int(output),
        "dtype": dtype,
        "ttft_s": case.ttft_s,
        "tpot_s": case.tpot_s,
        "memory_capacity_bytes": capacity,
        "weight_bytes": float(fp.weight_bytes),
        "kv_bytes": kv,
        "activation_bytes": float(fp.act_bytes),
        "compute_flops_per_s": flops / case.ttft_s,
        "prefill_flops": flops,
        "memory_bandwidth_bytes_per_s": step_bytes / case.tpot_s,
        "decode_step_bytes": step_bytes,
        "tp": tp,
        "interconnect_bytes_per_s_per_chip": link,
        "link_latency_s": latency,
        "hbm_generation": generation.name,
        "hbm_stacks": float(hbm_stacks(step_bytes / case.tpot_s, capacity, generation)),
    }
    return jax.tree.map(lambda x: x.item() if isinstance(x, np.generic) else x, out)
