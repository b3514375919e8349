"""Linear and LayerNorm building blocks with Protenix's parameter layout and initialisers.

Parameter names matter: they must equal Protenix's so its checkpoints load with strict=True.
`LinearNoBias` optionally computes in a fixed precision (float32) even under autocast, as
Protenix does for the layers that touch coordinates and the conditioning inputs. `LayerNorm`
keeps its statistics in float32 whatever the input's precision.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# std of a standard normal truncated to [-2, 2]; used to make truncated-normal init have the
# intended variance (OpenFold / Protenix `trunc_normal_init_`).
_TRUNCNORM_STD_2 = 0.8796256610342398


def trunc_normal_fan_in_(weight: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """LeCun (scale=1) or He (scale=2) truncated-normal init over fan_in."""
    fan_in = max(1, weight.shape[1])
    std = math.sqrt(scale / fan_in) / _TRUNCNORM_STD_2
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def init_linear_(linear: nn.Linear, initializer: str) -> None:
    """Apply one of Protenix's initialisers: 'default' (LeCun), 'relu' (He), 'zeros'."""
    with torch.no_grad():
        if linear.bias is not None:
            linear.bias.zero_()
        if initializer == "default":
            trunc_normal_fan_in_(linear.weight, scale=1.0)
        elif initializer == "relu":
            trunc_normal_fan_in_(linear.weight, scale=2.0)
        elif initializer == "zeros":
            linear.weight.zero_()
        else:
            raise ValueError(f"unknown initializer {initializer!r}: use 'default', 'relu' or 'zeros'")


class Linear(nn.Linear):
    """nn.Linear with Protenix's initialisers and an optional fixed compute precision."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        initializer: str = "default",
        precision: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.precision = precision
        init_linear_(self, initializer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.precision is None:
            return F.linear(x, self.weight, self.bias)
        # Coordinate-facing layers stay in float32 even inside an autocast region.
        with torch.autocast(device_type=x.device.type, enabled=False):
            bias = None if self.bias is None else self.bias.to(self.precision)
            out = F.linear(x.to(self.precision), self.weight.to(self.precision), bias)
        return out if x.dtype == self.precision else out.to(x.dtype)


class LinearNoBias(Linear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        initializer: str = "default",
        precision: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=False, initializer=initializer, precision=precision)


class BiasInitLinear(Linear):
    """Zero weights and a constant bias: a gate that starts at sigmoid(biasinit)."""

    def __init__(self, in_features: int, out_features: int, biasinit: float = 0.0) -> None:
        super().__init__(in_features, out_features, bias=True, initializer="zeros")
        with torch.no_grad():
            self.bias.fill_(biasinit)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm whose mean and variance are taken in float32 for bf16/fp16 inputs.

    A bf16 mean over 768 channels keeps ~3 significant digits, and the variance of a residual
    stream with a large mean loses more. torch's CPU and CUDA kernels accumulate a bf16/fp16
    input in float32 and take float32 weights with it ("mixed type"), so the parameters stay
    float32 and nothing is copied; autocast is kept away so it cannot cast the weights down.
    The output has the input's dtype. float32 inputs take the plain path (parity with Protenix).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and (self.weight is None or self.weight.dtype == torch.float32):
            return super().forward(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


def layer_norm(c: int, *, scale: bool = True, offset: bool = True, eps: float = 1e-5) -> LayerNorm:
    """LayerNorm with weight only (offset=False) or no parameters (scale=False), as Protenix uses."""
    if not scale:
        return LayerNorm(c, eps=eps, elementwise_affine=False)
    return LayerNorm(c, eps=eps, elementwise_affine=True, bias=offset)
