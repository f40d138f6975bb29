"""Shipped studies and example inputs work from any folder: by name, listed, copied."""

from __future__ import annotations

import csv

import pytest

from dse.cli import main
from dse.specs import SpecError, shipped_folders
from dse.sweep import load_sweep, shipped_studies, study_path


def test_studies_resolve_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert study_path("decode_batch") == shipped_folders("sweeps")[0] / "decode_batch.yaml"
    assert load_sweep("decode_batch").name == "decode_batch"
    studies = shipped_studies()
    assert {"asic_pareto", "decode_batch", "platforms"} <= set(studies) and all(studies.values())
    assert main(["sweep", "--list"]) == 0
    assert "decode_batch" in capsys.readouterr().out
    with pytest.raises(SpecError, match="unknown study 'decode_batc'; did you mean 'decode_batch'"):
        study_path("decode_batc")
    (tmp_path / "mine.yaml").write_text("name: x\n")
    assert study_path("mine.yaml").resolve() == tmp_path / "mine.yaml"  # a file of the user's folder wins


def test_examples_copy_to_a_folder_and_never_over_a_file(tmp_path, capsys):
    dest = tmp_path / "ex"
    assert main(["examples", "--copy", str(dest)]) == 0
    rows = list(csv.DictReader((dest / "scenarios.csv").read_text().splitlines()))
    assert rows and {"model", "hardware", "phase", "batching"} <= set(rows[0])
    assert (dest / "hardware" / "mi250-gcd.yaml").is_file() and (dest / "measurements-mi250.csv").is_file()
    (dest / "ops.csv").write_text("mine\n")
    capsys.readouterr()
    assert main(["examples", "--copy", str(dest)]) == 2
    assert (dest / "ops.csv").read_text() == "mine\n" and capsys.readouterr().err.count("\n") == 1
