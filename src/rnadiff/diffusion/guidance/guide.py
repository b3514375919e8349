"""RNAGuidance: the object the sampler calls on each denoised prediction.

Per sampler step (noise level t̂): every potential whose `TermSchedule.factor(t̂)` is non-zero
contributes to E(x) = Σ_k w_k(t̂)·E_k(x); at most `n_steps` L-BFGS-B iterations (scipy) move
the prediction x̂, each atom by at most `max_displacement`, before the Euler update, so the update
direction (x_noisy − x̂)/t̂ carries the correction. Optionally, Feynman–Kac
steering resamples the samples by their energy after the update (`resample`).

The clash neighbour list is rebuilt every `neighbor_every` steps with a skin; pairs are atom
indices, valid in every step's random frame. Costs are accumulated in `stats`.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnadiff.chem.regularize import lbfgs_b
from rnadiff.diffusion.guidance import potentials as P
from rnadiff.diffusion.guidance.config import GuidanceConfig
from rnadiff.diffusion.guidance.steering import FKSteering
from rnadiff.diffusion.guidance.terms import HBOND_LENGTH, GuidanceTerms, build_terms
from rnadiff.geometry import neighbor_pairs_torch


@dataclass
class GuidanceStats:
    """Wall-clock cost of guidance (seconds) and how often each part ran."""

    guide_seconds: float = 0.0
    neighbor_seconds: float = 0.0
    steering_seconds: float = 0.0
    guided_steps: int = 0
    neighbor_builds: int = 0
    resamplings: int = 0
    pairs_last: int = 0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class RNAGuidance:
    """Chemistry guidance and FK steering for one structure (all samples share its topology)."""

    def __init__(self, terms: GuidanceTerms, config: GuidanceConfig = GuidanceConfig(enabled=True)):
        self.terms = terms
        self.config = config
        self.stats = GuidanceStats()
        self._pairs: dict[Any, tuple[int, tuple]] = {}
        self._steering: FKSteering | None = None

    @classmethod
    def from_features(cls, features: Any, config: GuidanceConfig | Mapping | None = None,
                      topology=None) -> "RNAGuidance":
        """From `rnadiff.chem.featurize` output (a Features with `.topology()`), or a feature
        mapping plus its `topology`."""
        if not isinstance(config, GuidanceConfig):
            config = GuidanceConfig.from_mapping({"enabled": True, **dict(config or {})})
        if topology is None:
            topology = features.topology()
        f = features.as_dict() if hasattr(features, "as_dict") else dict(features)
        return cls(build_terms(topology, f), config)

    # ------------------------------------------------------------------ state
    @property
    def steering_enabled(self) -> bool:
        return self.config.steering.enabled

    def start(self, generator: torch.Generator | None = None) -> None:
        """Reset caches and statistics before a sampling run. The steering generator is seeded
        from `generator` (one draw, only when steering is on) so that runs are reproducible."""
        self.stats = GuidanceStats()
        self._pairs = {}
        self._steering = None
        if self.steering_enabled:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if generator is not None else 0
            self._steering = FKSteering(self.config.steering.fk_lambda, torch.Generator().manual_seed(seed))

    def _terms_on(self, device: torch.device) -> GuidanceTerms:
        if self.terms.radius.device != device:
            self.terms = self.terms.to(device)
        return self.terms

    def neighbor_pairs(self, x: torch.Tensor, *, step: int = 0, key: Any = 0) -> tuple:
        """Clash candidate pairs (sample, i, j) of x [S, N, 3], rebuilt every neighbor_every steps."""
        cached = self._pairs.get(key)
        if cached is not None and step - cached[0] < self.config.neighbor_every and cached[2] == x.shape[0]:
            return cached[1]
        t0 = time.perf_counter()
        terms = self._terms_on(x.device)
        cutoff = terms.max_contact + self.config.neighbor_skin
        pairs = neighbor_pairs_torch(x, cutoff, atom_mask=terms.atom_mask, exclude=terms.exclude)
        self._pairs[key] = (step, pairs, x.shape[0])
        self.stats.neighbor_seconds += time.perf_counter() - t0
        self.stats.neighbor_builds += 1
        self.stats.pairs_last = int(pairs[0].numel())
        return pairs

    # ------------------------------------------------------------------ energies
    def _energy_functions(self, x: torch.Tensor, t: GuidanceTerms, pairs: tuple) -> dict[str, Callable[[], torch.Tensor]]:
        """Each potential's energy [S] of x [S, N, 3] with its tolerance, computed on demand."""
        tol = {k: v.tolerance for k, v in self.config.terms.items()}
        return {
            "bond": lambda: P.bond_energy(x, t.bonds, t.bond_length, t.bond_esd, tol["bond"]),
            "link": lambda: P.bond_energy(x, t.links, t.link_length, t.link_esd, tol["link"]),
            "angle": lambda: P.angle_energy(x, t, tol["angle"]),
            "chirality": lambda: P.chirality_energy(x, t, tol["chirality"]),
            "planarity": lambda: P.planarity_energy(x, t, tol["planarity"]),
            "clash": lambda: P.clash_energy(x, t, pairs, tol["clash"]),
            "given": lambda: P.given_energy(x, t, tol["given"]),
            "base_pair": lambda: P.bond_energy(x, t.pair_hbonds, HBOND_LENGTH, t.pair_hbond_esd, tol["base_pair"]),
            "pair_template": lambda: P.bond_energy(x, t.pair_template, t.pair_template_length, t.pair_template_esd,
                                                   tol["pair_template"]),
        }

    def energies(self, x: torch.Tensor, pairs: tuple | None = None) -> dict[str, torch.Tensor]:
        """Unweighted energy of every potential (with its tolerance) for x [..., N, 3] -> [...]."""
        lead = x.shape[:-2]
        xs = x.reshape(-1, *x.shape[-2:]).to(torch.float32)
        t = self._terms_on(x.device)
        if pairs is None:
            pairs = neighbor_pairs_torch(xs, t.max_contact + self.config.neighbor_skin, atom_mask=t.atom_mask,
                                    exclude=t.exclude)
        return {k: fn().reshape(lead) for k, fn in self._energy_functions(xs, t, pairs).items()}

    def _weighted(self, x: torch.Tensor, factors: dict[str, float], pairs: tuple | None) -> torch.Tensor:
        """Σ_k factor_k · E_k(x) for x [S, N, 3] -> [S]; only the active terms are computed."""
        fns = self._energy_functions(x, self.terms, pairs)
        total = x.new_zeros(x.shape[0])
        for name, w in factors.items():
            if w > 0:
                total = total + w * fns[name]()
        return total

    def factors(self, sigma: float) -> dict[str, float]:
        return {k: v.factor(sigma) for k, v in self.config.terms.items()}

    # ------------------------------------------------------------------ sampler hooks
    def guide(self, x_denoised: torch.Tensor, t_hat: torch.Tensor, *, step: int = 0, key: Any = 0) -> torch.Tensor:
        """Gradient steps on x_denoised [..., S, N, 3] at noise level t_hat [..., S] (one level)."""
        sigma = float(t_hat.reshape(-1)[0])
        factors = self.factors(sigma)
        if self.config.n_steps == 0 or not any(w > 0 for w in factors.values()):
            return x_denoised
        t0 = time.perf_counter()
        shape = x_denoised.shape
        terms = self._terms_on(x_denoised.device)
        x = x_denoised.detach().reshape(-1, *shape[-2:]).to(torch.float32).clone()
        pairs = self.neighbor_pairs(x, step=step, key=key) if factors["clash"] > 0 else None
        movable = terms.atom_mask.to(x.dtype)[:, None]
        x = self._minimise(x, factors, pairs, movable)
        self.stats.guide_seconds += time.perf_counter() - t0
        self.stats.guided_steps += 1
        return x.reshape(shape).to(x_denoised.dtype)

    def _minimise(self, x0: torch.Tensor, factors: dict[str, float], pairs: tuple | None,
                  movable: torch.Tensor) -> torch.Tensor:
        """scipy's L-BFGS-B on Σ_k w_k·E_k for x0 [S, N, 3] (the samples are independent terms of
        one sum, so one run serves them all), at most n_steps iterations; each atom's total move
        is then capped at max_displacement.

        Why L-BFGS: bond terms are ~10x stiffer than angle/clash terms along some directions, so
        a step size stable for them barely moves the rest (measured on a perturbed crystal: 20
        gradient steps left 75% of bond outliers, L-BFGS removes them). Why scipy's rather than
        torch.optim.LBFGS: the torch optimiser imports torch._dynamo (~3 s of start-up per
        process) and costs more per iteration (benchmarks/guidance_optimizer.py). The variables
        are x / step_size, so the line search's first trial step moves x by step_size Å."""
        cfg = self.config
        shape, scale = x0.shape, float(cfg.step_size)
        start = x0.detach().to("cpu", torch.float64).reshape(-1).numpy() / scale

        def energy_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
            x = torch.from_numpy(z * scale).to(x0.device, torch.float32).reshape(shape).requires_grad_(True)
            energy = self._weighted(x, factors, pairs).sum()
            (grad,) = torch.autograd.grad(energy, x)
            grad = (grad * movable).to("cpu", torch.float64).reshape(-1).numpy() * scale  # padding stays put
            return float(energy.detach()), grad

        with torch.enable_grad(), torch.autocast(device_type=x0.device.type, enabled=False):
            res = lbfgs_b(energy_and_grad, start, cfg.n_steps, max_fun=cfg.n_steps + cfg.n_steps // 4 + 1,
                          ftol=1e-9)
        x = torch.from_numpy(res.x * scale).to(x0.device, x0.dtype).reshape(shape)
        disp = x - x0
        norm = disp.norm(dim=-1, keepdim=True)
        disp = disp * torch.clamp(cfg.max_displacement / (norm + 1e-12), max=1.0)
        return x0 + disp * movable

    def resample(self, x_next: torch.Tensor, x_denoised: torch.Tensor, t_hat: torch.Tensor, *, step: int,
                 n_steps: int, key: Any = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """FK resampling of x_next [..., S, N, 3] by the full-weight energy of x_denoised.

        Returns (x_next, ancestors [..., S] or None when this step does not resample)."""
        sc = self.config.steering
        sigma = float(t_hat.reshape(-1)[0])
        last = step == n_steps - 1
        if self._steering is None or sigma > sc.sigma_max or not (step % sc.interval == 0 or last):
            return x_next, None
        t0 = time.perf_counter()
        shape = x_next.shape
        s, n = shape[-3], shape[-2]
        xs = x_denoised.detach().reshape(-1, n, 3).to(torch.float32)
        pairs = self.neighbor_pairs(xs, step=step, key=key)
        full = {k: v.weight for k, v in self.config.terms.items()}
        with torch.no_grad():
            energy = self._weighted(xs, full, pairs).reshape(-1, s)  # [B, S]
        x_new, idx = self._steering.step(x_next.reshape(-1, s, n, 3), energy, key=key)
        self.stats.steering_seconds += time.perf_counter() - t0
        self.stats.resamplings += 1
        return x_new.reshape(shape), idx.reshape(shape[:-2])


__all__ = ["GuidanceStats", "RNAGuidance"]
