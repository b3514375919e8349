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


def relative_position_features(
    features: dict[str, torch.Tensor], r_max: int = 32, s_max: int = 2
) -> torch.Tensor:
    """One-hot relative position features `relp` [..., N_tok, N_tok, 4*r_max + 2*s_max + 7].

    Channels: same-chain residue offset (2r_max+2), same-residue token offset (2r_max+2),
    same-entity flag (1), chain (sym_id) offset within an entity (2s_max+2).
    """
    asym = features["asym_id"]
    res = features["residue_index"]
    ent = features["entity_id"]
    tok = features["token_index"]
    sym = features["sym_id"]

    def pair(x: torch.Tensor) -> torch.Tensor:
        return x[..., :, None] - x[..., None, :]

    same_chain = pair(asym) == 0
    same_res = pair(res) == 0
    same_entity = pair(ent) == 0
    d_res = torch.where(same_chain, torch.clip(pair(res) + r_max, 0, 2 * r_max), 2 * r_max + 1)
    d_tok = torch.where(same_chain & same_res, torch.clip(pair(tok) + r_max, 0, 2 * r_max), 2 * r_max + 1)
    d_chain = torch.where(same_entity, torch.clip(pair(sym) + s_max, 0, 2 * s_max), 2 * s_max + 1)
    return torch.cat(
        [
            F.one_hot(d_res.long(), 2 * (r_max + 1)),
            F.one_hot(d_tok.long(), 2 * (r_max + 1)),
            same_entity[..., None].long(),
            F.one_hot(d_chain.long(), 2 * (s_max + 1)),
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
