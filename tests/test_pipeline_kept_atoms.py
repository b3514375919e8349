"""Given atoms are kept (issue 15 item 2): exact inputs come back within 0.05 Å (C1'-only, P-only,
backbone), the new atoms are relaxed against the fixed ones, noisy inputs may move, and the
B-factors are the spread of the samples as returned (after minimization too)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize
from rnadiff.chem.features import Features
from rnadiff.io import read_structure
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.pipeline import PipelineSettings, StagePipeline
from rnadiff.diffusion.guidance import polish_restraints
from rnadiff.pipeline.finish import Polish, polish, spread
from rnadiff.train.partial import mode_mask
from tests.train_helpers import EXAMPLES, noisy_tiny_model


@pytest.fixture(scope="module")
def model() -> RefinementModel:
    return noisy_tiny_model()


def reduced(kind: str, name: str = "1f27_B.pdb") -> Features:
    full = featurize(read_structure(EXAMPLES / name))
    f = full.as_dict()
    given = mode_mask(kind, f, torch.Generator().manual_seed(0)) & (f["atom_present_mask"] > 0)
    f["atom_present_mask"] = given.float()
    f["coords"] = torch.where(given[:, None], f["coords"], torch.zeros_like(f["coords"]))
    return Features(tensors=f, layout=full.layout)


def bond_error(x: np.ndarray, t, rows: np.ndarray) -> float:
    b = t.bonds[rows]
    return float(np.abs(np.linalg.norm(x[b[:, 0]] - x[b[:, 1]], axis=1) - t.bond_lengths[rows]).mean())


@pytest.mark.parametrize("kind", ["c1", "p", "backbone"])
def test_exact_inputs_keep_every_given_atom(model, kind):
    feats = reduced(kind)
    given = feats["atom_present_mask"].numpy() > 0
    res = StagePipeline(model, PipelineSettings(n_samples=2, num_steps=6)).run(feats)
    dev = np.linalg.norm(res.samples[:, given] - feats["coords"].numpy()[given], axis=-1)
    assert dev.max() <= 0.05
    np.testing.assert_allclose(res.given_max_deviation, dev.max(-1), atol=1e-9)
    assert res.sampled_given_rmsd.min() > 0.05  # the sampler alone did not keep them: the finish did


def test_noisy_inputs_move_and_a_tolerance_bounds_them(model):
    from rnadiff.io import build_gemmi_structure
    from rnadiff.metrics import structure_quality

    feats = reduced("backbone")
    given = feats["atom_present_mask"].numpy() > 0
    free = StagePipeline(model, PipelineSettings(n_samples=2, num_steps=6, given_tolerance=None)).run(feats)
    assert free.given_max_deviation.min() > 0.5
    # free to move, and polished with the clash term like exact inputs: this tiny model's samples
    # keep 2-14 clashes either way (without the term the noisy path left 171-292)
    for x in free.samples:
        assert structure_quality(build_gemmi_structure(feats.layout, x))["clashes"] <= 20
    bounded = StagePipeline(model, PipelineSettings(n_samples=2, num_steps=6, given_tolerance=0.3)).run(feats)
    dev = np.linalg.norm(bounded.samples[:, given] - feats["coords"].numpy()[given], axis=-1)
    assert 0.05 < dev.max() <= 0.3 + 1e-9


def test_polish_relaxes_the_new_atoms_against_fixed_given_atoms():
    feats = featurize(read_structure(EXAMPLES / "1f27_B.pdb"))
    t = feats.topology()
    x = feats["coords"].double().numpy()
    fixed = reduced("backbone")["atom_present_mask"].numpy() > 0
    noisy = x.copy()
    noisy[~fixed] += np.random.default_rng(0).normal(size=(int((~fixed).sum()), 3)) * 0.3
    out = polish(noisy[None], polish_restraints(feats, t, clashes=True), Polish(max_iter=200), fixed=fixed)[0]
    np.testing.assert_array_equal(out[fixed], noisy[fixed])  # the given atoms did not move at all
    crossing = fixed[t.bonds].sum(1) == 1  # bonds from a given atom to a new one
    assert bond_error(out, t, crossing) < 0.5 * bond_error(noisy, t, crossing)
    assert bond_error(out, t, np.ones(len(t.bonds), bool)) < 0.5 * bond_error(noisy, t, np.ones(len(t.bonds), bool))


def test_b_factors_are_the_spread_of_the_minimized_samples(model):
    pytest.importorskip("openmm")
    from rnadiff.minimize import MinimizationConfig

    feats = reduced("c1")
    config = MinimizationConfig(steps=20, max_outer_iterations=1, solvent="vacuum")
    plain = StagePipeline(model, PipelineSettings(n_samples=2, num_steps=6, given_tolerance=None)).run(feats)
    minimized = StagePipeline(model, PipelineSettings(n_samples=2, num_steps=6, given_tolerance=None,
                                                      minimization=config)).run(feats)
    assert np.abs(minimized.samples - plain.samples).max() > 0.05  # minimization moved the samples
    np.testing.assert_allclose(minimized.b_factors, spread(minimized.samples), atol=1e-12)
    assert np.abs(minimized.b_factors - plain.b_factors).max() > 1e-3
    assert len(minimized.minimization) == 2 and minimized.minimization[0]["rmsd_to_start"] > 0


def test_noisy_input_option_frees_the_given_atoms_and_the_summary_says_so(model, tmp_path):
    import argparse
    import json

    from rnadiff.cli.refine import settings_from
    from rnadiff.refine import refine_file

    def settings(**kw):
        ns = dict(samples=1, steps=4, seed=0, noisy_input=False, given_tolerance=0.0, no_guidance=False,
                  minimize=False)
        return settings_from(argparse.Namespace(**{**ns, **kw}), ["postprocess.max_iter=20"])

    exact, noisy = settings(), settings(noisy_input=True)
    assert exact.given_tolerance == 0.0 and noisy.given_tolerance is None
    # the guidance's pull towards the given atoms goes with them
    assert exact.guidance.terms["given"].weight > 0 and noisy.guidance.terms["given"].weight == 0
    assert settings(given_tolerance=0.2).given_tolerance == 0.2
    for name, s in (("exact", exact), ("noisy", noisy)):
        summary, _ = refine_file(EXAMPLES / "1f27_B.pdb", tmp_path / name, model, s)
        assert summary["settings"]["given_atom_tolerance_A"] == s.given_tolerance
        on_disk = json.loads((tmp_path / name / "1f27_B" / "summary.json").read_text())
        assert on_disk["settings"]["given_atom_tolerance_A"] == s.given_tolerance
    assert summary["samples"][0]["given_atom_max_deviation"] > 0.05  # noisy: moved (untrained model)


@pytest.mark.parametrize("override", [
    "anchoring.strength=0.0", "anchoring.until_sigma=0.0", "postprocess.regularize=false", "postprocess.tether=0.1",
    "postprocess.max_iter=2", "start.dense_sigma=5.0", "start.dense_fraction=0.9",
])
def test_every_refine_group_key_changes_the_result(model, override):
    import argparse

    from rnadiff.cli.refine import settings_from

    feats = reduced("backbone")  # a dense input: the start.* keys apply to it
    ns = argparse.Namespace(samples=1, steps=30, seed=0, noisy_input=False, given_tolerance=0.0, no_guidance=True,
                            minimize=False)
    base = StagePipeline(model, settings_from(ns, [])).run(feats)
    changed = StagePipeline(model, settings_from(ns, [override])).run(feats)
    assert np.abs(base.samples - changed.samples).max() > 1e-4, override


def test_written_b_factors_are_the_spread_of_the_written_minimized_samples(model, tmp_path):
    pytest.importorskip("openmm")
    import gemmi

    from rnadiff.minimize import MinimizationConfig
    from rnadiff.refine import refine_file

    config = MinimizationConfig(steps=20, max_outer_iterations=1, solvent="vacuum")
    settings = PipelineSettings(n_samples=2, num_steps=6, minimization=config)
    summary, _ = refine_file(EXAMPLES / "4phy_A_c1.pdb", tmp_path, model, settings)
    assert all("minimization" in r for r in summary["samples"])
    coords, b = [], None
    for k in range(2):
        st = gemmi.read_structure(str(tmp_path / "4phy_A_c1" / f"sample_{k}.cif"))
        atoms = [a for r in st[0][0] for a in r]
        coords.append([[a.pos.x, a.pos.y, a.pos.z] for a in atoms])
        b = np.array([a.b_iso for a in atoms])
    np.testing.assert_allclose(b, spread(np.array(coords)), atol=0.011)  # file precision: 0.01 Å² / 0.001 Å
    assert b.max() > 0.5
