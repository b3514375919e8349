"""`rnadiff refine` end to end with a tiny checkpoint made here (random weights: tests the plumbing)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch

from rnadiff.cli.main import main
from rnadiff.checkpoints.refinement import load_refinement_checkpoint, save_refinement_checkpoint
from rnadiff.model.refinement_model import RefinementModel
from tests.train_helpers import EXAMPLES

TINY = dict(c_token=32, c_s=32, c_z=16, c_s_inputs=81, c_atom=16, c_atompair=8, c_noise_embedding=16,
            atom_encoder=dict(n_blocks=1, n_heads=2), transformer=dict(n_blocks=1, n_heads=2),
            atom_decoder=dict(n_blocks=1, n_heads=2))
FAST = ["--samples", "2", "--steps", "8", "--no-progress", "postprocess.max_iter=30"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = RefinementModel(conditioner=dict(c_atom=8, n_blocks=1, n_heads=2), diffusion=TINY)
    return save_refinement_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, {"test": True})


@pytest.fixture(scope="module")
def c1_input(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    p = d / "ex.pdb"
    p.write_bytes((EXAMPLES / "4phy_A_c1.pdb").read_bytes())
    return p


def _refine(inp, out, ckpt, *extra) -> int:
    return main(["refine", str(inp), "--out", str(out), "--checkpoint", str(ckpt), *FAST, *extra])


def test_checkpoint_round_trip(checkpoint):
    model = load_refinement_checkpoint(checkpoint)
    assert model.config["diffusion"]["c_token"] == 32
    assert json.loads((checkpoint / "config.json").read_text())["provenance"] == {"test": True}


def test_outputs_summary_and_c1_csv(checkpoint, c1_input, tmp_path):
    out, csv_path = tmp_path / "out", tmp_path / "c1.csv"
    assert _refine(c1_input, out, checkpoint, "--c1-csv", str(csv_path)) == 0
    d = out / "ex"
    assert sorted(p.name for p in d.iterdir()) == ["sample_0.cif", "sample_1.cif", "summary.json"]
    summary = json.loads((d / "summary.json").read_text())
    assert summary["n_residues"] == 26 and summary["n_given_atoms"] == 26 and "input_notes" in summary
    assert summary["settings"]["samples"] == 2 and summary["settings"]["seed"] == 0
    assert len(summary["samples"]) == 2
    for rec in summary["samples"]:
        for key in ("given_atom_rmsd", "clashes_per_1000_atoms", "bond_outliers", "angle_outliers",
                    "chirality_errors", "runtime_s", "consensus_rmsd", "asserted_pairs_missed"):
            assert key in rec
    # ranked by consensus: sample_0 is the more central draw (with two samples both are equally central)
    assert summary["settings"]["ranked_by_consensus"] is True
    assert sorted(rec["drawn_as"] for rec in summary["samples"]) == [0, 1]
    key = [(rec["asserted_pairs_missed"], rec["consensus_rmsd"]) for rec in summary["samples"]]
    assert key == sorted(key)
    st = gemmi.read_structure(str(d / "sample_0.cif"))
    assert st[0].count_atom_sites() == summary["n_atoms"]
    bfac = [a.b_iso for r in st[0]["A"] for a in r]
    assert max(bfac) > 0  # spread across the two samples
    # C1' CSV: Stanford layout, rows = residues, the coordinates of the written samples
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["ID", "resname", "resid", "x_1", "y_1", "z_1", "x_2", "y_2", "z_2"]
    assert len(rows) == 27 and rows[1][0] == "ex_1" and rows[1][2] == "1" and rows[26][0] == "ex_26"
    seq = [r.name for r in st[0]["A"]]
    assert [r[1] for r in rows[1:]] == seq
    for k in (0, 1):
        sk = gemmi.read_structure(str(d / f"sample_{k}.cif"))
        c1 = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in sk[0]["A"] for a in r if a.name == "C1'"])
        got = np.array([[float(v) for v in r[3 + 3 * k: 6 + 3 * k]] for r in rows[1:]])
        np.testing.assert_allclose(got, c1, atol=1.5e-3)
    # superposed onto the given atoms: C1' of the output near the input's C1' frame (centroid)
    inp = gemmi.read_structure(str(c1_input))
    ref = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in inp[0]["A"] for a in r])
    c1_0 = np.array([[float(v) for v in r[3:6]] for r in rows[1:]])
    assert np.linalg.norm(c1_0.mean(0) - ref.mean(0)) < 1e-2


def test_same_seed_identical_files_other_seed_differs(checkpoint, c1_input, tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert _refine(c1_input, tmp_path / name, checkpoint, "--seed", seed, "--format", "pdb",
                       "--c1-csv", str(tmp_path / f"{name}.csv")) == 0
    for k in (0, 1):
        a = (tmp_path / "a" / "ex" / f"sample_{k}.pdb").read_bytes()
        assert a == (tmp_path / "b" / "ex" / f"sample_{k}.pdb").read_bytes()
        assert a != (tmp_path / "c" / "ex" / f"sample_{k}.pdb").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # C1'-only input: the C1' atoms are the given atoms, kept at the input's positions by every seed
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "c.csv").read_bytes()


def test_guidance_on_by_default_and_switchable(checkpoint, c1_input, tmp_path):
    """Sampler guidance is the default (model.stageD.guidance.enabled); --no-guidance and the
    override turn it off, identically; the summary records which."""
    runs = {"on": (), "off": ("--no-guidance",), "override": ("model.stageD.guidance.enabled=false",)}
    for name, extra in runs.items():
        assert _refine(c1_input, tmp_path / name, checkpoint, "--format", "pdb", *extra) == 0
    sample = lambda name: (tmp_path / name / "ex" / "sample_0.pdb").read_bytes()  # noqa: E731
    summary = lambda name: json.loads((tmp_path / name / "ex" / "summary.json").read_text())  # noqa: E731
    assert sample("off") == sample("override") != sample("on")
    assert summary("on")["settings"]["guidance"] is True and summary("off")["settings"]["guidance"] is False
    assert _refine(c1_input, tmp_path / "bad", checkpoint, "model.stageD.guidance.n_steps=-1") == 2
    assert not (tmp_path / "bad").exists()


def test_bad_input_reported_good_one_written(checkpoint, c1_input, tmp_path, capsys):
    bad = tmp_path / "bad.pdb"
    bad.write_text("this is not a structure\n")
    missing = tmp_path / "missing.cif"
    code = main(["refine", str(bad), str(c1_input), str(missing), "--out", str(tmp_path / "o"),
                 "--checkpoint", str(checkpoint), *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.pdb" in err and "missing.cif" in err and "2 of 3 inputs failed" in err
    assert (tmp_path / "o" / "ex" / "summary.json").is_file()
    assert not (tmp_path / "o" / "bad").exists()


def test_existing_output_needs_overwrite(checkpoint, c1_input, tmp_path, capsys):
    out = tmp_path / "o"
    assert _refine(c1_input, out, checkpoint) == 0
    before = (out / "ex" / "sample_0.cif").read_bytes()
    assert _refine(c1_input, out, checkpoint, "--seed", "9") == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "ex" / "sample_0.cif").read_bytes() == before
    assert _refine(c1_input, out, checkpoint, "--seed", "9", "--overwrite") == 0
    assert (out / "ex" / "sample_0.cif").read_bytes() != before


def test_bad_checkpoint_and_overrides(c1_input, tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    assert _refine(c1_input, tmp_path / "o", junk) == 2
    assert "junk.safetensors" in capsys.readouterr().err
    # key=value overrides after the options reach the refine config
    assert main(["refine", str(c1_input), "--out", str(tmp_path / "o2"), "--checkpoint", str(junk),
                 "model.stageD.inference.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
