"""A LoRA fine-tune lowers the diffusion training loss while < 2% of the parameters train.

Synthetic RNAs (tests.model_helpers.random_system): residues on an A-form-like helix (radius 9 A,
rise 2.8 A, 32.7 deg twist), atoms around their residue centre following ref_pos, random trunk
embeddings. The loss is the project's training objective (rnadiff.diffusion.training:
augmentation + noise at sigma ~ the training distribution, weighted aligned MSE + smooth lDDT).
"""
from __future__ import annotations

import math

import torch

from rnadiff.diffusion.schedule import DiffusionSchedule
from rnadiff.diffusion.training import build_optimizer, diffusion_loss, training_forward
from rnadiff.model.lora import apply_lora, lora_parameters, merge_lora
from rnadiff.model.diffusion_module import DiffusionModule
from tests.model_helpers import random_embeddings, random_system

# A model where the fraction is meaningful: LoRA r=4 on q/k/v/o of 4 token blocks (c_token 128)
# and both 1-block atom transformers is ~1.3% of its 1.4M parameters.
MODEL = dict(
    c_atom=32, c_atompair=8, c_token=128, c_s=128, c_z=16, c_s_inputs=32, c_noise_embedding=32,
    atom_encoder={"n_blocks": 1, "n_heads": 2}, transformer={"n_blocks": 4, "n_heads": 4},
    atom_decoder={"n_blocks": 1, "n_heads": 2},
    # A zero output layer would stop every gradient into the transformer (an untrained model).
    initialization={"zero_init_dit_output": False},
)
STEPS = 20
N_SAMPLE = 4



def synthetic_rnas(module: DiffusionModule, seed: int = 1) -> list[tuple[dict, tuple, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    systems = []
    for chains in ([6], [4, 4], [7]):
        features = random_system(chains, 6, g)
        n_tok = features["residue_index"].shape[0]
        k = torch.arange(n_tok, dtype=torch.float32)
        twist = math.radians(32.7)
        centre = torch.stack([9 * torch.cos(k * twist), 9 * torch.sin(k * twist), 2.8 * k], -1)
        x_true = centre[features["atom_to_token_idx"]] + 0.5 * features["ref_pos"].float()
        systems.append((features, random_embeddings(module, n_tok, g), x_true))
    return systems


def structure_loss(module, system, seed: int) -> torch.Tensor:
    features, (s_inputs, s_trunk, z_trunk), x_true = system
    cache = module.prepare_cache(features, s_inputs, s_trunk, z_trunk)
    noisy, predicted = training_forward(
        lambda x, sigma: module(x, sigma, features, s_inputs, s_trunk, z_trunk, cache=cache),
        x_true=x_true, coordinate_mask=None, schedule=DiffusionSchedule(), n_sample=N_SAMPLE,
        generator=torch.Generator().manual_seed(seed),
    )
    ones = torch.ones(x_true.shape[0])
    return diffusion_loss(predicted, x_true, noisy.sigma, coordinate_mask=ones, is_rna=ones)[0]


def held_out_losses(module, systems) -> list[float]:
    """Each structure's loss on fixed draws (augmentation, sigma, noise) never used for training."""
    module.eval()
    with torch.no_grad():
        return [float(structure_loss(module, s, seed=10_000 + i)) for i, s in enumerate(systems)]


def test_lora_finetune_lowers_the_loss():
    torch.manual_seed(0)
    module = DiffusionModule(**MODEL)
    systems = synthetic_rnas(module)
    apply_lora(module, r=4, alpha=8)
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in lora_parameters(module).values())
    assert trainable / total < 0.02

    before = held_out_losses(module, systems)
    frozen = {n: p.detach().clone() for n, p in module.named_parameters() if not p.requires_grad}
    optimizer = build_optimizer(module.parameters(), lr=1e-2)
    module.train()
    for step in range(STEPS):
        optimizer.zero_grad()
        loss = sum(structure_loss(module, s, seed=step * 10 + i) for i, s in enumerate(systems)) / len(systems)
        loss.backward()
        optimizer.step()
    after = held_out_losses(module, systems)

    assert sum(after) < 0.8 * sum(before), (before, after)
    assert all(a < b for a, b in zip(after, before)), (before, after)
    assert all(torch.equal(p, frozen[n]) for n, p in module.named_parameters() if n in frozen)
    # The merged plain module keeps the gain.
    merged = held_out_losses(merge_lora(module), systems)
    assert all(abs(m - a) <= 1e-3 * a for m, a in zip(merged, after)), (merged, after)
