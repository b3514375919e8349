"""Residue (token) <-> atom bridging, vectorised.

Tokens are residues; atoms meet tokens only through `atom_to_token_idx`. Both directions are a
single gather / scatter: no Python loops over atoms, and never an N_atom x N_atom tensor.

Shapes: `atom_to_token_idx` is [*batch, N_atom]. The token or atom tensors may carry extra
dimensions between the batch and the feature axes (typically N_sample):
x_token [*batch, *extra, N_token, C] and x_atom [*batch, *extra, N_atom, C].
"""
from __future__ import annotations

import torch


def _index_for(x: torch.Tensor, atom_to_token_idx: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Reshape idx [*batch, N] to broadcast against x [*batch, *extra, rows, C]."""
    n_batch = atom_to_token_idx.dim() - 1
    n_extra = x.dim() - 2 - n_batch
    if n_extra < 0:
        raise ValueError(
            f"atom_to_token_idx has {n_batch} batch dims but the tensor {tuple(x.shape)} has fewer"
        )
    if x.shape[:n_batch] != atom_to_token_idx.shape[:n_batch]:
        raise ValueError(
            f"batch dims differ: tensor {tuple(x.shape)} vs atom_to_token_idx {tuple(atom_to_token_idx.shape)}"
        )
    idx = atom_to_token_idx.reshape(*atom_to_token_idx.shape[:-1], *([1] * n_extra), n_rows, 1)
    return idx


def broadcast_token_to_atom(x_token: torch.Tensor, atom_to_token_idx: torch.Tensor) -> torch.Tensor:
    """Gather token features onto their atoms: [*b, *e, N_token, C] -> [*b, *e, N_atom, C]."""
    n_atom = atom_to_token_idx.shape[-1]
    if atom_to_token_idx.dim() == 1:
        return x_token.index_select(-2, atom_to_token_idx)
    idx = _index_for(x_token, atom_to_token_idx, n_atom)
    idx = idx.expand(*x_token.shape[:-2], n_atom, x_token.shape[-1])
    return torch.gather(x_token, -2, idx)


def aggregate_atom_to_token(
    x_atom: torch.Tensor,
    atom_to_token_idx: torch.Tensor,
    n_token: int,
    atom_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Masked mean of atom features per token: [*b, *e, N_atom, C] -> [*b, *e, N_token, C].

    Atoms with `atom_mask == 0` (padding) contribute nothing; a token without atoms gets zeros.
    """
    n_atom = atom_to_token_idx.shape[-1]
    if x_atom.shape[-2] != n_atom:
        raise ValueError(f"x_atom has {x_atom.shape[-2]} atoms but atom_to_token_idx has {n_atom}")
    idx = _index_for(x_atom, atom_to_token_idx, n_atom)
    weights = torch.ones_like(atom_to_token_idx, dtype=x_atom.dtype)
    if atom_mask is not None:
        weights = atom_mask.to(x_atom.dtype)
        x_atom = x_atom * weights.reshape(idx.shape[:-1] + (1,))
    out_shape = (*x_atom.shape[:-2], n_token, x_atom.shape[-1])
    total = x_atom.new_zeros(out_shape).scatter_add_(-2, idx.expand_as(x_atom), x_atom)
    count_shape = (*atom_to_token_idx.shape[:-1], n_token)
    count = weights.new_zeros(count_shape).scatter_add_(-1, atom_to_token_idx, weights)
    count = count.reshape(*count.shape[:-1], *([1] * (x_atom.dim() - 1 - atom_to_token_idx.dim())), n_token, 1)
    return total / count.clamp(min=1.0)


def validate_atom_to_token(
    atom_to_token_idx: torch.Tensor,
    n_token: int,
    atoms_per_token: torch.Tensor | None = None,
    atom_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Check an atom->token map [N_atom] (unbatched) and return the atom count per token [N_token].

    Raises ValueError when an index is out of range, the atoms of a token are not contiguous and
    in token order, a token has no atom, or (given `atoms_per_token`) the counts disagree. Never
    redistributes atoms proportionally: a count mismatch means two layouts disagree, a bug to
    report, not to paper over. `atom_mask` [N_atom] excludes padding atoms from the checks.
    """
    idx = atom_to_token_idx
    if idx.dim() != 1:
        raise ValueError(f"atom_to_token_idx must be 1-D, got shape {tuple(idx.shape)}")
    if atom_mask is not None:
        idx = idx[atom_mask.bool()]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_token):
        raise ValueError(f"atom_to_token_idx has values outside [0, {n_token})")
    if idx.numel() > 1 and bool((idx[1:] < idx[:-1]).any()):
        raise ValueError("atom_to_token_idx is not non-decreasing: a token's atoms must be contiguous")
    counts = torch.bincount(idx, minlength=n_token)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise ValueError(f"tokens without atoms: {empty}")
    if atoms_per_token is not None:
        expected = torch.as_tensor(atoms_per_token, dtype=counts.dtype)
        if expected.shape != counts.shape or bool((expected != counts).any()):
            bad = torch.nonzero(expected != counts).flatten()[:5].tolist() if expected.shape == counts.shape else "shape"
            raise ValueError(f"atom counts per token disagree with the expected layout (tokens {bad})")
    return counts
