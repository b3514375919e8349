"""RNAGuidance: the object the sampler calls on each denoised prediction.

Per sampler step (noise level t̂): every potential whose `TermSchedule.factor(t̂)` is non-zero
contributes to E(x) = Σ_k w_k(t̂)·E_k(x) (`rnadiff.diffusion.guidance.energy`: rows of the restraint
kernel the final polish uses too, numpy with analytic gradients); at most `n_steps` L-BFGS-B
iterations (scipy) move the prediction x̂, each atom by at most `max_displacement`, before the
Euler update, so the update direction (x_noisy − x̂)/t̂ carries the correction. Optionally,
Feynman–Kac steering resamples the samples by their energy after the update (`resample`).

The clash neighbour list is rebuilt every `neighbor_every` steps with a skin; pairs are atom
indices, valid in every step's random frame. Costs are accumulated in `stats`.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnadiff.chem.regularize import lbfgs_b
from rnadiff.chem.restraint_energy import clash_pairs, restraint_energy, sample_energies
from rnadiff.diffusion.guidance.config import POTENTIALS, GuidanceConfig
from rnadiff.diffusion.guidance.energy import GuidanceRows, active_terms, given_energy
from rnadiff.diffusion.guidance.steering import FKSteering
from rnadiff.diffusion.guidance.terms import GuidanceTerms, build_terms


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


def _flat(x: torch.Tensor | np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """x [..., S, N, 3] as float64 [S·N, 3] rows, with the leading shape [...] (S folded in)."""
    arr = x.detach().to("cpu", torch.float64).numpy() if torch.is_tensor(x) else np.asarray(x, np.float64)
    return arr.reshape(-1, 3).copy(), arr.shape[:-2]


class RNAGuidance:
    """Chemistry guidance and FK steering for one structure (all samples share its topology)."""

    def __init__(self, terms: GuidanceTerms, config: GuidanceConfig = GuidanceConfig(enabled=True)):
        self.terms = terms
        self.config = config
        self.stats = GuidanceStats()
        self._pairs: dict[Any, tuple[int, tuple]] = {}
        self._steering: FKSteering | None = None
        self._rows: dict[tuple[int, frozenset[str]], GuidanceRows] = {}

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
        pairs = any(config.terms[k].weight > 0 for k in ("base_pair", "pair_template"))
        return cls(build_terms(topology, f, base_pairs=pairs), config)

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

    def _clash_pairs(self, x: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.terms
        return clash_pairs(x, n_samples, t.radius, t.polar, t.exclude, self.config.terms["clash"].tolerance,
                           self.config.neighbor_skin, movable=t.atom_mask)

    def neighbor_pairs(self, x: np.ndarray, n_samples: int, *, step: int = 0, key: Any = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Clash candidate pairs (tiled indices) of x [S·N, 3] and their limits, rebuilt every
        neighbor_every steps."""
        cached = self._pairs.get(key)
        if cached is not None and step - cached[0] < self.config.neighbor_every and cached[2] == n_samples:
            return cached[1]
        t0 = time.perf_counter()
        pairs = self._clash_pairs(x, n_samples)
        self._pairs[key] = (step, pairs, n_samples)
        self.stats.neighbor_seconds += time.perf_counter() - t0
        self.stats.neighbor_builds += 1
        self.stats.pairs_last = len(pairs[0])
        return pairs

    # ------------------------------------------------------------------ energies
    def _system(self, n_samples: int, factors: Mapping[str, float], clash: tuple | None):
        """The tiled potentials weighted by `factors`; their rows are built once per sample count
        and set of active terms (a sampler step only reweights them)."""
        key = (n_samples, active_terms(factors))
        if key not in self._rows:
            self._rows[key] = GuidanceRows(self.terms, self.config.terms, key[1], n_samples)
        return self._rows[key].weighted(factors, clash)

    def _sample_totals(self, x: np.ndarray, n_samples: int, factors: Mapping[str, float],
                       clash: tuple | None) -> np.ndarray:
        """Σ_k factor_k · E_k per sample [S] of x [S·N, 3]."""
        total = sum(sample_energies(x, self._system(n_samples, factors, clash)).values())
        tether = self.config.terms["given"]
        return total + given_energy(x, self.terms, n_samples, factors.get("given", 0.0), tether.tolerance)[0]

    def energies(self, x: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Unweighted energy of every potential (with its tolerance) for x [..., N, 3] -> [...]."""
        flat, lead = _flat(x)
        n_samples = int(np.prod(lead, dtype=np.int64))
        clash = self._clash_pairs(flat, n_samples)
        return {k: self._sample_totals(flat, n_samples, {k: 1.0}, clash).reshape(lead) for k in POTENTIALS}

    def factors(self, sigma: float) -> dict[str, float]:
        return {k: v.factor(sigma) for k, v in self.config.terms.items()}

    # ------------------------------------------------------------------ sampler hooks
    def guide(self, x_denoised: torch.Tensor, t_hat: torch.Tensor, *, step: int = 0, key: Any = 0) -> torch.Tensor:
        """L-BFGS-B steps on x_denoised [..., S, N, 3] at noise level t_hat [..., S] (one level)."""
        sigma = float(t_hat.reshape(-1)[0])
        factors = self.factors(sigma)
        if self.config.n_steps == 0 or not any(w > 0 for w in factors.values()):
            return x_denoised
        t0 = time.perf_counter()
        x0, lead = _flat(x_denoised)
        n_samples = int(np.prod(lead, dtype=np.int64))
        clash = self.neighbor_pairs(x0, n_samples, step=step, key=key) if factors["clash"] > 0 else None
        x = self._minimise(x0, n_samples, factors, clash)
        self.stats.guide_seconds += time.perf_counter() - t0
        self.stats.guided_steps += 1
        out = torch.from_numpy(x.reshape(x_denoised.shape))
        return out.to(x_denoised.device, x_denoised.dtype)

    def _minimise(self, x0: np.ndarray, n_samples: int, factors: Mapping[str, float],
                  clash: tuple | None) -> np.ndarray:
        """scipy's L-BFGS-B on Σ_k w_k·E_k for x0 [S·N, 3] (the samples are independent terms of
        one sum, so one run serves them all), at most n_steps iterations; each atom's total move
        is then capped at max_displacement. Atoms outside atom_mask (padding) stay put.

        Why L-BFGS: bond terms are ~10x stiffer than angle/clash terms along some directions, so
        a step size stable for them barely moves the rest (measured on a perturbed crystal: 20
        gradient steps left 75% of bond outliers, L-BFGS removes them). Why numpy energies: the
        same terms under torch autograd cost ~5x more per evaluation (dispatch of many small ops),
        and torch.optim.LBFGS imports torch._dynamo (~3 s of start-up per process). The variables
        are x / step_size, so the line search's first trial step moves x by step_size Å."""
        cfg = self.config
        scale = float(cfg.step_size)
        system = self._system(n_samples, factors, clash)
        tether_w, tether_tol = factors.get("given", 0.0), cfg.terms["given"].tolerance
        free = np.tile(self.terms.atom_mask, n_samples)
        x = x0.copy()

        def energy_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
            x[free] = z.reshape(-1, 3) * scale
            e, g = restraint_energy(x, system)
            if tether_w > 0:  # off by default: no per-evaluation tether work then
                e_given, g_given = given_energy(x, self.terms, n_samples, tether_w, tether_tol)
                e, g = e + float(e_given.sum()), g + g_given
            return e, g[free].ravel() * scale

        res = lbfgs_b(energy_and_grad, x0[free].ravel() / scale, cfg.n_steps,
                      max_fun=cfg.n_steps + cfg.n_steps // 4 + 1, ftol=1e-9)
        x[free] = res.x.reshape(-1, 3) * scale
        disp = x - x0
        norm = np.linalg.norm(disp, axis=-1, keepdims=True)
        return x0 + disp * np.minimum(cfg.max_displacement / (norm + 1e-12), 1.0)

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
        xs, lead = _flat(x_denoised)
        n_samples = int(np.prod(lead, dtype=np.int64))
        clash = self.neighbor_pairs(xs, n_samples, step=step, key=key)
        full = {k: v.weight for k, v in self.config.terms.items()}
        energy = torch.from_numpy(self._sample_totals(xs, n_samples, full, clash).reshape(-1, s)).to(x_next.device)
        x_new, idx = self._steering.step(x_next.reshape(-1, s, n, 3), energy, key=key)
        self.stats.steering_seconds += time.perf_counter() - t0
        self.stats.resamplings += 1
        return x_new.reshape(shape), idx.reshape(shape[:-2])


__all__ = ["GuidanceStats", "RNAGuidance"]
