"""Diffusion conditioning. Implements Algorithm 21 (AF3) with Protenix's layer layout.

pair  = z_trunk ⊕ relpe  -> LN -> Linear -> 2 residual transitions      (independent of σ and x)
single = LN(s_trunk ⊕ s_inputs) -> Linear  (+ Linear(LN(Fourier(¼·ln(σ/σ_data)))))  -> 2 transitions
The σ-independent parts are split out (`pair`, `single_base`) so they are computed once per
structure; only `single` runs per denoiser call.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from rnadiff.model.edm import c_noise
from rnadiff.model.embedders import FourierEmbedding, RelativePositionEncoding
from rnadiff.model.primitives import LinearNoBias, layer_norm
from rnadiff.model.transition import Transition


class DiffusionConditioning(nn.Module):
    def __init__(
        self,
        sigma_data: float = 16.0,
        c_z: int = 128,
        c_s: int = 384,
        c_s_inputs: int = 449,
        c_noise_embedding: int = 256,
    ) -> None:
        super().__init__()
        self.sigma_data = sigma_data
        self.relpe = RelativePositionEncoding(c_z=c_z)
        self.layernorm_z = layer_norm(2 * c_z, offset=False)
        self.linear_no_bias_z = LinearNoBias(2 * c_z, c_z, precision=torch.float32)
        self.transition_z1 = Transition(c_z, n=2)
        self.transition_z2 = Transition(c_z, n=2)
        self.layernorm_s = layer_norm(c_s + c_s_inputs, offset=False)
        self.linear_no_bias_s = LinearNoBias(c_s + c_s_inputs, c_s, precision=torch.float32)
        self.fourier_embedding = FourierEmbedding(c_noise_embedding)
        self.layernorm_n = layer_norm(c_noise_embedding, offset=False)
        self.linear_no_bias_n = LinearNoBias(c_noise_embedding, c_s, precision=torch.float32)
        self.transition_s1 = Transition(c_s, n=2)
        self.transition_s2 = Transition(c_s, n=2)

    def pair(self, relp: torch.Tensor, z_trunk: torch.Tensor) -> torch.Tensor:
        """relp [..., N, N, 139], z_trunk [..., N, N, c_z] -> pair_z [..., N, N, c_z]."""
        return self._pair_from_relpe(self.relpe(relp).to(z_trunk.dtype), z_trunk)

    def pair_chunked(
        self,
        features: dict[str, torch.Tensor],
        z_trunk: torch.Tensor,
        chunk_size: int,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Same as `pair`, `chunk_size` token rows at a time and without the relp one-hot.

        Every operation of the pair conditioning acts on one (i, j) position, so rows can be
        processed independently; peak extra memory is O(chunk_size * N * c_z) instead of O(N^2 * 2c_z).
        out: where to write the result; it may be `z_trunk` itself (each row block is read before it
        is overwritten), which saves the second N^2 * c_z buffer for very long RNAs.
        """
        n = z_trunk.shape[-2]
        if out is None:
            out = torch.empty_like(z_trunk)
        elif out.shape != z_trunk.shape or out.dtype != z_trunk.dtype:
            raise ValueError(f"out must match z_trunk: {tuple(out.shape)}/{out.dtype} vs {tuple(z_trunk.shape)}/{z_trunk.dtype}")
        for start in range(0, n, chunk_size):
            rows = slice(start, min(start + chunk_size, n))
            relpe = self.relpe.embed(features, rows).to(z_trunk.dtype)
            out[..., rows, :, :] = self._pair_from_relpe(relpe, z_trunk[..., rows, :, :])
        return out

    def _pair_from_relpe(self, relpe: torch.Tensor, z_trunk: torch.Tensor) -> torch.Tensor:
        pair_z = self.linear_no_bias_z(self.layernorm_z(torch.cat([z_trunk, relpe], dim=-1)))
        return _two_residual_transitions(pair_z, self.transition_z1, self.transition_z2)

    def single_base(self, s_inputs: torch.Tensor, s_trunk: torch.Tensor) -> torch.Tensor:
        """[..., N, c_s] + [..., N, c_s_inputs] -> [..., N, c_s] (σ-independent part)."""
        return self.linear_no_bias_s(self.layernorm_s(torch.cat([s_trunk, s_inputs], dim=-1)))

    def single(self, t_hat: torch.Tensor, single_base: torch.Tensor) -> torch.Tensor:
        """t_hat [..., S], single_base [..., N, c_s] -> [..., S, N, c_s]."""
        noise = self.fourier_embedding(c_noise(t_hat, self.sigma_data)).to(single_base.dtype)
        s = single_base.unsqueeze(-3) + self.linear_no_bias_n(self.layernorm_n(noise)).unsqueeze(-2)
        return _two_residual_transitions(s, self.transition_s1, self.transition_s2)

    def forward(
        self,
        t_hat: torch.Tensor,
        relp: torch.Tensor,
        s_inputs: torch.Tensor,
        s_trunk: torch.Tensor,
        z_trunk: torch.Tensor,
        use_conditioning: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole Algorithm 21 in one call: (single_s [..., S, N, c_s], pair_z [..., N, N, c_z])."""
        if not use_conditioning:
            s_trunk, z_trunk = torch.zeros_like(s_trunk), torch.zeros_like(z_trunk)
        return self.single(t_hat, self.single_base(s_inputs, s_trunk)), self.pair(relp, z_trunk)


def _two_residual_transitions(x: torch.Tensor, first: Transition, second: Transition) -> torch.Tensor:
    """x + T1(x), then + T2(...): Algorithm 21's two residual transitions (pair and single alike)."""
    x = x + first(x)
    return x + second(x)
