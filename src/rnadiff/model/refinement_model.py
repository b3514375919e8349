"""RefinementModel = CoordinateConditioner + DiffusionModule, trained jointly.

The conditioner turns (sequence, given atoms, their coordinates) into the trunk tensors the
denoiser expects; an upstream trunk (Protenix pairformer output) may be passed instead and then
replaces the conditioner's tensors (their dims must match the denoiser's c_s_inputs/c_s/c_z).

    model = RefinementModel(conditioner={...}, diffusion={...})
    trunk = model.condition(features)                 # (s_inputs, s_trunk, z_trunk)
    cache = model.prepare_cache(features, trunk)       # once per structure
    x_hat = model(x_noisy, sigma, features, cache=cache)   # [*b, S, N_atom, 3]

`features` are the dicts of `rnadiff.chem.featurize` (or `collate_features` for a batch) whose
`coords` / `atom_present_mask` hold the partial input.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from rnadiff.chem.pairing import pair_prior
from rnadiff.model.diffusion_module import DiffusionCache, DiffusionModule
from rnadiff.model.coordinate_conditioner import CoordinateConditioner

Trunk = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

CONDITIONER_KEYS = ("c_atom", "n_blocks", "n_heads", "relpos_max", "distance_edges")


class RefinementModel(nn.Module):
    def __init__(self, conditioner: Mapping[str, Any] | None = None, diffusion: Mapping[str, Any] | None = None):
        super().__init__()
        diffusion = dict(diffusion or {})
        self.diffusion_module = DiffusionModule(**diffusion)
        dm = self.diffusion_module.config
        cond = dict(conditioner or {})
        unknown = set(cond) - set(CONDITIONER_KEYS)
        if unknown:
            raise ValueError(f"unknown conditioner option(s) {sorted(unknown)}; allowed: {list(CONDITIONER_KEYS)}")
        # The conditioner's output dims are the denoiser's input dims: never configured twice.
        self.conditioner = CoordinateConditioner(c_s_inputs=dm["c_s_inputs"], c_s=dm["c_s"], c_z=dm["c_z"], **cond)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able): {"conditioner": {...}, "diffusion": {...}}."""
        cond = {k: v for k, v in self.conditioner.config.items() if k in CONDITIONER_KEYS}
        return {"conditioner": cond, "diffusion": dict(self.diffusion_module.config)}

    def upgrade_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights of an older checkpoint format, completed with the layers added since.

        Format v1 checkpoints (e.g. the first shipped model) predate the base-pair prior; its
        projection is zero-initialised, so a zero projection is exactly what they were trained
        with. Nothing else is filled in: any other missing weight is still an error."""
        state = dict(state)
        key = "conditioner.pair_prior_proj.weight"
        if key not in state and any(k.startswith("conditioner.") for k in state):
            state[key] = torch.zeros_like(self.conditioner.pair_prior_proj.weight)
        return state

    @property
    def sigma_data(self) -> float:
        return self.diffusion_module.sigma_data

    def condition(self, features: Mapping[str, torch.Tensor], trunk: Trunk | Mapping[str, torch.Tensor] | None = None) -> Trunk:
        """(s_inputs, s_trunk, z_trunk): the upstream trunk if given, else the conditioner's.

        Unbatched features without a `pair_prior` get the one their geometry implies
        (`rnadiff.chem.pairing`); batched callers (training) compute it per example."""
        if trunk is None:
            if "pair_prior" not in features and features["restype"].dim() == 2:
                features = dict(features, pair_prior=pair_prior(features).to(features["coords"].device))
            return self.conditioner(features)
        if isinstance(trunk, Mapping):
            z_key = "z_trunk" if "z_trunk" in trunk else "pair"
            return trunk["s_inputs"], trunk["s_trunk"], trunk[z_key]
        return tuple(trunk)  # type: ignore[return-value]

    def prepare_cache(self, features: Mapping[str, torch.Tensor], trunk: Trunk | Mapping | None = None,
                      **kwargs: Any) -> DiffusionCache:
        """Condition once and build the denoiser's per-structure cache."""
        s_inputs, s_trunk, z_trunk = self.condition(features, trunk)
        return self.diffusion_module.prepare_cache(features, s_inputs, s_trunk, z_trunk, **kwargs)

    def forward(
        self,
        x_noisy: torch.Tensor,
        sigma: torch.Tensor,
        features: Mapping[str, torch.Tensor],
        trunk: Trunk | Mapping | None = None,
        *,
        cache: DiffusionCache | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Denoise x_noisy [*b, S, N_atom, 3] at σ [*b, S] -> [*b, S, N_atom, 3]."""
        if cache is None:
            cache = self.prepare_cache(features, trunk)
        # s_*/z_* are only used to build a cache, which we pass: give the cached tensors' owners.
        return self.diffusion_module(x_noisy, sigma, features, None, None, None, cache=cache, **kwargs)
