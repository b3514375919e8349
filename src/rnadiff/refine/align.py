"""Superpose samples onto the input's given atoms (Kabsch on the given atoms only)."""
from __future__ import annotations

import numpy as np

from rnadiff.metrics.superpose import kabsch


def superpose_on_given(samples: np.ndarray, target: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """samples [S, N, 3] moved so their given atoms best match target [N, 3] (given [N] bool).

    With fewer than 3 given atoms only the centroid is matched (no defined rotation). Returns
    (superposed samples [S, N, 3], RMSD of the given atoms per sample [S]).
    """
    out = np.empty_like(samples, dtype=np.float64)
    rmsd = np.zeros(samples.shape[0])
    g = np.asarray(given, bool)
    for k, x in enumerate(np.asarray(samples, np.float64)):
        if g.sum() >= 3:
            rot, t = kabsch(x[g], target[g])
            out[k] = x @ rot.T + t
        elif g.any():
            out[k] = x - x[g].mean(0) + target[g].mean(0)
        else:
            out[k] = x
        rmsd[k] = float(np.sqrt(((out[k][g] - target[g]) ** 2).sum(-1).mean())) if g.any() else 0.0
    return out, rmsd


def spread(samples: np.ndarray) -> np.ndarray:
    """Per-atom spread across samples: RMS distance to the mean position (Å) [N]; 0 for one sample."""
    mean = samples.mean(0, keepdims=True)
    return np.sqrt(((samples - mean) ** 2).sum(-1).mean(0))
