"""ProtenixDiffusionManager: the seed's stage-D interface over the pipeline: it owns the denoiser,
its schedule and settings, and offers the stage's two entry points, a training step and
multi-step inference (sampling through `rnadiff.pipeline.sampling`, the same code `rnadiff refine`
runs).

`diffusion_config` is the `model.stageD` mapping of the Hydra tree (config/model/stageD.yaml);
missing keys take the packaged defaults, unknown keys are a ConfigError.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import OmegaConf

from rnadiff.diffusion.sampler import SamplerOutput
from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.diffusion.training import (
    ExponentialMovingAverage,
    LossWeights,
    clip_gradients,
    diffusion_loss,
    lr_scheduler_from_config,
    optimizer_from_config,
    training_forward,
)
from rnadiff.errors import ConfigError, InputError
from rnadiff.pipeline.conditioning import TrunkConditioning
from rnadiff.pipeline.inference_options import guidance_for, parse_inference
from rnadiff.pipeline.kept_atoms import GivenAtomsGuidance, chain
from rnadiff.pipeline.sampling import starting_coordinates
from rnadiff.pipeline.stage_config import AUTOCAST_DTYPES, MODULE_KEYS, resolve_stage_d

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_EFFICIENT_CHUNK = 256


@dataclass
class TrainingStepOutput:
    """Result of one training step. Unpacks like the seed's (x_gt_augment, x_denoised, sigma)."""

    x_gt_augment: torch.Tensor  # [..., S, N, 3]
    x_denoised: torch.Tensor  # [..., S, N, 3]
    sigma: torch.Tensor  # [..., S]
    loss: torch.Tensor | None = None  # [] with grad
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.x_gt_augment, self.x_denoised, self.sigma))


def _atom_level(features: Mapping[str, torch.Tensor], key: str, n_atom: int) -> torch.Tensor | None:
    """A molecule-type flag per atom; the featurizer stores them per token (residue)."""
    v = features.get(key)
    if v is None or v.shape[-1] == n_atom:
        return v
    idx = features["atom_to_token_idx"].long()
    return torch.gather(v, -1, idx) if idx.dim() > 1 else v[..., idx]


class ProtenixDiffusionManager:
    """Owns the DiffusionModule and runs training steps and multi-step inference."""

    def __init__(self, diffusion_config: Mapping[str, Any] | None = None, device: str | torch.device = "cpu",
                 *, denoiser: torch.nn.Module | None = None):
        self.config = resolve_stage_d(diffusion_config)
        self.device = torch.device(device)
        cfg = self.config
        mem = cfg["memory"]
        self.schedule = DiffusionSchedule(
            sigma_data=cfg["sigma_data"], s_max=cfg["schedule"]["s_max"], s_min=cfg["schedule"]["s_min"],
            p=cfg["schedule"]["p"], dt=cfg["schedule"]["dt"],
            p_mean=cfg["training"]["p_mean"], p_std=cfg["training"]["p_std"],
        )
        self.autocast_dtype = AUTOCAST_DTYPES[mem["mixed_precision"]]
        self.max_sequence_length = int(mem["max_sequence_length"])
        self.attention_chunk_size = mem["attention_chunk_size"]
        if mem["memory_efficient_attention"] and self.attention_chunk_size is None:
            self.attention_chunk_size = DEFAULT_MEMORY_EFFICIENT_CHUNK
        if denoiser is None:
            from rnadiff.model.diffusion_module import DiffusionModule

            kwargs = {k: cfg[k] for k in MODULE_KEYS}
            kwargs["blocks_per_ckpt"] = 1 if mem["gradient_checkpointing"] else None
            denoiser = DiffusionModule(**kwargs)
        self.diffusion_module = denoiser.to(self.device)
        if mem["compile"]:
            if not hasattr(self.diffusion_module, "compile_blocks"):
                raise ConfigError("model.stageD.memory.compile needs a DiffusionModule denoiser")
            self.diffusion_module.compile_blocks()
        self.last_output: SamplerOutput | None = None

    @classmethod
    def from_config(cls, cfg, **kwargs) -> "ProtenixDiffusionManager":
        """From a composed Hydra config (rnadiff.config.load_config): model.stageD on cfg.device."""
        return cls(OmegaConf.to_container(cfg.model.stageD, resolve=True), device=cfg.device, **kwargs)

    # ------------------------------------------------------------------ helpers
    def _to_device(self, d: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in (d or {}).items()}

    def _check_length(self, s_trunk: torch.Tensor) -> None:
        n_token = s_trunk.shape[-2]
        if n_token > self.max_sequence_length:
            raise InputError(
                f"{n_token} nucleotides exceed model.stageD.memory.max_sequence_length="
                f"{self.max_sequence_length}; raise that limit if the memory allows"
            )

    def hold_weights_for_inference(self) -> None:
        """Hold the denoiser's matmul weights in `memory.mixed_precision` (bf16/fp16) once, instead
        of autocast re-casting every float32 weight in every call (`DiffusionModule.hold_weights_in`).
        For inference: the module refuses training afterwards. `run_stage` does this for the
        managers it builds for inference; a long-lived pipeline that also trains leaves it off."""
        if self.autocast_dtype in (None, torch.float32):
            raise ConfigError("hold_weights_for_inference needs model.stageD.memory.mixed_precision bf16 or fp16")
        if not hasattr(self.diffusion_module, "hold_weights_in"):
            raise ConfigError("holding weights in reduced precision needs a DiffusionModule denoiser")
        self.diffusion_module.eval().hold_weights_in(self.autocast_dtype)

    def conditioning(self, *, inplace_safe: bool = False) -> TrunkConditioning:
        """The denoiser fed by upstream trunk tensors, with this stage's memory options."""
        return TrunkConditioning(self.diffusion_module, sigma_data=self.schedule.sigma_data,
                                 autocast_dtype=self.autocast_dtype, chunk_size=self.attention_chunk_size,
                                 inplace_safe=inplace_safe)

    # ------------------------------------------------------------------ training
    def build_optimizer(self) -> torch.optim.Optimizer:
        return optimizer_from_config(self.diffusion_module.parameters(), self.config["training"])

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer):
        return lr_scheduler_from_config(optimizer, self.config["training"])

    def build_ema(self) -> ExponentialMovingAverage:
        return ExponentialMovingAverage(self.diffusion_module, self.config["training"]["ema_decay"])

    def clip_gradients(self) -> torch.Tensor | None:
        return clip_gradients(self.diffusion_module.parameters(), self.config["training"]["grad_clip_norm"])

    def loss_weights(self) -> LossWeights:
        return LossWeights(**self.config["training"]["loss"])

    def train_diffusion_step(
        self,
        label_dict: Mapping[str, torch.Tensor],
        input_feature_dict: Mapping[str, torch.Tensor],
        s_inputs: torch.Tensor,
        s_trunk: torch.Tensor,
        z_trunk: torch.Tensor,
        sampler_params: Mapping[str, Any] | None = None,
        N_sample: int | None = None,
        *,
        generator: torch.Generator | None = None,
        compute_loss: bool = True,
    ) -> TrainingStepOutput:
        """One diffusion training forward pass (AF3 §3.7.1) and, by default, its loss.

        label_dict: "coordinate" [..., N, 3]; optional "coordinate_mask" [..., N], bonds as
        "bond_index" [n_bond, 2] (+ "bond_length") or "bond_mask" [N, N]; base-pair atom pairs as
        "pair_atom_index" [n, 2] (the alpha_base_pair term).
        sampler_params may override p_mean, p_std, diffusion_chunk_size; N_sample defaults to
        training.N_sample. Call `.loss.backward()` on the result.
        """
        t = self.config["training"]
        sp = dict(sampler_params or {})
        unknown = set(sp) - {"p_mean", "p_std", "sigma_data", "diffusion_chunk_size", "N_sample"}
        if unknown:
            raise ConfigError(f"unknown sampler_params: {', '.join(sorted(unknown))}")
        if "sigma_data" in sp and float(sp["sigma_data"]) != self.schedule.sigma_data:
            raise ConfigError("sampler_params.sigma_data differs from the model's sigma_data")
        n_sample = int(N_sample if N_sample is not None else sp.get("N_sample", t["N_sample"]))
        schedule = DiffusionSchedule(**{**self.schedule.__dict__, "p_mean": sp.get("p_mean", self.schedule.p_mean),
                                        "p_std": sp.get("p_std", self.schedule.p_std)})
        f = self._to_device(input_feature_dict)
        labels = self._to_device(label_dict)
        s_inputs, s_trunk, z_trunk = (x.to(self.device) for x in (s_inputs, s_trunk, z_trunk))
        self._check_length(s_trunk)
        x_true = labels["coordinate"].float()
        mask = labels.get("coordinate_mask")
        mask = torch.ones(x_true.shape[:-1], device=self.device) if mask is None else mask.float()
        denoise = self.conditioning().denoiser(f, (s_inputs, s_trunk, z_trunk))
        noisy, x_denoised = training_forward(
            denoise, x_true=x_true, coordinate_mask=mask, schedule=schedule, n_sample=n_sample,
            generator=generator, diffusion_chunk_size=sp.get("diffusion_chunk_size", t["diffusion_chunk_size"]),
            autocast_dtype=self.autocast_dtype,
        )
        out = TrainingStepOutput(x_gt_augment=noisy.x_gt_augment, x_denoised=x_denoised, sigma=noisy.sigma)
        if compute_loss:
            n_atom = x_true.shape[-2]
            ones = torch.ones(n_atom, device=self.device)
            is_rna, is_dna, is_ligand = (_atom_level(f, key, n_atom) for key in ("is_rna", "is_dna", "is_ligand"))
            out.loss, out.metrics = diffusion_loss(
                x_denoised, x_true, noisy.sigma, coordinate_mask=mask,
                is_rna=ones if is_rna is None else is_rna, is_dna=is_dna, is_ligand=is_ligand,
                bond_index=labels.get("bond_index"), bond_length=labels.get("bond_length"),
                bond_mask=labels.get("bond_mask"), pair_atom_index=labels.get("pair_atom_index"),
                weights=self.loss_weights(), sigma_data=self.schedule.sigma_data,
            )
        return out

    # ------------------------------------------------------------------ inference
    def _features(self, override_input_features, params) -> dict[str, torch.Tensor]:
        if override_input_features is not None:
            return self._to_device(override_input_features)
        sequence = params.get("sequence")
        if sequence is None:
            raise InputError("no input features given: pass override_input_features or inference_params['sequence']")
        from rnadiff.chem.features import features_from_sequence

        logger.warning("no input features given: using sequence-only features for %d nucleotides", len(sequence))
        return self._to_device(features_from_sequence(sequence))

    def _starts(self, coords_init, params, f, n_token: int, batched: bool, sigmas, opts):
        """(x_init [B, N, 3] or None, start index, B, given mask [B, N] or None) of one call."""
        if coords_init is None:
            return None, 0, (f["atom_to_token_idx"].shape[0] if batched else 1), None
        x = coords_init.to(self.device, torch.float32)
        x = x.unsqueeze(0) if x.dim() == 2 else x  # [B, N, 3]
        n_feature_atoms = f["ref_pos"].shape[-2]
        if x.dim() != 3 or x.shape[-2:] != (n_feature_atoms, 3):
            raise InputError(f"coords_init must be [N_atom, 3] or [B, N_atom, 3] with N_atom = {n_feature_atoms} "
                             f"(the input features' atoms), got {tuple(coords_init.shape)}")
        given = torch.isfinite(x).all(-1)
        mask = params.get("coords_mask")
        if mask is not None:
            mask = mask.to(self.device).bool()
            if mask.dim() == 1 and mask.shape[0] == given.shape[-1]:
                mask = mask.expand_as(given)
            if mask.shape != given.shape:
                raise InputError(f"coords_mask must be [N_atom] or {list(given.shape)} like coords_init, "
                                 f"got {list(params['coords_mask'].shape)}")
            given = given & mask
        x = torch.where(given[..., None], x, torch.zeros_like(x))
        start = opts.start.index(sigmas, float(given.float().mean()))
        if start == 0:
            return None, 0, x.shape[0], given
        n_atom = x.shape[-2]
        ref_pos = f["ref_pos"].reshape(-1, n_atom, 3).expand(x.shape[0], -1, -1)
        idx = f["atom_to_token_idx"].reshape(-1, n_atom).expand(x.shape[0], -1)
        x_init = torch.stack([
            starting_coordinates(x[b], given[b], {"ref_pos": ref_pos[b], "atom_to_token_idx": idx[b]}, n_token)[0]
            for b in range(x.shape[0])
        ])
        return x_init, start, x.shape[0], given

    @torch.no_grad()
    def multi_step_inference(
        self,
        coords_init: torch.Tensor | None,
        trunk_embeddings: Mapping[str, torch.Tensor],
        inference_params: Mapping[str, Any] | None = None,
        override_input_features: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Algorithm 18 from pure noise (coords_init None) or from coords_init.

        coords_init [B, N, 3] or [N, 3]; atoms to treat as missing are NaN rows or 0 in
        inference_params["coords_mask"] [B, N]. trunk_embeddings: s_inputs, s_trunk, z_trunk
        (unbatched, or batched with batched features). Returns [B, N, 3] for one sample,
        [B, S, N, 3] for several, in a frame centred on the given atoms (or the sampler's frame).
        The full SamplerOutput (trajectory etc.) is kept in `last_output`.
        """
        params = dict(inference_params or {})
        opts = parse_inference(self.config["inference"], params)
        f = self._features(override_input_features, params)
        emb = self._to_device(trunk_embeddings)
        z_key = "z_trunk" if "z_trunk" in emb else "pair"
        try:
            trunk = (emb["s_inputs"], emb["s_trunk"], emb[z_key])
        except KeyError as exc:
            raise InputError(f"trunk_embeddings lacks {exc.args[0]!r} (needs s_inputs, s_trunk, z_trunk)") from None
        self._check_length(trunk[1])
        batched = f["atom_to_token_idx"].dim() == 2
        n_atom = f["atom_to_token_idx"].shape[-1]
        chemistry = guidance_for(self.config["guidance"], params.get("guidance"), override_input_features,
                                 batched and f["atom_to_token_idx"].shape[0] > 1)
        sigmas = self.schedule.inference_sigmas(opts.num_steps, device=self.device)
        x_init, start, n_batch, given = self._starts(coords_init, params, f, trunk[1].shape[-2], batched, sigmas, opts)
        run = opts.sampler_run(sigmas, start, self.autocast_dtype)
        was_training = self.diffusion_module.training
        self.diffusion_module.eval()
        try:
            denoise = self.conditioning(inplace_safe=opts.inplace_safe).denoiser(f, trunk)
            common = dict(n_atom=n_atom, generator=opts.generator, device=self.device)
            if batched:
                out = run(denoise, batch_shape=(n_batch,), x_init=x_init, atom_mask=f.get("atom_mask"),
                          guidance=chemistry, **common)
                coords = out.coordinates
            else:
                # Unbatched features: the B coordinate sets share one structure; sample each in turn.
                outs = [run(denoise, x_init=None if x_init is None else x_init[b],
                            guidance=chain(self._kept(opts, x_init, given, b, start), chemistry), **common)
                        for b in range(n_batch)]
                out = outs[0] if n_batch == 1 else outs
                coords = torch.stack([o.coordinates for o in outs])
        finally:
            self.diffusion_module.train(was_training)
        self.last_output = out
        return coords.squeeze(1) if opts.n_sample == 1 else coords

    @staticmethod
    def _kept(opts, x_init, given, b: int, start: int) -> GivenAtomsGuidance | None:
        """Inpainting of batch item b's given atoms (inference_params anchor_strength > 0)."""
        if opts.anchor_strength <= 0 or x_init is None or start == 0 or int(given[b].sum()) < 3:
            return None
        return GivenAtomsGuidance(given[b], x_init[b][given[b]], strength=opts.anchor_strength,
                                  until_sigma=opts.anchor_until_sigma)
