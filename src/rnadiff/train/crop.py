"""Token crops of a featurized structure: contiguous windows and spatial neighbourhoods.

A crop keeps whole residues. Atom-level tensors keep the atoms of the kept tokens, token-level
tensors the kept tokens; `atom_to_token_idx`/`ref_space_uid` are renumbered, `token_index` is
0..T'-1, `residue_index` keeps the original numbering (the relative-position encoding still sees
the true sequence separation). A spatial crop can join residues that are not neighbours in the
chain: such a junction is marked `chain_break_before` (no O3'-P link is expected there).
"""
from __future__ import annotations

import numpy as np
import torch

from rnadiff.chem.features import ATOM_FEATURES, TOKEN_FEATURES


def contiguous_tokens(n_token: int, crop_size: int, generator: torch.Generator) -> torch.Tensor:
    """A random window of `crop_size` consecutive tokens (all tokens if fewer)."""
    if n_token <= crop_size:
        return torch.arange(n_token)
    start = int(torch.randint(0, n_token - crop_size + 1, (1,), generator=generator))
    return torch.arange(start, start + crop_size)


def spatial_tokens(features: dict[str, torch.Tensor], crop_size: int, generator: torch.Generator) -> torch.Tensor:
    """The `crop_size` tokens nearest (by centroid of resolved atoms) to a random resolved token."""
    n_token = int(features["restype"].shape[0])
    if n_token <= crop_size:
        return torch.arange(n_token)
    idx = features["atom_to_token_idx"].long()
    w = features["atom_present_mask"].float()
    sums = torch.zeros(n_token, 3).index_add_(0, idx, features["coords"] * w[:, None])
    count = torch.zeros(n_token).index_add_(0, idx, w)
    has = count > 0
    centre = sums / count.clamp(min=1)[:, None]
    candidates = torch.nonzero(has).flatten()
    if len(candidates) == 0:
        return contiguous_tokens(n_token, crop_size, generator)
    pick = candidates[int(torch.randint(0, len(candidates), (1,), generator=generator))]
    d = (centre - centre[pick]).norm(dim=-1)
    d = torch.where(has, d, torch.full_like(d, float("inf")))
    # tie-break by token index so the crop is deterministic
    order = np.lexsort((np.arange(n_token), d.numpy()))
    return torch.from_numpy(np.sort(order[:crop_size])).long()


def crop_features(features: dict[str, torch.Tensor], tokens: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(cropped features, kept atom indices [N']) for sorted token indices [T']."""
    tokens = tokens.long()
    n_token = int(features["restype"].shape[0])
    a2t = features["atom_to_token_idx"].long()
    keep_tok = torch.zeros(n_token, dtype=torch.bool)
    keep_tok[tokens] = True
    atoms = torch.nonzero(keep_tok[a2t]).flatten()
    new_index = torch.full((n_token,), -1, dtype=torch.long)
    new_index[tokens] = torch.arange(len(tokens))
    out: dict[str, torch.Tensor] = {}
    for key, value in features.items():
        if key in ATOM_FEATURES:
            out[key] = value[atoms]
        elif key in TOKEN_FEATURES:
            out[key] = value[tokens]
        else:
            raise ValueError(f"crop_features: unknown feature {key!r}")
    out["atom_to_token_idx"] = new_index[a2t[atoms]]
    out["ref_space_uid"] = out["atom_to_token_idx"].clone()
    out["token_index"] = torch.arange(len(tokens))
    jump = torch.zeros(len(tokens), dtype=torch.bool)
    jump[1:] = (tokens[1:] - tokens[:-1]) != 1
    same_chain = torch.zeros(len(tokens), dtype=torch.bool)
    same_chain[1:] = out["asym_id"][1:] == out["asym_id"][:-1]
    out["chain_break_before"] = out["chain_break_before"].bool() | (jump & same_chain)
    return out, atoms


def crop_index_pairs(pairs: np.ndarray, kept: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs [m, 2] (atoms or tokens) renumbered to positions among the sorted `kept` of n:
    (renumbered pairs with both ends kept, mask [m] of which were kept)."""
    new = np.full(n, -1, np.int64)
    new[kept.numpy()] = np.arange(len(kept))
    mapped = new[pairs] if len(pairs) else np.zeros((0, 2), np.int64)
    keep = (mapped >= 0).all(axis=1) if len(mapped) else np.zeros(0, bool)
    return mapped[keep], keep


def crop_bonds(bonds: np.ndarray, bond_lengths: np.ndarray, atoms: torch.Tensor, n_atom: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Bonds with both atoms in the crop, renumbered: ([n, 2] int64, [n] float32)."""
    mapped, keep = crop_index_pairs(bonds, atoms, n_atom)
    return torch.from_numpy(mapped), torch.from_numpy(bond_lengths[keep].astype(np.float32))
