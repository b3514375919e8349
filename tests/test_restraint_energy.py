"""The restraint kernel shared by guidance and polish (rnadiff.chem.restraint_energy): flat bottoms
cost nothing inside and the square of the excess outside, samples are independent terms whose
per-sample energies sum to the total, and padded plane atoms are inert."""
from __future__ import annotations

import numpy as np
import pytest

from rnadiff.chem.restraint_energy import TiledRestraints, restraint_energy, sample_energies


def _two_atoms(d: float, n_samples: int = 1) -> np.ndarray:
    x = np.zeros((n_samples * 2, 3))
    x[1::2, 0] = d
    return x


@pytest.mark.parametrize("d, expected", [(1.5, 0.0), (1.75, 0.0), (2.0, 2.0 * 0.05**2), (0.9, 2.0 * 0.15**2)])
def test_flat_bottom_bond(d, expected):
    t = TiledRestraints(n_atoms=2, n_samples=1)
    t.bonds, t.bond_target, t.bond_weight, t.bond_width = t.tile([[0, 1]], 2), t.repeat([1.5]), t.repeat([2.0]), \
        t.repeat([0.45])
    e, g = restraint_energy(_two_atoms(d), t)
    assert e == pytest.approx(expected, abs=1e-12)
    assert np.allclose(g.sum(0), 0.0)  # internal: no net force
    harmonic = TiledRestraints(n_atoms=2, n_samples=1, bonds=t.bonds, bond_target=t.bond_target,
                               bond_weight=t.bond_weight)
    assert restraint_energy(_two_atoms(d), harmonic)[0] == pytest.approx(2.0 * (d - 1.5) ** 2)


def test_samples_are_independent_terms_of_one_sum():
    rng = np.random.default_rng(0)
    n, s = 12, 3
    t = TiledRestraints(n_atoms=n, n_samples=s)
    pairs = np.array([[0, 1], [1, 2], [3, 7], [5, 11]])
    t.bonds, t.bond_target, t.bond_weight = t.tile(pairs, 2), t.repeat([1.5, 1.4, 3.0, 4.0]), t.repeat(np.ones(4))
    t.angles, t.angle_target, t.angle_weight = t.tile([[0, 1, 2], [4, 5, 6]], 3), t.repeat([2.0, 1.9]), \
        t.repeat([1.0, 1.0])
    t.planes, t.plane_weight = t.tile([[6, 7, 8, 9], [8, 9, 10, 0]], 4), t.repeat([[1.0, 1, 1, 1], [1, 1, 1, 0]])
    x = rng.normal(0, 2.0, (n * s, 3))
    total, _ = restraint_energy(x, t)
    per = sample_energies(x, t)
    assert set(per) == {"bonds", "angles", "planes", "chirality", "offsets", "clashes", "distances"}
    per_sample = sum(per.values())
    assert per_sample.shape == (s,) and per_sample.sum() == pytest.approx(total)
    y = x.copy()
    y[n:2 * n] += rng.normal(0, 0.5, (n, 3))  # only sample 1 changes
    moved = sum(sample_energies(y, t).values())
    assert moved[0] == pytest.approx(per_sample[0]) and moved[2] == pytest.approx(per_sample[2])
    assert moved[1] != pytest.approx(per_sample[1])


def test_padded_plane_atoms_are_inert():
    t = TiledRestraints(n_atoms=5, n_samples=1)
    t.planes, t.plane_weight = t.tile([[1, 2, 3, 4, 0]], 5), t.repeat([[1.0, 1, 1, 1, 0]])
    x = np.array([[9.0, 9, 9], [0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.2]])
    e, g = restraint_energy(x, t)
    assert e > 0 and np.all(g[0] == 0)
    far = x.copy()
    far[0] = [-40.0, 3, 7]  # the padding index points at atom 0: moving it changes nothing
    assert restraint_energy(far, t)[0] == pytest.approx(e)


def test_offset_term_matches_finite_differences_and_is_rigid_invariant():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    t = TiledRestraints(n_atoms=7, n_samples=2)
    t.offsets, t.offset_target = t.tile([[0, 1, 2, 3], [4, 5, 6, 1]], 4), t.repeat([0.3, -0.2])
    t.offset_weight = t.repeat([2.0, 0.5])
    x = rng.normal(0, 2.0, (14, 3))
    e, g = restraint_energy(x, t)
    eps, num = 1e-6, np.zeros_like(x)
    for i in range(x.shape[0]):
        for k in range(3):
            y = x.copy()
            y[i, k] += eps
            z = x.copy()
            z[i, k] -= eps
            num[i, k] = (restraint_energy(y, t)[0] - restraint_energy(z, t)[0]) / (2 * eps)
    assert e > 0 and np.allclose(g, num, atol=1e-5)
    assert np.allclose(g.sum(0), 0.0)  # internal: no net force
    turned = x @ Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix().T + np.array([4.0, -2, 7])
    assert restraint_energy(turned, t)[0] == pytest.approx(e)
    # an atom on the plane at target 0 costs nothing: the plane is that of the three others
    flat = TiledRestraints(n_atoms=4, n_samples=1, offsets=np.array([[3, 0, 1, 2]]), offset_target=np.zeros(1),
                           offset_weight=np.ones(1))
    square = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0.7, 0.4, 0.0]])
    assert restraint_energy(square, flat)[0] == pytest.approx(0.0)
    square[3, 2] = 0.5  # 0.5 Å above the plane, on the side of (b − a) × (c − a) = +z
    assert restraint_energy(square, flat)[0] == pytest.approx(0.25)
