"""A user's secondary structure reaches the conditioner's base-pair prior (`--ss` / refine_structure)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize
from rnadiff.chem.features import Features
from rnadiff.cli.main import main
from rnadiff.errors import InputError
from rnadiff.io import read_structure
from rnadiff.checkpoints.refinement import save_refinement_checkpoint
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.pipeline import PipelineSettings, StagePipeline
from rnadiff.refine.files import read_secondary_structure
from rnadiff.train.partial import mode_mask
from tests.train_helpers import EXAMPLES

TINY = dict(c_token=32, c_s=32, c_z=16, c_s_inputs=81, c_atom=16, c_atompair=8, c_noise_embedding=16,
            atom_encoder=dict(n_blocks=1, n_heads=2), transformer=dict(n_blocks=1, n_heads=2),
            atom_decoder=dict(n_blocks=1, n_heads=2))
# 1F27 chain B, 11 nt: a hairpin-like pairing for the test (any valid dot-bracket does)
SS = "((((...))))"


@pytest.fixture(scope="module")
def model() -> RefinementModel:
    torch.manual_seed(0)
    m = RefinementModel(conditioner=dict(c_atom=8, n_blocks=1, n_heads=2), diffusion=TINY).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-zero weights everywhere, the prior's projection included
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        m.conditioner.pair_prior_proj.weight.normal_(0.0, 1.0, generator=g)  # a prior the model listens to
    return m


def test_secondary_structure_changes_the_samples(model):
    full = featurize(read_structure(EXAMPLES / "1f27_B.pdb"))
    f = full.as_dict()
    given = mode_mask("c1", f, torch.Generator().manual_seed(0)) & (f["atom_present_mask"] > 0)
    f["atom_present_mask"] = given.float()
    feats = Features(tensors=f, layout=full.layout)  # C1' only: sampling starts at 10 Å
    pipe = StagePipeline(model, PipelineSettings(n_samples=1, num_steps=8, given_tolerance=None, regularize=False))
    plain = pipe.run(feats)
    paired = pipe.run(feats, secondary_structure=SS)
    again = pipe.run(feats, secondary_structure=SS)
    assert np.abs(plain.samples - paired.samples).max() > 1e-3
    np.testing.assert_array_equal(paired.samples, again.samples)
    with pytest.raises(InputError, match="characters for 11 residues"):
        pipe.run(feats, secondary_structure="((..))")


def test_read_secondary_structure_from_text_or_file(tmp_path):
    assert read_secondary_structure(" ((..)) ") == "((..))"
    f = tmp_path / "x.dbn"
    f.write_text(">x\nGGAAUCC\n((...))\n")
    assert read_secondary_structure(str(f)) == "((...))"
    (tmp_path / "empty.dbn").write_text(">x\n")
    with pytest.raises(InputError, match="empty.dbn"):
        read_secondary_structure(str(tmp_path / "empty.dbn"))
    for mistyped in (str(tmp_path / "missing.dbn"), "ss.dbn"):  # a path that is not there is not a dot-bracket
        with pytest.raises(InputError, match="no such secondary-structure file"):
            read_secondary_structure(mistyped)


def test_refine_ss_option(model, tmp_path, capsys):
    ckpt = save_refinement_checkpoint(tmp_path / "ckpt", model, {"test": True})
    ss_file = tmp_path / "b.dbn"
    ss_file.write_text(f">1f27_B\n{SS}\n")
    args = ["refine", str(EXAMPLES / "1f27_B.pdb"), "--checkpoint", str(ckpt), "--samples", "1", "--steps", "4",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a"), "--ss", str(ss_file)]) == 0
    summary = json.loads((tmp_path / "a" / "1f27_B" / "summary.json").read_text())
    assert summary["secondary_structure"] == SS
    assert main([*args, "--out", str(tmp_path / "b"), "--ss", "(((..)))"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1f27_B.pdb" in err[0] and "8 characters for 11 residues" in err[0]
    assert not (tmp_path / "b" / "1f27_B").exists()
