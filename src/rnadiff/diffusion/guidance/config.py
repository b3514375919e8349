"""Guidance settings (`model.stageD.guidance` in config/model/stageD.yaml) and time schedules.

Every potential has a `TermSchedule`: its weight is 0 while the step's noise level t̂ is above
`sigma_max` (the prediction is still a blur, chemistry would only fight the denoiser), rises
log-linearly in σ to `weight` at `sigma_full`, and stays there below it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from rnadiff.errors import ConfigError

POTENTIALS = ("bond", "link", "angle", "chirality", "planarity", "clash", "given", "base_pair", "pair_template")


@dataclass(frozen=True)
class TermSchedule:
    """Weight of one potential as a function of the noise level σ (Å)."""

    weight: float = 1.0
    sigma_max: float = 4.0   # inactive above this σ
    sigma_full: float = 1.0  # full weight at and below this σ
    # Flat-bottom half-width: in esd for bond/link/angle/planarity, Å³ of signed volume for
    # chirality (minimum |V| with the right sign), Å of allowed vdW overlap for clash, Å for given.
    tolerance: float = 0.0

    def __post_init__(self):
        if self.weight < 0 or self.sigma_max <= 0 or self.sigma_full <= 0 or self.tolerance < 0:
            raise ConfigError(f"guidance term needs weight, tolerance >= 0 and sigma_max, sigma_full > 0: {self}")
        if self.sigma_full > self.sigma_max:
            raise ConfigError(f"guidance term needs sigma_full <= sigma_max: {self}")

    def factor(self, sigma: float) -> float:
        """weight · ramp(σ): 0 above sigma_max, weight at or below sigma_full."""
        if self.weight == 0 or sigma > self.sigma_max:
            return 0.0
        if sigma <= self.sigma_full or self.sigma_max == self.sigma_full:
            return self.weight
        ramp = math.log(self.sigma_max / sigma) / math.log(self.sigma_max / self.sigma_full)
        return self.weight * ramp


# Defaults: tolerances sit inside the metrics' outlier limits (4 esd, 0.4 Å overlap), so that a
# metric outlier always has a gradient, and above what clean crystal chains of the dev set show
# (bonds <= 2.7 esd, angles <= 3.7 esd, base atoms <= 0.13 Å = 6.5 esd off their plane, |V| >= 2.1
# Å³), so that those have zero energy. The metrics do not score planarity; 7 esd = 0.14 Å.
DEFAULT_TERMS = {
    "bond": TermSchedule(1.0, 4.0, 1.0, 3.0),
    "link": TermSchedule(1.0, 4.0, 1.0, 3.0),
    "angle": TermSchedule(1.0, 4.0, 1.0, 3.5),
    "chirality": TermSchedule(1.0, 4.0, 1.0, 1.0),
    "planarity": TermSchedule(1.0, 4.0, 1.0, 7.0),
    "clash": TermSchedule(1.0, 4.0, 1.0, 0.3),
    "given": TermSchedule(0.0, 4.0, 1.0, 0.0),
    # H-bonds of the pairs the base-pair prior asserts (a user's secondary structure, else the
    # pairs inferred from the input geometry), in esd units of 0.2 Å / sqrt(confidence).
    "base_pair": TermSchedule(0.0, 4.0, 1.0, 2.25),
    # The same pairs held to the whole canonical pair geometry (C1' and ring cross distances,
    # rnadiff.chem.pair_geometry), in esd units of the measured spread / sqrt(confidence).
    "pair_template": TermSchedule(0.0, 4.0, 1.0, 1.0),
}


@dataclass(frozen=True)
class SteeringConfig:
    """Feynman–Kac particle resampling (Boltz-1x): at every `interval`-th step with t̂ <= sigma_max
    (and at the last step) resample the N_sample particles with weights ∝ exp(-λ·ΔE)."""

    enabled: bool = False
    fk_lambda: float = 1.0
    interval: int = 5
    sigma_max: float = 16.0

    def __post_init__(self):
        if self.fk_lambda < 0 or self.interval < 1 or self.sigma_max <= 0:
            raise ConfigError(f"guidance.steering needs lambda >= 0, interval >= 1, sigma_max > 0: {self}")


@dataclass(frozen=True)
class GuidanceConfig:
    """Everything the guidance needs besides the structure."""

    enabled: bool = False
    n_steps: int = 20            # L-BFGS-B iterations on x_denoised per sampler step
    step_size: float = 1.0       # Å: length of L-BFGS-B's first trial step (variables are x / step_size)
    max_displacement: float = 1.0  # Å: cap on each atom's move per sampler step
    # The clash neighbour list is rebuilt every `neighbor_every` sampler steps and keeps the pairs
    # within `neighbor_skin` Å of their contact limit. Every step: a k-d tree build costs less than
    # a list kept for several steps (whose skin must also cover the denoiser's moves between them).
    # A skin of 2 x max_displacement: within one step two atoms close by at most that much, so no
    # pair outside the list can reach contact.
    neighbor_every: int = 1
    neighbor_skin: float = 2.0
    terms: dict[str, TermSchedule] = field(default_factory=lambda: dict(DEFAULT_TERMS))
    steering: SteeringConfig = field(default_factory=SteeringConfig)

    def __post_init__(self):
        if self.n_steps < 0 or self.step_size <= 0 or self.max_displacement <= 0:
            raise ConfigError("guidance needs n_steps >= 0, step_size > 0, max_displacement > 0")
        if self.neighbor_every < 1 or self.neighbor_skin < 0:
            raise ConfigError("guidance needs neighbor_every >= 1 and neighbor_skin >= 0")
        unknown = set(self.terms) - set(POTENTIALS)
        if unknown:
            raise ConfigError(f"unknown guidance potentials: {', '.join(sorted(unknown))}")

    @property
    def sigma_max(self) -> float:
        """Largest σ at which any potential is active."""
        return max((t.sigma_max for t in self.terms.values() if t.weight > 0), default=0.0)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> "GuidanceConfig":
        """From the `model.stageD.guidance` mapping; missing keys take the defaults above."""
        cfg = dict(cfg or {})
        pots = dict(cfg.pop("potentials", None) or {})
        steer = dict(cfg.pop("steering", None) or {})
        known = {f.name for f in fields(cls)} - {"terms", "steering"}
        unknown = set(cfg) - known
        if unknown:
            raise ConfigError(f"unknown guidance keys: {', '.join(sorted(unknown))}")
        bad = set(pots) - set(POTENTIALS)
        if bad:
            raise ConfigError(f"unknown guidance potentials: {', '.join(sorted(bad))}")
        terms = {}
        for name in POTENTIALS:
            base = DEFAULT_TERMS[name]
            over = dict(pots.get(name) or {})
            extra = set(over) - {f.name for f in fields(TermSchedule)}
            if extra:
                raise ConfigError(f"unknown keys in guidance.potentials.{name}: {', '.join(sorted(extra))}")
            terms[name] = TermSchedule(**{f.name: float(over.get(f.name, getattr(base, f.name)))
                                          for f in fields(TermSchedule)})
        if "lambda" in steer:
            steer["fk_lambda"] = steer.pop("lambda")
        extra = set(steer) - {f.name for f in fields(SteeringConfig)}
        if extra:
            raise ConfigError(f"unknown keys in guidance.steering: {', '.join(sorted(extra))}")
        return cls(terms=terms, steering=SteeringConfig(**steer), **cfg)


__all__ = ["DEFAULT_TERMS", "GuidanceConfig", "POTENTIALS", "SteeringConfig", "TermSchedule"]
