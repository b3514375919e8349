"""Neighbour search with a cell list: all pairs closer than a cutoff, in numpy and in torch.

Never builds an N x N matrix: atoms are binned into cubic cells of edge `cutoff`, sorted by cell
key, and each atom only looks at the 27 cells around its own via `searchsorted`. The numpy form
processes queries in chunks so that the candidate list stays bounded for large structures; the
torch form works on a batch of samples at once (cell keys are sample-major, so samples never mix)
and expands candidates with `repeat_interleave`, O(N · atoms per 27 cells) memory. The sampler's
clash guidance builds its list with a skin and reuses it for a few steps: pairs are atom indices,
so they stay valid in any rigid frame.
"""
from __future__ import annotations

import numpy as np
import torch

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


_OFFSETS_TORCH = torch.from_numpy(_OFFSETS)


@torch.no_grad()
def neighbor_pairs_torch(
    x: torch.Tensor,
    cutoff: float,
    *,
    atom_mask: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs (i < j) of the same sample with |x_i - x_j| < cutoff.

    x [S, N, 3] (any float dtype; computed in float32/64 as given); atom_mask [N] or [S, N] bool
    (False atoms never pair); exclude int64 [m, 2] index pairs (i < j) to leave out (bonded).
    Returns (sample, i, j), each int64 [P], sorted by (sample, i, j). Non-finite atoms never pair.
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    s, n, _ = x.shape
    device = x.device
    x = x.detach()
    ok = torch.isfinite(x).all(-1)  # [S, N]
    if atom_mask is not None:
        ok = ok & atom_mask.to(device=device, dtype=torch.bool).expand(s, n)
    flat = torch.nonzero(ok.reshape(-1)).squeeze(-1)  # global ids s*N + i of usable atoms
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if flat.numel() < 2:
        return empty, empty, empty
    pos = x.reshape(-1, 3)[flat]
    sample = flat // n
    cell = torch.floor((pos - pos.min(0).values) / cutoff).long() + 1  # >= 1 so that -1 stays >= 0
    dims = cell.max(0).values + 2  # room for the +1 neighbour of the highest cell
    per_sample = int(dims.prod())

    def key_of(c: torch.Tensor, smp: torch.Tensor) -> torch.Tensor:
        return smp * per_sample + (c[..., 0] * dims[1] + c[..., 1]) * dims[2] + c[..., 2]

    keys = key_of(cell, sample)
    order = torch.argsort(keys, stable=True)
    sorted_keys = keys[order]
    # [M, 27] keys of the neighbour cells of every atom
    nb = key_of(cell[:, None, :] + _OFFSETS_TORCH.to(device), sample[:, None])
    start = torch.searchsorted(sorted_keys, nb, right=False)
    stop = torch.searchsorted(sorted_keys, nb, right=True)
    counts = (stop - start).reshape(-1)
    query = torch.arange(flat.numel(), device=device).repeat_interleave(27).repeat_interleave(counts)
    # position within each run: global arange minus the run's first offset
    first = torch.cumsum(counts, 0) - counts
    within = torch.arange(int(counts.sum()), device=device) - first.repeat_interleave(counts)
    cand = order[start.reshape(-1).repeat_interleave(counts) + within]
    keep = cand > query  # each unordered pair once (same sample: ids are sample-major)
    query, cand = query[keep], cand[keep]
    keep = (pos[query] - pos[cand]).pow(2).sum(-1) < cutoff * cutoff
    gq, gc = flat[query[keep]], flat[cand[keep]]
    smp, i, j = _drop_excluded(gq // n, gq % n, gc % n, exclude, n)
    order = torch.argsort((smp * n + i) * n + j)
    return smp[order], i[order], j[order]


def _drop_excluded(smp: torch.Tensor, i: torch.Tensor, j: torch.Tensor, exclude: torch.Tensor | None,
                   n_atom: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leave out the pairs (i < j) listed in `exclude` [m, 2] (either order), in every sample."""
    if exclude is None or not exclude.numel():
        return smp, i, j
    ex = exclude.to(i.device)
    ex_keys = torch.sort(ex.min(1).values * n_atom + ex.max(1).values).values
    pair_keys = i * n_atom + j
    loc = torch.searchsorted(ex_keys, pair_keys).clamp(max=ex_keys.numel() - 1)
    keep = ex_keys[loc] != pair_keys
    return smp[keep], i[keep], j[keep]
