"""rnadiff.geometry: the one Kabsch kernel (numpy and torch agree, never a reflection), signed
volumes (a mirror flips them), neighbour search against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnadiff.geometry import (
    kabsch,
    neighbor_pairs,
    rotation_from_covariance,
    signed_volumes,
    superpose,
    weighted_kabsch,
)


def random_rotation(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_numpy_and_torch_kabsch_agree_and_recover_the_motion():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)) * 5
    rot = random_rotation(rng)
    y = x @ rot.T + np.array([3.0, -1.0, 7.0]) + rng.normal(size=(40, 3)) * 0.01
    w = rng.uniform(0.1, 1.0, size=40)
    r_np, t_np = kabsch(x, y, w)
    r_t, t_t = weighted_kabsch(torch.tensor(x), torch.tensor(y), torch.tensor(w))
    np.testing.assert_allclose(r_np, r_t.double().numpy(), atol=1e-5)
    np.testing.assert_allclose(t_np, t_t.double().numpy(), atol=1e-4)
    np.testing.assert_allclose(r_np, rot, atol=1e-2)
    assert np.abs(superpose(x, y, w) - y).max() < 0.05


def test_kabsch_never_returns_a_reflection():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    mirror = x * np.array([1.0, 1.0, -1.0])
    r, _ = kabsch(x, mirror)
    assert np.linalg.det(r) > 0
    h = torch.tensor(rng.normal(size=(5, 3, 3)), dtype=torch.float32)
    assert torch.allclose(torch.linalg.det(rotation_from_covariance(h)), torch.ones(5), atol=1e-5)


def test_signed_volumes_and_mirror():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 10, 3))
    chirals = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [9, 8, 1, 2]])
    v = signed_volumes(x, chirals)
    assert v.shape == (2, 3)
    c, a, b, d = (x[:, chirals[:, k]] for k in range(4))  # V = det[a - c, b - c, d - c]
    np.testing.assert_allclose(v, np.linalg.det(np.stack([a - c, b - c, d - c], -1)), atol=1e-12)
    np.testing.assert_allclose(signed_volumes(x * np.array([-1.0, 1.0, 1.0]), chirals), -v, atol=1e-12)
    unit = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert signed_volumes(unit, np.array([[0, 1, 2, 3]]))[0] == 1.0


def test_neighbor_pairs_equal_brute_force():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 20, size=(300, 3))
    i, j = neighbor_pairs(x, 3.0, chunk_size=64)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    bi, bj = np.nonzero(np.triu(d < 3.0, k=1))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(bi.tolist(), bj.tolist()))


def test_dihedral_signs_and_the_batched_form_agree():
    """IUPAC convention: cis 0°, trans 180°, a clockwise turn of the far bond seen down b->c is
    positive; the one-quadruple form is the batched one."""
    from rnadiff.geometry.dihedral import dihedral, dihedral4

    a, b, c = np.array([1.0, 0, 0]), np.zeros(3), np.array([0, 0, 1.0])
    assert dihedral(a, b, c, np.array([1.0, 0, 1])) == pytest.approx(0.0)
    assert abs(dihedral(a, b, c, np.array([-1.0, 0, 1]))) == pytest.approx(180.0)
    assert dihedral(a, b, c, np.array([0, 1.0, 1])) == pytest.approx(90.0)
    assert dihedral(a, b, c, np.array([0, -1.0, 1])) == pytest.approx(-90.0)
    quads = np.random.default_rng(0).normal(size=(4, 50, 3))
    assert dihedral4(*quads).tolist() == [dihedral(*q) for q in quads.transpose(1, 0, 2)]
