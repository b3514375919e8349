"""Order a structure's samples: fewest asserted base pairs missed, then the most central sample first.

A user who takes one model takes sample 0. With several samples drawn, the one closest on average to
the others (the medoid of the all-atom RMSD) is a better single pick than an arbitrary draw: the
samples share what the input determines and differ where the model is unsure, and the medoid sits
in the middle of that spread instead of at one of its edges. On the 40 held-out chains of
`benchmarks/reconstruct.py` (5 samples, session 6) the medoid's RMSD was below the first draw's
from C1′ and P inputs and the same from 3-bead and backbone inputs
(`benchmarks/results/sample_ranking.md`). Ties keep the draw order, so one sample or identical
samples are left as drawn.

The samples are compared as returned by the pipeline: superposed on the given atoms, so no further
fit is made (it would also hide a sample that turned as a whole against the input).

Before centrality comes the base-pair prior: a sample that leaves fewer of the asserted pairs (a
`--ss` secondary structure, else the pairs read from the input) unformed ranks first. The polish
builds every asserted pair, so the samples usually agree; when one fails a pair, it is the worse
pick: on 30 training chains of 15-130 nt (5 samples, stage 6, session 8) it changed 8 of 120 picks and
canonical INF from C1′ 0.963 -> 0.966, 3-bead 0.980 -> 0.985, P and backbone equal, RMSD within
±0.003 Å.
"""
from __future__ import annotations

import numpy as np

from rnadiff.metrics.basepairs import canonical_pairs, pair_set


def consensus_rmsd(samples: np.ndarray) -> np.ndarray:
    """[S] mean all-atom RMSD (Å) of each of samples [S, N, 3] to the other samples; 0 for one sample.
    A non-finite sample scores inf (it never ranks ahead of a finite one) and is left out of the
    others' means."""
    s = len(samples)
    if s < 2:
        return np.zeros(s)
    x = np.asarray(samples, np.float64)
    finite = np.isfinite(x).all(axis=(1, 2))
    x = np.where(finite[:, None, None], x, 0.0)
    d = np.zeros((s, s))
    for i in range(s):  # S is a handful: direct differences, exact for identical samples
        d[i, i + 1:] = np.sqrt(((x[i + 1:] - x[i]) ** 2).sum(-1).mean(-1))
    d = d + d.T
    others = np.maximum(finite.sum() - finite, 1)  # finite samples besides each one
    score = (d * finite[None]).sum(1) / others
    return np.where(finite, score, np.inf)


def pairs_missed(layout, samples: np.ndarray, asserted: set[tuple[int, int]]) -> np.ndarray:
    """[S] how many of the asserted pairs (i < j) each sample does not form (canonical pairs by
    `rnadiff.metrics.basepairs`); a non-finite sample misses them all."""
    out = np.full(len(samples), len(asserted))
    if not asserted:
        return out
    for k, x in enumerate(samples):
        if np.isfinite(x).all():
            out[k] = len(asserted - pair_set(canonical_pairs(layout, x)))
    return out


def rank_order(consensus: np.ndarray, missed: np.ndarray | None = None) -> np.ndarray:
    """[S] draw indices, fewest missed pairs first (`pairs_missed`; none given: all equal), then
    least consensus RMSD, ties in draw order."""
    consensus = np.asarray(consensus)
    missed = np.zeros(len(consensus)) if missed is None else np.asarray(missed)
    return np.lexsort((consensus, missed))


def consensus_order(samples: np.ndarray, missed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(order [S]: `rank_order`; consensus RMSD [S] of each sample in draw order)."""
    score = consensus_rmsd(samples)
    return rank_order(score, missed), score
