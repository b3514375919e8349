"""The clean finish (issue 16 item 2): `polish_samples` with clash, chirality, bond/angle/plane
terms repairs what the metrics count, keeps fixed atoms, treats samples independently, and its
analytic gradient is the energy's."""
from __future__ import annotations

import numpy as np
import pytest

from rnadiff.chem import featurize
from rnadiff.chem.regularize import (PolishRestraints, PolishSettings, _clash_pairs, _PolishSystem, polish_energy,
                                     polish_samples, regularize_coords)
from rnadiff.diffusion.guidance import polish_restraints
from rnadiff.io import build_gemmi_structure, read_structure
from rnadiff.metrics import structure_quality


@pytest.fixture(scope="module")
def crystal(rna_dev_dir):
    return featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / "1I9X_B.pdb"))


def quality(f, x: np.ndarray) -> dict:
    return structure_quality(build_gemmi_structure(f.layout, x))


def clashed(f, seed: int = 0) -> np.ndarray:
    """The crystal with two residues' bases pushed into their neighbours and a ribose inverted."""
    x = f["coords"].double().numpy().copy()
    a2t = f["atom_to_token_idx"].numpy()
    for res, shift in ((2, [1.6, 0.8, 0.0]), (5, [-1.2, 1.4, 0.6])):
        x[a2t == res] += shift
    rng = np.random.default_rng(seed)
    return x + rng.normal(0, 0.05, x.shape)


def test_gradient_matches_finite_differences(crystal):
    r = polish_restraints(crystal)
    s = PolishSettings()
    x = np.stack([clashed(crystal, 0), clashed(crystal, 1)])
    t = _PolishSystem.build(r, 2, s)
    flat = x.reshape(-1, 3)
    t.tiled.clash_pairs, t.tiled.clash_limit = _clash_pairs(flat, r, 2, s)
    assert len(t.tiled.clash_pairs) and len(t.tiled.chirals)
    start = crystal["coords"].double().numpy()
    x0 = np.concatenate([start, start])
    _, g = polish_energy(flat, t, x0)
    rng = np.random.default_rng(2)
    for i, k in zip(rng.integers(0, len(flat), 12), rng.integers(0, 3, 12)):
        hi, lo = flat.copy(), flat.copy()
        hi[i, k] += 1e-6
        lo[i, k] -= 1e-6
        num = (polish_energy(hi, t, x0)[0] - polish_energy(lo, t, x0)[0]) / 2e-6
        assert num == pytest.approx(g[i, k], rel=1e-4, abs=1e-3)


def test_polish_removes_clashes_and_keeps_the_conformation(crystal):
    x = clashed(crystal)
    before = quality(crystal, x)
    assert before["clashes"] >= 3
    y = polish_samples(x[None], polish_restraints(crystal))[0]
    after = quality(crystal, y)
    assert after["clashes"] == 0 and after["chirality_errors"] == 0
    assert after["bond_outliers"] == 0 and after["link_outliers"] == 0
    assert np.sqrt(((y - x) ** 2).sum(-1).mean()) < 0.5  # a polish, not a rebuild
    # without radii the clash term is off: the same run leaves clashes
    plain = PolishRestraints.from_topology(crystal.topology())
    assert quality(crystal, polish_samples(x[None], plain)[0])["clashes"] > 0


def test_inverted_centre_is_repaired(crystal):
    x = crystal["coords"].double().numpy().copy()
    t = crystal.topology()
    centre, a = t.chirals[3, 0], t.chirals[3, 1]
    x[a] = 2 * x[centre] - x[a]  # reflect one substituent through its centre
    assert quality(crystal, x)["chirality_errors"] >= 1
    y = polish_samples(x[None], polish_restraints(crystal))[0]
    assert quality(crystal, y)["chirality_errors"] == 0


def test_fixed_atoms_stay_and_samples_are_independent(crystal):
    r = polish_restraints(crystal)
    x = np.stack([clashed(crystal, 0), clashed(crystal, 1)])
    fixed = np.zeros(r.n_atoms, bool)
    fixed[::7] = True
    both = polish_samples(x, r, fixed=fixed)
    assert np.array_equal(both[:, fixed], x[:, fixed])
    assert not np.allclose(both[:, ~fixed], x[:, ~fixed])
    # one joint L-BFGS-B run over both samples vs. a run on one: same minimum, not the same path
    # (without extra rounds, which run while any sample of the batch still has a counted clash)
    s = PolishSettings(extra_rounds=0)
    one = polish_samples(x[1:], r, s, fixed=fixed)[0]
    assert np.abs(one - polish_samples(x, r, s, fixed=fixed)[1]).max() < 0.05


def test_bad_shapes_raise(crystal):
    r = polish_restraints(crystal)
    with pytest.raises(ValueError, match="coords"):
        polish_samples(np.zeros((r.n_atoms, 3)), r)
    with pytest.raises(ValueError, match="fixed"):
        polish_samples(np.zeros((1, r.n_atoms, 3)), r, fixed=np.zeros(3, bool))


def test_regularize_coords_keeps_its_contract(crystal):
    t = crystal.topology()
    x = crystal["coords"].double().numpy()
    noisy = x + np.random.default_rng(0).normal(0, 0.1, x.shape)
    y = regularize_coords(noisy, t.bonds, t.bond_lengths, t.bond_esds, t.angles, t.angle_values, t.angle_esds,
                          t.planes, t.plane_esds, max_iter=200, tether=0.2)
    assert y.shape == x.shape and y.dtype == np.float64
    d = lambda z: np.linalg.norm(z[t.bonds[:, 0]] - z[t.bonds[:, 1]], axis=1)  # noqa: E731
    assert np.abs(d(y) - t.bond_lengths).max() < 0.5 * np.abs(d(noisy) - t.bond_lengths).max()


def test_extra_rounds_resolve_clashes_the_first_rounds_leave(crystal):
    x = crystal["coords"].double().numpy().copy()
    a2t = crystal["atom_to_token_idx"].numpy()
    for res, shift in ((2, [3.5, 1.2, 0.0]), (5, [-2.8, 2.0, 0.9])):  # beyond the tether's reach
        x[a2t == res] += shift
    r = polish_restraints(crystal)
    fixed = np.zeros(r.n_atoms, bool)
    fixed[::9] = True
    once = polish_samples(x[None], r, PolishSettings(max_iter=30, extra_rounds=0), fixed=fixed)[0]
    more = polish_samples(x[None], r, PolishSettings(max_iter=30, extra_rounds=6), fixed=fixed)[0]
    assert quality(crystal, more)["clashes"] < quality(crystal, once)["clashes"]
    # a clean structure stops after the first rounds: extra rounds change nothing
    clean = crystal["coords"].double().numpy()
    a = polish_samples(clean[None], r, PolishSettings(extra_rounds=0))[0]
    b = polish_samples(clean[None], r, PolishSettings(extra_rounds=6))[0]
    assert np.array_equal(a, b)


def test_extra_rounds_polish_only_the_samples_that_still_clash(crystal):
    """A clean sample batched with one that keeps a clash after the regular rounds leaves those
    rounds exactly as it would without any extra round; the clashing one is repaired further."""
    x = crystal["coords"].double().numpy().copy()
    a2t = crystal["atom_to_token_idx"].numpy()
    bad = x.copy()
    for res, shift in ((2, [3.5, 1.2, 0.0]), (5, [-2.8, 2.0, 0.9])):  # beyond the tether's reach
        bad[a2t == res] += shift
    r = polish_restraints(crystal)
    batch = np.stack([x, bad])
    base = polish_samples(batch, r, PolishSettings(max_iter=30, extra_rounds=0))
    more = polish_samples(batch, r, PolishSettings(max_iter=30, extra_rounds=6))
    assert quality(crystal, base[0])["clashes"] == 0 < quality(crystal, base[1])["clashes"]
    assert np.array_equal(more[0], base[0])
    assert quality(crystal, more[1])["clashes"] < quality(crystal, base[1])["clashes"]
