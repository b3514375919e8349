"""How tests/data/complex_4phy_protein.pdb was made (run once; the tests read the PDB file).

No deposited RNA–protein complex is in the dev data, so this builds a clearly labelled synthetic
one from real parts: the RNA is PDB 4PHY chain A (the bundled example), the protein is residues
60–71 of PDB 1BHL (from pdbfixer's test data), rigidly moved next to the RNA so the closest
RNA–protein heavy atoms are 3.4–4.0 Å apart (a contact, no overlap). Two Mg2+ ions sit 2.1 Å from
phosphate oxygens, one sulfate ligand and three waters are placed nearby.

    python tests/data/make_test_complex.py PATH/TO/1BHL.pdb
"""
from __future__ import annotations

import sys
from pathlib import Path

import gemmi
import numpy as np

HERE = Path(__file__).parent
RNA = HERE.parents[1] / "src/rnadiff/examples/4phy_A.pdb"
OUT = HERE / "complex_4phy_protein.pdb"


def _min_dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min())


def main(protein_pdb: str) -> None:
    rna = gemmi.read_structure(str(RNA))
    rna.setup_entities()
    prot = gemmi.read_structure(protein_pdb)
    chain = gemmi.Chain("P")
    for res in prot[0]["A"]:
        if 60 <= res.seqid.num <= 71:
            chain.add_residue(res)
    rna_xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in rna[0]["A"] for a in r])
    prot_xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in chain for a in r])
    direction = np.array([1.0, 0.3, -0.2]) / np.linalg.norm([1.0, 0.3, -0.2])
    shift = rna_xyz.mean(0) - prot_xyz.mean(0)
    for t in np.arange(0.0, 60.0, 0.1):  # slide out along `direction` until just touching
        if _min_dist(prot_xyz + shift + t * direction, rna_xyz) >= 3.4:
            shift = shift + t * direction
            break
    for res in chain:
        for atom in res:
            atom.pos = gemmi.Position(*(np.array([atom.pos.x, atom.pos.y, atom.pos.z]) + shift))
    model = rna[0]
    model.add_chain(chain)
    het = gemmi.Chain("H")
    phosphates = [r for r in model["A"] if r.find_atom("OP1", "*")][3:5]
    for k, res in enumerate(phosphates):
        op1 = np.array(res.find_atom("OP1", "*").pos.tolist())
        p = np.array(res.find_atom("P", "*").pos.tolist())
        _add_het(het, "MG", 101 + k, [("MG", "Mg", op1 + 2.1 * (op1 - p) / np.linalg.norm(op1 - p))])
    far = rna_xyz.mean(0) - 14.0 * direction
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * 1.49 / np.sqrt(3)
    _add_het(het, "SO4", 201, [("S", "S", far)] + [(f"O{i + 1}", "O", far + v) for i, v in enumerate(tet)])
    for k in range(3):
        _add_het(het, "HOH", 301 + k, [("O", "O", far + np.array([4.0 + 3.0 * k, 2.0, 0.0]))])
    model.add_chain(het)
    st = gemmi.Structure()
    st.add_model(model)
    st.setup_entities()
    header = ("REMARK 250 SYNTHETIC TEST COMPLEX, NOT A DEPOSITED STRUCTURE. RNA: PDB 4PHY CHAIN A.\n"
              "REMARK 250 PROTEIN: PDB 1BHL RESIDUES 60-71 (CHAIN P), RIGIDLY MOVED INTO CONTACT.\n"
              "REMARK 250 2 MG IONS, 1 SO4, 3 WATERS ADDED BY tests/data/make_test_complex.py.\n")
    OUT.write_text(header + st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True)))


def _add_het(chain: gemmi.Chain, name: str, num: int, atoms) -> None:
    res = gemmi.Residue()
    res.name, res.seqid, res.het_flag = name, gemmi.SeqId(num, " "), "H"
    for atom_name, element, xyz in atoms:
        a = gemmi.Atom()
        a.name, a.element, a.pos, a.occ, a.b_iso = atom_name, gemmi.Element(element), gemmi.Position(*xyz), 1.0, 30.0
        res.add_atom(a)
    chain.add_residue(res)


if __name__ == "__main__":
    main(sys.argv[1])
