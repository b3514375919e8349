"""Issue 18: Stanford RNA 3D Folding submission CSVs in: every target x conformation as a C1'-only
structure, streamed, sharded without shared state, round-tripping with the writer."""
from __future__ import annotations

import numpy as np
import pytest

from rnadiff.chem.features import featurize
from rnadiff.errors import InputError
from rnadiff.io import read_structure
from rnadiff.io.submission import in_shard, iter_submission, iter_submission_targets, parse_shard
from rnadiff.io.c1csv import c1_rows, write_c1_csv
from tests.train_helpers import EXAMPLES

HEADER = "ID,resname,resid," + ",".join(f"{c}_{k}" for k in range(1, 6) for c in "xyz")


def written_submission(tmp_path, targets=("R1107", "R1108_v2", "7abc_A")):
    """A 5-conformation submission of several targets written by rnadiff's own writer; returns
    (path, {target: samples [5, N_atom, 3]}, layout)."""
    feats = featurize(read_structure(EXAMPLES / "4phy_A.pdb"))
    coords = feats["coords"].numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    rows, truth = [], {}
    for t in targets:
        samples = coords[None] + rng.normal(scale=0.5, size=(5, *coords.shape))
        truth[t] = samples
        rows += c1_rows(t, feats.layout, samples)
    path = write_c1_csv(tmp_path / "submission.csv", rows, n_samples=5)
    return path, truth, feats.layout


def test_round_trip_with_the_writer(tmp_path):
    path, truth, layout = written_submission(tmp_path)
    c1 = [layout.atom_index(t, "C1'") for t in range(layout.n_tokens)]
    got = list(iter_submission(path))
    assert [n for n, _ in got] == [f"{t}_{k}" for t in truth for k in range(1, 6)]
    sequence = read_structure(EXAMPLES / "4phy_A.pdb").chains[0].sequence
    for name, s in got:
        target, k = name.rsplit("_", 1)
        assert s.chains[0].sequence == sequence
        assert all(r.atom_names == ("C1'",) for r in s.residues)
        _, xyz = s.atom_table()
        assert np.allclose(xyz, truth[target][int(k) - 1][c1], atol=6e-4)
    # written again from what was read: the same lines
    layout_back = featurize(got[0][1]).layout
    c1_back = [layout_back.atom_index(t, "C1'") for t in range(layout_back.n_tokens)]
    samples = np.zeros((5, layout_back.n_atoms, 3))
    for k, (_, s) in enumerate(got[:5]):
        samples[k, c1_back] = s.atom_table()[1]
    out = write_c1_csv(tmp_path / "again.csv", c1_rows("R1107", layout_back, samples), n_samples=5)
    first = [ln for ln in path.read_text().splitlines() if ln.startswith("R1107_")]
    assert out.read_text().splitlines()[1:] == first


def test_resid_gaps_are_chain_breaks(tmp_path):
    lines = [HEADER]
    for i, resid in enumerate([1, 2, 3, 4, 8, 9, 10]):
        xyz = ",".join(f"{5.8 * i:.3f},{0.3 * i:.3f},0.0" for _ in range(5))
        lines.append(f"T1_{resid},{'GACU'[i % 4]},{resid},{xyz}")
    path = tmp_path / "gap.csv"
    path.write_text("\n".join(lines) + "\n")
    (name, s), *_ = iter_submission(path)
    assert name == "T1_1" and s.chains[0].sequence == "GACUGAC"
    assert [r.chain_break_before for r in s.residues] == [False, False, False, False, True, False, False]


def test_shards_partition_the_targets(tmp_path):
    path, truth, _ = written_submission(tmp_path, targets=[f"T{i}" for i in range(12)])
    everything = [t.target for t in iter_submission_targets(path)]
    parts = [[t.target for t in iter_submission_targets(path, shard=(k, 4))] for k in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(everything) and len(everything) == 12
    assert all(set(a).isdisjoint(b) for i, a in enumerate(parts) for b in parts[i + 1:])
    assert sum(1 for p in parts if p) >= 2
    assert parse_shard("3/8") == (3, 8) and in_shard("T1", None)
    for bad in ("0/4", "5/4", "a/b", "2"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)


def test_streams_one_target_at_a_time(tmp_path):
    path, _, _ = written_submission(tmp_path, targets=["A1", "B2"])
    text = path.read_text().splitlines()
    path.write_text("\n".join(text) + "\nnot,a,row\n")  # broken after both targets
    it = iter_submission_targets(path)
    assert next(it).target == "A1"  # the first target arrives before the file has been read to the end
    with pytest.raises(InputError, match="line"):
        list(it)


def bad_file(tmp_path, lines):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


ROW = "T_1,G,1," + ",".join(["1.0"] * 15)


@pytest.mark.parametrize("lines, line_no, words", [
    (["ID,resname,resid,x_1,y_1"], 1, "header"),
    (["ID,resname,resid,x_1,z_1,y_1"], 1, "out of order"),
    ([HEADER, "T_1,G,1,1.0"], 2, "fields"),
    ([HEADER, ROW, "T_2,G,x," + ",".join(["1.0"] * 15)], 3, "resid"),
    ([HEADER, ROW, "T_2,Q,2," + ",".join(["1.0"] * 15)], 3, "unknown residue"),
    ([HEADER, ROW, "T_2,G,2," + ",".join(["1.0"] * 14 + ["12.x3"])], 3, "not a number"),
    ([HEADER, ROW, "T_2,G,2," + ",".join(["nan"] * 15)], 3, "NaN/inf"),
    ([HEADER, ROW, "T_1,G,1," + ",".join(["2.0"] * 15)], 3, "does not increase"),
    ([HEADER, ROW, "U_1,G,1," + ",".join(["1.0"] * 15), "T_2,G,2," + ",".join(["1.0"] * 15)], 4, "not contiguous"),
    ([HEADER, "nounderscore,G,1," + ",".join(["1.0"] * 15)], 2, "<target>_<resid>"),
])
def test_malformed_rows_name_file_and_line(tmp_path, lines, line_no, words):
    path = bad_file(tmp_path, lines)
    with pytest.raises(InputError) as info:
        list(iter_submission(path))
    msg = str(info.value)
    assert msg.startswith(f"{path}: line {line_no}:") and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize("content, words", [("", "empty"), (HEADER + "\n", "no data rows")])
def test_empty_submissions(tmp_path, content, words):
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=words):
        list(iter_submission(path))
    with pytest.raises(InputError, match="not found"):
        list(iter_submission(tmp_path / "absent.csv"))


def test_insane_conformation_names_target_and_conformation(tmp_path):
    lines = [HEADER]
    for i in range(10):
        far = ["9999.0"] * 3 if i % 2 else [f"{5.9 * i:.2f}", "0.0", "0.0"]
        good = [f"{5.9 * i:.2f}", f"{0.2 * i:.2f}", "0.0"]
        lines.append(f"T9_{i + 1},A,{i + 1}," + ",".join(good + good + far + good + good))
    path = bad_file(tmp_path, lines)
    (target,) = list(iter_submission_targets(path))
    assert target.structure(1).n_residues == 10
    with pytest.raises(InputError) as info:
        target.structure(3)
    assert str(info.value).startswith(f"{path}: line 2: T9_3: chain A:"), str(info.value)
    assert target.structure(4).n_residues == 10  # the next conformation is still usable


def _many_targets(path, n_targets, n_res=8):
    with path.open("w") as fh:
        fh.write(HEADER + "\n")
        for t in range(n_targets):
            for i in range(n_res):
                xyz = ",".join(f"{5.9 * i:.3f},{0.2 * i + k:.3f},{0.1 * t % 7:.3f}" for k in range(5))
                fh.write(f"T{t:05d}_{i + 1},{'ACGU'[i % 4]},{i + 1},{xyz}\n")
    return path


def test_memory_does_not_grow_with_the_number_of_targets(tmp_path):
    import tracemalloc

    peaks = {}
    for n in (50, 1000):
        path = _many_targets(tmp_path / f"many{n}.csv", n)
        tracemalloc.start()
        count = 0
        for target in iter_submission_targets(path):
            count += target.structure(1).n_residues > 0
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == n
    # 20x the targets: the peak grows by the set of seen names (~100 bytes per target), not the
    # rows (holding them all would take several MB)
    assert peaks[1000] < peaks[50] + 1000 * 400, peaks
