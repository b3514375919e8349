"""Neighbour search with a cell list: all pairs closer than a cutoff.

Never builds an N x N matrix: atoms are binned into cubic cells of edge `cutoff`, sorted by cell
key, and each atom only looks at the 27 cells around its own via `searchsorted`; queries are
processed in chunks so that the candidate list stays bounded for large structures.
"""
from __future__ import annotations

import numpy as np

# The 27 neighbour-cell offsets.
_OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)],
                    dtype=np.int64)


def neighbor_pairs(coords: np.ndarray, cutoff: float, chunk_size: int = 2048,
                   return_distances: bool = False):
    """Unordered pairs (i < j) with |x_i - x_j| < cutoff.

    Returns (i, j) int64 arrays, plus the distances when `return_distances`.
    Non-finite coordinates never form pairs.
    """
    return cross_pairs(coords, coords, cutoff, chunk_size, return_distances, same=True)


def cross_pairs(query: np.ndarray, target: np.ndarray, cutoff: float, chunk_size: int = 2048,
                return_distances: bool = False, same: bool = False):
    """Pairs (q, t) with |query_q - target_t| < cutoff; with `same`, only q < t (one set)."""
    if cutoff <= 0:
        raise ValueError("cutoff must be positive")
    query = np.asarray(query, dtype=np.float64).reshape(-1, 3)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 3)
    empty = np.empty(0, np.int64)
    t_ok = np.nonzero(np.isfinite(target).all(axis=1))[0]
    q_ok = np.nonzero(np.isfinite(query).all(axis=1))[0]
    if len(t_ok) == 0 or len(q_ok) == 0:
        return (empty, empty, np.empty(0)) if return_distances else (empty, empty)

    origin = target[t_ok].min(axis=0)
    # Cells are offset by one so that the -1 neighbour of the lowest cell is still >= 0 and
    # the linear key of a neighbour never wraps into an unrelated row.
    t_cell = np.floor((target[t_ok] - origin) / cutoff).astype(np.int64) + 1
    dims = t_cell.max(axis=0) + 2
    strides = np.array([dims[1] * dims[2], dims[2], 1], dtype=np.int64)
    t_key = t_cell @ strides
    order = np.argsort(t_key, kind="stable")
    sorted_key = t_key[order]
    sorted_atom = t_ok[order]

    q_cell = np.floor((query[q_ok] - origin) / cutoff).astype(np.int64) + 1
    # Query atoms outside the target's box (beyond one cell) have no neighbours.
    inside = np.all((q_cell >= 0) & (q_cell <= dims - 1), axis=1)
    q_ok, q_cell = q_ok[inside], q_cell[inside]
    off_keys = _OFFSETS @ strides

    out_i, out_j, out_d = [], [], []
    cut2 = cutoff * cutoff
    for start in range(0, len(q_ok), chunk_size):
        qa = q_ok[start:start + chunk_size]
        qk = q_cell[start:start + chunk_size] @ strides
        nk = (qk[:, None] + off_keys[None, :]).ravel()  # [chunk*27]
        lo = np.searchsorted(sorted_key, nk, side="left")
        hi = np.searchsorted(sorted_key, nk, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            continue
        qi = np.repeat(np.repeat(qa, 27), counts)
        # positions lo..hi-1 for each run, flattened without a Python loop
        run_start = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        tj = sorted_atom[run_start + np.arange(total)]
        if same:
            keep = qi < tj
            qi, tj = qi[keep], tj[keep]
        diff = query[qi] - target[tj]
        d2 = np.einsum("ij,ij->i", diff, diff)
        keep = d2 < cut2
        out_i.append(qi[keep])
        out_j.append(tj[keep])
        if return_distances:
            out_d.append(np.sqrt(d2[keep]))
    if not out_i:
        return (empty, empty, np.empty(0)) if return_distances else (empty, empty)
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    if return_distances:
        return i, j, np.concatenate(out_d)
    return i, j
