"""Neighbour lists in torch with a sorted cell grid: all pairs closer than a cutoff, per sample.

Never builds an N_atom x N_atom tensor. Atoms of every sample are binned into cubic cells of edge
`cutoff`; the cell keys (sample-major, so samples never mix) are sorted once, and each atom looks
up the 27 cells around its own with `searchsorted`. The candidate pairs are then expanded with
`repeat_interleave`, so memory is O(N · atoms per 27 cells), not O(N²).

Used by the clash potential: the list is built with a skin (cutoff + margin) and reused for a
few sampler steps; pairs are stored by atom index, so they stay valid in any rigid frame.
"""
from __future__ import annotations

import torch

_OFFSETS = torch.tensor([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)],
                        dtype=torch.long)


def _pair_keys(i: torch.Tensor, j: torch.Tensor, n_atom: int) -> torch.Tensor:
    return i * n_atom + j


@torch.no_grad()
def cell_list_pairs(
    x: torch.Tensor,
    cutoff: float,
    *,
    atom_mask: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs (i < j) of the same sample with |x_i - x_j| < cutoff.

    x [S, N, 3] (any float dtype; computed in float32/64 as given); atom_mask [N] or [S, N] bool
    (False atoms never pair); exclude int64 [m, 2] index pairs (i < j) to leave out (bonded).
    Returns (sample, i, j), each int64 [P], sorted by (sample, i, j).
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
    nb = key_of(cell[:, None, :] + _OFFSETS.to(device), sample[:, None])
    start = torch.searchsorted(sorted_keys, nb, right=False)
    stop = torch.searchsorted(sorted_keys, nb, right=True)
    counts = (stop - start).reshape(-1)
    m = flat.numel()
    query = torch.arange(m, device=device).repeat_interleave(27).repeat_interleave(counts)
    # position within each run: global arange minus the run's first offset
    first = torch.cumsum(counts, 0) - counts
    within = torch.arange(int(counts.sum()), device=device) - first.repeat_interleave(counts)
    cand = order[start.reshape(-1).repeat_interleave(counts) + within]
    keep = cand > query  # each unordered pair once (same sample: ids are sample-major)
    query, cand = query[keep], cand[keep]
    d2 = (pos[query] - pos[cand]).pow(2).sum(-1)
    keep = d2 < cutoff * cutoff
    gq, gc = flat[query[keep]], flat[cand[keep]]
    smp, i, j = gq // n, gq % n, gc % n
    if exclude is not None and exclude.numel():
        ex = exclude.to(device)
        ex_keys = torch.sort(_pair_keys(ex.min(1).values, ex.max(1).values, n)).values
        pk = _pair_keys(i, j, n)
        loc = torch.searchsorted(ex_keys, pk).clamp(max=ex_keys.numel() - 1)
        keep = ex_keys[loc] != pk
        smp, i, j = smp[keep], i[keep], j[keep]
    order = torch.argsort((smp * n + i) * n + j)
    return smp[order], i[order], j[order]


__all__ = ["cell_list_pairs"]
