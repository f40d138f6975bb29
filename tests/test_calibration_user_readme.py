"""docs/calibration.md's held-out table of user calibration reproduces: each row's import and
calibrate commands, run here, print the figures the README states (the MI250 row, and what
its fit does, in test_calibration_user_mi250.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dse.cli import main

pytestmark = pytest.mark.figures  # CI runs these after the suite (pyproject: markers)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "calibration" / "data" / "llm-inference-bench-other" / "All_results_MI250_PVC_vLLM_A100_llama.cpp.csv"
README = (ROOT / "docs" / "calibration.md").read_text()
CASES = {
    # docs/calibration.md row label: (import flags, hardware, framework, held-out models)
    "AMD MI250 (one GCD per rank), vLLM 0.6.1 ROCm": (
        ["--label", "AMD MI250 GPU", "--chips-per-unit", "2"],
        "examples/hardware/mi250-gcd.yaml",
        "vllm-rocm",
        "llama-2-70b,llama-3-70b,llama-3-8b,mixtral-8x7b,qwen2-7b",
    ),
    "Intel Max 1550, vLLM 0.5.2 XPU": (
        ["--label", "Intel Max 1550", "--label", "Intel PVC GPU"],
        "examples/hardware/max-1550.yaml",
        "vllm-xpu",
        "llama-3-8b,qwen2-7b",
    ),
    "A100-SXM4-40GB, llama.cpp (`llama-bench`)": (
        ["--label", "Nvidia A100 GPU"],
        "a100-sxm4-40gb",
        "llama.cpp",
        "llama-3-8b,qwen2-7b",
    ),
}


def _pct(t: dict, which: str) -> str:
    return f"{t[f'{which}_mape_pct']:.1f} % / {t[f'{which}_median_ape_pct']:.1f} %"


def reproduce(label: str, tmp_path: Path, capsys, monkeypatch) -> tuple[dict, Path]:
    """Run the README row's import and calibrate; check the row's figures; the fit's content and file."""
    monkeypatch.chdir(ROOT)  # the README's commands run from the checkout
    flags, hardware, framework, held = CASES[label]
    rows, fit = tmp_path / "rows.csv", tmp_path / "fit.yaml"
    assert main(["import", "llm-inference-bench", str(DATA), *flags, "--hardware", hardware, "-o", str(rows)]) == 0
    capsys.readouterr()
    argv = ["calibrate", str(rows), "--hardware", hardware, "--framework", framework, "--holdout-models", held]
    assert main([*argv, "-o", str(fit), "--json"]) == 0
    content = json.loads(capsys.readouterr().out)
    v = content["validation"]
    h, cv = v["holdout"][0], v["cv"][0]
    row = (
        f"({h['rows']}) | {_pct(h, 'fitted')} | {_pct(h, 'unfitted')} | "
        f"{cv['fitted_mape_pct']:.1f} % / {cv['unfitted_mape_pct']:.1f} % |"
    )
    line = next(ln for ln in README.splitlines() if ln.startswith(f"| {label} |"))
    assert line.endswith(row) and f"| {content['rows']} |" in line, (line, row)
    status = {p["name"]: p["status"] for p in content["parameters"]}
    assert status["idle_w"].startswith("not fitted")  # latency rows say nothing of power
    return content, fit


# The three rows run in two files: the test runner spreads files, not cases, over its workers.
@pytest.mark.parametrize("label", [label for label in CASES if not label.startswith("AMD")])
def test_readme_user_calibration_row_reproduces(label, tmp_path, capsys, monkeypatch):
    reproduce(label, tmp_path, capsys, monkeypatch)
