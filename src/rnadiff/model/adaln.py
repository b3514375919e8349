"""Adaptive LayerNorm. Implements Algorithm 26 (AF3)."""
from __future__ import annotations

import torch
import torch.nn as nn

from rnadiff.model.primitives import Linear, LinearNoBias, layer_norm


class AdaptiveLayerNorm(nn.Module):
    """a <- sigmoid(W s') * LN(a) + W' s'  with  s' = LN(s) (scale only); LN(a) has no parameters."""

    def __init__(self, c_a: int, c_s: int) -> None:
        super().__init__()
        self.layernorm_a = layer_norm(c_a, scale=False)
        self.layernorm_s = layer_norm(c_s, offset=False)
        self.linear_s = Linear(c_s, c_a, initializer="zeros")
        self.linear_nobias_s = LinearNoBias(c_s, c_a, initializer="zeros")

    def zero_init_(self) -> None:
        with torch.no_grad():
            self.linear_s.weight.zero_()
            self.linear_s.bias.zero_()
            self.linear_nobias_s.weight.zero_()

    def forward(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        # a: [..., N, c_a], s: [..., N, c_s]
        s = self.layernorm_s(s)
        return torch.sigmoid(self.linear_s(s)) * self.layernorm_a(a) + self.linear_nobias_s(s)
