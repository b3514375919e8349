"""Noise and relative-position embeddings. Implements Algorithm 22 (FourierEmbedding) and
Algorithm 3 (RelativePositionEncoding) with Protenix's 139-channel one-hot layout."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnadiff.model.primitives import LinearNoBias


class FourierEmbedding(nn.Module):
    """cos(2π(t·w + b)) with frozen random w, b (Protenix: randn from a Generator seeded 42)."""

    def __init__(self, c: int, seed: int = 42) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(c, generator=generator), requires_grad=False)
        self.b = nn.Parameter(torch.randn(c, generator=generator), requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # t [...] -> [..., c]
        return torch.cos(2 * math.pi * (t.unsqueeze(-1) * self.w + self.b))


def _relative_position_indices(
    features: dict[str, torch.Tensor], r_max: int, s_max: int, rows: slice = slice(None)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bin indices of Algorithm 3 for token pairs (rows i, all j): d_res, d_tok, same_entity, d_chain.

    Each is [..., n_rows, N_tok]; same_entity is bool.
    """

    def pair(key: str) -> torch.Tensor:
        x = features[key]
        return x[..., rows, None] - x[..., None, :]

    same_chain = pair("asym_id") == 0
    same_res = pair("residue_index") == 0
    same_entity = pair("entity_id") == 0
    d_res = torch.where(same_chain, torch.clip(pair("residue_index") + r_max, 0, 2 * r_max), 2 * r_max + 1)
    d_tok = torch.where(same_chain & same_res, torch.clip(pair("token_index") + r_max, 0, 2 * r_max), 2 * r_max + 1)
    d_chain = torch.where(same_entity, torch.clip(pair("sym_id") + s_max, 0, 2 * s_max), 2 * s_max + 1)
    return d_res.long(), d_tok.long(), same_entity, d_chain.long()


def relative_position_features(
    features: dict[str, torch.Tensor], r_max: int = 32, s_max: int = 2
) -> torch.Tensor:
    """One-hot relative position features `relp` [..., N_tok, N_tok, 4*r_max + 2*s_max + 7].

    Channels: same-chain residue offset (2r_max+2), same-residue token offset (2r_max+2),
    same-entity flag (1), chain (sym_id) offset within an entity (2s_max+2).
    """
    d_res, d_tok, same_entity, d_chain = _relative_position_indices(features, r_max, s_max)
    return torch.cat(
        [
            F.one_hot(d_res, 2 * (r_max + 1)),
            F.one_hot(d_tok, 2 * (r_max + 1)),
            same_entity[..., None].long(),
            F.one_hot(d_chain, 2 * (s_max + 1)),
        ],
        dim=-1,
    ).float()


class RelativePositionEncoding(nn.Module):
    """Linear projection of `relp` to c_z (the one-hot is derived once per structure)."""

    def __init__(self, r_max: int = 32, s_max: int = 2, c_z: int = 128) -> None:
        super().__init__()
        self.r_max = r_max
        self.s_max = s_max
        self.linear_no_bias = LinearNoBias(4 * r_max + 2 * s_max + 7, c_z)

    def features(self, input_feature_dict: dict[str, torch.Tensor]) -> torch.Tensor:
        return relative_position_features(input_feature_dict, self.r_max, self.s_max)

    def forward(self, relp: torch.Tensor) -> torch.Tensor:
        return self.linear_no_bias(relp)

    def embed(self, input_feature_dict: dict[str, torch.Tensor], rows: slice = slice(None)) -> torch.Tensor:
        """Same as forward(features(...)) for the token rows `rows`, without the one-hot.

        A one-hot times a matrix is a column lookup: four gathers from the weight instead of a
        [N, N, 139] tensor (9 GB at 4096 tokens). [..., n_rows, N_tok, c_z].
        """
        d_res, d_tok, same_entity, d_chain = _relative_position_indices(input_feature_dict, self.r_max, self.s_max, rows)
        w = self.linear_no_bias.weight.t()  # [139, c_z]
        n_pos = 2 * (self.r_max + 1)
        out = w[d_res] + w[n_pos + d_tok]
        out = out + same_entity[..., None].to(w.dtype) * w[2 * n_pos]
        return out + w[2 * n_pos + 1 + d_chain]
