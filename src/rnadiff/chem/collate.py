"""Batch collation of unbatched feature dicts (docs/design.md §3).

Atom-level features are padded to the largest N_atom, token-level ones to the largest N_tok;
padding is 0 everywhere (index features point at index 0, masks are 0) and `atom_mask`
[B, N_atom] / `token_mask` [B, N_tok] (float32) mark the real positions. Real positions of item i
are bitwise identical to the unbatched item.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from rnadiff.chem.features import ATOM_FEATURES, TOKEN_FEATURES


def _level(key: str, value: torch.Tensor, n_atom: int, n_tok: int) -> str:
    if key in ATOM_FEATURES:
        return "atom"
    if key in TOKEN_FEATURES:
        return "token"
    # Unknown key: infer from the leading dimension, refusing to guess when both match.
    lead = value.shape[0] if value.dim() else None
    if lead == n_atom and lead != n_tok:
        return "atom"
    if lead == n_tok and lead != n_atom:
        return "token"
    raise ValueError(f"cannot tell whether feature {key!r} {tuple(value.shape)} is atom- or token-level")


def collate_features(items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack feature dicts into a padded batch: every tensor gains a leading batch dim."""
    if not items:
        raise ValueError("collate_features needs at least one item")
    keys = list(items[0].keys())
    for i, it in enumerate(items):
        if set(it.keys()) != set(keys):
            raise ValueError(f"item {i} has keys {sorted(it.keys())}, expected {sorted(keys)}")
    n_atoms = [int(it["atom_to_token_idx"].shape[0]) for it in items]
    n_toks = [int(it["restype"].shape[0]) for it in items]
    max_atom, max_tok = max(n_atoms), max(n_toks)
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        level = _level(key, items[0][key], n_atoms[0], n_toks[0])
        target = max_atom if level == "atom" else max_tok
        first = items[0][key]
        batch = first.new_zeros((len(items), target, *first.shape[1:]))
        for b, it in enumerate(items):
            v = it[key]
            batch[b, : v.shape[0]] = v
        out[key] = batch
    out["atom_mask"] = torch.zeros(len(items), max_atom)
    out["token_mask"] = torch.zeros(len(items), max_tok)
    for b, (na, nt) in enumerate(zip(n_atoms, n_toks)):
        out["atom_mask"][b, :na] = 1.0
        out["token_mask"][b, :nt] = 1.0
    return out
