"""Issue 18 item 4: `rnadiff refine --from-c1-csv FILE` on a 5-conformation submission made from
real dev chains (C1' only), the round trip of `--c1-csv`, a bad conformation, and `--shard K/N`.
The packaged checkpoint, 2 samples of 8 steps: seconds per conformation."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from rnadiff.cli.main import main
from rnadiff.io.submission import iter_submission_targets
from rnadiff.refine.from_csv import output_conformations

FAST = ["--samples", "2", "--steps", "8", "--no-progress", "postprocess.max_iter=30"]
# (dev chain, resids left out: a numbering gap the table must keep)
CHAINS = (("clean/rsrnasp1_train/2pn3_A.pdb", ()), ("clean/rsrnasp1_train/4e48_A.pdb", (10,)),
          ("clean/rsrnasp1_train/3tzr_A.pdb", ()))
NAMES = ("R2pn3", "R4e48", "R3tzr")  # crc32 mod 2: 1, 0, 1 -> both shards of --shard K/2 get targets


def _c1_trace(path: Path) -> tuple[list[str], np.ndarray]:
    st = gemmi.read_structure(str(path))
    names, xyz = [], []
    for res in st[0][0]:
        atom = res.find_atom("C1'", "*")
        names.append(res.name.strip())
        xyz.append([atom.pos.x, atom.pos.y, atom.pos.z])
    return names, np.array(xyz)


def _rotation(angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def write_submission(path: Path, dev: Path, n_conf: int = 5, bad: tuple[str, int] | None = None) -> dict:
    """Targets NAMES from CHAINS; conformation k: the trace turned by 7k degrees, moved and
    jittered by 0.2 Å. bad = (target, k): that conformation has one residue 900 Å away."""
    rng = np.random.default_rng(0)
    rows, truth = [], {}
    for t, (rel, drop) in enumerate(CHAINS):
        names, xyz = _c1_trace(dev / rel)
        resids = [i + 1 for i in range(len(names)) if i + 1 not in drop]
        keep = [i for i in range(len(names)) if i + 1 not in drop]
        names, xyz = [names[i] for i in keep], xyz[keep]
        confs = np.stack([(xyz - xyz.mean(0)) @ _rotation(7.0 * k).T + xyz.mean(0) + [k, -k, 0.5 * k]
                          + rng.normal(0, 0.2, xyz.shape) for k in range(n_conf)])
        if bad is not None and bad[0] == NAMES[t]:
            confs[bad[1] - 1, len(names) // 2] += 900.0
        truth[NAMES[t]] = (names, resids, confs)
        for i, (name, resid) in enumerate(zip(names, resids)):
            rows.append([f"{NAMES[t]}_{resid}", name, str(resid), *(f"{v:.3f}" for v in confs[:, i].reshape(-1))])
    header = ["ID", "resname", "resid"] + [f"{c}_{k}" for k in range(1, n_conf + 1) for c in "xyz"]
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return truth


def _c1_of(cif: Path) -> np.ndarray:
    st = gemmi.read_structure(str(cif))
    return np.array([[a.pos.x, a.pos.y, a.pos.z] for r in st[0][0] for a in r if a.name == "C1'"])


def test_output_conformations_round_robin():
    assert output_conformations(5, 5) == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]
    assert output_conformations(1, 3) == [(1, 0), (1, 1), (1, 2)]
    assert output_conformations(2, 5) == [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2)]


def test_submission_refines_end_to_end_and_round_trips(rna_dev_dir, tmp_path, capsys):
    sub, out, table = tmp_path / "sub.csv", tmp_path / "out", tmp_path / "refined.csv"
    truth = write_submission(sub, rna_dev_dir)
    assert main(["refine", "--from-c1-csv", str(sub), "--out", str(out), "--c1-csv", str(table), *FAST]) == 0
    cap = capsys.readouterr()
    assert cap.err.strip() == "" and len(cap.out.strip().splitlines()) == 15
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}_{k}" for n in NAMES for k in range(1, 6))
    summary = json.loads((out / "R4e48_3" / "summary.json").read_text())
    assert summary["input"] == f"{sub}:R4e48_3" and summary["n_residues"] == 19
    assert summary["handedness"]["verdict"] == "right-handed"
    assert all("failed" not in r for r in summary["samples"])
    # read back by the reader: same targets, residues, resids (the gap in T1 too), 2 conformations
    back = list(iter_submission_targets(table))
    assert [b.target for b in back] == list(NAMES)
    for b in back:
        names, resids, confs = truth[b.target]
        assert b.resnames == names and list(b.resids) == resids and b.n_conformations == 2
        for j, (k, s) in enumerate(output_conformations(5, 2)):
            # conformation j is sample s of T_k, whose C1' (the given atoms) stayed on the input's
            np.testing.assert_allclose(b.coords[j], _c1_of(out / f"{b.target}_{k}" / f"sample_{s}.cif"), atol=1.5e-3)
            np.testing.assert_allclose(b.coords[j], confs[k - 1], atol=2e-3)


def test_bad_conformation_reported_others_run_and_shards_split(rna_dev_dir, tmp_path, capsys):
    sub = tmp_path / "sub.csv"
    write_submission(sub, rna_dev_dir, n_conf=2, bad=("R4e48", 2))
    out, table = tmp_path / "out", tmp_path / "refined.csv"
    assert main(["refine", "--from-c1-csv", str(sub), "--out", str(out), "--c1-csv", str(table), *FAST]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 2 and "R4e48_2" in err[0] and str(sub) in err[0] and err[1] == "rnadiff: 1 of 6 inputs failed"
    assert sorted(p.name for p in out.iterdir()) == ["R2pn3_1", "R2pn3_2", "R3tzr_1", "R3tzr_2", "R4e48_1"]
    # R4e48 needs its conformation 2 (output conformation 2 = sample 0 of R4e48_2): left out of the table
    assert [b.target for b in iter_submission_targets(table)] == ["R2pn3", "R3tzr"]
    # two shards, one process each, into one output directory: a disjoint split of the same work
    shard_out = tmp_path / "sharded"
    seen, codes = [], []
    for k in (1, 2):
        codes += [main(["refine", "--from-c1-csv", str(sub), "--out", str(shard_out), "--shard", f"{k}/2",
              "--c1-csv", str(tmp_path / f"s{k}.csv"), *FAST])]
        seen.append({p.name for p in shard_out.iterdir()})
    capsys.readouterr()
    first, second = seen[0], seen[1] - seen[0]
    assert first == {"R4e48_1"} and second == {"R2pn3_1", "R2pn3_2", "R3tzr_1", "R3tzr_2"}
    assert codes == [2, 0]  # the shard holding the bad conformation fails, the other does not
    assert not (tmp_path / "s1.csv").exists()  # no complete target in shard 1: no table
    assert [b.target for b in iter_submission_targets(tmp_path / "s2.csv")] == ["R2pn3", "R3tzr"]
    assert sorted(p.name for p in shard_out.iterdir()) == sorted(p.name for p in out.iterdir())
    for name in ("R2pn3_1", "R3tzr_2"):
        a = (out / name / "sample_1.cif").read_bytes()
        assert a == (shard_out / name / "sample_1.cif").read_bytes()


@pytest.mark.parametrize("argv, problem", [
    (["--shard", "3/2"], "1 <= K <= N"),
    (["--shard", "half"], "K/N"),
    (["--devices", "2"], "--shard"),
    (["--ss", "((...))"], "--ss"),
])
def test_submission_option_errors(tmp_path, capsys, argv, problem):
    sub = tmp_path / "sub.csv"
    sub.write_text("ID,resname,resid,x_1,y_1,z_1\nT_1,G,1,0,0,0\n")
    assert main(["refine", "--from-c1-csv", str(sub), "--out", str(tmp_path / "o"), *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0]
    assert not (tmp_path / "o").exists()


def test_inputs_and_csv_together_or_neither(tmp_path, capsys):
    sub = tmp_path / "sub.csv"
    sub.write_text("ID,resname,resid,x_1,y_1,z_1\nT_1,G,1,0,0,0\n")
    assert main(["refine", "x.pdb", "--from-c1-csv", str(sub), "--out", str(tmp_path / "o")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["refine", "--out", str(tmp_path / "o")]) == 2
    assert "--from-c1-csv" in capsys.readouterr().err
    assert main(["refine", "x.pdb", "--shard", "1/2", "--out", str(tmp_path / "o")]) == 2
    assert "--shard" in capsys.readouterr().err
