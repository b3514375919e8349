"""A deposited RNA–protein complex (PDB 1A9N: the spliceosomal U2A'–U2B'' proteins bound to U2 snRNA
hairpin IV; wwPDB data, CC0; tests/data/1a9n.cif.gz) scored against itself: the protein is left out
and counted, and the RNA gets no more clashes than the RNA alone has."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import gemmi

from rnadiff.cli.main import main

COMPLEX = Path(__file__).parent / "data" / "1a9n.cif.gz"


def _evaluate(path: Path, capsys) -> dict:
    assert main(["evaluate", str(path), str(path), "--no-validation"]) == 0
    return json.loads(capsys.readouterr().out)


def test_deposited_complex_scores_its_rna_like_the_rna_alone(tmp_path, capsys):
    whole = tmp_path / "1a9n.cif"
    whole.write_bytes(gzip.decompress(COMPLEX.read_bytes()))
    st = gemmi.read_structure(str(whole))
    st.remove_ligands_and_waters()
    for model in st:
        protein = [ch.name for ch in model
                   if any((k := gemmi.find_tabulated_residue(r.name)) is not None and k.is_amino_acid() for r in ch)]
        for name in protein:  # names first: removing a chain invalidates views of the others
            model.remove_chain(name)
    rna_only = tmp_path / "1a9n_rna.pdb"
    st.write_pdb(str(rna_only))

    complex_report = _evaluate(whole, capsys)
    rna_report = _evaluate(rna_only, capsys)
    assert complex_report["model"]["left_out"]["residues"]["protein"] > 300
    assert rna_report["model"]["left_out"]["residues"]["protein"] == 0
    assert complex_report["model"]["n_atoms"] == rna_report["model"]["n_atoms"]
    assert complex_report["model"]["clashes"] <= rna_report["model"]["clashes"]
    assert complex_report["rmsd"] < 1e-6 and complex_report["lddt"] == 1.0
