"""Chain-break detection between consecutive residues of one chain.

Rule, in order of the evidence available for a pair (i-1, i):
1. O3'(i-1) and P(i) both present: break iff their distance > `MAX_LINK_DISTANCE` (2.0 Å).
2. Otherwise (coarse input), a gap in the file numbering (seq_num(i) - seq_num(i-1) > 1) is a
   break, and so is a C1'(i-1)-C1'(i) distance above `MAX_C1_DISTANCE`.
The featurizer never links residues across a break (no O3'-P bond, residue_index jumps).
"""
from __future__ import annotations

import numpy as np

MAX_LINK_DISTANCE = 2.0
# Linked neighbours in the dev set (O3'-P <= 2 Å) have C1'-C1' up to 10.8 Å (99.9th pct 9.9 Å).
MAX_C1_DISTANCE = 12.0


def _dist(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    return float(np.linalg.norm(a - b))


def is_break(prev, cur) -> bool:
    """True when residue `cur` is not covalently linked to `prev` (both `io.structure.Residue`)."""
    d = _dist(prev.coord("O3'"), cur.coord("P"))
    if d is not None:
        return d > MAX_LINK_DISTANCE
    if cur.seq_num - prev.seq_num > 1:
        return True
    d = _dist(prev.coord("C1'"), cur.coord("C1'"))
    return d is not None and d > MAX_C1_DISTANCE


def mark_chain_breaks(residues: list) -> int:
    """Set `chain_break_before` on each residue of one chain (first residue: False). Returns the
    number of breaks."""
    n = 0
    for i, r in enumerate(residues):
        r.chain_break_before = i > 0 and is_break(residues[i - 1], r)
        n += r.chain_break_before
    return n
