"""After sampling: superposition on the given atoms, the given atoms kept, the geometry polish,
optional energy minimization, and the per-atom spread (B-factors) of what is finally returned.

Given atoms (`given_tolerance`):
- a number t >= 0 (exact inputs; default 0): each sample is superposed onto the input's given
  atoms, every given atom is put back within t Å of its input position (t = 0: exactly onto it),
  and the new atoms are relaxed against the fixed given ones (bond lengths, angles, base planes of
  the monomer library, tethered to the sample). After an optional minimization the same is done
  again, so the output never holds a given atom further than t from the input.
- None (noisy inputs): the given atoms move with the rest; the sample is polished, superposed
  and optionally minimized.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rnadiff.chem.regularize import PolishRestraints, PolishSettings, polish_samples
from rnadiff.geometry.superpose import kabsch


@dataclass(frozen=True)
class Polish:
    """The geometry polish (`rnadiff.chem.regularize`): tether σ in Å, L-BFGS iterations."""

    enabled: bool = True
    tether: float = 0.3
    max_iter: int = 300


def superpose_on_given(samples: np.ndarray, target: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """samples [S, N, 3] moved so their given atoms best match target [N, 3] (given [N] bool).

    With fewer than 3 given atoms only the centroid is matched (no defined rotation). Returns
    (superposed samples [S, N, 3], RMSD of the given atoms per sample [S]).
    """
    out = np.empty_like(samples, dtype=np.float64)
    g = np.asarray(given, bool)
    for k, x in enumerate(np.asarray(samples, np.float64)):
        if g.sum() >= 3:
            rot, t = kabsch(x[g], target[g])
            out[k] = x @ rot.T + t
        elif g.any():
            out[k] = x - x[g].mean(0) + target[g].mean(0)
        else:
            out[k] = x
    return out, given_rmsd(out, target, g)


def given_rmsd(samples: np.ndarray, target: np.ndarray, given: np.ndarray) -> np.ndarray:
    """RMSD [S] of the given atoms of samples [S, N, 3] to target [N, 3], without superposition."""
    if not given.any():
        return np.zeros(len(samples))
    return np.sqrt(((samples[:, given] - target[given]) ** 2).sum(-1).mean(-1))


def given_max_deviation(samples: np.ndarray, target: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Largest distance [S] of a given atom of samples [S, N, 3] from its input position."""
    if not given.any():
        return np.zeros(len(samples))
    return np.sqrt(((samples[:, given] - target[given]) ** 2).sum(-1)).max(-1)


def spread(samples: np.ndarray) -> np.ndarray:
    """Per-atom spread across samples: RMS distance to the mean position (Å) [N]; 0 for one sample."""
    mean = samples.mean(0, keepdims=True)
    return np.sqrt(((samples - mean) ** 2).sum(-1).mean(0))


def clamp_given(x: np.ndarray, target: np.ndarray, given: np.ndarray, tolerance: float) -> np.ndarray:
    """x [N, 3] with every given atom moved to within `tolerance` Å of target (the nearest such point)."""
    out = x.copy()
    d = x[given] - target[given]
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    scale = np.minimum(1.0, tolerance / np.maximum(norm, 1e-12))
    out[given] = target[given] + d * scale
    return out


def polish(samples: np.ndarray, restraints: PolishRestraints, settings: Polish,
           fixed: np.ndarray | None = None) -> np.ndarray:
    """samples [S, N, 3] pulled to the restraints (tethered to each sample; all samples in one
    vectorised run). fixed [N] bool: atoms that do not move (the given atoms); the others relax
    against them."""
    options = PolishSettings(max_iter=settings.max_iter, tether=settings.tether)
    return polish_samples(np.asarray(samples, np.float64), restraints, options, fixed=fixed)


def carry_residues(x: np.ndarray, moved: np.ndarray, given: np.ndarray, atom_to_token: np.ndarray) -> np.ndarray:
    """x [N, 3] with each residue moved rigidly as its given atoms moved from x to `moved` (Kabsch
    with >= 3 given atoms, else their mean shift), so nucleotides keep their internal geometry
    when their given atoms are put back; residues without given atoms stay."""
    out = x.copy()
    for r in np.unique(atom_to_token[given]):
        atoms = atom_to_token == r
        g = atoms & given
        if g.sum() >= 3:
            rot, t = kabsch(x[g], moved[g])
            out[atoms] = x[atoms] @ rot.T + t
        else:
            out[atoms] = x[atoms] + (moved[g] - x[g]).mean(0)
    out[given] = moved[given]
    return out


def keep_given(samples: np.ndarray, target: np.ndarray, given: np.ndarray, tolerance: float,
               restraints: PolishRestraints | None, settings: Polish, atom_to_token: np.ndarray) -> np.ndarray:
    """samples [S, N, 3]: given atoms within `tolerance` of target (their residues carried along),
    the other atoms then relaxed against the fixed given ones (bonds, angles, planes, chirality
    and clashes: putting the given atoms back must not leave new atoms overlapping)."""
    samples = np.stack([carry_residues(x, clamp_given(x, target, given, tolerance), given, atom_to_token)
                        for x in samples])
    return polish(samples, restraints, settings, fixed=given) if settings.enabled else samples


def minimize_sample(layout: Any, coords: np.ndarray, config: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """OpenMM restrained minimization of one sample (`rnadiff.minimize`); (coords [N, 3], report)."""
    from rnadiff.io import build_gemmi_structure
    from rnadiff.minimize import minimize_structure

    res = minimize_structure(build_gemmi_structure(layout, coords), config=config)
    report = {k: res.report[k] for k in ("rmsd_to_start", "seconds") if k in res.report}
    return np.asarray(res.coords, np.float64), report
