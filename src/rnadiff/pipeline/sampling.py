"""The sampling step of the stage, shared by every caller: where on the schedule to start, the
complete starting coordinates, and one call of the Algorithm-18 sampler.

Sampling from given coordinates (SDEdit-style) runs Algorithm 18 from an intermediate level
σ_start with x = x_init + σ_start·ε; x_init must be complete, so missing atoms are first placed
from ideal nucleotides on the given ones (`rnadiff.diffusion.starts.place_missing_atoms`).
Coordinates are sampled in a frame centred on the given atoms (the denoiser's σ_data scale
assumes a centred frame) and moved back afterwards.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from rnadiff.diffusion.starts import place_missing_atoms, start_index_for
from rnadiff.diffusion.sampler import DenoiseFn, EarlyStopping, SamplerOutput, SamplerSettings, sample_diffusion


@dataclass(frozen=True)
class StartLevel:
    """Where sampling from given coordinates starts: a level in Å or a fraction of the schedule.
    Inputs giving at least `dense_fraction` of their atoms (backbone, all-atom) start at
    `dense_sigma` when it is set: their given atoms already fix most of each nucleotide."""

    sigma: float | None = 10.0
    fraction: float | None = None
    dense_sigma: float | None = None
    dense_fraction: float = 0.4

    def keywords(self, given_fraction: float) -> dict[str, float | None]:
        """start_index_for keywords for an input giving `given_fraction` of its atoms."""
        if self.fraction is not None:
            return {"start_sigma": None, "start_fraction": self.fraction}
        if self.dense_sigma is not None and given_fraction >= self.dense_fraction:
            return {"start_sigma": self.dense_sigma, "start_fraction": None}
        return {"start_sigma": self.sigma, "start_fraction": None}

    def index(self, sigmas: torch.Tensor, given_fraction: float) -> int:
        return start_index_for(sigmas, **self.keywords(given_fraction))


def seeded_generator(seed: int | None) -> torch.Generator:
    """The run's generator: seeded, or from fresh entropy when seed is None."""
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def starting_coordinates(coords: torch.Tensor, given: torch.Tensor, features: Mapping[str, torch.Tensor],
                         n_token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_init [N, 3] complete and centred on the given atoms, centre [3]) for one structure."""
    x_init = place_missing_atoms(coords, given, ref_pos=features["ref_pos"],
                                 atom_to_token_idx=features["atom_to_token_idx"], n_token=n_token)
    centre = coords[given].float().mean(0)
    return x_init - centre, centre


@dataclass
class SamplerRun:
    """One run of the sampler over `sigmas[start:]` with everything but the denoiser fixed."""

    sigmas: torch.Tensor
    start: int
    n_sample: int
    settings: SamplerSettings = SamplerSettings()
    diffusion_chunk_size: int | None = None
    early_stopping: EarlyStopping | None = None
    return_trajectory: bool = False
    autocast_dtype: torch.dtype | None = None

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1 - self.start

    @property
    def start_sigma(self) -> float:
        return float(self.sigmas[self.start])

    def __call__(self, denoise: DenoiseFn, *, n_atom: int, generator: torch.Generator, x_init=None,
                 guidance=None, batch_shape: tuple[int, ...] = (), atom_mask=None,
                 device: torch.device | str | None = None) -> SamplerOutput:
        return sample_diffusion(
            denoise, noise_schedule=self.sigmas, n_atom=n_atom, n_sample=self.n_sample, batch_shape=batch_shape,
            settings=self.settings, generator=generator, x_init=x_init, start_index=self.start,
            atom_mask=atom_mask, diffusion_chunk_size=self.diffusion_chunk_size,
            early_stopping=self.early_stopping, return_trajectory=self.return_trajectory,
            autocast_dtype=self.autocast_dtype, device=device, guidance=guidance)
