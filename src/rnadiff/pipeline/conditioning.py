"""Where the denoiser's conditioning comes from, as one interface for the pipeline:
`denoiser(features, trunk)` computes the step-independent conditioning and the denoiser's cache
once per structure and returns the x_noisy, σ -> x_denoised function every step and sample shares.

- `StandaloneConditioning`: the coordinate-conditioned standalone model (`RefinementModel`),
  optionally with upstream trunk tensors replacing its own conditioning.
- `TrunkConditioning`: a bare `DiffusionModule` fed by an upstream trunk (s_inputs, s_trunk,
  z_trunk), with the memory options of `model.stageD.memory`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from rnadiff.diffusion.sampler import DenoiseFn


class StandaloneConditioning:
    def __init__(self, model: torch.nn.Module):
        self.model = model

    @property
    def sigma_data(self) -> float:
        return float(self.model.sigma_data)

    @property
    def module(self) -> torch.nn.Module:
        return self.model

    def denoiser(self, features: Mapping[str, torch.Tensor], trunk: Any = None) -> DenoiseFn:
        cache = self.model.prepare_cache(features, trunk)
        module = self.model.diffusion_module

        def denoise(x_noisy: torch.Tensor, t_hat: torch.Tensor) -> torch.Tensor:
            return module(x_noisy, t_hat, features, None, None, None, cache=cache)

        return denoise


class TrunkConditioning:
    def __init__(self, module: torch.nn.Module, *, sigma_data: float, autocast_dtype: torch.dtype | None = None,
                 chunk_size: int | None = None, inplace_safe: bool = False):
        self._module = module
        self.sigma_data = float(sigma_data)
        self.autocast_dtype = autocast_dtype
        self.chunk_size = chunk_size
        self.inplace_safe = inplace_safe

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def denoiser(self, features: Mapping[str, torch.Tensor], trunk: Any = None) -> DenoiseFn:
        s_inputs, s_trunk, z_trunk = trunk
        module = self._module
        cache = None
        if hasattr(module, "prepare_cache"):
            device_type = s_trunk.device.type
            with torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                cache = module.prepare_cache(features, s_inputs, s_trunk, z_trunk)
        kwargs: dict[str, Any] = {"chunk_size": self.chunk_size, "inplace_safe": self.inplace_safe}
        if cache is not None:
            kwargs["cache"] = cache

        def denoise(x_noisy: torch.Tensor, t_hat: torch.Tensor) -> torch.Tensor:
            return module(x_noisy, t_hat, features, s_inputs, s_trunk, z_trunk, **kwargs)

        return denoise


def as_conditioning(model: Any) -> Any:
    """A conditioning object for `model`: a RefinementModel is wrapped, a conditioning is kept."""
    if hasattr(model, "denoiser") and hasattr(model, "sigma_data"):
        return model
    if hasattr(model, "prepare_cache") and hasattr(model, "diffusion_module"):
        return StandaloneConditioning(model)
    raise TypeError(f"cannot condition the denoiser with a {type(model).__name__}: pass a RefinementModel "
                    "or a StandaloneConditioning / TrunkConditioning")
