"""Partial-input simulation: which atoms a training example 'gives' the model, and how exactly.

Refinement inputs range from a C1' trace to a noisy all-atom model. For every example one mode is
drawn (weights from the config): C1' only, P only, backbone (the 12 ribose-phosphate atoms), a
random subset of atoms, or all atoms with Gaussian noise. Only resolved atoms can be given. The
given coordinates get a small jitter (modes other than `noisy`) so the model learns not to trust
them to the last 0.1 Å, and then a random rotation + translation (the conditioner is invariant,
the sampler starts from the given frame; augmenting keeps both honest).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from rnadiff.chem.features import atom_name_code, atom_name_codes, backbone_atom_mask, glycosidic_n_mask
from rnadiff.diffusion.augmentation import uniform_random_rotation

MODES = ("c1", "p", "three_bead", "backbone", "subset", "noisy")


@dataclass(frozen=True)
class PartialSettings:
    c1: float = 0.25
    p: float = 0.15
    three_bead: float = 0.0
    backbone: float = 0.2
    subset: float = 0.15
    noisy: float = 0.25
    noisy_sigma_min: float = 0.3
    noisy_sigma_max: float = 2.0
    jitter_max: float = 0.3

    @classmethod
    def from_mapping(cls, m: Mapping) -> "PartialSettings":
        unknown = set(m) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown data.partial option(s): {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in m.items()})

    def weights(self) -> torch.Tensor:
        w = torch.tensor([getattr(self, m) for m in MODES], dtype=torch.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError("data.partial weights must be >= 0 and not all 0")
        return w


def mode_mask(mode: str, features: Mapping[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """[N] bool: atoms given in this mode (before intersecting with the resolved atoms)."""
    codes = atom_name_codes(features["ref_atom_name_chars"])
    if mode == "c1":
        return codes == atom_name_code("C1'")
    if mode == "p":
        return codes == atom_name_code("P")
    if mode == "three_bead":
        return (codes == atom_name_code("P")) | (codes == atom_name_code("C4'")) | glycosidic_n_mask(features)
    if mode == "backbone":
        return backbone_atom_mask(codes)
    if mode == "subset":
        frac = 0.1 + 0.8 * float(torch.rand((), generator=generator))
        return torch.rand(codes.shape, generator=generator) < frac
    if mode == "noisy":
        return torch.ones_like(codes, dtype=torch.bool)
    raise ValueError(f"unknown partial mode {mode!r}; choose from {MODES}")


def simulate_partial(features: Mapping[str, torch.Tensor], settings: PartialSettings, generator: torch.Generator,
                     mode: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Features whose `coords`/`atom_present_mask` hold a simulated partial input, and the mode."""
    if mode is None:
        mode = MODES[int(torch.multinomial(settings.weights(), 1, generator=generator))]
    resolved = features["atom_present_mask"] > 0
    given = mode_mask(mode, features, generator) & resolved
    if not given.any():  # e.g. P only on a 1-residue crop without P: fall back to everything
        given = resolved.clone()
    x = features["coords"].float()
    if mode == "noisy":
        lo, hi = settings.noisy_sigma_min, settings.noisy_sigma_max
    else:
        lo, hi = 0.0, settings.jitter_max
    sigma = lo + (hi - lo) * float(torch.rand((), generator=generator))
    x = x + sigma * torch.randn(x.shape, generator=generator)
    rot = uniform_random_rotation(1, generator=generator)[0]
    trans = 20.0 * torch.randn(3, generator=generator)
    x = x @ rot.T + trans
    out = dict(features)
    out["coords"] = torch.where(given[:, None], x, torch.zeros_like(x))
    out["atom_present_mask"] = given.float()
    return out, mode
