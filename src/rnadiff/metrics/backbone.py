"""Sugar pucker and backbone-conformation outliers, the RNA checks of MolProbity.

* **Pucker** from the pseudorotation phase P of the five ribose torsions ν0…ν4 (Altona &
  Sundaralingam 1972): C3′-endo for P in [0°, 36°), C2′-endo for [144°, 180°), else "other".
* **Pucker outliers** (MolProbity, Richardson lab): the distance from the 3′ phosphate P(i+1) to
  the line of the glycosidic bond C1′–N9/N1 ("P-perp") predicts the pucker — ≥ 2.9 Å for C3′-endo,
  below for C2′-endo (Chen et al. 2010, Acta Cryst D66:12–21). A residue whose δ torsion
  (C5′–C4′–C3′–O3′) is outside the range of the predicted pucker (C3′-endo 60–105°, C2′-endo
  125–165°) is an outlier.
* **Backbone torsion outliers**: δ outside both pucker ranges and ε (C4′–C3′–O3′–P(i+1))
  outside 155–310° (the δ/ε triage of suitename, Richardson et al. 2008, RNA 14:465); α, γ, ζ
  within 25° of 0° (eclipsed, our own bound for torsions that well-determined RNA avoids).

This is not the full 46-cluster suite assignment, only the triage that flags impossible suites.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnadiff.geometry.dihedral import dihedral
from rnadiff.chem.vocab import GLYCOSIDIC_N
from rnadiff.metrics.nucleotides import Nucleotides
from rnadiff.metrics.restraints import LINK_MAX

_NU = (("C4'", "O4'", "C1'", "C2'"), ("O4'", "C1'", "C2'", "C3'"), ("C1'", "C2'", "C3'", "C4'"),
       ("C2'", "C3'", "C4'", "O4'"), ("C3'", "C4'", "O4'", "C1'"))
DELTA_C3_ENDO = (60.0, 105.0)
DELTA_C2_ENDO = (125.0, 165.0)
EPSILON_RANGE = (155.0, 310.0)
ECLIPSED_FREE = (25.0, 335.0)  # allowed range of alpha, gamma, zeta
P_PERP_C3_ENDO_MIN = 2.9  # Å


@dataclass
class BackboneReport:
    pucker: list[str | None] = field(default_factory=list)  # per residue
    phase: list[float | None] = field(default_factory=list)  # degrees
    pucker_outliers: list[int] = field(default_factory=list)
    torsion_outliers: dict[str, list[int]] = field(default_factory=dict)


def pseudorotation_phase(nts: Nucleotides, t: int) -> float | None:
    """Phase P in [0, 360) degrees, None when a ribose atom is missing."""
    nu = []
    for names in _NU:
        pts = [nts.xyz(t, n) for n in names]
        if any(p is None for p in pts):
            return None
        nu.append(np.radians(dihedral(*pts)))
    num = (nu[4] + nu[1]) - (nu[3] + nu[0])
    den = 2.0 * nu[2] * (np.sin(np.radians(36.0)) + np.sin(np.radians(72.0)))
    return float(np.degrees(np.arctan2(num, den)) % 360.0)


def pucker_class(phase: float | None) -> str | None:
    if phase is None:
        return None
    if phase < 36.0:
        return "C3'-endo"
    if 144.0 <= phase < 180.0:
        return "C2'-endo"
    return "other"


def _linked_next(nts: Nucleotides, t: int) -> int | None:
    """t + 1 when it continues t's chain through an O3′–P link (≤ LINK_MAX Å: a stretched link of
    a model is still a link, as for the bond checks)."""
    if t + 1 >= nts.n_tokens or nts.keys[t + 1][0] != nts.keys[t][0]:
        return None
    o3, p = nts.xyz(t, "O3'"), nts.xyz(t + 1, "P")
    if o3 is None or p is None or float(np.linalg.norm(o3 - p)) > LINK_MAX:
        return None
    return t + 1


def _torsion(nts: Nucleotides, spec) -> float | None:
    pts = [nts.xyz(t, n) for t, n in spec]
    return None if any(p is None for p in pts) else dihedral(*pts) % 360.0


def p_perp(nts: Nucleotides, t: int, nxt: int) -> float | None:
    """Distance of P(i+1) from the line through C1′ and the glycosidic N of residue t."""
    c1, n, p = nts.xyz(t, "C1'"), nts.xyz(t, GLYCOSIDIC_N.get(nts.parents[t], "")), nts.xyz(nxt, "P")
    if c1 is None or n is None or p is None:
        return None
    axis = (n - c1) / max(float(np.linalg.norm(n - c1)), 1e-12)
    return float(np.linalg.norm(np.cross(p - c1, axis)))


def _inside(value: float, lo_hi: tuple[float, float]) -> bool:
    return lo_hi[0] <= value <= lo_hi[1]


def analyse_backbone(nts: Nucleotides) -> BackboneReport:
    """Pucker per residue, pucker outliers and torsion outliers (residue indices)."""
    rep = BackboneReport(torsion_outliers={k: [] for k in ("alpha", "gamma", "delta", "epsilon", "zeta")})
    for t in range(nts.n_tokens):
        phase = pseudorotation_phase(nts, t)
        rep.phase.append(None if phase is None else round(phase, 1))
        rep.pucker.append(pucker_class(phase))
        nxt = _linked_next(nts, t)
        prev_linked = t > 0 and _linked_next(nts, t - 1) == t
        delta = _torsion(nts, [(t, "C5'"), (t, "C4'"), (t, "C3'"), (t, "O3'")])
        if delta is not None and not (_inside(delta, DELTA_C3_ENDO) or _inside(delta, DELTA_C2_ENDO)):
            rep.torsion_outliers["delta"].append(t)
        gamma = _torsion(nts, [(t, "O5'"), (t, "C5'"), (t, "C4'"), (t, "C3'")])
        if gamma is not None and not _inside(gamma, ECLIPSED_FREE):
            rep.torsion_outliers["gamma"].append(t)
        if prev_linked:
            alpha = _torsion(nts, [(t - 1, "O3'"), (t, "P"), (t, "O5'"), (t, "C5'")])
            if alpha is not None and not _inside(alpha, ECLIPSED_FREE):
                rep.torsion_outliers["alpha"].append(t)
        if nxt is None:
            continue
        eps = _torsion(nts, [(t, "C4'"), (t, "C3'"), (t, "O3'"), (nxt, "P")])
        if eps is not None and not _inside(eps, EPSILON_RANGE):
            rep.torsion_outliers["epsilon"].append(t)
        zeta = _torsion(nts, [(t, "C3'"), (t, "O3'"), (nxt, "P"), (nxt, "O5'")])
        if zeta is not None and not _inside(zeta, ECLIPSED_FREE):
            rep.torsion_outliers["zeta"].append(t)
        perp = p_perp(nts, t, nxt)
        if perp is not None and delta is not None:
            expected = DELTA_C3_ENDO if perp >= P_PERP_C3_ENDO_MIN else DELTA_C2_ENDO
            if not _inside(delta, expected):
                rep.pucker_outliers.append(t)
    return rep
