# Helpers shared by the diffusion and manager tests (imported as tests.test_diffusion_toys).
"""Small deterministic denoisers for sampler and manager tests (no model needed)."""
from __future__ import annotations

import torch

from rnadiff.diffusion.alignment import weighted_rigid_align


def make_target(n_atom: int = 40, seed: int = 0) -> torch.Tensor:
    """A fixed random 'structure' [N, 3] with ~10 Å extent."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_atom, 3, generator=g) * 6.0


class ToyDenoiser(torch.nn.Module):
    """D(x, σ) = target superposed onto x (times a trainable scale, 1 by default): the ideal denoiser
    of a one-structure distribution. Each sample is treated independently, so chunking cannot
    change its output."""

    def __init__(self, target: torch.Tensor, sigma_data: float = 16.0):
        super().__init__()
        self.register_buffer("target", target)
        self.sigma_data = sigma_data
        self.scale = torch.nn.Parameter(torch.ones(()))  # something trainable for manager tests
        self.calls = 0

    def forward(self, x_noisy, t_hat, input_feature_dict=None, s_inputs=None, s_trunk=None, z_trunk=None, **kwargs):
        self.calls += 1
        tgt = self.target.to(x_noisy.dtype).expand_as(x_noisy)
        aligned = weighted_rigid_align(tgt, x_noisy.float(), torch.ones(x_noisy.shape[:-1])).to(x_noisy.dtype)
        return aligned * self.scale


def toy_features(n_atom: int, n_token: int) -> dict[str, torch.Tensor]:
    """Minimal features the manager reads (atom_to_token_idx, ref_pos, is_rna)."""
    idx = torch.arange(n_atom) * n_token // n_atom
    g = torch.Generator().manual_seed(1)
    return {"atom_to_token_idx": idx, "ref_pos": torch.randn(n_atom, 3, generator=g), "is_rna": torch.ones(n_atom)}


def toy_embeddings(n_token: int) -> dict[str, torch.Tensor]:
    return {"s_inputs": torch.zeros(n_token, 4), "s_trunk": torch.zeros(n_token, 4), "z_trunk": torch.zeros(n_token, n_token, 2)}


def test_toy_denoiser_recovers_target_at_high_noise():
    """The helper itself: at large σ it returns the target superposed onto the input."""
    target = make_target(12)
    toy = ToyDenoiser(target)
    x = torch.randn(2, 12, 3) * 100
    out = toy(x, torch.tensor([1e4, 1e4]))
    d = torch.cdist(out, out) - torch.cdist(target, target)
    assert float(d.abs().max()) < 0.05
