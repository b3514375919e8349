"""Issue 18 items 2 and 3 in `rnadiff refine`: the handedness verdict of every input, the mirror
note / --mirror reflect / --mirror error on a real dev chain and its reflection (C1' only), and the
output gate (unit cases on real coordinates, a partly failed input, and a forced failure from the
command line)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from rnadiff.chem import featurize
from rnadiff.cli.main import main
from rnadiff.geometry.handedness import LEFT, RIGHT
from rnadiff.io import read_structure
from rnadiff.io.mirror import structure_handedness
from rnadiff.refine import RefineSettings, load_refinement_model, refine_structure
from rnadiff.refine.files import _write_dir
from rnadiff.refine.gate import GateInput, gate_failures
from rnadiff.refine.shard import run_input
from tests.reliability_helpers import make_tiny_checkpoint
from tests.train_helpers import EXAMPLES

FAST = ["--samples", "2", "--steps", "8", "--no-progress", "postprocess.max_iter=30"]
CHAIN = "clean/rsrnasp1_train/3mja_B.pdb"  # 29 nt; its C1' trace is called right-handed (log-odds +36)


def _c1_only(src: Path, dst: Path, mirror: bool = False) -> np.ndarray:
    st = gemmi.read_structure(str(src))
    st.remove_hydrogens()
    for res in st[0][0]:
        for i in reversed(range(len(res))):
            if res[i].name != "C1'":
                del res[i]
            elif mirror:  # through the plane y = 0: any plane gives the same mirror image
                res[i].pos = gemmi.Position(res[i].pos.x, -res[i].pos.y, res[i].pos.z)
    st.write_pdb(str(dst))
    return np.array([[a.pos.x, a.pos.y, a.pos.z] for r in st[0][0] for a in r])


@pytest.fixture(scope="module")
def traces(rna_dev_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("mirror")
    original, mirrored = d / "chain.pdb", d / "mirrored.pdb"
    _c1_only(rna_dev_dir / CHAIN, original)
    return original, mirrored, _c1_only(rna_dev_dir / CHAIN, mirrored, mirror=True)


def _refine(path, out, *extra):
    return main(["refine", str(path), "--out", str(out), *FAST, *extra])


def test_right_handed_input_has_verdict_and_no_note(traces, tmp_path, capsys):
    original, _, _ = traces
    assert _refine(original, tmp_path) == 0
    assert "mirror" not in capsys.readouterr().err
    h = json.loads((tmp_path / "chain" / "summary.json").read_text())["handedness"]
    assert h["verdict"] == RIGHT and h["score"] > 4.6 and h["evidence"] >= 4 and h["action"] == "none"
    assert h["method"] == "C1' trace dihedrals"


def test_mirror_input_noted_refused_or_reflected(traces, tmp_path, capsys):
    _, mirrored, mirror_xyz = traces
    # default: refined as given, one note naming the file
    assert _refine(mirrored, tmp_path / "note") == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "mirror" in err[0] and str(mirrored) in err[0]
    h = json.loads((tmp_path / "note" / "mirrored" / "summary.json").read_text())["handedness"]
    assert h["verdict"] == LEFT and h["score"] < -4.6 and h["action"] == "noted"
    # --mirror error: an input error, nothing written
    assert _refine(mirrored, tmp_path / "error", "--mirror", "error") == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "error:" in err[0] and "mirror" in err[0] and str(mirrored) in err[0]
    assert not (tmp_path / "error" / "mirrored").exists()
    # --mirror reflect: reflected through x = centroid x, the output is the corrected model there
    assert _refine(mirrored, tmp_path / "reflect", "--mirror", "reflect") == 0
    assert "reflected" in capsys.readouterr().err
    d = tmp_path / "reflect" / "mirrored"
    assert json.loads((d / "summary.json").read_text())["handedness"]["action"] == "reflected"
    expected = mirror_xyz.copy()
    expected[:, 0] = 2 * mirror_xyz[:, 0].mean() - mirror_xyz[:, 0]
    out = read_structure(d / "sample_0.cif")
    c1 = np.array([r.coords[r.atom_names.index("C1'")] for r in out.residues])
    np.testing.assert_allclose(c1, expected, atol=2e-3)  # given atoms kept (tolerance 0)
    assert structure_handedness(out).verdict == RIGHT  # all-atom output: D-ribose sugars


# --- the gate on real coordinates -------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_atom():
    feats = featurize(read_structure(EXAMPLES / "4phy_A.pdb"))
    t = feats.topology()
    x = feats["coords"].double().numpy()
    base = GateInput(samples=x[None].copy(), bonds=t.bonds, bond_lengths=np.asarray(t.bond_lengths, float),
                     bond_is_link=np.asarray(t.bond_is_link, bool), given_coords=x, n_residues=feats.layout.n_tokens,
                     given_rmsd=np.zeros(1), given_max_deviation=np.zeros(1), given_tolerance=None)
    return base, feats


def _with(base: GateInput, x: np.ndarray, **kw) -> GateInput:
    return dataclasses.replace(base, samples=x[None], **kw)


def test_gate_passes_a_deposited_structure_and_fails_broken_ones(full_atom):
    g, feats = full_atom
    x = g.samples[0]
    assert gate_failures(g) == [None]
    nan = x.copy()
    nan[5] = np.nan
    assert "non-finite" in gate_failures(_with(g, nan))[0]
    assert "tolerance 0" in gate_failures(_with(g, x, given_tolerance=0.0, given_max_deviation=np.array([0.8])))[0]
    assert gate_failures(_with(g, x, given_tolerance=1.0, given_max_deviation=np.array([0.8]))) == [None]
    assert "noisy" in gate_failures(_with(g, x, given_rmsd=np.array([25.0])))[0]
    stretched = x.copy()
    stretched[10] += [4.0, 0.0, 0.0]
    assert "covalent bonds" in gate_failures(_with(g, stretched))[0]
    # residues 14.. moved 20 Å as one block: every bond inside a residue intact, one link torn
    apart = x.copy()
    apart[feats["atom_to_token_idx"].numpy() >= 13] += [20.0, 0.0, 0.0]
    assert "O3'-P links" in gate_failures(_with(g, apart))[0]
    cloud = np.random.default_rng(0).normal(0, 150.0, x.shape)
    no_bonds = dict(bonds=np.zeros((0, 2), int), bond_lengths=np.zeros(0), bond_is_link=np.zeros(0, bool))
    assert "radius of gyration" in gate_failures(_with(g, cloud, **no_bonds))[0]
    assert gate_failures(_with(g, x, **no_bonds)) == [None]


def test_partly_failed_input_writes_the_rest(tmp_path):
    """A failed sample (here made non-finite) is not written; the others are, with B-factors from
    them alone; the summary marks it and the report has both a line and an error."""
    model, _ = load_refinement_model()
    structure = read_structure(EXAMPLES / "4phy_A_c1.pdb")
    result = refine_structure(structure, model, RefineSettings(n_samples=2, num_steps=8))
    result.samples[0, 3] = np.nan
    summary = {"n_residues": 26, "sampling_seconds": 1.0, "handedness": {"action": "none"},
               "settings": {"given_atom_tolerance_A": 0.0}, "given_bonds": {"n_bonds": 0, "median_deviation_A": None},
               "samples": [{"sample": 0, "failed": "1 atoms with non-finite coordinates"},
                           {"sample": 1, "given_atom_rmsd": 0.0, "clashes_per_1000_atoms": 0.0}]}
    target = tmp_path / "ex"
    _write_dir(target, result, [1], summary, "cif")
    assert sorted(p.name for p in target.iterdir()) == ["sample_1.cif", "summary.json"]
    b = [a.b_iso for r in gemmi.read_structure(str(target / "sample_1.cif"))[0][0] for a in r]
    assert np.isfinite(b).all() and max(b) == 0.0  # the spread of one written sample
    outcome, _, _ = run_input(0, "ex.pdb", target, True, lambda: (summary, result))
    assert "1 of 2 samples failed the output gate" in outcome.error and "non-finite" in outcome.error
    assert outcome.line is not None and "1 samples" in outcome.line and outcome.c1_rows == []


def test_gate_failure_forced_from_the_command_line(tmp_path, capsys):
    """An untrained model's raw atoms with the polish switched off are no molecule (bonds of 5+ Å):
    every sample refused, nothing written."""
    src = tmp_path / "ex.pdb"
    src.write_bytes((EXAMPLES / "4phy_A_c1.pdb").read_bytes())
    ckpt = make_tiny_checkpoint(tmp_path / "untrained")
    code = main(["refine", str(src), "--out", str(tmp_path / "o"), "--checkpoint", str(ckpt), "--samples", "2",
                 "--steps", "8", "--no-progress", "postprocess.regularize=false"])
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and str(src) in err[0] and "all 2 samples failed the output gate" in err[0]
    assert "exploded geometry" in err[0]
    assert not (tmp_path / "o" / "ex").exists()
