"""Issue 18: mirror images are told from real RNA, from all atoms, C1' or P traces alone."""
from __future__ import annotations

import numpy as np
import pytest

from rnadiff.geometry.handedness import (
    LEFT, RIGHT, SUGAR_CENTRES, UNDECIDABLE, detect_handedness, dihedrals, reflect, trace_handedness,
)
from rnadiff.geometry.volumes import signed_volumes
from rnadiff.io import read_structure
from rnadiff.io.mirror import reflect_structure, structure_handedness
from tests.train_helpers import EXAMPLES

DEV_CHAINS = ["rsrnasp_train/1I9X_B.pdb", "rsrnasp_train/1EVV_A.pdb"]


def only(structure, names):
    """The structure with just the atoms in `names` (residues without any dropped)."""
    for chain in structure.chains:
        kept = []
        for r in chain.residues:
            idx = [k for k, n in enumerate(r.atom_names) if n in names]
            if idx:
                r.atom_names, r.coords = tuple(r.atom_names[k] for k in idx), r.coords[idx]
                r.elements = tuple(r.elements[k] for k in idx)
                kept.append(r)
        chain.residues = kept
    return structure


def test_ideal_right_handed_helix_has_positive_dihedrals():
    k = np.arange(8)
    twist = np.radians(32.7)
    helix = np.stack([8.7 * np.cos(twist * k), 8.7 * np.sin(twist * k), 2.8 * k], axis=1)  # A-form P trace
    assert np.allclose(dihedrals(helix), 16.57, atol=0.1)
    assert np.allclose(dihedrals(reflect(helix)), -16.57, atol=0.1)


def test_sugar_centre_signs_hold_on_every_residue_of_a_crystal_structure():
    s = read_structure(EXAMPLES / "4phy_A.pdb")
    for r in s.residues:
        atoms = dict(zip(r.atom_names, r.coords))
        for centre, a, b, c, sign in SUGAR_CENTRES:
            if all(n in atoms for n in (centre, a, b, c)):
                quad = np.array([atoms[n] for n in (centre, a, b, c)])
                assert np.sign(signed_volumes(quad, np.array([[0, 1, 2, 3]]))[0]) == sign, (r.label(), centre)


@pytest.mark.parametrize("atoms, method", [(None, "sugar"), ({"C1'"}, "C1'"), ({"P"}, "P")])
def test_example_and_its_mirror(atoms, method):
    s = read_structure(EXAMPLES / "4phy_A.pdb")
    if atoms is not None:
        s = only(s, atoms)
    right = structure_handedness(s)
    left = structure_handedness(reflect_structure(s))
    assert right.verdict == RIGHT and method in right.method, right
    assert left.verdict == LEFT and left.is_mirror, left
    assert left.score == pytest.approx(-right.score) and left.evidence == right.evidence
    assert "mirror" in left.describe()


def test_reflected_structure_stays_in_place_and_reflects_back():
    s = read_structure(EXAMPLES / "4phy_A_c1.pdb")
    m = reflect_structure(s, axis=1)
    _, before = s.atom_table()
    _, after = m.atom_table()
    assert np.allclose(before.mean(0), after.mean(0))
    assert np.allclose(before[:, [0, 2]], after[:, [0, 2]]) and not np.allclose(before, after)
    assert np.allclose(reflect_structure(m, axis=1).atom_table()[1], before)
    assert any("reflected" in n for n in m.notes) and not any("reflected" in n for n in s.notes)


def test_too_little_evidence_is_undecidable():
    s = only(read_structure(EXAMPLES / "4phy_A.pdb"), {"C1'"})
    s.chains[0].residues = s.chains[0].residues[:5]
    h = structure_handedness(s)
    assert h.verdict == UNDECIDABLE and h.evidence < 4
    assert detect_handedness([[]]).verdict == UNDECIDABLE


def test_random_walks_get_no_verdict():
    rng = np.random.default_rng(0)
    called = 0
    for _ in range(100):
        steps = rng.normal(size=(40, 3))
        walk = np.cumsum(6.0 * steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0)
        called += trace_handedness([walk], "C1'").verdict != UNDECIDABLE
    assert called <= 3


def test_breaks_split_the_trace():
    s = only(read_structure(EXAMPLES / "4phy_A.pdb"), {"P"})
    chains = [[dict(zip(r.atom_names, r.coords)) for r in s.residues]]
    whole = detect_handedness(chains)
    every_third = detect_handedness(chains, [[i % 3 == 0 for i in range(len(chains[0]))]])
    assert every_third.evidence < whole.evidence


@pytest.mark.parametrize("name", DEV_CHAINS)
@pytest.mark.parametrize("atoms", [None, {"C1'"}, {"P"}])
def test_dev_chains_and_mirrors(rna_dev_dir, name, atoms):
    s = read_structure(rna_dev_dir / "clean" / name)
    if atoms is not None:
        s = only(s, atoms)
    assert structure_handedness(s).verdict == RIGHT
    assert structure_handedness(reflect_structure(s, axis=2)).verdict == LEFT
