"""The shipped A100 fit is reproducible: ``inferbench calibrate --hardware a100-sxm4-40gb`` refits
it from the shipped data and every parameter lands within two of the shipped fit's standard
deviations, or is one the data cannot determine (deviation as large as its value). Minutes of
fitting: CI runs it with the figures (python -m pytest -m figures)."""

from __future__ import annotations

import pytest

import calibration
from dse.cli import main
from dse.specs import read_fitted, read_mapping

pytestmark = pytest.mark.figures


def test_the_refit_lands_on_the_shipped_fit(tmp_path, capsys):
    assert main(["calibrate", "--hardware", "a100-sxm4-40gb", "-o", str(tmp_path), "--no-compare"]) == 0
    printed = capsys.readouterr().out
    refit = read_mapping(tmp_path / "a100-sxm4-40gb.yaml")
    rows = calibration.against_shipped(refit, read_fitted("a100-sxm4-40gb"))
    assert len(rows) >= 20 and "refit against the shipped fit" in printed
    moved = [r for r in rows if r["moved_sd"] > 2 and not r["poorly_determined"]]
    assert not moved, moved
