"""A deployment question asked of several chips: :func:`plan`'s search on each (the same
function, the same candidates, so every row is what ``inferbench plan`` answers), the real
chips at their datasheets first, then hypothetical variants labelled as such; the
throughput-per-chip vs tokens/s-per-user curve of each (``_plots.plot_curves`` draws them).

The plans run on two threads: a chip's programs are compiled for its own static structure,
and XLA compiles without holding the interpreter, so two chips compile at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dse.engine import display_scale
from dse.specs import HardwareEntry, knob_of_hardware_key, load_hardware
from models import DEFAULT_DTYPE

from ._plan import Slo, plan


@dataclasses.dataclass(frozen=True)
class Question:
    """What is asked: a model, a request shape, SLOs, a chip budget and what to minimize."""

    model: str
    prompt_tokens: int
    output_tokens: int
    slo: Slo
    max_chips: int
    objective: str = "usd_per_mtok"
    dtype: str = DEFAULT_DTYPE

    def plan_command(self, hardware: str, sets: Sequence[str] = ()) -> str:
        """The ``inferbench plan`` command line that answers this question for one chip."""
        parts = [
            f"inferbench plan --model {self.model} --hardware {hardware} --max-chips {self.max_chips}",
            f"--prompt-tokens {self.prompt_tokens} --output-tokens {self.output_tokens}",
        ]
        if self.slo.ttft_s:
            parts.append(f"--ttft-ms {self.slo.ttft_s * 1e3:g}")
        if self.slo.tpot_s:
            parts.append(f"--tpot-ms {self.slo.tpot_s * 1e3:g}")
        parts.append(f"--objective {self.objective}")
        if self.dtype != DEFAULT_DTYPE:
            parts.append(f"--dtype {self.dtype}")
        parts += [f"--set {s}" for s in sets]
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A hypothetical chip: a catalog chip with spec keys changed (file keys and units)."""

    hardware: str
    sets: tuple[str, ...]
    label: str


# The answer's columns: (header, value of a plan row).
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("$/1M tok", lambda r: r["usd_per_mtok"]),
    ("batching", lambda r: r["batching"]),
    ("chunk", lambda r: "-" if r["chunk_tokens"] is None else int(r["chunk_tokens"])),
    ("TP", lambda r: int(r["tp"])),
    ("PP", lambda r: int(r["pp"])),
    ("EP", lambda r: int(r["ep"])),
    ("DP", lambda r: int(r["dp"])),
    ("chips", lambda r: int(r["chips"])),
    ("running", lambda r: int(r["batch"])),
    ("TTFT ms", lambda r: r["ttft_s"] * display_scale("ttft_s")),
    ("TPOT ms", lambda r: r["tpot_s"] * display_scale("tpot_s")),
    ("tok/s/user", lambda r: 1.0 / r["tpot_s"]),
    ("tok/s/chip", lambda r: r["throughput_tokens_per_s_per_chip"]),
    ("J/token", lambda r: r["j_per_token"]),
)


def answer_rows(results: list[dict[str, Any]], price: bool = False) -> tuple[list[list[Any]], list[str]]:
    """Table rows of each chip's best deployment, and a note for each chip with none."""
    rows, notes = [], []
    for res in results:
        best, status = res["best"], res["calibration"].split(" (")[0].split(",")[0]
        if best is None:
            closest = res["excluded"][0]["why"] if res["excluded"] else "no candidate"
            rows.append([res["label"], *["-"] * (len(COLUMNS) + price), status])
            notes.append(f"{res['label']}: no deployment meets the SLOs (the closest: {closest})")
            continue
        row = [res["label"], *(f(best) for _, f in COLUMNS)]
        rows.append(row + ([f"{best['chip_price_usd']:,.0f}"] if price else []) + [status])
    return rows, notes


ANSWER_HEADER = tuple(h for h, _ in COLUMNS)


def with_sets(entry: HardwareEntry, values: dict[str, float]) -> HardwareEntry:
    """``entry`` with spec keys (file units) replaced: the engine's own knobs, so a variant's
    stacks, die, TDP and price follow its values as in a sweep (models.silicon)."""
    spec = entry.spec
    for key, value in values.items():
        info = knob_of_hardware_key(entry.family, key)
        spec = dataclasses.replace(spec, **{info.field: np.asarray(float(value) * info.factor)})
    return dataclasses.replace(entry, spec=spec)


def variant_entry(variant: Variant) -> HardwareEntry:
    values = {k: float(v) for k, v in (s.split("=", 1) for s in variant.sets)}
    return with_sets(load_hardware(variant.hardware), values)


def answer(
    question: Question, chips: Sequence[str], variants: Sequence[Variant] = (), workers: int = 2
) -> list[dict[str, Any]]:
    """:func:`plan` of ``question`` on each chip and each variant; one result per entry, in
    order, each with ``kind`` ("real" or "hypothetical"), ``label`` and ``command``."""
    entries: list[tuple[HardwareEntry, dict[str, Any]]] = []
    for hw in chips:
        entry = load_hardware(hw)  # here, not in a worker: a --fit in effect is this thread's context
        entries.append((entry, {"kind": "real", "label": entry.id, "command": question.plan_command(entry.id)}))
    for v in variants:
        extra = {"kind": "hypothetical", "label": v.label, "command": question.plan_command(v.hardware, v.sets)}
        entries.append((variant_entry(v), extra))

    def one(item: tuple[HardwareEntry, dict[str, Any]]) -> dict[str, Any]:
        entry, extra = item
        res = plan(
            question.model,
            entry,
            question.max_chips,
            prompt_tokens=question.prompt_tokens,
            output_tokens=question.output_tokens,
            slo=question.slo,
            objective=question.objective,
            dtype=question.dtype,
            top=3,
        )
        return res | extra

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, entries))
