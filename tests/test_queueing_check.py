"""The README's table of the queueing approximation against the exact simulation reproduces:
``inferbench simulate --check 200``, run here, prints the errors the README states (within a
tenth of a percentage point), and they stay within what the README claims."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dse.cli import main

pytestmark = pytest.mark.figures  # CI runs these after the suite (pyproject: markers)

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _table(text: str) -> dict[str, list[float]]:
    rows = re.findall(r"^(p\d\d (?:ttft|tpot))\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", text, re.M)
    return {name: [float(v) for v in values] for name, *values in rows}


def test_the_readme_check_reproduces(capsys):
    stated = _table(README.split("inferbench simulate --check 200", 1)[1])
    assert set(stated) == {"p50 ttft", "p99 ttft", "p50 tpot", "p99 tpot"}
    assert main(["simulate", "--check", "200"]) == 0
    printed = _table(capsys.readouterr().out)
    for name, values in stated.items():
        assert printed[name] == pytest.approx(values, abs=0.1), name
    # What the README claims of them (all loads).
    assert printed["p50 ttft"][0] < 12 and printed["p50 tpot"][0] < 3 and printed["p99 tpot"][0] < 10
    assert printed["p99 ttft"][0] < 30
