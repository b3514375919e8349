"""LightningModule: RefinementModel + the diffusion training objective of `rnadiff.diffusion`.

Per example: condition on the partial input, build the denoiser cache once, denoise N_sample
noisy copies of the ground truth (`training_forward`) and score them with `diffusion_loss`
(aligned weighted MSE + smooth lDDT + bond loss over the real bonds with ideal lengths).
AdamW + linear warm-up / step decay (`optimizer_from_config`, `lr_scheduler_from_config`); gradient clipping
by the Trainer; an EMA of the weights is updated after every step, saved in the checkpoint, used
for validation and exported.

Randomness is a pure function of (seed, global step) or (seed, validation index): a resumed run
draws exactly what the uninterrupted run would have drawn. The checkpoint holds only tensors and
plain Python values, so it loads with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from rnadiff.config.schema import DENOISER_KEYS
from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.diffusion.training import (
    ExponentialMovingAverage,
    LossWeights,
    diffusion_loss,
    lr_scheduler_from_config,
    optimizer_from_config,
    training_forward,
)
from rnadiff.model.refinement_model import RefinementModel
from rnadiff.train.examples import Example, make_generator

DIFFUSION_KEYS = DENOISER_KEYS  # one list of the denoiser's dimension keys (rnadiff.config.schema)


def model_config_from_stage_d(stage_d: dict[str, Any], conditioner: dict[str, Any]) -> dict[str, Any]:
    """RefinementModel kwargs from the `model.stageD` dict and the `conditioner` dict."""
    return {"conditioner": dict(conditioner), "diffusion": {k: stage_d[k] for k in DIFFUSION_KEYS}}


class RefinementLightning(pl.LightningModule):
    def __init__(self, model_config: dict[str, Any], stage_d: dict[str, Any], seed: int = 0,
                 provenance: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()  # plain dicts only: the checkpoint stays weights_only-safe
        self.model = RefinementModel(**model_config)
        tr, sc = stage_d["training"], stage_d["schedule"]
        self.schedule = DiffusionSchedule(sigma_data=stage_d["sigma_data"], s_max=sc["s_max"], s_min=sc["s_min"],
                                          p=sc["p"], dt=sc["dt"], p_mean=tr["p_mean"], p_std=tr["p_std"])
        self.loss_weights = LossWeights(**tr["loss"])
        self.n_sample = int(tr["N_sample"])
        self.chunk = tr.get("diffusion_chunk_size")
        self.seed = int(seed)
        self.ema = ExponentialMovingAverage(self.model, float(tr["ema_decay"]))
        # The EMA weights validation runs with, built at its start and dropped at its end. A plain
        # dict, so the copy is not registered as a submodule: it was, and best.ckpt (saved inside
        # validation) carried a second copy of the weights that a strict resume from it refuses.
        self._validation_models: dict[str, RefinementModel] = {}

    # -- loss -----------------------------------------------------------------------------------
    def example_loss(self, model: RefinementModel, ex: Example, generator: torch.Generator
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f = ex.features
        cache = model.prepare_cache(f)

        def denoise(x_noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return model.diffusion_module(x_noisy, sigma, f, None, None, None, cache=cache)

        noisy, pred = training_forward(denoise, x_true=ex.x_true, coordinate_mask=ex.true_mask,
                                       schedule=self.schedule, n_sample=self.n_sample, generator=generator,
                                       diffusion_chunk_size=self.chunk)
        is_rna = f["is_rna"][f["atom_to_token_idx"].long()]
        return diffusion_loss(pred, ex.x_true, noisy.sigma, coordinate_mask=ex.true_mask, is_rna=is_rna,
                              bond_index=ex.bond_index, bond_length=ex.bond_length, pair_atom_index=ex.pair_atoms,
                              weights=self.loss_weights,
                              sigma_data=self.model.sigma_data)

    def _batch_loss(self, model, batch: list[Example], generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        totals, parts = [], {}
        for ex in batch:
            loss, metrics = self.example_loss(model, ex, generator)
            totals.append(loss)
            for k, v in metrics.items():
                parts.setdefault(k, []).append(v)
        return torch.stack(totals).mean(), {k: torch.stack(v).mean() for k, v in parts.items()}

    # -- Lightning hooks ----------------------------------------------------------------------------
    def training_step(self, batch: list[Example], batch_idx: int) -> torch.Tensor:
        loss, parts = self._batch_loss(self.model, batch, make_generator(self.seed, 4, self.global_step))
        n = len(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=n)
        for k in ("mse_loss", "smooth_lddt_loss", "bond_loss", "base_pair_loss"):
            self.log(f"train_{k}", parts[k], batch_size=n)
        self.log("n_tokens", float(sum(int(ex.features["restype"].shape[0]) for ex in batch)), batch_size=n)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        # The EMA follows every optimizer step right away, inside the batch: Lightning runs
        # callbacks' on_train_batch_end (ModelCheckpoint saving last.ckpt) before the module's,
        # so an update there left mid-run checkpoints one EMA update behind their weights.
        super().optimizer_step(*args, **kwargs)
        self.ema.update(self.model)

    def on_validation_start(self) -> None:
        self._validation_models["ema"] = self.ema.averaged_copy(self.model).eval()

    def on_validation_end(self) -> None:
        self._validation_models.clear()

    def validation_step(self, batch: list[Example], batch_idx: int) -> torch.Tensor:
        model = self._validation_models.get("ema", self.model)
        loss, parts = self._batch_loss(model, batch, make_generator(self.seed, 5, batch_idx))
        # sync_dist: under DDP every rank validates its own shard; the logged value (and the best-
        # checkpoint choice made from it) is the mean over ranks, not rank 0's shard alone.
        self.log("val_loss", loss, prog_bar=True, batch_size=len(batch), on_epoch=True, sync_dist=True)
        self.log("val_mse_loss", parts["mse_loss"], batch_size=len(batch), on_epoch=True, sync_dist=True)
        self.log("val_smooth_lddt_loss", parts["smooth_lddt_loss"], batch_size=len(batch), on_epoch=True,
                 sync_dist=True)
        self.log("val_base_pair_loss", parts["base_pair_loss"], batch_size=len(batch), on_epoch=True, sync_dist=True)
        return loss

    # -- fine-tuning ----------------------------------------------------------------------------
    def load_initial_weights(self, model: RefinementModel) -> None:
        """Start from a trained model's weights (fine-tuning) instead of a fresh initialisation."""
        self.model.load_state_dict(model.state_dict())
        self.ema = ExponentialMovingAverage(self.model, self.ema.decay)

    def enable_lora(self, settings) -> int:
        """Freeze every weight, then wrap the denoiser's target projections with LoRA adapters
        (rnadiff.model.lora, peft): only the adapters train. Returns the trainable parameter count."""
        from rnadiff.model.lora import apply_lora

        for p in self.model.parameters():
            p.requires_grad_(False)
        apply_lora(self.model.diffusion_module, settings)
        self.ema = ExponentialMovingAverage(self.model, self.ema.decay)  # parameter names changed
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def configure_optimizers(self):
        tr = self.hparams.stage_d["training"]
        opt = optimizer_from_config(self.model.parameters(), tr)  # only parameters that require grad
        sched = lr_scheduler_from_config(opt, tr)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ema"] = {k: v.detach().clone() for k, v in self.ema.state_dict().items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "ema" in checkpoint:
            for k, v in checkpoint["ema"].items():
                self.ema.shadow[k].copy_(v)

    def ema_model(self) -> RefinementModel:
        """A copy of the model carrying the EMA weights (what gets exported); LoRA adapters, if
        any, are merged into the base weights so the copy is a plain RefinementModel."""
        model = self.ema.averaged_copy(self.model).eval()
        from rnadiff.model.lora import has_lora, merge_lora

        if has_lora(model.diffusion_module):
            model.diffusion_module = merge_lora(model.diffusion_module).eval()
        return model
