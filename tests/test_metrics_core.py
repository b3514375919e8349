"""Quality measures (docs/design.md §7) on synthetic and real structures."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnadiff.metrics import (
    AtomTable, compare_structures, d0_rna, lddt, neighbor_pairs, rmsd, rmsd_coords,
    structure_quality, tm_score, tm_score_coords,
)

SMALL = "clean/rsrnasp1_train/1yzd_A.pdb"  # 15 nt crystal, complete


def _rotation(seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array([[a*a+b*b-c*c-d*d, 2*(b*c-a*d), 2*(b*d+a*c)],
                     [2*(b*c+a*d), a*a-b*b+c*c-d*d, 2*(c*d-a*b)],
                     [2*(b*d-a*c), 2*(c*d+a*b), a*a-b*b-c*c+d*d]])


@pytest.fixture(scope="module")
def native(rna_dev_dir) -> AtomTable:
    return AtomTable.from_file(rna_dev_dir / SMALL).heavy()


def test_rmsd_zero_for_identical_and_invariant_to_rigid_motion(native):
    assert rmsd(native, native)["rmsd"] == pytest.approx(0.0, abs=1e-9)
    moved = native.with_coords(native.coords @ _rotation(1).T + np.array([10.0, -5.0, 3.0]))
    r = rmsd(moved, native)
    assert r["rmsd"] == pytest.approx(0.0, abs=1e-6)
    assert r["n_matched"] == len(native)
    # Without superposition (fidelity) the same motion is visible.
    assert rmsd(moved, native, superposition=False)["rmsd"] > 5.0


def test_rmsd_of_noise_matches_its_size(native):
    noisy = native.coords + np.random.default_rng(0).normal(0, 0.3, native.coords.shape)
    value = rmsd_coords(noisy @ _rotation(2).T, native.coords)
    assert 0.4 < value < 0.6  # sqrt(3)*0.3 = 0.52, slightly less after fitting


def test_rmsd_matches_atoms_by_label_not_order(native):
    perm = np.random.default_rng(3).permutation(len(native))
    shuffled = native.subset(perm)
    assert rmsd(shuffled, native)["rmsd"] == pytest.approx(0.0, abs=1e-9)


def test_lddt_identical_noise_and_missing_atoms(native):
    assert lddt(native, native)["lddt"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = native.with_coords(native.coords + rng.normal(0, 1.0, native.coords.shape))
    l_noise = lddt(noisy, native)["lddt"]
    assert 0.3 < l_noise < 0.95
    # Same noise, invariance to a rigid motion of the model.
    moved = noisy.with_coords(noisy.coords @ _rotation(4).T + 7.0)
    assert lddt(moved, native)["lddt"] == pytest.approx(l_noise, abs=1e-9)
    # Dropping a third of the atoms from a perfect model counts as failures.
    keep = np.nonzero(np.arange(len(native)) % 3 != 0)[0]
    res = lddt(native.subset(keep), native)
    assert res["n_missing_atoms"] == len(native) - len(keep)
    assert res["lddt"] < 0.8


def test_lddt_excludes_same_residue_pairs():
    # Two residues, 3 atoms each: only cross-residue pairs count; distorting inside residue 0
    # while keeping every cross distance cannot be done, so check the pair count instead.
    coords = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 3, 0], [1, 3, 0], [2, 3, 0]], float)
    t = AtomTable(["A"] * 6, [1, 1, 1, 2, 2, 2], [""] * 6, ["A"] * 6, ["C1'", "C2'", "C3'"] * 2,
                  ["C"] * 6, coords)
    assert lddt(t, t)["n_pairs"] == 9


def test_tm_d0_formula():
    assert d0_rna(11) == 0.3 and d0_rna(15) == 0.4 and d0_rna(19) == 0.5
    assert d0_rna(23) == 0.6 and d0_rna(29) == 0.7
    assert d0_rna(30) == pytest.approx(0.6 * math.sqrt(29.5) - 2.5)
    assert d0_rna(100) == pytest.approx(0.6 * math.sqrt(99.5) - 2.5)


def test_tm_identical_is_one_and_noise_lowers_it(rna_dev_dir):
    ref = AtomTable.from_file(rna_dev_dir / "clean/rsrnasp1_train/1y26_X.pdb")
    assert tm_score(ref, ref)["tm_score"] == pytest.approx(1.0)
    c1 = ref.coords[ref.atom_names == "C1'"]
    noisy = c1 @ _rotation(5).T + np.random.default_rng(1).normal(0, 2.0, c1.shape)
    tm = tm_score_coords(noisy, c1)
    assert 0.2 < tm < 0.9
    # A model covering half the residues cannot score above 0.5 (normalised by the reference).
    assert tm_score_coords(c1[: len(c1) // 2], c1[: len(c1) // 2], length=len(c1)) == pytest.approx(
        (len(c1) // 2) / len(c1))


def test_tm_hand_computed_value():
    ref = np.array([[0, 0, 0], [3.8, 0, 0], [7.6, 0, 0], [11.4, 0, 0], [15.2, 0, 0]], float)
    model = ref.copy()
    model[4, 1] = 10.0  # one residue far off: the best fit keeps the first four exact
    d0 = d0_rna(5)
    tm = tm_score_coords(model, ref)
    best_possible = (4 + 1 / (1 + (10.0 / d0) ** 2)) / 5
    assert tm == pytest.approx(best_possible, abs=0.01)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 300), cutoff=st.floats(0.5, 8.0), seed=st.integers(0, 10_000))
def test_neighbor_pairs_equal_brute_force(n, cutoff, seed):
    x = np.random.default_rng(seed).uniform(0, 20, size=(n, 3))
    i, j = neighbor_pairs(x, cutoff, chunk_size=37)
    got = set(zip(i.tolist(), j.tolist()))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    want = {(a, b) for a, b in zip(*np.nonzero(d < cutoff)) if a < b}
    assert got == want


def test_crystal_has_clean_geometry(native):
    q = structure_quality(native)
    assert q["chirality_errors"] == 0
    assert q["n_chiral_centres"] == 4 * 15
    assert q["bond_outliers"] == 0
    assert q["angle_outliers"] <= 0.005 * q["n_angles"]
    assert q["clashes"] == 0


def test_mirror_image_has_chirality_errors(native):
    mirror = native.with_coords(native.coords * np.array([-1.0, 1.0, 1.0]))
    q = structure_quality(mirror)
    assert q["chirality_errors"] == q["n_chiral_centres"] == 60
    # Bond lengths and angles do not change under reflection.
    assert q["bond_outliers"] == 0


def test_planted_clash_is_counted(native):
    q0 = structure_quality(native)["clashes"]
    starts = native.residue_starts()
    x = native.coords.copy()
    # Put the N3 of residue 5 1.2 Å from the C8/C6 region of residue 10: far apart in bonds.
    i = starts[4] + int(np.nonzero(native.atom_names[starts[4]:starts[5]] == "C2")[0][0])
    j = starts[9] + int(np.nonzero(native.atom_names[starts[9]:starts[10]] == "C1'")[0][0])
    x[i] = x[j] + np.array([1.2, 0.0, 0.0])
    q = structure_quality(native.with_coords(x))
    assert q["clashes"] >= q0 + 1
    assert q["clashes_per_1000_atoms"] == pytest.approx(1000 * q["clashes"] / len(native), abs=1e-3)


def test_stretched_link_is_a_bond_outlier_not_a_break(native):
    starts = native.residue_starts()
    x = native.coords.copy()
    q0 = structure_quality(native)
    group = [k for k in range(starts[3], starts[4]) if native.atom_names[k] in ("P", "OP1", "OP2")]
    o3 = starts[2] + int(np.nonzero(native.atom_names[starts[2]:starts[3]] == "O3'")[0][0])
    v = x[group[0]] - x[o3]
    x[group] += v / np.linalg.norm(v) * 1.0  # O3'-P 1.6 -> 2.6 Å
    q = structure_quality(native.with_coords(x))
    assert q["link_outliers"] == q0["link_outliers"] + 1


def test_compare_structures_is_json_and_consistent(native):
    rng = np.random.default_rng(0)
    model = native.with_coords(native.coords + rng.normal(0, 0.5, native.coords.shape))
    out = compare_structures(model, native)
    json.dumps(out)
    assert out["rmsd"] > 0.5 and out["lddt"] < 1.0 and 0 < out["tm_score"] < 1.0
    assert out["model"]["chirality_errors"] > 0  # 0.5 Å noise inverts some sugar centres
    same = compare_structures(native, native)
    assert same["rmsd"] == pytest.approx(0.0, abs=1e-9) and same["lddt"] == 1.0 and same["tm_score"] == pytest.approx(1.0)


def test_evaluate_cli_prints_json(rna_dev_dir, capsys):
    from rnadiff.cli.main import main

    path = str(rna_dev_dir / SMALL)
    assert main(["evaluate", path, path]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rmsd"] == pytest.approx(0.0, abs=1e-6) and out["lddt"] == 1.0
    assert main(["evaluate", path, str(rna_dev_dir / "nope.pdb")]) == 2


def test_atom_table_refuses_coordinates_of_another_shape():
    """A transposed [3, N] array has N·3 numbers like [N, 3]: it must be refused, not reshaped
    into a scrambled structure."""
    from rnadiff.metrics.atoms import AtomTable

    from tests.train_helpers import EXAMPLES

    table = AtomTable.from_file(str(EXAMPLES / "1f27_B.pdb"))
    assert np.array_equal(table.with_coords(table.coords * 2).coords, table.coords * 2)
    with pytest.raises(ValueError, match=rf"\[{len(table)}, 3\]"):
        table.with_coords(table.coords.T.copy())
