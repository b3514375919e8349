"""Exact inputs whose given bonds look predicted or noisy (`rnadiff.refine.strain`): measured on
deposited and perturbed coordinates, and the note / gate hint `rnadiff refine` gives for them."""
from __future__ import annotations

import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from rnadiff.chem import featurize
from rnadiff.cli.main import main
from rnadiff.io import read_structure
from rnadiff.refine.strain import MIN_BONDS, NOISY_BOND_MEDIAN, given_bond_strain, strain_note
from tests.train_helpers import EXAMPLES

FAST = ["--samples", "1", "--steps", "8", "--no-progress", "postprocess.max_iter=30"]
BACKBONE = {"P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'"}


def _strain(path: Path) -> dict:
    return given_bond_strain(featurize(read_structure(path)))


def _backbone(dst: Path, noise: float) -> Path:
    """The bundled 4phy_A reduced to its backbone atoms, each moved by Gaussian noise (Å per axis)."""
    st = gemmi.read_structure(str(EXAMPLES / "4phy_A.pdb"))
    st.remove_hydrogens()
    rng = np.random.default_rng(0)
    for res in st[0][0]:
        for i in reversed(range(len(res))):
            if res[i].name not in BACKBONE:
                del res[i]
            else:
                d = rng.normal(0.0, noise, 3) if noise else np.zeros(3)
                res[i].pos = gemmi.Position(res[i].pos.x + d[0], res[i].pos.y + d[1], res[i].pos.z + d[2])
    st.write_pdb(str(dst))
    return dst


def test_deposited_bonds_pass_and_noisy_ones_are_named(tmp_path):
    exact = _strain(EXAMPLES / "4phy_A.pdb")
    assert exact["n_bonds"] > 500 and exact["median_deviation_A"] < 0.05
    assert strain_note("x.pdb", exact, kept=True) is None
    noisy = _strain(_backbone(tmp_path / "noisy.pdb", 0.3))
    assert noisy["median_deviation_A"] > 2 * NOISY_BOND_MEDIAN
    note = strain_note("noisy.pdb", noisy, kept=True)
    assert note is not None and "noisy.pdb" in note and "--noisy-input" in note
    assert strain_note("noisy.pdb", noisy, kept=False) is None  # its atoms were free to move
    # a C1' trace has no bonds to judge by
    trace = _strain(EXAMPLES / "4phy_A_c1.pdb")
    assert trace == {"n_bonds": 0, "median_deviation_A": None}
    assert strain_note("trace.pdb", trace, kept=True) is None
    few = {"n_bonds": MIN_BONDS - 1, "median_deviation_A": 1.0}
    assert strain_note("few.pdb", few, kept=True) is None


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_refine_says_when_a_noisy_input_is_kept_exactly(tmp_path, capsys, noise):
    src = _backbone(tmp_path / "bb.pdb", noise)
    code = main(["refine", str(src), "--out", str(tmp_path / "exact"), *FAST])
    err = capsys.readouterr().err
    if noise == 0:
        assert code == 0 and "--noisy-input" not in err
        bonds = json.loads((tmp_path / "exact" / "bb" / "summary.json").read_text())["given_bonds"]
        assert bonds["median_deviation_A"] < NOISY_BOND_MEDIAN
        return
    # written, with a note that names the cure
    lines = [ln for ln in err.splitlines() if "--noisy-input" in ln]
    assert len(lines) == 1 and "note" in lines[0] and str(src) in lines[0] and "bond lengths" in lines[0], err
    assert code == 0 and (tmp_path / "exact" / "bb").exists()
    assert main(["refine", str(src), "--out", str(tmp_path / "free"), "--noisy-input", *FAST]) == 0
    assert "--noisy-input" not in capsys.readouterr().err
    bonds = json.loads((tmp_path / "free" / "bb" / "summary.json").read_text())["given_bonds"]
    assert bonds["median_deviation_A"] > NOISY_BOND_MEDIAN  # measured on the input either way


def test_gate_error_of_a_noisy_input_names_the_cure(tmp_path, capsys):
    """0.6 Å of noise stretches some given bonds beyond twice their length; kept exactly, they fail
    the output gate in every sample, and the one error line also says why and what to do."""
    src = _backbone(tmp_path / "bb.pdb", 0.6)
    code = main(["refine", str(src), "--out", str(tmp_path / "o"), *FAST])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and "failed the output gate" in err[0], err
    assert str(src) in err[0] and "bond lengths" in err[0] and "--noisy-input" in err[0]
    assert not (tmp_path / "o" / "bb").exists()
