"""Per-operator time and energy of one configuration (GenZ Fig. 9's breakdown): its prompt
pass and one decode step at the mean context, on one chip of one replica, at one level.

Operators only: the network's collectives and the framework's time per pass are the
configuration's ``network_s`` and overheads, reported by ``evaluate`` beside it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dse.engine import Config, float64
from models import SoftwareParams


def operator_breakdown(config: Config, software: SoftwareParams) -> list[dict[str, Any]]:
    """Rows of (phase, operator, kind, executions, time_s, energy_j, flops, bytes, bound,
    time_share, energy_share) of ``config`` (scalar leaves) at the level ``software``; shares
    are of the phase's operator time and energy. Evaluated eagerly: one configuration."""
    chip, sc, model, platform = config.chip, config.scenario, config.model, config.platform
    sc = dataclasses.replace(sc, batch=np.asarray(sc.batch) / np.asarray(platform.dp))  # one replica
    dtypes = (sc.weight_dtype, sc.act_dtype, sc.kv_dtype)
    s, d = np.asarray(sc.prompt_tokens), np.asarray(sc.output_tokens)
    rows: list[dict[str, Any]] = []
    for phase, new, past in (
        ("prefill", s, np.zeros_like(s)),
        ("decode step", 1.0 + np.asarray(sc.draft_tokens), s + d / 2.0),
    ):
        with float64():
            ops = model.operator_table(sc, platform.split, np.asarray(new), np.asarray(past))
            cost = chip.operator_cost(software, ops, *dtypes)
            rep = np.asarray(ops.repeat)
            roof = np.maximum(np.asarray(cost.compute_s), np.asarray(cost.memory_s))
            time = (roof + np.asarray(cost.overhead_s)) * rep
            flops, byts = np.asarray(ops.flops) * rep, np.asarray(ops.bytes) * rep
            energy = np.asarray(chip.work_energy_j(time, flops, byts, ops, sc.weight_dtype, sc.act_dtype))
        total_t, total_e = float(time.sum()), float(energy.sum())
        for i, name in enumerate(ops.names):
            if time[i] <= 0 and flops[i] <= 0:
                continue
            rows.append(
                {
                    "phase": phase,
                    "operator": name,
                    "kind": ops.kinds[i],
                    "executions": float(rep[i]),
                    "time_s": float(time[i]),
                    "energy_j": float(energy[i]),
                    "flops": float(flops[i]),
                    "bytes": float(byts[i]),
                    "bound": "compute" if float(cost.compute_s[i]) >= float(cost.memory_s[i]) else "memory",
                    "time_share": float(time[i]) / total_t if total_t > 0 else 0.0,
                    "energy_share": float(energy[i]) / total_e if total_e > 0 else 0.0,
                }
            )
    return rows


BREAKDOWN_HEADERS = ["phase", "operator", "x", "time ms", "time %", "energy J", "energy %", "GFLOP", "MB", "bound"]


def breakdown_cells(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Table cells of :func:`operator_breakdown`'s rows (the headers: BREAKDOWN_HEADERS)."""
    return [
        [
            r["phase"],
            r["operator"],
            int(r["executions"]),
            r["time_s"] * 1e3,
            r["time_share"] * 100,
            r["energy_j"],
            r["energy_share"] * 100,
            r["flops"] / 1e9,
            r["bytes"] / 1e6,
            r["bound"],
        ]  # fmt: skip
        for r in rows
    ]
