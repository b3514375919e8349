"""`rnadiff evaluate` report (issue 18 item 6): per-residue profile, --plot PNG, stable keys."""
from __future__ import annotations

import json
from pathlib import Path

import gemmi
import pytest

from rnadiff.cli.main import main

EXAMPLE = Path(__file__).parents[1] / "src/rnadiff/examples/4phy_A.pdb"


@pytest.fixture()
def model_with_spread(tmp_path) -> Path:
    """The example with residue 5 moved 3 Å and B-factor = residue number / 10 (a fake spread)."""
    st = gemmi.read_structure(str(EXAMPLE))
    for res in st[0]["A"]:
        for atom in res:
            atom.b_iso = res.seqid.num / 10.0
            if res.seqid.num == 5:
                atom.pos = gemmi.Position(atom.pos.x + 3.0, atom.pos.y, atom.pos.z)
    path = tmp_path / "model.pdb"
    st.write_pdb(str(path))
    return path


def test_per_residue_profile_shows_the_moved_residue_and_the_spread(model_with_spread, capsys):
    assert main(["evaluate", str(model_with_spread), str(EXAMPLE), "--per-residue"]) == 0
    out = json.loads(capsys.readouterr().out)
    prof = out["per_residue"]
    assert len(prof["residues"]) == len(prof["deviation"]) == len(prof["spread"]) == 26
    worst = max(range(26), key=lambda k: prof["deviation"][k])
    assert prof["residues"][worst].endswith("5") and prof["deviation"][worst] > 2.0
    assert prof["spread"][9] == pytest.approx(1.0)  # residue 10
    assert len(out["lddt_per_residue"]) == 26


def test_plot_writes_a_png_and_keeps_the_json_unchanged(model_with_spread, tmp_path, capsys):
    png = tmp_path / "plots" / "profile.png"
    assert main(["evaluate", str(model_with_spread), str(EXAMPLE), "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "per_residue" not in out and "validation" in out
    assert list(png.parent.iterdir()) == [png]  # no temporary file left behind


@pytest.mark.parametrize("target", ["profile.jpg", "adir.png"])
def test_bad_plot_target_is_refused_before_any_work(tmp_path, capsys, target):
    (tmp_path / "adir.png").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["evaluate", str(EXAMPLE), str(EXAMPLE), "--plot", str(tmp_path / target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_help_documents_the_json_keys(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    for key in ("left_out", "validation.inf", "non_canonical", "pucker_outliers", "per_residue"):
        assert key in text
