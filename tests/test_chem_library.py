"""Residue templates from the bundled monomer library: vocabulary, geometry, upstream fixes."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import gemmi
import numpy as np
import pytest

import rnadiff
from rnadiff.chem import library
from rnadiff.chem.library import (
    LINK_ANGLES,
    LINK_BOND_ESD,
    LINK_BOND_LENGTH,
    get_template,
    known_template_names,
    monomer_dir,
    signed_volumes,
)
from rnadiff.chem.vocab import BACKBONE_ATOMS, LIBRARY_MODIFIED, canonical_atom_name
from rnadiff.errors import UnknownResidueError

DESIGN_ATOMS = {
    "A": "N9 C8 N7 C5 C6 N6 N1 C2 N3 C4",
    "G": "N9 C8 N7 C5 C6 O6 N1 C2 N2 N3 C4",
    "C": "N1 C2 O2 N3 C4 N4 C5 C6",
    "U": "N1 C2 O2 N3 C4 O4 C5 C6",
}
EXPECTED_COUNTS = {"A": 22, "G": 23, "C": 20, "U": 20}


def _bond_distances(t) -> np.ndarray:
    x = t.ideal_coords.astype(np.float64)
    return np.linalg.norm(x[t.bonds[:, 0]] - x[t.bonds[:, 1]], axis=1)


@pytest.mark.parametrize("name", ["A", "C", "G", "U"])
def test_standard_vocabulary_matches_design(name):
    t = get_template(name)
    expected = (*BACKBONE_ATOMS, *DESIGN_ATOMS[name].split())
    assert t.residue_atom_names() == expected
    assert len(t.residue_atom_names()) == EXPECTED_COUNTS[name]
    # OP3 only with a 5'-phosphate, placed last; no P/OP1/OP2 without a phosphate.
    assert t.residue_atom_names(five_prime_phosphate=True) == (*expected, "OP3")
    assert t.residue_atom_names(has_phosphate=False) == expected[3:]
    assert "H" not in t.elements


@pytest.mark.parametrize("name", ["A", "C", "G", "U"])
def test_standard_conformer_reproduces_bond_lengths(name):
    t = get_template(name)
    assert len(t.bonds) >= EXPECTED_COUNTS[name]  # a connected heavy-atom graph
    assert np.abs(_bond_distances(t) - t.bond_lengths).max() < 0.01


@pytest.mark.parametrize("name", sorted(LIBRARY_MODIFIED))
def test_modified_conformer_consistent_with_restraints(name):
    t = get_template(name)
    assert t.parent == LIBRARY_MODIFIED[name]
    assert np.abs(_bond_distances(t) - t.bond_lengths).max() < 0.02
    # Every chiral restraint agrees with the ideal coordinates.
    vol = signed_volumes(t.ideal_coords.astype(np.float64), t.chirals)
    assert np.array_equal(np.sign(vol).astype(np.int8), t.chiral_signs)
    # Own heavy atoms: the backbone plus at least the parent's shared ring atoms.
    assert set(BACKBONE_ATOMS) <= set(t.atom_names)
    assert "H" not in t.elements


def _sugar_signs(t) -> dict[str, int]:
    """Sign of the signed volume at each sugar centre, using the PARENT's chiral definitions."""
    p = get_template(t.parent)
    out = {}
    for row, _ in zip(p.chirals, p.chiral_signs):
        names = [p.atom_names[i] for i in row]
        if names[0] in ("C1'", "C2'", "C3'", "C4'") and all(t.has(n) for n in names):
            vol = signed_volumes(t.ideal_coords.astype(np.float64)[None], t.indices(names)[None])[0, 0]
            out[names[0]] = int(np.sign(vol))
    return out


@pytest.mark.parametrize("name,flipped", [("5MU", {"C1'"}), ("7MG", {"C1'", "C2'", "C3'", "C4'"}), ("H2U", {"C2'", "C3'", "C4'"})])
def test_inverted_sugars_corrected_from_parent(name, flipped):
    t = get_template(name)
    parent = get_template(t.parent)
    want = _sugar_signs(parent)
    assert _sugar_signs(t) == want
    # The upstream file really is inverted at these centres (so the fix is doing something).
    raw = library._parse(name, t.parent)
    raw_signs = _sugar_signs(raw)
    assert {c for c in want if raw_signs[c] != want[c]} == flipped
    # The chiral restraints now carry the parent's signs at the sugar centres.
    signs = {t.atom_names[c[0]]: int(s) for c, s in zip(t.chirals, t.chiral_signs)}
    psigns = {parent.atom_names[c[0]]: int(s) for c, s in zip(parent.chirals, parent.chiral_signs)}
    for centre in ("C1'", "C2'", "C3'", "C4'"):
        assert signs[centre] == psigns[centre]


@pytest.mark.parametrize("name", sorted(LIBRARY_MODIFIED))
def test_all_sugars_have_parent_chirality(name):
    t = get_template(name)
    assert _sugar_signs(t) == _sugar_signs(get_template(t.parent))


def test_6mz_old_names_mapped():
    t = get_template("6MZ")
    assert {"OP1", "OP2", "OP3"} <= set(t.atom_names)
    assert not {"O1P", "O2P", "O3P"} & set(t.atom_names)
    assert t.residue_atom_names()[:12] == BACKBONE_ATOMS
    assert canonical_atom_name("O1P") == "OP1" and canonical_atom_name("C1*") == "C1'"


def test_psu_is_a_c_glycoside():
    t = get_template("PSU")
    bonds = {frozenset((t.atom_names[a], t.atom_names[b])) for a, b in t.bonds}
    assert frozenset(("C1'", "C5")) in bonds
    assert frozenset(("C1'", "N1")) not in bonds
    u = get_template("U")
    ubonds = {frozenset((u.atom_names[a], u.atom_names[b])) for a, b in u.bonds}
    assert frozenset(("C1'", "N1")) in ubonds
    # The C1'-C5 bond in the conformer is a C-C bond length, not U's N1 position.
    d = np.linalg.norm(t.ideal_coords[t.index["C1'"]] - t.ideal_coords[t.index["C5"]])
    assert 1.45 < d < 1.56


def test_phosphorus_both_chirality_skipped_and_planes_heavy():
    for name in known_template_names():
        t = get_template(name)
        assert all(t.atom_names[c[0]] != "P" for c in t.chirals)
        assert set(np.unique(t.chiral_signs)) <= {-1, 1}
        for p, e in zip(t.planes, t.plane_esds):
            assert len(p) >= 4 and len(e) == len(p)
        assert t.angles.shape[1] == 3 and len(t.angle_values) == len(t.angles) == len(t.angle_esds)
        assert (t.bond_esds > 0).all() and (t.angle_esds > 0).all()


def test_link_constants_match_link_file():
    doc = gemmi.cif.read_string(monomer_dir().joinpath("link_p.cif").read_text())
    block = doc.find_block("link_p")
    bond = list(block.find("_chem_link_bond.", ["atom_id_1", "atom_id_2", "value_dist", "value_dist_esd"]))
    assert len(bond) == 1
    assert (bond[0].str(0), bond[0].str(1)) == ("O3'", "P")
    assert float(bond[0].str(2)) == LINK_BOND_LENGTH == 1.607
    assert float(bond[0].str(3)) == LINK_BOND_ESD == 0.010
    rows = block.find("_chem_link_angle.", ["atom_1_comp_id", "atom_id_1", "atom_2_comp_id", "atom_id_2",
                                            "atom_3_comp_id", "atom_id_3", "value_angle", "value_angle_esd"])
    parsed = {((r.str(1), int(r.str(0)) - 1), (r.str(3), int(r.str(2)) - 1), (r.str(5), int(r.str(4)) - 1),
               float(r.str(6)), float(r.str(7))) for r in rows}
    assert parsed == set(LINK_ANGLES)


def test_unknown_template_raises():
    with pytest.raises(UnknownResidueError, match="XYZ"):
        get_template("XYZ")


def test_monomer_files_bundled_verbatim():
    folder = Path(str(monomer_dir()))
    assert folder.is_relative_to(Path(rnadiff.__file__).parent)  # never /work/shared at run time
    table = (folder / "SOURCE.md").read_text()
    rows = re.findall(r"\|[^|]+\| (\S+\.cif) \| (\d+) \| ([0-9a-f]{64}) \|", table)
    assert len(rows) == 21
    for fname, size, sha in rows:
        data = (folder / fname).read_bytes()
        assert len(data) == int(size), fname
        assert hashlib.sha256(data).hexdigest() == sha, fname
    assert "LGPL" in table


def test_n_template_is_backbone_only():
    t = get_template("N")
    assert t.residue_atom_names() == BACKBONE_ATOMS
    assert np.abs(_bond_distances(t) - t.bond_lengths).max() < 0.01


def test_shipped_regularized_coordinates_are_current():
    # regularized_coords.npz spares each process the regularisation; stale after a change to a
    # CIF, the restraints or the regulariser: re-run scripts/regularize_monomers.py.
    from rnadiff.chem.library import _unregularized, regularized_coords

    shipped, fresh = regularized_coords(shipped=True), regularized_coords(shipped=False)
    assert set(shipped) == set(fresh) == {k for n in known_template_names() if n != "N" for k in (n, n + ".names")}
    for key, value in fresh.items():
        if key.endswith(".names"):
            assert tuple(shipped[key]) == tuple(value), key
        else:
            np.testing.assert_allclose(shipped[key], value, atol=1e-4, err_msg=key)
            assert not np.allclose(value, _unregularized(key).ideal_coords, atol=1e-3), key  # it moved something
