"""refine_structure: featurize → condition → cache once → sample from the input → superpose.

Sampling is Algorithm 18 started at an intermediate noise level (`rnadiff.diffusion.refinement`):
missing atoms are first placed from ideal nucleotides on the given ones, then
x = x_init + σ_start·ε is denoised over the remaining levels of a `num_steps` schedule. The
denoiser's conditioning (standalone embedder or upstream trunk) and its cache are computed once
per structure and shared by every step and sample. Everything runs in float32 on the CPU; with a
fixed seed the result is bit-identical run to run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rnadiff.chem import featurize
from rnadiff.chem.features import Features
from rnadiff.chem.regularize import regularize_coords
from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance
from rnadiff.diffusion.alignment import weighted_rigid_align
from rnadiff.diffusion.refinement import place_missing_atoms, start_index_for
from rnadiff.diffusion.sampler import SamplerSettings, sample_diffusion
from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.errors import InputError
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.refine.align import spread, superpose_on_given


@dataclass
class RefineSettings:
    """What `rnadiff refine` exposes; `sampling` holds SamplerSettings fields (gamma0, ...)."""

    n_samples: int = 5
    num_steps: int = 50
    max_sequence_length: int = 4096  # model.stageD.memory.max_sequence_length: longer inputs are refused
    seed: int = 0
    start_sigma: float | None = 10.0
    start_fraction: float | None = None
    # Inputs that give at least `dense_fraction` of the atoms (backbone, all-atom) start lower:
    # their given atoms already fix most of each nucleotide. None: start_sigma for every input.
    dense_start_sigma: float | None = None
    dense_fraction: float = 0.4
    sampling: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, float] = field(default_factory=dict)  # s_max, s_min, p (DiffusionSchedule)
    diffusion_chunk_size: int | None = None
    # Anchoring (reconstruction replacement): after each denoiser call with σ >= anchor_until_sigma,
    # the prediction of the given atoms is pulled towards the input (rigidly aligned onto the
    # prediction) by anchor_strength (1 = replaced). The final low-σ steps are free, so local
    # geometry can settle; 0 disables it (pure conditioning, e.g. for noisy all-atom inputs).
    anchor_strength: float = 1.0
    anchor_until_sigma: float = 1.0
    # Geometry polish of every sample: bonds (incl. O3'-P links), angles and base planes pulled to
    # the monomer library (`rnadiff.chem.regularize`), tethered to the sample (σ = tether Å) so the
    # conformation stays. Cheap (numpy L-BFGS); the optional OpenMM minimization comes after it.
    regularize: bool = True
    regularize_tether: float = 0.3
    regularize_iterations: int = 300
    # Sampler guidance (model.stageD.guidance, parsed): None is off. The RNAGuidance itself is
    # built per structure from its topology in refine_structure.
    guidance: GuidanceConfig | None = None

    def __post_init__(self):
        if self.n_samples < 1:
            raise InputError(f"--samples must be >= 1, got {self.n_samples}")
        if self.num_steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.num_steps}")
        if not 0 <= self.anchor_strength <= 1:
            raise InputError(f"anchor_strength must lie in [0, 1], got {self.anchor_strength}")


@dataclass
class RefineResult:
    features: Features
    samples: np.ndarray  # [S, N_atom, 3] superposed onto the input's given atoms
    b_factors: np.ndarray  # [N_atom] spread across samples (Å)
    given_rmsd: np.ndarray  # [S] RMSD of the given atoms to the input after superposition
    start_sigma: float
    steps_run: int
    seconds: float


def refine_structure(
    structure_or_features: Any,
    model: RefinementModel,
    settings: RefineSettings = RefineSettings(),
    *,
    trunk: Any = None,
    progress: Callable[[int], None] | None = None,
    guidance: Any = None,
) -> RefineResult:
    """Refine one structure (an `io.RNAStructure` or its `Features`).

    trunk: optional upstream (s_inputs, s_trunk, z_trunk) replacing the standalone conditioning.
    progress: called with 1 after every denoiser call (for a progress bar).
    guidance: a ready sampler guidance (`rnadiff.diffusion.guidance.RNAGuidance`); when None,
    `settings.guidance` decides (built on this structure).
    """
    t0 = time.perf_counter()
    feats = (structure_or_features if isinstance(structure_or_features, Features)
             else featurize(structure_or_features, max_sequence_length=settings.max_sequence_length))
    f = feats.as_dict()
    given = f["atom_present_mask"] > 0
    if not bool(given.any()):
        raise InputError("no atom coordinates given: nothing to refine")
    n_atom, n_token = int(f["coords"].shape[0]), int(f["restype"].shape[0])
    sched = DiffusionSchedule(sigma_data=model.sigma_data, **settings.schedule)
    sigmas = sched.inference_sigmas(settings.num_steps)
    start = start_index_for(sigmas, **start_level(settings, float(given.float().mean())))
    if guidance is None and settings.guidance is not None:
        guidance = RNAGuidance.from_features(feats, settings.guidance)
    model.eval()
    with torch.no_grad():
        x_init = place_missing_atoms(f["coords"], given, ref_pos=f["ref_pos"], atom_to_token_idx=f["atom_to_token_idx"],
                                     n_token=n_token)
        # Work in a frame centred on the given atoms: the denoiser's σ_data scale assumes it.
        centre = f["coords"][given].mean(0)
        x_init = x_init - centre
        cache = model.prepare_cache(f, trunk)

        anchor = f["coords"][given] - centre  # [G, 3]
        use_anchor = settings.anchor_strength > 0 and int(given.sum()) >= 3

        def denoise(x_noisy: torch.Tensor, t_hat: torch.Tensor) -> torch.Tensor:
            out = model.diffusion_module(x_noisy, t_hat, f, None, None, None, cache=cache)
            if use_anchor:
                out = anchor_given(out, t_hat, given, anchor, settings.anchor_strength, settings.anchor_until_sigma)
            if progress is not None:
                progress(1)
            return out

        generator = torch.Generator().manual_seed(int(settings.seed))
        out = sample_diffusion(denoise, noise_schedule=sigmas, n_atom=n_atom, n_sample=settings.n_samples,
                               settings=SamplerSettings(**settings.sampling), generator=generator, x_init=x_init,
                               start_index=start, diffusion_chunk_size=settings.diffusion_chunk_size,
                               guidance=guidance)
    coords = (out.coordinates + centre).double().numpy()
    if settings.regularize:
        coords = np.stack([regularize_sample(x, feats, settings) for x in coords])
    target = f["coords"].double().numpy()
    samples, rmsd = superpose_on_given(coords, target, given.numpy())
    return RefineResult(features=feats, samples=samples, b_factors=spread(samples), given_rmsd=rmsd,
                        start_sigma=float(sigmas[start]) if start > 0 else float(sigmas[0]),
                        steps_run=len(sigmas) - 1 - start, seconds=time.perf_counter() - t0)


def regularize_sample(x: np.ndarray, feats: Features, settings: RefineSettings) -> np.ndarray:
    """x [N, 3] with bond lengths, angles and planes of the full topology restored (tethered)."""
    t = feats.topology()
    return regularize_coords(x, t.bonds, t.bond_lengths, t.bond_esds, t.angles, t.angle_values, t.angle_esds,
                             t.planes, t.plane_esds, max_iter=settings.regularize_iterations,
                             tether=settings.regularize_tether)


def anchor_given(x_denoised: torch.Tensor, sigma: torch.Tensor, given: torch.Tensor, anchor: torch.Tensor,
                 strength: float, until_sigma: float) -> torch.Tensor:
    """Pull the given atoms of x_denoised [S, N, 3] towards `anchor` [G, 3] (aligned per sample onto
    the prediction, so the sampler's random frames do not matter) where σ [S] >= until_sigma."""
    pred = x_denoised[..., given, :]  # [S, G, 3]
    target = anchor.to(pred).expand_as(pred)
    aligned = weighted_rigid_align(target, pred, torch.ones(pred.shape[:-1], dtype=pred.dtype))
    on = (torch.as_tensor(sigma, dtype=pred.dtype).expand(pred.shape[:-2]) >= until_sigma).to(pred.dtype)
    out = x_denoised.clone()
    out[..., given, :] = pred + (strength * on)[..., None, None] * (aligned - pred)
    return out


def start_level(settings: RefineSettings, given_fraction: float) -> dict[str, float | None]:
    """start_index_for keywords for an input giving `given_fraction` of its atoms."""
    if settings.start_fraction is not None:
        return {"start_sigma": None, "start_fraction": settings.start_fraction}
    if settings.dense_start_sigma is not None and given_fraction >= settings.dense_fraction:
        return {"start_sigma": settings.dense_start_sigma, "start_fraction": None}
    return {"start_sigma": settings.start_sigma, "start_fraction": None}


def denoiser_calls(settings: RefineSettings, sigma_data: float, given_fraction: float = 0.0) -> int:
    """How many denoiser calls refine_structure makes (for a progress bar's total)."""
    sched = DiffusionSchedule(sigma_data=sigma_data, **settings.schedule)
    sigmas = sched.inference_sigmas(settings.num_steps)
    start = start_index_for(sigmas, **start_level(settings, given_fraction))
    chunk = settings.diffusion_chunk_size or settings.n_samples
    return (len(sigmas) - 1 - start) * -(-settings.n_samples // chunk)
