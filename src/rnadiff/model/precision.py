"""Reduced-precision inference with weights held in bf16/fp16 (see DiffusionModule.hold_weights_in).

Autocast alone re-casts every float32 weight in every call (outside autograd it keeps no cast
cache); for the default-size denoiser that is 200 M elements read and written per call, more
memory traffic than the matmuls of a 100-nt RNA. Casting the matmul weights once and running
under autocast leaves autocast nothing to cast but activations.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from rnadiff.model.primitives import Linear

REDUCED_PRECISION_DTYPES = (torch.bfloat16, torch.float16)


def cast_matmul_weights_(module: nn.Module, dtype: torch.dtype) -> int:
    """Cast, in place, the weights of every `Linear` without a fixed precision; returns how many.

    Layers pinned to float32 (coordinates in and out, conditioning projections), LayerNorm
    parameters and the Fourier embedding's frequencies are left in float32.
    """
    if dtype not in REDUCED_PRECISION_DTYPES:
        raise ValueError(f"weights can be held in torch.bfloat16 or torch.float16, got {dtype}")
    n = 0
    for sub in module.modules():
        if isinstance(sub, Linear) and sub.precision is None:
            sub.to(dtype)
            n += 1
    return n


def reduced_precision(dtype: torch.dtype | None, device: torch.device, training: bool):
    """Autocast to the held weights' dtype; a no-op context when the weights are float32."""
    if dtype is None:
        return contextlib.nullcontext()
    if training and torch.is_grad_enabled():
        raise RuntimeError("a DiffusionModule with weights held in reduced precision is for inference: call .eval()")
    return torch.autocast(device_type=device.type, dtype=dtype)
