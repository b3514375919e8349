"""The Stage-D pipeline: featurize → condition → cache → sample → keep given atoms / polish →
optional minimization → result. `rnadiff refine`, `refine_structure`, the DiffusionConfig stage
runner and the benchmarks all go through `StagePipeline.run`.

Sampling is Algorithm 18 started at an intermediate noise level (`rnadiff.pipeline.sampling`).
The given atoms and the chemistry guidance reach the sampler through its one guidance protocol
(`rnadiff.pipeline.kept_atoms`). Everything runs in float32; with a fixed seed the result is
bit-identical run to run.
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
from rnadiff.chem.pairing import pair_prior, parse_dot_bracket, prior_pairs
from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance, polish_restraints
from rnadiff.diffusion.sampler import SamplerSettings
from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.errors import ConfigError, InputError
from rnadiff.pipeline import finish
from rnadiff.pipeline.conditioning import as_conditioning
from rnadiff.pipeline.kept_atoms import GivenAtomsGuidance, chain
from rnadiff.pipeline.ranking import consensus_order, pairs_missed
from rnadiff.pipeline.sampling import SamplerRun, StartLevel, seeded_generator, starting_coordinates


@dataclass
class PipelineSettings:
    """What `rnadiff refine` exposes; `sampling` holds SamplerSettings fields (gamma0, ...)."""

    n_samples: int = 5
    num_steps: int = 50
    max_sequence_length: int = 4096  # model.stageD.memory.max_sequence_length: longer inputs are refused
    seed: int = 0
    start_sigma: float | None = 10.0
    start_fraction: float | None = None
    # Inputs that give at least `dense_fraction` of the atoms (backbone, all-atom) start lower.
    dense_start_sigma: float | None = None
    dense_fraction: float = 0.4
    sampling: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, float] = field(default_factory=dict)  # s_max, s_min, p (DiffusionSchedule)
    diffusion_chunk_size: int | None = None
    # Inpainting of the given atoms during sampling (kept_atoms.GivenAtomsGuidance); 0 disables it.
    anchor_strength: float = 1.0
    anchor_until_sigma: float = 1.0
    # Geometry polish of every sample (finish.Polish).
    regularize: bool = True
    regularize_tether: float = 0.6
    regularize_iterations: int = 300
    # Weight of the polish's restraint of the prior's asserted base pairs to canonical geometry
    # (rnadiff.chem.pair_geometry, issue 15); 0 leaves them out.
    regularize_pairs: float = 1.0
    # Given atoms in the output within this many Å of the input (0: exactly); None lets them move
    # (noisy inputs).
    given_tolerance: float | None = 0.0
    # Sampler guidance (model.stageD.guidance, parsed): None is off.
    guidance: GuidanceConfig | None = None
    # Energy minimization (rnadiff.minimize.MinimizationConfig) of every sample; None is off.
    minimization: Any = None
    # Return the samples most central first (rnadiff.pipeline.ranking); False keeps the draw order.
    rank_samples: bool = True

    def __post_init__(self):
        if self.n_samples < 1:
            raise InputError(f"--samples must be >= 1, got {self.n_samples}")
        if self.num_steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.num_steps}")
        if not 0 <= self.anchor_strength <= 1:
            raise InputError(f"anchor_strength must lie in [0, 1], got {self.anchor_strength}")
        if self.given_tolerance is not None and self.given_tolerance < 0:
            raise InputError(f"the given-atom tolerance must be >= 0 Å, got {self.given_tolerance}")

    @property
    def start(self) -> StartLevel:
        return StartLevel(sigma=self.start_sigma, fraction=self.start_fraction,
                          dense_sigma=self.dense_start_sigma, dense_fraction=self.dense_fraction)

    @property
    def polish(self) -> finish.Polish:
        return finish.Polish(self.regularize, self.regularize_tether, self.regularize_iterations)

    def sampler_run(self, sigma_data: float, given_fraction: float) -> SamplerRun:
        sigmas = DiffusionSchedule(sigma_data=sigma_data, **self.schedule).inference_sigmas(self.num_steps)
        return SamplerRun(sigmas=sigmas, start=self.start.index(sigmas, given_fraction), n_sample=self.n_samples,
                          settings=SamplerSettings(**self.sampling), diffusion_chunk_size=self.diffusion_chunk_size)


@dataclass
class StageResult:
    features: Features
    samples: np.ndarray  # [S, N_atom, 3]: the final samples (kept atoms, polish, minimization)
    b_factors: np.ndarray  # [N_atom] spread of the final samples (Å)
    given_rmsd: np.ndarray  # [S] RMSD of the final samples' given atoms to the input
    sampled_given_rmsd: np.ndarray  # [S] the same right after sampling and superposition
    given_max_deviation: np.ndarray  # [S] largest distance of a final given atom from the input
    start_sigma: float
    steps_run: int
    seconds: float  # sampling and polish
    minimization: list[dict[str, Any]] | None = None  # per sample, when minimized
    minimization_seconds: list[float] | None = None
    consensus_rmsd: np.ndarray | None = None  # [S] mean RMSD of each sample to the others (Å)
    drawn_index: np.ndarray | None = None  # [S] the draw each returned sample came from (ranking)
    pairs_missed: np.ndarray | None = None  # [S] asserted base pairs each sample does not form (ranking)


class StagePipeline:
    """One structure at a time through the whole stage with a fixed model and settings."""

    def __init__(self, model: Any, settings: PipelineSettings = PipelineSettings()):
        self.conditioning = as_conditioning(model)
        self.settings = settings

    def features_of(self, structure_or_features: Any) -> Features:
        if isinstance(structure_or_features, Features):
            return structure_or_features
        return featurize(structure_or_features, max_sequence_length=self.settings.max_sequence_length)

    def run(self, structure_or_features: Any, *, trunk: Any = None, progress: Callable[[int], None] | None = None,
            guidance: Any = None, secondary_structure: str | None = None) -> StageResult:
        """trunk: optional upstream (s_inputs, s_trunk, z_trunk) replacing the standalone conditioning.
        progress: called with 1 after every denoiser call. guidance: a ready sampler guidance
        (RNAGuidance); when None, `settings.guidance` decides (built on this structure).
        secondary_structure: dot-bracket over all residues ('&' may separate chains): the
        conditioner's base-pair prior takes these pairs as given."""
        t0 = time.perf_counter()
        feats = self.features_of(structure_or_features)
        standalone = trunk is None and hasattr(self.conditioning, "model")
        if secondary_structure is not None and not standalone:
            raise ConfigError("a secondary structure reaches the model through the standalone conditioner; "
                              "with upstream trunk embeddings it would be ignored")
        if standalone and (secondary_structure is not None or "pair_prior" not in feats):
            # Once per structure: the conditioner and the guidance's base-pair term both read it.
            feats = with_pair_prior(feats, secondary_structure)
        coords, run = self._sample(feats, trunk, progress, guidance)
        result = self._finish(feats, coords, run, time.perf_counter() - t0)
        return result

    def _sample(self, feats: Features, trunk, progress, guidance) -> tuple[np.ndarray, SamplerRun]:
        s = self.settings
        f = feats.as_dict()
        given = f["atom_present_mask"] > 0
        if not bool(given.any()):
            raise InputError("no atom coordinates given: nothing to refine")
        n_atom, n_token = int(f["coords"].shape[0]), int(f["restype"].shape[0])
        run = s.sampler_run(self.conditioning.sigma_data, float(given.float().mean()))
        if guidance is None and s.guidance is not None:
            guidance = RNAGuidance.from_features(feats, s.guidance)
        module = self.conditioning.module
        module.eval()
        device = next(module.parameters(), torch.empty(0)).device
        f = {k: v.to(device) for k, v in f.items()}
        given = given.to(device)
        with torch.no_grad():
            x_init, centre = starting_coordinates(f["coords"], given, f, n_token)
            denoise = self.conditioning.denoiser(f, trunk)
            kept = None
            if s.anchor_strength > 0 and int(given.sum()) >= 3:
                kept = GivenAtomsGuidance(given, f["coords"][given] - centre, strength=s.anchor_strength,
                                          until_sigma=s.anchor_until_sigma)
            if progress is not None:
                denoise = _counting(denoise, progress)
            out = run(denoise, n_atom=n_atom, generator=seeded_generator(s.seed), x_init=x_init,
                      guidance=chain(kept, guidance), device=device)
        return (out.coordinates + centre).cpu().double().numpy(), run

    def _finish(self, feats: Features, coords: np.ndarray, run: SamplerRun, seconds: float) -> StageResult:
        s = self.settings
        given = feats["atom_present_mask"].numpy() > 0
        target = feats["coords"].double().numpy()
        tokens = feats["atom_to_token_idx"].numpy()
        topology = feats.topology() if s.regularize else None
        # the clash term is on for noisy inputs too: without it their polish left 9-19 clashes
        # per 1000 atoms on the bundled example (0 with it, RMSD 0.01 A better)
        restraints = (polish_restraints(feats, topology, pair_weight=s.regularize_pairs)
                      if s.regularize else None)
        t0 = time.perf_counter()
        if s.given_tolerance is None and s.regularize:
            coords = finish.polish(coords, restraints, s.polish)
        samples, sampled_rmsd = finish.superpose_on_given(coords, target, given)
        if s.given_tolerance is not None:
            samples = finish.keep_given(samples, target, given, s.given_tolerance, restraints, s.polish, tokens)
        seconds += time.perf_counter() - t0
        reports = mins = None
        if s.minimization is not None:
            samples, reports, mins = self._minimize(feats, samples, target, given, restraints, tokens)
        missed = None
        if s.rank_samples and len(samples) > 1 and "pair_prior" in feats:
            missed = pairs_missed(feats.layout, samples, set(prior_pairs(feats["pair_prior"])[0]))
        order, consensus = consensus_order(samples, missed)
        if not s.rank_samples:
            order = np.arange(len(samples))
        b_factors = finish.spread(samples)  # of the draw order: the same numbers either way
        samples, sampled_rmsd = samples[order], sampled_rmsd[order]
        if reports is not None:
            reports, mins = [reports[k] for k in order], [mins[k] for k in order]
        return StageResult(
            features=feats, samples=samples, b_factors=b_factors,
            given_rmsd=finish.given_rmsd(samples, target, given), sampled_given_rmsd=sampled_rmsd,
            given_max_deviation=finish.given_max_deviation(samples, target, given),
            start_sigma=run.start_sigma if run.start > 0 else float(run.sigmas[0]), steps_run=run.steps,
            seconds=seconds, minimization=reports, minimization_seconds=mins,
            consensus_rmsd=consensus[order], drawn_index=order,
            pairs_missed=None if missed is None else missed[order])

    def _minimize(self, feats, samples, target, given, restraints, tokens):
        s = self.settings
        out, reports, seconds = [], [], []
        for x in samples:
            t0 = time.perf_counter()
            x, report = finish.minimize_sample(feats.layout, x, s.minimization)
            if s.given_tolerance is not None:  # the minimizer's restraints let given atoms drift
                x = finish.keep_given(x[None], target, given, s.given_tolerance, restraints, s.polish, tokens)[0]
            out.append(x)
            reports.append(report)
            seconds.append(time.perf_counter() - t0)
        return np.stack(out), reports, seconds


def with_pair_prior(feats: Features, secondary_structure: str | None = None) -> Features:
    """feats with the base-pair prior (`rnadiff.chem.pairing`): the pairs the input geometry implies,
    and the dot-bracket's pairs when one is given."""
    pairs = None
    if secondary_structure is not None:
        pairs = parse_dot_bracket(secondary_structure, int(feats["restype"].shape[0]))
    tensors = dict(feats.as_dict(), pair_prior=pair_prior(feats, pairs))
    return Features(tensors=tensors, layout=feats.layout, notes=list(feats.notes))


def denoiser_calls(settings: PipelineSettings, sigma_data: float, given_fraction: float = 0.0) -> int:
    """How many denoiser calls `StagePipeline.run` makes (for a progress bar's total)."""
    run = settings.sampler_run(sigma_data, given_fraction)
    chunk = settings.diffusion_chunk_size or settings.n_samples
    return run.steps * -(-settings.n_samples // chunk)


def _counting(denoise, progress: Callable[[int], None]):
    def counted(x_noisy: torch.Tensor, t_hat: torch.Tensor) -> torch.Tensor:
        out = denoise(x_noisy, t_hat)
        progress(1)
        return out

    return counted
