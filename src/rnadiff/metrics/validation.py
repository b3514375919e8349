"""The validation report of `rnadiff evaluate`: base pairs, stacking, INF, pucker, backbone.

`annotate(table)` annotates one RNA structure: canonical pairs (cis Watson–Crick G–C/A–U and G·U
wobble, `metrics.basepairs`, the annotator training uses), every other base pair with its
Leontis–Westhof class and stacking (`metrics.interactions`), pucker and backbone outliers
(`metrics.backbone`). `validation_report(model, reference)` adds interaction network fidelity
(INF = sqrt(PPV · sensitivity), Parisien et al. 2009) of the model against the reference for
canonical pairs, non-canonical pairs (residue pair and class must match) and stacking separately;
residues are matched by chain, number and insertion code, and only residues both structures
contain are compared.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.backbone import BackboneReport, analyse_backbone
from rnadiff.metrics.basepairs import canonical_pairs, interaction_network_fidelity
from rnadiff.metrics.interactions import find_base_pairs, find_stacking
from rnadiff.metrics.nucleotides import Nucleotides


@dataclass
class Annotation:
    nts: Nucleotides
    canonical: list[tuple[int, int, str]]      # i, j, "WC" | "GU"
    non_canonical: list[tuple[int, int, str]]  # i, j, Leontis–Westhof class
    stacking: list[tuple[int, int]]
    backbone: BackboneReport

    def keyed(self) -> dict[str, set]:
        """Interactions by residue key (chain, number, icode), for comparing two structures."""
        k = self.nts.keys
        return {"canonical": {(k[i], k[j]) for i, j, _ in self.canonical},
                "non_canonical": {(k[i], k[j], lw) for i, j, lw in self.non_canonical},
                "stacking": {(k[i], k[j]) for i, j in self.stacking}}


def annotate(table: AtomTable) -> Annotation:
    """Annotate the RNA of `table` (heavy atoms; other residues must already be removed)."""
    nts = Nucleotides(table)
    canon = canonical_pairs(nts, table.coords)
    canon_ij = {(p.i, p.j) for p in canon}
    # A base in a canonical pair can still pair on its other edges (base triples).
    others = [(p.i, p.j, p.lw) for p in find_base_pairs(nts) if (p.i, p.j) not in canon_ij]
    return Annotation(nts, [(p.i, p.j, p.kind) for p in canon], others, find_stacking(nts),
                      analyse_backbone(nts))


def structure_annotation_summary(ann: Annotation, include_lists: bool = True) -> dict:
    """Counts (and, with include_lists, the interactions by residue label) of one structure."""
    lab = ann.nts.labels
    bb = ann.backbone
    puckers = Counter(p for p in bb.pucker if p is not None)
    out = {
        "canonical_pairs": len(ann.canonical),
        "non_canonical_pairs": len(ann.non_canonical),
        "non_canonical_by_class": dict(sorted(Counter(lw for _, _, lw in ann.non_canonical).items())),
        "stacking": len(ann.stacking),
        "pucker": {"C3'-endo": puckers.get("C3'-endo", 0), "C2'-endo": puckers.get("C2'-endo", 0),
                   "other": puckers.get("other", 0)},
        "pucker_outliers": len(bb.pucker_outliers),
        "backbone_torsion_outliers": {k: len(v) for k, v in bb.torsion_outliers.items()},
    }
    if include_lists:
        pairs = sorted([(i, j, "cWW", kind) for i, j, kind in ann.canonical]
                       + [(i, j, lw, None) for i, j, lw in ann.non_canonical])
        out["base_pairs"] = [{"i": lab[i], "j": lab[j], "lw": lw, "canonical": kind is not None,
                              "kind": kind} for i, j, lw, kind in pairs]
        out["stacked"] = [[lab[i], lab[j]] for i, j in ann.stacking]
        out["pucker_outlier_residues"] = [lab[t] for t in bb.pucker_outliers]
        out["backbone_outlier_residues"] = {k: [lab[t] for t in v] for k, v in bb.torsion_outliers.items()}
    return out


def validation_report(model: AtomTable, reference: AtomTable) -> dict:
    """Annotations of both structures and the model's INF against the reference."""
    m, r = annotate(model), annotate(reference)
    # Interactions of residues only one structure has (a chain the model lacks, an extra chain)
    # are not scored: INF compares the residues both contain.
    common = set(m.nts.keys) & set(r.nts.keys)
    mk, rk = ({kind: {x for x in found if x[0] in common and x[1] in common} for kind, found in a.keyed().items()}
              for a in (m, r))
    inf = {kind: round(interaction_network_fidelity(mk[kind], rk[kind]), 4) for kind in mk}
    all_m = mk["canonical"] | {(a, b) for a, b, _ in mk["non_canonical"]}
    all_r = rk["canonical"] | {(a, b) for a, b, _ in rk["non_canonical"]}
    inf["all_pairs"] = round(interaction_network_fidelity(all_m, all_r), 4)
    inf["all"] = round(interaction_network_fidelity(
        {("pair",) + p for p in all_m} | {("stack",) + s for s in mk["stacking"]},
        {("pair",) + p for p in all_r} | {("stack",) + s for s in rk["stacking"]}), 4)
    return {"model": structure_annotation_summary(m), "reference": structure_annotation_summary(r, False),
            "inf": inf}
