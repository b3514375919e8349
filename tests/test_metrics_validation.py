"""Validation report (issue 18 item 6): base pairs with Leontis–Westhof class, stacking, INF,
sugar pucker and backbone outliers, checked against RNApolis and against known geometry."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from rnadiff.metrics import AtomTable
from rnadiff.metrics.backbone import pseudorotation_phase, pucker_class
from rnadiff.metrics.composition import split_rna
from rnadiff.metrics.nucleotides import Nucleotides
from rnadiff.metrics.validation import annotate, validation_report

DATA = Path(__file__).parent / "data"
TRNA = "clean/rsrnasp1_train/1fir_A.pdb"  # 76 nt, many non-canonical pairs
RNAPOLIS = DATA / "rnapolis_1fir_A.csv"   # annotated by RNApolis 0.11.5 (tests/data/README.md)
_RES = re.compile(r"^(?P<chain>[^.]+)\.(?P<name>.*?)(?P<num>-?\d+)$")


def _key(text):
    m = _RES.match(text)
    return m["chain"], int(m["num"]), ""


def _rnapolis():
    pairs, stacking = {}, set()
    for row in csv.DictReader(RNAPOLIS.open()):
        a, b, lw = _key(row["nt1"]), _key(row["nt2"]), row["classification-1"]
        if b < a:
            a, b, lw = b, a, lw[0] + lw[2] + lw[1]
        if row["type"] == "base pair":
            pairs[(a, b)] = lw
        elif row["type"] == "stacking":
            stacking.add((a, b))
    return pairs, stacking


@pytest.fixture(scope="module")
def trna(rna_dev_dir) -> AtomTable:
    return split_rna(AtomTable.from_file(rna_dev_dir / TRNA).heavy())[0]


def test_pairs_and_stacking_agree_with_rnapolis(trna):
    ann = annotate(trna)
    k = ann.nts.keys
    ours = {(k[i], k[j]): "cWW" for i, j, _ in ann.canonical}
    ours.update({(k[i], k[j]): lw for i, j, lw in ann.non_canonical})
    ref_pairs, ref_stack = _rnapolis()
    both = set(ours) & set(ref_pairs)
    assert len(both) / len(ours) >= 0.9 and len(both) / len(ref_pairs) >= 0.85
    assert np.mean([ours[p] == ref_pairs[p] for p in both]) >= 0.9  # same LW class
    stack = {(k[i], k[j]) for i, j in ann.stacking}
    assert len(stack & ref_stack) / len(stack) >= 0.85 and len(stack & ref_stack) / len(ref_stack) >= 0.85
    # The acceptor stem G1–C72 … is canonical; the tertiary G18–PSU55 pair is trans W/W.
    assert ((("A", 1, ""), ("A", 72, "")) in ours and ours[(("A", 18, ""), ("A", 55, ""))] == "tWW")


def test_inf_is_one_against_itself_and_drops_when_a_stem_opens(trna):
    same = validation_report(trna, trna)
    assert all(v == 1.0 for v in same["inf"].values())
    assert same["model"]["canonical_pairs"] >= 18 and same["model"]["non_canonical_pairs"] >= 8
    # Pull residues 1-7 (the 5' half of the acceptor stem) 6 Å away: their pairs and stacks break.
    moved = trna.coords.copy()
    moved[trna.res_seqs <= 7] += np.array([6.0, 0.0, 0.0])
    report = validation_report(trna.with_coords(moved), trna)
    assert report["inf"]["canonical"] < 0.95
    assert report["inf"]["stacking"] < 1.0
    assert report["model"]["canonical_pairs"] <= same["model"]["canonical_pairs"] - 5


def test_pucker_of_an_a_form_crystal_and_of_its_mirror(trna):
    nts = Nucleotides(trna)
    phases = [pseudorotation_phase(nts, t) for t in range(nts.n_tokens)]
    classes = [pucker_class(p) for p in phases]
    assert classes.count("C3'-endo") / len(classes) >= 0.75  # A-form RNA is C3'-endo
    # A mirror image negates every ring torsion, which shifts the phase by 180 degrees.
    mirror = Nucleotides(trna.with_coords(trna.coords * np.array([-1.0, 1.0, 1.0])))
    for t in range(nts.n_tokens):
        shifted = pseudorotation_phase(mirror, t)
        assert abs(((shifted - phases[t]) % 360.0) - 180.0) < 1e-6


def test_backbone_outliers_are_rare_in_a_crystal_and_flagged_when_a_sugar_is_bent(trna):
    report = validation_report(trna, trna)["model"]
    n = report["pucker"]["C3'-endo"] + report["pucker"]["C2'-endo"] + report["pucker"]["other"]
    assert sum(report["backbone_torsion_outliers"].values()) <= 0.15 * n  # tRNA: a few real ones
    # Turn O3' of residue 3 (acceptor stem) by 90 degrees about the C4'-C3' bond: delta leaves both pucker
    # ranges, so it is a torsion outlier and disagrees with the P-perp pucker prediction.
    res3 = np.nonzero(trna.res_seqs == 3)[0]
    at = {n: k for n, k in zip(trna.atom_names[res3].tolist(), res3.tolist())}
    coords = trna.coords.copy()
    axis = coords[at["C3'"]] - coords[at["C4'"]]
    axis /= np.linalg.norm(axis)
    v = coords[at["O3'"]] - coords[at["C3'"]]
    c, s_ = np.cos(np.radians(90.0)), np.sin(np.radians(90.0))
    coords[at["O3'"]] = coords[at["C3'"]] + v * c + np.cross(axis, v) * s_ + axis * np.dot(axis, v) * (1 - c)
    bent = validation_report(trna.with_coords(coords), trna)["model"]
    label = trna.residue_label(int(trna.residue_index[res3[0]]))
    assert label in bent["backbone_outlier_residues"]["delta"]
    assert label not in report["backbone_outlier_residues"]["delta"]
    assert label in bent["pucker_outlier_residues"] and label not in report["pucker_outlier_residues"]


def test_report_keys_are_stable(trna):
    out = validation_report(trna, trna)
    assert set(out) == {"model", "reference", "inf"}
    assert set(out["inf"]) == {"canonical", "non_canonical", "stacking", "all_pairs", "all"}
    assert {"canonical_pairs", "non_canonical_pairs", "non_canonical_by_class", "stacking", "pucker",
            "pucker_outliers", "backbone_torsion_outliers", "base_pairs", "stacked",
            "pucker_outlier_residues", "backbone_outlier_residues"} == set(out["model"])
    pair = out["model"]["base_pairs"][0]
    assert set(pair) == {"i", "j", "lw", "canonical", "kind"}


def test_inf_compares_only_residues_both_structures_contain(trna):
    part = trna.subset(np.nonzero(trna.res_seqs <= 40)[0])  # the reference lacks residues 41-76
    report = validation_report(trna, part)
    assert all(v == 1.0 for v in report["inf"].values())
    assert report["model"]["canonical_pairs"] > report["reference"]["canonical_pairs"]
