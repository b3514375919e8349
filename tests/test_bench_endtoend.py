"""`rnadiff bench` end-to-end rows (issue 16 item 5): start-up, refine per input and sample count
(fresh process, start included), minimize through rnadiff.minimize's public API."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnadiff.bench.endtoend import markdown, startup_row
from rnadiff.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "rnadiff" / "examples"


def test_startup_row_measures_a_fresh_help():
    row = startup_row(repeats=1)
    assert row["command"] == "rnadiff --help" and 0 < row["seconds"] < 60


def test_markdown_has_one_line_per_row():
    refine = [{"input": "x.pdb", "n_residues": 26, "n_atoms": 541, "samples": s, "wall_s": 2.0 * s,
               "wall_per_sample_s": 2.0, "in_process_s": 1.0, "clashes_per_1000_atoms": 0.0, "chirality_errors": 0,
               "link_outliers": 0, "threads": "default"} for s in (1, 5)]
    text = markdown({"command": "rnadiff --help", "seconds": 0.2}, refine, [])
    assert "0.20 s" in text and "| x.pdb | 26 | 541 | 5 | 10.00 | 2.00 |" in text
    assert text.count("| x.pdb |") == 2 and "minimize input" not in text


def test_missing_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--parts", "refine", "--refine-inputs", str(tmp_path / "nope.pdb"), "--out", str(out)])
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pdb" in err[0]


@pytest.mark.slow
def test_bench_refine_and_minimize_rows(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--parts", "refine", "minimize", "--refine-inputs", str(EXAMPLES / "4phy_A_c1.pdb"),
                 "--refine-samples", "1", "2", "--minimize-inputs", str(EXAMPLES / "1f27_B.pdb"),
                 "--out", str(out)]) == 0
    data = json.loads((out / "bench.json").read_text())
    assert [r["samples"] for r in data["refine"]] == [1, 2]
    assert all(r["wall_s"] > r["in_process_s"] > 0 and r["n_residues"] == 26 for r in data["refine"])
    (m,) = data["minimize"]
    assert m["seconds"] > 0 and m["rmsd_to_clean_after"] < m["rmsd_to_clean_before"]
    assert "| 4phy_A_c1.pdb | 26 |" in (out / "bench.md").read_text()
