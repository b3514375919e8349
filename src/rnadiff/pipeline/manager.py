"""ProtenixDiffusionManager: one object that owns the denoiser, its schedule and its settings, and
offers the two entry points of stage D: a training step and multi-step inference (refinement).

`diffusion_config` is the `model.stageD` mapping of the Hydra tree (config/model/stageD.yaml);
missing keys take the packaged defaults, unknown keys are a ConfigError. Every key is consumed
here (see the yaml's comments for which call uses which).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnadiff.config import CONFIG_DIR, validate
from rnadiff.diffusion.refinement import place_missing_atoms, start_index_for
from rnadiff.diffusion.sampler import EarlyStopping, SamplerOutput, SamplerSettings, sample_diffusion
from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.diffusion.training import (
    ExponentialMovingAverage,
    LossWeights,
    build_lr_scheduler,
    build_optimizer,
    clip_gradients,
    diffusion_loss,
    training_forward,
)
from rnadiff.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

MODULE_KEYS = ("sigma_data", "c_atom", "c_atompair", "c_token", "c_s", "c_z", "c_s_inputs",
               "c_noise_embedding", "atom_encoder", "transformer", "atom_decoder")
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_MEMORY_EFFICIENT_CHUNK = 256


@dataclass
class DiffusionConfig:
    """Everything one stage-D run needs (seed-compatible container)."""

    partial_coords: torch.Tensor | None
    trunk_embeddings: dict[str, torch.Tensor]
    diffusion_config: dict[str, Any]
    mode: str = "inference"
    device: str = "cpu"
    input_features: dict[str, torch.Tensor] | None = None
    debug_logging: bool = False

    def __post_init__(self):
        if self.mode not in ("inference", "train"):
            raise ValueError(f"mode must be 'inference' or 'train', got {self.mode!r}")


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


def resolve_stage_d(diffusion_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Packaged model.stageD defaults merged with `diffusion_config` (unknown keys: ConfigError)."""
    base = OmegaConf.load(CONFIG_DIR / "model" / "stageD.yaml")
    OmegaConf.set_struct(base, True)
    user = diffusion_config or {}
    if "model" in user and "stageD" in (user.get("model") or {}):
        user = user["model"]["stageD"]
    if OmegaConf.is_config(user):
        user = OmegaConf.to_container(user, resolve=True)
    try:
        merged = OmegaConf.merge(base, user)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"diffusion_config: {str(exc).splitlines()[0]}") from None
    try:
        validate(OmegaConf.create({"model": {"stageD": merged}}))
    except TypeError as exc:
        raise ConfigError(f"diffusion_config has a value of the wrong type: {exc}") from None
    return OmegaConf.to_container(merged, resolve=True)


def _atom_level(features: Mapping[str, torch.Tensor], key: str, n_atom: int) -> torch.Tensor | None:
    """A molecule-type flag per atom; the featurizer stores them per token (residue)."""
    v = features.get(key)
    if v is None or v.shape[-1] == n_atom:
        return v
    idx = features["atom_to_token_idx"].long()
    return torch.gather(v, -1, idx) if idx.dim() > 1 else v[..., idx]


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _deep_merge(out[key], value) if both else value
    return out


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

    def _denoise_fn(self, features, s_inputs, s_trunk, z_trunk, *, inplace_safe: bool = False):
        """x_noisy, σ -> x_denoised, with the step-independent conditioning computed once."""
        module = self.diffusion_module
        cache = None
        if hasattr(module, "prepare_cache"):
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                cache = module.prepare_cache(features, s_inputs, s_trunk, z_trunk)
        chunk = self.attention_chunk_size

        def denoise(x_noisy: torch.Tensor, t_hat: torch.Tensor) -> torch.Tensor:
            kwargs = {"chunk_size": chunk, "inplace_safe": inplace_safe}
            if cache is not None:
                kwargs["cache"] = cache
            return module(x_noisy, t_hat, features, s_inputs, s_trunk, z_trunk, **kwargs)

        return denoise

    # ------------------------------------------------------------------ training
    def build_optimizer(self) -> torch.optim.Optimizer:
        t = self.config["training"]
        return build_optimizer(self.diffusion_module.parameters(), lr=t["lr"], weight_decay=t["weight_decay"],
                               betas=tuple(t["adam_betas"]))

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer):
        t = self.config["training"]
        return build_lr_scheduler(optimizer, warmup_steps=t["warmup_steps"],
                                  decay_every_n_steps=t["lr_decay_every_n_steps"], decay_factor=t["lr_decay_factor"])

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
        "bond_index" [n_bond, 2] (+ "bond_length") or "bond_mask" [N, N].
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
        denoise = self._denoise_fn(f, s_inputs, s_trunk, z_trunk)
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
                bond_mask=labels.get("bond_mask"), weights=self.loss_weights(), sigma_data=self.schedule.sigma_data,
            )
        return out

    # ------------------------------------------------------------------ inference
    def _inference_settings(self, params: Mapping[str, Any]) -> dict[str, Any]:
        inf = self.config["inference"]
        smp = inf["sampling"]
        allowed = {"num_steps", "N_sample", "seed", "generator", "temperature", "return_trajectory",
                   "early_stopping", "start_sigma", "start_fraction", "coords_mask", "sequence", "guidance",
                   *smp.keys()}
        unknown = set(params) - allowed
        if unknown:
            raise ConfigError(f"unknown inference_params: {', '.join(sorted(unknown))}")
        es = params.get("early_stopping", inf["early_stopping"] if inf["early_stopping"]["enabled"] else None)
        if isinstance(es, Mapping):
            es = None if not es.get("enabled", True) else EarlyStopping(
                patience=int(es.get("patience", inf["early_stopping"]["patience"])),
                min_delta=float(es.get("min_delta", inf["early_stopping"]["min_delta"])))
        ref = inf["refinement"]
        if "start_sigma" in params or "start_fraction" in params:
            start_sigma, start_fraction = params.get("start_sigma"), params.get("start_fraction")
        elif ref["start_fraction"] is not None:
            start_sigma, start_fraction = None, ref["start_fraction"]
        else:
            start_sigma, start_fraction = ref["start_sigma"], None
        return dict(
            num_steps=int(params.get("num_steps", inf["num_steps"])),
            n_sample=int(params.get("N_sample", inf["N_sample"])),
            seed=params.get("seed", inf["seed"]),
            generator=params.get("generator"),
            settings=SamplerSettings(
                gamma0=params.get("gamma0", smp["gamma0"]), gamma_min=params.get("gamma_min", smp["gamma_min"]),
                noise_scale_lambda=params.get("noise_scale_lambda", smp["noise_scale_lambda"]),
                step_scale_eta=params.get("step_scale_eta", smp["step_scale_eta"]),
                temperature=params.get("temperature", inf["temperature"]),
                align_to_prediction=bool(params.get("align_to_prediction", smp["align_to_prediction"])),
            ),
            chunk=params.get("diffusion_chunk_size", smp["diffusion_chunk_size"]),
            inplace_safe=bool(params.get("inplace_safe", smp["inplace_safe"])),
            early_stopping=es,
            return_trajectory=bool(params.get("return_trajectory", inf["return_trajectory"])),
            start_sigma=start_sigma, start_fraction=start_fraction,
        )

    def _features(self, override_input_features, params) -> dict[str, torch.Tensor]:
        if override_input_features is not None:
            return self._to_device(override_input_features)
        sequence = params.get("sequence")
        if sequence is None:
            raise InputError("no input features given: pass override_input_features or inference_params['sequence']")
        try:
            from rnadiff.chem.features import features_from_sequence
        except ImportError:
            raise ConfigError("no input features given and rnadiff.chem.features_from_sequence is unavailable") from None
        logger.warning("no input features given: using sequence-only features for %d nucleotides", len(sequence))
        return self._to_device(features_from_sequence(sequence))

    def _guidance(self, params: Mapping[str, Any], features: Any, batched: bool):
        """The sampler's guidance object, or None when off.

        inference_params["guidance"] may be a ready guidance object (RNAGuidance), a mapping of
        model.stageD.guidance overrides, or False. The topology comes from `features` (the
        `Features` that rnadiff.chem.featurize returns); the given atoms from its
        atom_present_mask / coords.
        """
        over = params.get("guidance")
        if over is not None and hasattr(over, "guide"):
            return over
        if over is False:
            return None
        from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance

        merged = _deep_merge(self.config["guidance"], over or {})
        if not merged.get("enabled"):
            return None
        cfg = GuidanceConfig.from_mapping(merged)
        if batched and features["atom_to_token_idx"].shape[0] > 1:
            raise ConfigError("guidance needs one structure per call (unbatched features)")
        if not hasattr(features, "topology"):
            if over is None:
                # On by default (model.stageD.guidance.enabled), but these bare feature tensors carry
                # no chemistry to guide by: sample unguided and say so, rather than refuse to run.
                logger.warning("guidance is on by default but the input features carry no topology "
                               "(pass rnadiff.chem.featurize output as override_input_features to use it): "
                               "sampling without guidance")
                return None
            raise ConfigError("model.stageD.guidance.enabled needs the structure's topology: pass the Features "
                              "from rnadiff.chem.featurize as override_input_features, or an RNAGuidance "
                              "as inference_params['guidance']")
        return RNAGuidance.from_features(features, cfg)

    @torch.no_grad()
    def multi_step_inference(
        self,
        coords_init: torch.Tensor | None,
        trunk_embeddings: Mapping[str, torch.Tensor],
        inference_params: Mapping[str, Any] | None = None,
        override_input_features: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Algorithm 18 from pure noise (coords_init None) or refinement from coords_init.

        coords_init [B, N, 3] or [N, 3]; atoms to treat as missing are NaN rows or 0 in
        inference_params["coords_mask"] [B, N]. trunk_embeddings: s_inputs, s_trunk, z_trunk
        (unbatched, or batched with batched features). Returns [B, N, 3] for one sample,
        [B, S, N, 3] for several. The full SamplerOutput (trajectory etc.) is kept in `last_output`.
        """
        params = dict(inference_params or {})
        st = self._inference_settings(params)
        f = self._features(override_input_features, params)
        emb = self._to_device(trunk_embeddings)
        z_key = "z_trunk" if "z_trunk" in emb else "pair"
        try:
            s_inputs, s_trunk, z_trunk = emb["s_inputs"], emb["s_trunk"], emb[z_key]
        except KeyError as exc:
            raise InputError(f"trunk_embeddings lacks {exc.args[0]!r} (needs s_inputs, s_trunk, z_trunk)") from None
        self._check_length(s_trunk)
        batched = f["atom_to_token_idx"].dim() == 2
        n_atom = f["atom_to_token_idx"].shape[-1]
        guidance = self._guidance(params, override_input_features, batched)

        sigmas = self.schedule.inference_sigmas(st["num_steps"], device=self.device)
        x_init, start_index = None, 0
        if coords_init is not None:
            x = coords_init.to(self.device, torch.float32)
            x = x.unsqueeze(0) if x.dim() == 2 else x  # [B, N, 3]
            given = torch.isfinite(x).all(-1)
            if params.get("coords_mask") is not None:
                given = given & params["coords_mask"].to(self.device).bool().reshape(given.shape)
            x = torch.where(given[..., None], x, torch.zeros_like(x))
            start_index = start_index_for(sigmas, start_sigma=st["start_sigma"], start_fraction=st["start_fraction"])
            if start_index > 0:
                ref_pos = f["ref_pos"].reshape(-1, n_atom, 3).expand(x.shape[0], -1, -1)
                idx = f["atom_to_token_idx"].reshape(-1, n_atom).expand(x.shape[0], -1)
                x_init = torch.stack([
                    place_missing_atoms(x[b], given[b], ref_pos=ref_pos[b], atom_to_token_idx=idx[b],
                                        n_token=s_trunk.shape[-2])
                    for b in range(x.shape[0])
                ])
            n_batch = x.shape[0]
        else:
            n_batch = s_trunk.shape[0] if batched else 1

        generator = st["generator"]
        if generator is None:
            generator = torch.Generator(device="cpu")
            if st["seed"] is not None:
                generator.manual_seed(int(st["seed"]))
            else:
                generator.seed()
        was_training = self.diffusion_module.training
        self.diffusion_module.eval()
        try:
            denoise = self._denoise_fn(f, s_inputs, s_trunk, z_trunk, inplace_safe=st["inplace_safe"])
            common = dict(noise_schedule=sigmas, n_atom=n_atom, n_sample=st["n_sample"], settings=st["settings"],
                          generator=generator, start_index=start_index, diffusion_chunk_size=st["chunk"],
                          early_stopping=st["early_stopping"], return_trajectory=st["return_trajectory"],
                          autocast_dtype=self.autocast_dtype, device=self.device, guidance=guidance)
            if batched:
                out = sample_diffusion(denoise, batch_shape=(n_batch,), x_init=x_init,
                                       atom_mask=f.get("atom_mask"), **common)
                coords = out.coordinates
            else:
                # Unbatched features: the B coordinate sets share one structure; sample each in turn.
                outs = [sample_diffusion(denoise, x_init=None if x_init is None else x_init[b], **common)
                        for b in range(n_batch)]
                out = outs[0] if n_batch == 1 else outs
                coords = torch.stack([o.coordinates for o in outs])
        finally:
            self.diffusion_module.train(was_training)
        self.last_output = out
        return coords.squeeze(1) if st["n_sample"] == 1 else coords
