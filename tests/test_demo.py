"""``inferbench demo``: its answer is ``plan``'s, its files are complete and readable. The demo is
the README's first command: these run with the README's commands (python -m pytest -m docs)."""

from __future__ import annotations

import json
import shlex

import pytest
import xarray as xr
from helpers import check_in_browser

from dse import analysis
from dse.cli import main
from dse.cli._demo import QUESTION

pytestmark = pytest.mark.docs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo on one chip (B200: one chip serves it; its HBM x2 variant is buildable)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "demo.zarr"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["demo", "--hardware", "b200", "--json", "--quiet", "-o", str(out)]) == 0
    return out, json.loads(buf.getvalue())


def _plan_json(capsys, command: str) -> dict:
    argv = shlex.split(command)
    assert argv[0] == "inferbench"
    capsys.readouterr()
    assert main([*argv[1:], "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_each_row_is_what_plan_answers_with_its_command(demo, capsys):
    _, answers = demo
    assert [a["kind"] for a in answers] == ["real", "hypothetical"]
    for a in answers:
        planned = _plan_json(capsys, a["command"])["best"]
        assert a["usd_per_mtok"] == pytest.approx(planned["usd_per_mtok"], rel=1e-12)
        assert a["layout"] == {k: planned[k] for k in a["layout"]}
        assert a["ttft_s"] <= QUESTION.slo.ttft_s and a["tpot_s"] <= QUESTION.slo.tpot_s
    real, variant = answers
    # The variant has twice the HBM bandwidth: never slower per token at the same layout.
    assert "hbm_bandwidth_tb_s=16" in variant["command"] and variant["label"].startswith("b200 + HBM x2")
    assert variant["usd_per_mtok"] <= real["usd_per_mtok"] * 1.0001
    assert real["calibration"] == "transferred"


def test_the_curve_is_a_frontier_holding_the_answer(demo):
    out, answers = demo
    ds = xr.open_zarr(out).load()
    assert ds.tokens_per_s_per_user.attrs["units"] == "tokens/s"
    for a in answers:
        pts = ds.where(ds.entry == a["label"], drop=True)
        x, y = pts.tokens_per_s_per_user.values, pts.throughput_tokens_per_s_per_chip.values
        assert len(x) >= 3 and (x[1:] > x[:-1]).all() and (y[1:] < y[:-1]).all()  # a trade-off, both ways
        assert (pts.ttft_s.values <= QUESTION.slo.ttft_s).all()
        # The answer lies on or under its curve: no curve point is both faster per user and cheaper per chip.
        better = (x >= a["tokens_per_s_per_user"]) & (y > a["throughput_tokens_per_s_per_chip"] * (1 + 1e-9))
        assert not better.any()


def test_the_page_starts_with_the_answer_and_lays_out_cleanly(demo):
    out, answers = demo
    folder = out.with_suffix("")
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert page.index('id="answer"') < page.index('id="curves"') < page.index('id="hypothetical"')
    assert answers[0]["command"] in page.replace("&#x27;", "'")
    csv = (folder / "answer.csv").read_text().splitlines()
    assert csv[0].startswith("hardware,kind,label,usd_per_mtok") and len(csv) == 3
    check_in_browser(folder / "report.html", figures=1)


def test_the_curves_chart_has_no_overlapping_text(demo):
    _, answers = demo
    results = analysis.answer(QUESTION, ["b200"])  # the programs are compiled: a second
    fig = analysis.plot_curves(results, QUESTION)
    assert analysis.text_overlaps(fig) == []
