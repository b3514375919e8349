"""SwiGLU transitions. Implements Algorithm 11 (Transition) and Algorithm 25 (ConditionedTransitionBlock)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnadiff.model.adaln import AdaptiveLayerNorm
from rnadiff.model.primitives import BiasInitLinear, LinearNoBias, layer_norm


class Transition(nn.Module):
    """x -> W (silu(W_a LN(x)) * W_b LN(x)). Algorithm 11; used by the diffusion conditioning."""

    def __init__(self, c_in: int, n: int = 2) -> None:
        super().__init__()
        self.layernorm1 = layer_norm(c_in)
        self.linear_no_bias_a = LinearNoBias(c_in, n * c_in, initializer="relu")
        self.linear_no_bias_b = LinearNoBias(c_in, n * c_in, initializer="relu")
        self.linear_no_bias = LinearNoBias(n * c_in, c_in, initializer="zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layernorm1(x)
        return self.linear_no_bias(F.silu(self.linear_no_bias_a(x)) * self.linear_no_bias_b(x))


class ConditionedTransitionBlock(nn.Module):
    """Algorithm 25: AdaLN, SwiGLU, and an adaLN-Zero output gate sigmoid(W_s s + b), b = -2."""

    def __init__(self, c_a: int, c_s: int, n: int = 2, biasinit: float = -2.0) -> None:
        super().__init__()
        self.adaln = AdaptiveLayerNorm(c_a=c_a, c_s=c_s)
        self.linear_nobias_a1 = LinearNoBias(c_a, n * c_a, initializer="relu")
        self.linear_nobias_a2 = LinearNoBias(c_a, n * c_a, initializer="relu")
        self.linear_nobias_b = LinearNoBias(n * c_a, c_a)
        self.linear_s = BiasInitLinear(c_s, c_a, biasinit=biasinit)

    def forward(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        # a: [..., N, c_a], s: [..., N, c_s] -> [..., N, c_a]
        a = self.adaln(a, s)
        b = F.silu(self.linear_nobias_a1(a)) * self.linear_nobias_a2(a)
        return torch.sigmoid(self.linear_s(s)) * self.linear_nobias_b(b)
