"""docs/calibration.md's MI250 row of user calibration reproduces, and its fit is the chip's calibrated
level where it is in effect (label, framework, intervals) and refused for another chip."""

from __future__ import annotations

import pytest

from dse.cli import main
from dse.cli._engine_cmds import _intervals
from dse.engine import calibrated_software, calibration_source, framework_of
from dse.specs import fits_in_effect, load_hardware, read_fit
from tests.test_calibration_user_readme import CASES, reproduce

pytestmark = pytest.mark.figures  # CI runs these after the suite (pyproject: markers)

LABEL = "AMD MI250 (one GCD per rank), vLLM 0.6.1 ROCm"


def test_readme_mi250_row_reproduces_and_its_fit_is_used(tmp_path, capsys, monkeypatch):
    _, fit = reproduce(LABEL, tmp_path, capsys, monkeypatch)
    _, hardware, framework, _ = CASES[LABEL]
    # The fit is the chip's calibrated level wherever it is given, and names itself.
    with fits_in_effect([read_fit(fit)]):
        hw = load_hardware(hardware)
        assert calibration_source(hw).startswith("fitted (fit.yaml: 128 rows, CV MAPE ")
        assert framework_of(hw) == framework and calibrated_software(hw) is hw.fit.software
        lo, hi = hw.fit.interval(2.0, "latency", 0.9)
        assert lo < 2.0 < hi
        # predict --intervals takes the fit's own cross-validated errors.
        cols = _intervals(hw, True, 0.9, (("latency", 2.0, "latency"),), framework)
        assert (cols["latency_lo_s"], cols["latency_hi_s"]) == (float(lo), float(hi))
    assert main(["evaluate", "--model", "llama-3-8b", "--hardware", "h100-sxm5-80gb", "--fit", str(fit)]) == 2
    err = capsys.readouterr().err
    assert "a fit of mi250-gcd" in err and err.count("\n") == 1
