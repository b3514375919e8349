"""Re-attach a 5'-phosphate that stayed out of the force field, with library geometry.

Moving the input P/OP1/OP2/OP3 rigidly with the residue would keep whatever distortion the input
had (a noisy model keeps a noisy phosphate). Instead the group is rebuilt from internal
coordinates: bond lengths and angles from the library template, the torsions C4'-C5'-O5'-P and
C5'-O5'-P-OP1 from the input (so the phosphate points where it did), the other oxygens at the
template's torsion offsets from OP1.
"""
from __future__ import annotations

import numpy as np

from rnadiff.chem.library import get_template
from rnadiff.geometry.dihedral import dihedral

GROUP = ("P", "OP1", "OP2", "OP3")


def place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle_deg: float,
          torsion_deg: float) -> np.ndarray:
    """NeRF: the atom d with |cd| = bond, angle(b, c, d) and torsion(a, b, c, d) given."""
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    ang, tor = np.radians(angle_deg), np.radians(torsion_deg)
    d2 = np.array([-bond * np.cos(ang), bond * np.sin(ang) * np.cos(tor), bond * np.sin(ang) * np.sin(tor)])
    return c + d2[0] * bc + d2[1] * m + d2[2] * n


def _ideal(tmpl, kind: str, names: tuple[str, ...]) -> float:
    idx = [tmpl.index[n] for n in names]
    rows = np.asarray(tmpl.bonds if kind == "bond" else tmpl.angles).tolist()
    vals = tmpl.bond_lengths if kind == "bond" else tmpl.angle_values
    for row, v in zip(rows, vals):
        if row == idx or row == idx[::-1]:
            return float(v)
    x = np.asarray(tmpl.ideal_coords, float)[idx]
    if kind == "bond":
        return float(np.linalg.norm(x[0] - x[1]))
    u, w = x[0] - x[1], x[2] - x[1]
    return float(np.degrees(np.arccos(np.dot(u, w) / np.linalg.norm(u) / np.linalg.norm(w))))


def rebuild_5p_group(parent: str, new: dict[str, np.ndarray], old: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """New positions of the phosphate atoms present in `old` (input coordinates by name), given
    the minimized residue atoms `new`; None when C4'/C5'/O5' are not all there."""
    if not all(n in new for n in ("C4'", "C5'", "O5'")) or not all(n in old for n in ("C4'", "C5'", "O5'", "P")):
        return None
    tmpl = get_template(parent)
    ideal = np.asarray(tmpl.ideal_coords, float)
    c4, c5, o5 = new["C4'"], new["C5'"], new["O5'"]
    out = {"P": place(c4, c5, o5, _ideal(tmpl, "bond", ("O5'", "P")), _ideal(tmpl, "angle", ("C5'", "O5'", "P")),
                      dihedral(old["C4'"], old["C5'"], old["O5'"], old["P"]))}
    ref = next((n for n in ("OP1", "OP2", "OP3") if n in old), None)
    if ref is None:
        return out
    base_tor = dihedral(old["C5'"], old["O5'"], old["P"], old[ref])
    ideal_ref = dihedral(*(ideal[tmpl.index[n]] for n in ("C5'", "O5'", "P", ref)))
    for name in ("OP1", "OP2", "OP3"):
        if name not in old or not tmpl.has(name):
            continue
        offset = dihedral(*(ideal[tmpl.index[n]] for n in ("C5'", "O5'", "P", name))) - ideal_ref
        out[name] = place(c5, o5, out["P"], _ideal(tmpl, "bond", ("P", name)),
                          _ideal(tmpl, "angle", ("O5'", "P", name)), base_tor + offset)
    return out
