"""The diffusion training step (AF3 §3.7.1 / Protenix `sample_diffusion_training`) and its loss.

Per structure: N_sample copies of the ground truth, each centred (on resolved atoms), randomly
rotated and translated (Algorithm 19), noised at its own σ ~ σd·exp(p_mean + p_std·N(0,1)), and
denoised in one batched call. The loss is Protenix's
    total = alpha_diffusion · (mse + weight_smooth_lddt · smooth_lddt + alpha_bond · bond
                               + alpha_base_pair · base_pair)
with the EDM weight (σ² + σd²)/(σ·σd)² on mse, bond and base_pair (docs/design.md §5). `base_pair` is
rnadiff's addition (0 in Protenix): the bond loss over every base-atom pair across each annotated
canonical base pair, against the true distances — it rewards formed H-bonds and coplanar pairs.

Also here: the optimiser, learning-rate schedule, gradient clipping and EMA that the training
config names (consumed by `rnadiff.train` and the tests).
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import torch

from rnadiff.diffusion.augmentation import centre_random_augmentation, uniform_random_rotation
from rnadiff.diffusion.losses import (
    bond_loss_dense,
    bond_loss_sparse,
    lddt_pair_index,
    mse_atom_weight,
    smooth_lddt_loss_sparse,
    weighted_mse_loss,
)
from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.model.edm import loss_weight

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the diffusion loss (Protenix defaults; alpha_bond 0 as in its initial training)."""

    alpha_diffusion: float = 4.0
    weight_mse: float = 1 / 3
    weight_smooth_lddt: float = 1.0
    alpha_bond: float = 0.0
    alpha_base_pair: float = 0.0
    weight_rna: float = 5.0
    weight_dna: float = 5.0
    weight_ligand: float = 10.0
    lddt_nucleotide_radius: float = 30.0
    lddt_other_radius: float = 15.0


@dataclass
class NoisyBatch:
    x_gt_augment: torch.Tensor  # [..., S, N, 3]
    sigma: torch.Tensor  # [..., S]
    x_noisy: torch.Tensor  # [..., S, N, 3]


def make_noisy_copies(
    x_true: torch.Tensor,
    *,
    coordinate_mask: torch.Tensor | None,
    schedule: DiffusionSchedule,
    n_sample: int,
    generator: torch.Generator | None = None,
    s_trans: float = 1.0,
) -> NoisyBatch:
    """N_sample augmented, noised copies of the ground truth x_true [..., N, 3] (float32)."""
    batch = x_true.shape[:-2]
    device = x_true.device
    n = int(torch.tensor(batch).prod()) if batch else 1
    rot = uniform_random_rotation(n * n_sample, generator=generator).reshape(*batch, n_sample, 3, 3).to(device)
    gen_device = generator.device if generator is not None else "cpu"
    trans = s_trans * torch.randn((*batch, n_sample, 3), generator=generator, device=gen_device).to(device)
    mask = None if coordinate_mask is None else coordinate_mask.unsqueeze(-2)  # [..., 1, N]
    x_gt = centre_random_augmentation(x_true.unsqueeze(-3), rot=rot, trans=trans, mask=mask)
    if mask is not None:
        # Unresolved atoms carry no ground truth: they start from the origin (as in Protenix's draw).
        x_gt = x_gt * mask.unsqueeze(-1).to(x_gt.dtype)
    sigma = schedule.sample_training_sigmas((*batch, n_sample), generator=generator).to(device)
    noise = torch.randn(x_gt.shape, generator=generator, device=gen_device).to(device)
    return NoisyBatch(x_gt_augment=x_gt, sigma=sigma, x_noisy=x_gt + noise * sigma[..., None, None])


def diffusion_loss(
    x_denoised: torch.Tensor,
    x_true: torch.Tensor,
    sigma: torch.Tensor,
    *,
    coordinate_mask: torch.Tensor,
    is_rna: torch.Tensor,
    is_dna: torch.Tensor | None = None,
    is_ligand: torch.Tensor | None = None,
    bond_index: torch.Tensor | None = None,
    bond_length: torch.Tensor | None = None,
    bond_mask: torch.Tensor | None = None,
    pair_atom_index: torch.Tensor | None = None,
    weights: LossWeights = LossWeights(),
    sigma_data: float = 16.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Protenix's diffusion loss for predictions x_denoised [..., S, N, 3] of x_true [..., N, 3].

    x_true is the ground truth in any frame (alignment makes the loss frame-invariant).
    Bonds: `bond_index [n_bond, 2]` (+ optional ideal `bond_length`) or Protenix's dense
    `bond_mask [N, N]`. Smooth lDDT always uses pair lists (no N×N tensor).
    Returns (total [], metrics with detached mse_loss, smooth_lddt_loss, bond_loss, loss).
    """
    scale = loss_weight(sigma, sigma_data)  # [..., S]
    w = mse_atom_weight(is_rna=is_rna, is_dna=is_dna, is_ligand=is_ligand, coordinate_mask=coordinate_mask,
                        weight_rna=weights.weight_rna, weight_dna=weights.weight_dna,
                        weight_ligand=weights.weight_ligand)
    mse, _ = weighted_mse_loss(x_denoised, x_true, coordinate_mask=coordinate_mask, atom_weight=w,
                               per_sample_scale=scale, weight_mse=weights.weight_mse)
    mse = mse.mean()
    is_nuc = is_rna.bool() if is_dna is None else (is_rna.bool() | is_dna.bool())
    batch = x_true.shape[:-2]
    flat_pred = x_denoised.reshape(-1, *x_denoised.shape[-3:])
    flat_true = x_true.reshape(-1, *x_true.shape[-2:])
    flat_mask = coordinate_mask.expand(*batch, coordinate_mask.shape[-1]).reshape(-1, x_true.shape[-2])
    flat_nuc = is_nuc.expand(*batch, is_nuc.shape[-1]).reshape(-1, x_true.shape[-2])
    flat_scale = scale.reshape(-1, scale.shape[-1])
    lddt_terms, bond_terms, pair_terms = [], [], []
    # Pair lists differ per structure: one structure at a time (training batches are small).
    for b in range(flat_true.shape[0]):
        pairs = lddt_pair_index(flat_true[b], coordinate_mask=flat_mask[b], is_nucleotide=flat_nuc[b],
                                nucleotide_radius=weights.lddt_nucleotide_radius,
                                other_radius=weights.lddt_other_radius)
        lddt_terms.append(smooth_lddt_loss_sparse(flat_pred[b], flat_true[b], pair_index=pairs))
        if weights.alpha_bond != 0:
            if bond_index is not None:
                bond_terms.append(bond_loss_sparse(flat_pred[b], bond_index=bond_index, true=flat_true[b],
                                                   target_length=bond_length, coordinate_mask=flat_mask[b],
                                                   per_sample_scale=flat_scale[b]))
            elif bond_mask is not None:
                bond_terms.append(bond_loss_dense(flat_pred[b], flat_true[b], bond_mask=bond_mask,
                                                  coordinate_mask=flat_mask[b], per_sample_scale=flat_scale[b]))
        if weights.alpha_base_pair != 0 and pair_atom_index is not None and len(pair_atom_index):
            pair_terms.append(bond_loss_sparse(flat_pred[b], bond_index=pair_atom_index, true=flat_true[b],
                                               coordinate_mask=flat_mask[b], per_sample_scale=flat_scale[b]))
    lddt = torch.stack(lddt_terms).mean()
    bond = torch.stack(bond_terms).mean() if bond_terms else x_denoised.new_zeros(())
    base_pair = torch.stack(pair_terms).mean() if pair_terms else x_denoised.new_zeros(())
    total = weights.alpha_diffusion * (mse + weights.weight_smooth_lddt * lddt + weights.alpha_bond * bond
                                       + weights.alpha_base_pair * base_pair)
    metrics = {"mse_loss": mse.detach(), "smooth_lddt_loss": lddt.detach(), "bond_loss": bond.detach(),
               "base_pair_loss": base_pair.detach(), "loss": total.detach()}
    return total, metrics


def training_forward(
    denoise_fn: DenoiseFn,
    *,
    x_true: torch.Tensor,
    coordinate_mask: torch.Tensor | None,
    schedule: DiffusionSchedule,
    n_sample: int,
    generator: torch.Generator | None = None,
    diffusion_chunk_size: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[NoisyBatch, torch.Tensor]:
    """Noisy copies and their denoised predictions (Protenix `sample_diffusion_training`).

    The denoiser runs over samples in chunks of `diffusion_chunk_size` (same result, less memory)
    and under autocast when `autocast_dtype` is bf16/fp16; the output is cast to float32.
    """
    noisy = make_noisy_copies(x_true.float(), coordinate_mask=coordinate_mask, schedule=schedule,
                              n_sample=n_sample, generator=generator)
    ctx = (contextlib.nullcontext() if autocast_dtype in (None, torch.float32)
           else torch.autocast(device_type=x_true.device.type, dtype=autocast_dtype))
    chunk = n_sample if diffusion_chunk_size is None else diffusion_chunk_size
    outs = []
    with ctx:
        for c0 in range(0, n_sample, chunk):
            c1 = min(n_sample, c0 + chunk)
            outs.append(denoise_fn(noisy.x_noisy[..., c0:c1, :, :], noisy.sigma[..., c0:c1]))
    return noisy, torch.cat(outs, dim=-3).float()


# --- optimisation utilities named by the training config -------------------------------------

def build_optimizer(
    params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """Adam(W) with Protenix's betas; only parameters that require grad."""
    return torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, betas=tuple(betas), eps=eps,
                             weight_decay=weight_decay)


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int = 0, decay_every_n_steps: int = 0,
    decay_factor: float = 1.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then ×decay_factor every `decay_every_n_steps` (Protenix)."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay_every_n_steps > 0:
            return decay_factor ** ((step - warmup_steps) // decay_every_n_steps)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_from_config(params: Iterable[torch.nn.Parameter], training: Mapping) -> torch.optim.Optimizer:
    """`build_optimizer` with the stage's `training` section (lr, weight_decay, adam_betas): the one
    reading of those keys, shared by the manager and the Lightning module."""
    return build_optimizer(params, lr=float(training["lr"]), weight_decay=float(training["weight_decay"]),
                           betas=tuple(float(b) for b in training["adam_betas"]))


def lr_scheduler_from_config(optimizer: torch.optim.Optimizer, training: Mapping) -> torch.optim.lr_scheduler.LambdaLR:
    """`build_lr_scheduler` with the stage's `training` section (warmup_steps, lr_decay_every_n_steps,
    lr_decay_factor)."""
    return build_lr_scheduler(optimizer, warmup_steps=int(training["warmup_steps"]),
                              decay_every_n_steps=int(training["lr_decay_every_n_steps"]),
                              decay_factor=float(training["lr_decay_factor"]))


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: float | None) -> torch.Tensor | None:
    """Clip the global gradient norm (None or <= 0: no clipping); returns the norm before clipping."""
    if max_norm is None or max_norm <= 0:
        return None
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)


class ExponentialMovingAverage:
    """EMA of a module's floating-point parameters and buffers: shadow ← decay·shadow + (1−decay)·θ."""

    def __init__(self, module: torch.nn.Module, decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"ema decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        # Frozen parameters (LoRA base weights, Fourier features) are copied, not averaged:
        # decay·w + (1−decay)·w is not bitwise w in floating point.
        self.frozen = {k for k, p in module.named_parameters() if not p.requires_grad}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point and k not in self.frozen:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, module: torch.nn.Module) -> None:
        module.load_state_dict(self.shadow)

    def averaged_copy(self, module: torch.nn.Module) -> torch.nn.Module:
        out = copy.deepcopy(module)
        self.copy_to(out)
        return out

    def state_dict(self) -> Mapping[str, torch.Tensor]:
        return dict(self.shadow)
