"""rnadiff.refine.refine_structure (the Stage-D pipeline): superposition, spread, upstream trunk, input
errors, C1' rows, inpainting of the given atoms, polish, start level."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize, features_from_sequence
from rnadiff.errors import InputError
from rnadiff.io import read_structure
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.refine import RefineSettings, c1_rows, refine_structure
from rnadiff.pipeline.finish import spread, superpose_on_given
from tests.train_helpers import EXAMPLES, noisy_tiny_model


@pytest.fixture(scope="module")
def model() -> RefinementModel:
    return noisy_tiny_model()


def test_superpose_on_given_recovers_a_rigid_motion():
    g = np.random.default_rng(0)
    target = g.normal(size=(30, 3)) * 5
    q, _ = np.linalg.qr(g.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved = target @ q.T + np.array([10.0, -3.0, 2.0])
    given = np.zeros(30, bool)
    given[::3] = True
    out, rmsd = superpose_on_given(moved[None], target, given)
    np.testing.assert_allclose(out[0], target, atol=1e-8)
    assert rmsd[0] < 1e-8
    assert np.allclose(spread(np.stack([target, target])), 0) and spread(np.stack([target, target + 1.0])).min() > 0.8


def test_refine_structure_shapes_superposition_and_trunk(model):
    feats = featurize(read_structure(EXAMPLES / "4phy_A_c1.pdb"))
    settings = RefineSettings(n_samples=3, num_steps=6, seed=1, regularize=False)
    res = refine_structure(feats, model, settings)
    n = feats["coords"].shape[0]
    assert res.samples.shape == (3, n, 3) and res.b_factors.shape == (n,) and np.isfinite(res.samples).all()
    given = feats["atom_present_mask"].numpy() > 0
    d = np.sqrt(((res.samples[:, given] - feats["coords"].numpy()[given]) ** 2).sum(-1).mean(-1))
    np.testing.assert_allclose(d, res.given_rmsd, atol=1e-6)
    again = refine_structure(feats, model, settings)
    np.testing.assert_array_equal(res.samples, again.samples)  # seeded: bit-identical
    t = feats["restype"].shape[0]
    gen = torch.Generator().manual_seed(0)
    trunk = (torch.randn(t, 81, generator=gen), torch.randn(t, 32, generator=gen), torch.randn(t, t, 16, generator=gen))
    other = refine_structure(feats, model, settings, trunk=trunk)
    assert not np.allclose(other.samples, res.samples)
    rows = c1_rows("x", feats.layout, res.samples)
    assert len(rows) == t and len(rows[0]) == 3 + 3 * 3


def test_no_given_atoms_is_an_input_error(model):
    with pytest.raises(InputError, match="no atom coordinates"):
        refine_structure(features_from_sequence("GGCA"), model, RefineSettings(n_samples=1, num_steps=4))
    with pytest.raises(InputError, match="samples"):
        RefineSettings(n_samples=0)


def test_given_atoms_guidance_replaces_only_above_the_release_level():
    from rnadiff.diffusion.augmentation import uniform_random_rotation
    from rnadiff.pipeline.kept_atoms import GivenAtomsGuidance

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 10, 3, generator=g) * 5
    given = torch.zeros(10, dtype=torch.bool)
    given[:4] = True
    anchor = torch.randn(4, 3, generator=g) * 5
    rot = uniform_random_rotation(1, generator=g)[0]
    x[0, :4] = anchor @ rot.T + 3.0  # sample 0's prediction = anchor in another frame
    kept = GivenAtomsGuidance(given, anchor, strength=1.0, until_sigma=1.0)
    out = kept.guide(x, torch.tensor([5.0, 0.5]), step=0, key=0)
    torch.testing.assert_close(out[0], x[0], atol=1e-4, rtol=0)  # aligned anchor == prediction already
    torch.testing.assert_close(out[1], x[1])  # σ below until_sigma: untouched
    x[0, :4] += torch.randn(4, 3, generator=g)
    out = kept.guide(x, torch.tensor([5.0, 5.0]), step=0, key=0)
    d = torch.cdist(out[0, :4], out[0, :4]) - torch.cdist(anchor, anchor)
    assert float(d.abs().max()) < 1e-4  # the given atoms now have the input's internal geometry
    torch.testing.assert_close(out[:, 4:], x[:, 4:])  # other atoms untouched


def test_anchoring_keeps_the_given_atoms_closer(model):
    feats = featurize(read_structure(EXAMPLES / "4phy_A.pdb"))
    common = dict(n_samples=2, num_steps=10, regularize=False)
    free = refine_structure(feats, model, RefineSettings(anchor_strength=0.0, **common))
    held = refine_structure(feats, model, RefineSettings(anchor_strength=1.0, **common))
    assert held.sampled_given_rmsd.mean() < free.sampled_given_rmsd.mean()


def test_regularize_restores_bond_lengths():
    from rnadiff.diffusion.guidance import polish_restraints
    from rnadiff.pipeline.finish import Polish, polish

    feats = featurize(read_structure(EXAMPLES / "4phy_A.pdb"))
    t = feats.topology()
    x = feats["coords"].double().numpy()
    noisy = x + np.random.default_rng(0).normal(size=x.shape) * 0.3
    fixed = polish(noisy[None], polish_restraints(feats, t, clashes=False), Polish(max_iter=200))[0]

    def bond_err(c):
        return np.abs(np.linalg.norm(c[t.bonds[:, 0]] - c[t.bonds[:, 1]], axis=1) - t.bond_lengths).mean()

    assert bond_err(fixed) < 0.25 * bond_err(noisy)
    assert np.sqrt(((fixed - noisy) ** 2).sum(-1).mean()) < 0.5  # the conformation stays


def test_start_level_by_coverage():
    from rnadiff.pipeline.sampling import StartLevel

    s = StartLevel(sigma=10.0, dense_sigma=3.0, dense_fraction=0.4)
    assert s.keywords(0.05) == {"start_sigma": 10.0, "start_fraction": None}
    assert s.keywords(0.6) == {"start_sigma": 3.0, "start_fraction": None}
    assert StartLevel(sigma=10.0).keywords(0.9)["start_sigma"] == 10.0
    assert StartLevel(fraction=0.5, dense_sigma=3.0).keywords(0.9) == {"start_sigma": None, "start_fraction": 0.5}
    assert RefineSettings(start_sigma=7.0, dense_start_sigma=2.0).start == StartLevel(sigma=7.0, dense_sigma=2.0)
