"""``inferbench demo``: the cheapest way to serve Llama-3-70B chat on each GPU-class chip.

The question (2,048 prompt and 256 output tokens, TTFT <= 1 s, TPOT <= 50 ms, up to 8 chips,
lowest $/1M tokens) is put to ``inferbench plan``'s search on each chip — batching mode
(continuous, chunked prefill), TP/PP/EP/DP, running sequences, chunk — so every row is what
``plan`` answers, with the command that reproduces it. Then the same chips with twice their
HBM bandwidth (stacks, TDP and price follow where the silicon is recorded): hypothetical,
labelled so. Writes the curves (throughput per chip vs tokens/s per user) as a dataset, a
chart, a CSV of the answers and one HTML page.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from dse import analysis, specs, sweep
from dse.engine import enable_compilation_cache
from dse.specs import load_hardware, refuse_foreign, writing

RESULTS = Path("results")

QUESTION = analysis.Question(
    model="llama-3-70b",
    prompt_tokens=2048,
    output_tokens=256,
    slo=analysis.Slo(ttft_s=1.0, tpot_s=0.05),
    max_chips=8,
    objective="usd_per_mtok",
)
CHIPS = ("a100-sxm4-80gb", "h100-sxm5-80gb", "h200-sxm-141gb", "b200", "mi300x", "gaudi2")
HBM_FACTOR = 2.0  # the hypothetical variants: each chip with this times its HBM bandwidth


def variants(chips: tuple[str, ...]) -> list[Any]:
    out = []
    for hw in chips:
        tb_s = float(load_hardware(hw).raw["hbm_bandwidth_tb_s"]) * HBM_FACTOR
        out.append(
            analysis.Variant(hw, (f"hbm_bandwidth_tb_s={tb_s:g}",), f"{hw} + HBM x{HBM_FACTOR:g} ({tb_s:g} TB/s)")
        )
    return out


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """One chip's answer as JSON: the cost, the layout, the SLO metrics, how it was calibrated."""
    best = res["best"]
    out: dict[str, Any] = {"hardware": res["hardware"], "kind": res["kind"], "label": res["label"]}
    if best is None:
        return out | {"usd_per_mtok": None, "layout": None, "why": res["excluded"][0]["why"] if res["excluded"] else ""}
    layout = {k: best[k] for k in ("batching", "tp", "pp", "ep", "dp", "chips", "batch", "chunk_tokens")}
    return out | {
        "usd_per_mtok": best["usd_per_mtok"],
        "layout": layout,
        "ttft_s": best["ttft_s"],
        "tpot_s": best["tpot_s"],
        "tokens_per_s_per_user": 1.0 / best["tpot_s"],
        "throughput_tokens_per_s_per_chip": best["throughput_tokens_per_s_per_chip"],
        "j_per_token": best["j_per_token"],
        "chip_price_usd": best["chip_price_usd"],
        "calibration": res["calibration"],
        "software": res["framework"],
        "command": res["command"],
    }


def _own_demo_store(path: Path) -> bool:
    """An earlier demo's store (a sweep store of the demo before it planned) is replaced as a re-run."""
    return sweep.store_state(path)[1].get("sweep_name") == "demo"


def run_demo(output: Path, chips: tuple[str, ...] = CHIPS, quiet: bool = False, as_json: bool = False) -> int:
    """Put the demo's question to each chip and its variant; print the answer, write the files."""
    t0 = time.perf_counter()
    enable_compilation_cache()
    output = Path(output)
    out_dir = output.with_suffix("") if output.suffix else output.with_name(output.name + "-figures")
    files = [out_dir / n for n in ("answer.csv", "curves.png", "curves.svg", "report.html")]
    for p in (output, *files):
        refuse_foreign(p, overwrite=True if p == output and _own_demo_store(p) else None)  # before any work
    q = QUESTION
    if not as_json:
        print(
            f"InferBench demo — the cheapest way to serve {q.model} chat ({q.prompt_tokens} prompt + "
            f"{q.output_tokens} output tokens) with TTFT <= {q.slo.ttft_s * 1e3:g} ms and TPOT <= "
            f"{q.slo.tpot_s * 1e3:g} ms on up to {q.max_chips} chips, per chip: inferbench plan's search over "
            "batching (continuous, chunked prefill), TP, PP, EP, DP, running sequences and chunk size\n",
            flush=True,
        )
    results = analysis.answer(q, chips, variants(chips))
    real = [r for r in results if r["kind"] == "real"]
    hypo = [r for r in results if r["kind"] != "real"]
    if as_json:
        print(json.dumps([summary(r) for r in results], indent=1, default=float))
    else:
        _print_answer(real, hypo, out_dir)
    specs.write_dataset(analysis.curves_dataset(results, q), output)  # zarr loads here, not at start-up
    fig = analysis.plot_curves(results, q)
    written = [output, *analysis.save_figure(fig, out_dir, "curves")]
    with writing(files[0]) as tmp:
        tmp.write_text(_csv(results), encoding="utf-8")
    written.append(files[0])
    written.append(analysis.write_answer_page(results, q, out_dir / "curves.svg", files[3]))
    if not as_json:
        print(
            f"\n{len(results)} searches of {sum(r['candidates'] for r in results):,} deployments in {time.perf_counter() - t0:.1f} s"
        )
    if not quiet:
        print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def _print_answer(real: list[dict[str, Any]], hypo: list[dict[str, Any]], out_dir: Path) -> None:
    head = ["hardware", *analysis.ANSWER_HEADER]
    print("Real chips at their datasheet specs (calibrated level: fitted = its own measurements, transferred = "
          "the A100 fit carried over with the chip's datasheet)")  # fmt: skip
    rows, notes = analysis.answer_rows(real)
    print(analysis.render([*head, "calibration"], rows))
    for note in notes:
        print(note)
    ok = [r for r in real if r["best"] is not None]
    if ok:
        b = min(ok, key=lambda r: r["best"]["usd_per_mtok"])
        print(f"cheapest: {b['label']}, {b['best']['usd_per_mtok']:.3g} $/1M tokens on {b['best']['chips']} chip(s)")
    print("running: sequences in flight per deployment (all replicas); chunk: prefill tokens per iteration")
    print("each row is: " + real[0]["command"].replace(f"--hardware {real[0]['hardware']}", "--hardware CHIP"))
    if hypo:
        print(
            f"\nHypothetical variants (designs, not products): each chip with {HBM_FACTOR:g}x its HBM bandwidth; "
            "stacks, die, TDP and price follow where its silicon is recorded"
        )
        rows, notes = analysis.answer_rows(hypo, price=True)
        print(analysis.render([*head, "price $", "calibration"], rows))
        for note in notes:
            print(note)
        print("each row is: " + hypo[0]["command"].replace(hypo[0]["hardware"], "CHIP", 1).split(" --set")[0]
              + " --set hbm_bandwidth_tb_s=TB_S")  # fmt: skip
    print(f"\nthe curves of every chip: {out_dir / 'curves.png'}; the page: {out_dir / 'report.html'}")


CSV_KEYS = ("hardware", "kind", "label", "usd_per_mtok", "batching", "tp", "pp", "ep", "dp", "chips", "batch",
            "chunk_tokens", "ttft_s", "tpot_s", "tokens_per_s_per_user", "throughput_tokens_per_s_per_chip",
            "j_per_token", "chip_price_usd", "calibration", "software", "command")  # fmt: skip


def _csv(results: list[dict[str, Any]]) -> str:
    lines = [",".join(CSV_KEYS)]
    for r in results:
        s = summary(r)
        flat = s | (s.get("layout") or {})
        lines.append(",".join(_cell(flat.get(k)) for k in CSV_KEYS))
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    text = f"{v:.6g}" if isinstance(v, float) else str(v)
    return f'"{text}"' if "," in text else text


def cmd_demo(args: argparse.Namespace) -> int:
    chips = tuple(args.hardware.split(",")) if args.hardware else CHIPS
    for hw in chips:
        load_hardware(hw)  # an unknown id: one line, before any work
    return run_demo(Path(args.output), chips, quiet=args.quiet, as_json=args.json)


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "demo",
        help="the main job: the cheapest deployment of Llama-3-70B chat on six chips",
        description="Put one question (Llama-3-70B, 2048 prompt / 256 output tokens, TTFT <= 1 s, TPOT <= 50 ms, "
        "up to 8 chips, lowest $/1M tokens) to inferbench plan's search on six GPU-class chips and on each with "
        "twice its HBM bandwidth (hypothetical); print the answers, write the curves (zarr), a chart, a CSV and an "
        "HTML page. Example: inferbench demo --json",
    )
    s.add_argument("-o", "--output", default=str(RESULTS / "demo.zarr"), help="dataset path (zarr)")
    s.add_argument("--hardware", help="comma-separated catalog ids (default: the six chips)")
    s.add_argument("--json", action="store_true", help="print the answers as one JSON list (one object per chip)")
    s.add_argument("--quiet", action="store_true", help="no file list on stderr")
    s.set_defaults(func=cmd_demo)
