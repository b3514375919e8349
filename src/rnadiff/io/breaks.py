"""Chain-break detection between consecutive residues of one chain: the one rule of what counts as
a covalent O3'–P link (the featurizer, the metrics and the minimization's segments read it here).

Rule, in order of the evidence available for a pair (i-1, i):
1. O3'(i-1) and P(i) both present: break iff their distance exceeds `MAX_LINK_DISTANCE` (4.0 Å),
   or `MAX_LINK_DISTANCE_ACROSS_GAP` (2.0 Å) where the file numbering skips residues.
2. Otherwise (coarse input), a gap in the file numbering (seq_num(i) - seq_num(i-1) > 1) is a
   break, and so is a C1'(i-1)-C1'(i) distance above `MAX_C1_DISTANCE`.
The featurizer never links residues across a break (no O3'-P bond, residue_index jumps).

Why 4.0 Å: an O3'–P link is 1.6 Å; in the 555 dev/extra chains no consecutively numbered pair has
one between 2.0 and 5.5 Å (the real breaks there: 40, all beyond 5.5 Å), so a stretched link is a
link, e.g. of a predicted or noisy model (Gaussian noise of 0.5 Å per axis stretches 44% of the
links beyond 2.0 Å and 0.1% beyond 4.0 Å). Across a numbering gap one real break sits between 2.0
and 4.0 Å, so there only a well-formed link (<= 2.0 Å, a renumbered chain) counts.
(benchmarks/results/input_noise_calibration.md)
"""
from __future__ import annotations

import numpy as np

MAX_LINK_DISTANCE = 4.0
MAX_LINK_DISTANCE_ACROSS_GAP = 2.0
# Linked neighbours in the dev set (O3'-P <= 2 Å) have C1'-C1' up to 10.8 Å (99.9th pct 9.9 Å).
MAX_C1_DISTANCE = 12.0


def _dist(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    return float(np.linalg.norm(a - b))


def breaks_link(o3_p: float | None, numbering_gap: bool, c1_c1: float | None) -> bool:
    """The rule on its evidence: O3'(i-1)–P(i) and C1'–C1' distances (None: an atom absent) and
    whether the numbering skips residues between them."""
    if o3_p is not None:
        return o3_p > (MAX_LINK_DISTANCE_ACROSS_GAP if numbering_gap else MAX_LINK_DISTANCE)
    if numbering_gap:
        return True
    return c1_c1 is not None and c1_c1 > MAX_C1_DISTANCE


def is_break(prev, cur) -> bool:
    """True when residue `cur` is not covalently linked to `prev` (both `io.structure.Residue`)."""
    return breaks_link(_dist(prev.coord("O3'"), cur.coord("P")), cur.seq_num - prev.seq_num > 1,
                       _dist(prev.coord("C1'"), cur.coord("C1'")))


def mark_chain_breaks(residues: list) -> int:
    """Set `chain_break_before` on each residue of one chain (first residue: False). Returns the
    number of breaks."""
    n = 0
    for i, r in enumerate(residues):
        r.chain_break_before = i > 0 and is_break(residues[i - 1], r)
        n += r.chain_break_before
    return n
