"""Complexes (issue 18 item 5): the metrics score the RNA and count what they left out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnadiff.cli.main import main
from rnadiff.metrics import AtomTable, compare_structures, structure_quality
from rnadiff.metrics.composition import residue_kind, split_rna

DATA = Path(__file__).parent / "data"
COMPLEX = DATA / "complex_4phy_protein.pdb"  # synthetic, labelled: see tests/data/README.md
RNA_ONLY = Path(__file__).parents[1] / "src/rnadiff/examples/4phy_A.pdb"


def test_complex_scored_against_itself_has_no_more_clashes_than_the_rna_alone():
    both = compare_structures(COMPLEX, COMPLEX, validation=False)
    alone = structure_quality(RNA_ONLY)
    assert both["model"]["clashes"] <= alone["clashes"]
    assert both["model"]["n_atoms"] == alone["n_atoms"]  # the RNA, and only the RNA, is scored
    assert both["rmsd"] == pytest.approx(0.0, abs=1e-6) and both["lddt"] == pytest.approx(1.0)
    assert both["model"]["residues_without_template"] == []


def test_left_out_residues_are_counted_by_kind():
    left = structure_quality(COMPLEX)["left_out"]
    assert left["residues"] == {"protein": 12, "dna": 0, "ions": 2, "ligands": 1, "water": 3}
    assert left["total_residues"] == 18
    table, out = split_rna(AtomTable.from_file(COMPLEX).heavy())
    assert set(table.chain_ids.tolist()) == {"A"}
    assert any(lab.startswith("P:") for lab in out.labels) and not any("HOH" in lab for lab in out.labels)
    assert structure_quality(RNA_ONLY)["left_out"]["total_residues"] == 0


@pytest.mark.parametrize("name, atoms, elements, kind", [
    ("A", {"C1'", "C4'", "O2'"}, ["C"] * 3, "rna"),
    ("PSU", {"C1'", "C4'", "O2'"}, ["C"] * 3, "rna"),
    ("ALA", {"N", "CA", "C", "O"}, ["N", "C", "C", "O"], "protein"),
    ("DA", {"C1'", "C4'", "P"}, ["C", "C", "P"], "dna"),
    ("MG", {"MG"}, ["MG"], "ions"),
    ("SO4", {"S", "O1"}, ["S", "O"], "ligands"),
    ("ZZQ", {"C1'", "C4'", "O2'", "P"}, ["C", "C", "O", "P"], "rna"),  # unknown modified nucleotide
    ("ZZR", {"C1", "O1"}, ["C", "O"], "ligands"),
])
def test_residue_kinds(name, atoms, elements, kind):
    assert residue_kind(name, atoms, elements) == kind


def test_evaluate_rna_model_against_complex_reference(capsys):
    assert main(["evaluate", str(RNA_ONLY), str(COMPLEX), "--no-validation"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rmsd"] == pytest.approx(0.0, abs=1e-6)
    assert out["n_reference_atoms"] == out["n_matched_atoms"]  # protein atoms are not "missing"
    assert out["lddt_missing_atoms"] == 0
    assert out["reference_left_out"]["residues"]["protein"] == 12
    assert out["model"]["left_out"]["total_residues"] == 0


def test_evaluate_refuses_a_file_without_rna(tmp_path, capsys):
    lines = [ln for ln in COMPLEX.read_text().splitlines() if ln.startswith(("ATOM", "HETATM"))
             and ln[21] != "A"]
    protein = tmp_path / "protein.pdb"
    protein.write_text("\n".join(lines) + "\nEND\n")
    assert main(["evaluate", str(protein), str(RNA_ONLY)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no RNA residues" in err[0] and "protein.pdb" in err[0]
