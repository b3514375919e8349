"""Issue 11: `rnadiff refine INPUT... --devices N` shards inputs over worker processes and writes
exactly what one process writes."""
from __future__ import annotations

import json

import gemmi
import pytest
import torch

from rnadiff.cli.main import main
from rnadiff.checkpoints.refinement import save_refinement_checkpoint
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.refine.shard import shard_indices
from tests.train_helpers import EXAMPLES

TINY = dict(c_token=32, c_s=32, c_z=16, c_s_inputs=81, c_atom=16, c_atompair=8, c_noise_embedding=16,
            atom_encoder=dict(n_blocks=1, n_heads=2), transformer=dict(n_blocks=1, n_heads=2),
            atom_decoder=dict(n_blocks=1, n_heads=2))
# 8 steps + 30 polish iterations: the tiny random model's samples pass the output gate (6 + 10 do not)
FAST = ["--samples", "2", "--steps", "8", "--no-progress", "--format", "pdb", "postprocess.max_iter=30"]
TIMING = ("sampling_seconds", "runtime_s")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = RefinementModel(conditioner=dict(c_atom=8, n_blocks=1, n_heads=2), diffusion=TINY)
    return save_refinement_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, {"test": True})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Six short inputs: C1'-only, backbone-only and full-atom cuts of the shipped examples."""
    d = tmp_path_factory.mktemp("inputs")
    out = []
    for name, src, keep in (("c1", "4phy_A_c1.pdb", None), ("p_only", "4phy_A.pdb", {"P"}),
                            ("bb", "4phy_A.pdb", {"P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'",
                                                  "C2'", "O2'", "C1'"}),
                            ("full", "1f27_B.pdb", None), ("c1_b", "1f27_B.pdb", {"C1'"}), ("p_b", "1f27_B.pdb", {"P"})):
        st = gemmi.read_structure(str(EXAMPLES / src))
        st.remove_hydrogens()
        if keep is not None:
            for res in st[0][0]:
                for k in reversed(range(len(res))):
                    if res[k].name not in keep:
                        del res[k]
            st.remove_empty_chains()
        st.setup_entities()
        path = d / f"{name}.pdb"
        st.write_pdb(str(path))
        out.append(path)
    return out


def _summary(path):
    doc = json.loads(path.read_text())
    doc.pop("sampling_seconds")
    for rec in doc["samples"]:
        rec.pop("runtime_s")
    return doc


def test_shard_assignment_is_input_index_mod_n():
    assert shard_indices(6, 2) == [[0, 2, 4], [1, 3, 5]]
    assert shard_indices(5, 3) == [[0, 3], [1, 4], [2]]
    assert shard_indices(2, 4) == [[0], [1]]


def test_sharded_refine_equals_single_process_byte_for_byte(checkpoint, inputs, tmp_path, capsys):
    args = [*map(str, inputs), "--checkpoint", str(checkpoint), *FAST]
    assert main(["refine", *args, "--out", str(tmp_path / "one"), "--c1-csv", str(tmp_path / "one.csv")]) == 0
    one_out = capsys.readouterr().out.splitlines()
    assert main(["refine", *args, "--out", str(tmp_path / "two"), "--c1-csv", str(tmp_path / "two.csv"),
                 "--devices", "2"]) == 0
    two_out = capsys.readouterr().out.splitlines()
    # every input reported once, in input order
    assert [line.split(":")[0] for line in two_out] == [str(p) for p in inputs]
    assert [line.split(":")[0] for line in one_out] == [str(p) for p in inputs]
    names = sorted(p.stem for p in inputs)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == names  # no temporaries left, nothing extra
    for name in names:
        a, b = tmp_path / "one" / name, tmp_path / "two" / name
        assert sorted(p.name for p in b.iterdir()) == ["sample_0.pdb", "sample_1.pdb", "summary.json"]
        for k in (0, 1):
            assert (a / f"sample_{k}.pdb").read_bytes() == (b / f"sample_{k}.pdb").read_bytes(), (name, k)
        assert _summary(a / "summary.json") == _summary(b / "summary.json")
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    # the inputs really differ (the comparison above is not between six copies of one file)
    assert len({(tmp_path / "one" / n / "sample_0.pdb").read_bytes() for n in names}) == 6


def test_sharded_refine_reports_failures_like_one_process(checkpoint, inputs, tmp_path, capsys):
    bad = tmp_path / "bad.pdb"
    bad.write_text("this is not a structure\n")
    dup = tmp_path / "dup"
    dup.mkdir()
    (dup / inputs[0].name).write_bytes(inputs[0].read_bytes())
    argv = [str(bad), str(inputs[0]), str(dup / inputs[0].name), str(inputs[1]), "--checkpoint", str(checkpoint),
            *FAST]
    assert main(["refine", *argv, "--out", str(tmp_path / "one")]) == 2
    one = capsys.readouterr()
    assert main(["refine", *argv, "--out", str(tmp_path / "two"), "--devices", "2"]) == 2
    two = capsys.readouterr()
    err_lines = [line for line in two.err.splitlines() if line.startswith("rnadiff:")]
    assert err_lines == [line.replace(str(tmp_path / "one"), str(tmp_path / "two"))
                         for line in one.err.splitlines() if line.startswith("rnadiff:")]
    assert "bad.pdb" in two.err and "already exists" in two.err and "2 of 4 inputs failed" in two.err
    assert [line.split(":")[0] for line in two.out.splitlines()] == [str(inputs[0]), str(inputs[1])]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted([inputs[0].stem, inputs[1].stem])
