"""Initialisation as AF3/Protenix: an untrained module is the identity-scaled skip connection."""
from __future__ import annotations

import pytest
import torch

from rnadiff.model.diffusion_module import DiffusionModule
from tests.model_helpers import random_embeddings, random_system

SMALL = dict(
    c_atom=16, c_atompair=4, c_token=16, c_s=8, c_z=4, c_s_inputs=5, c_noise_embedding=4,
    atom_encoder={"n_blocks": 1, "n_heads": 2}, transformer={"n_blocks": 2, "n_heads": 2},
    atom_decoder={"n_blocks": 1, "n_heads": 2},
)


def _run(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = random_system([5, 3], 20, g)
    embeds = random_embeddings(module, f["residue_index"].shape[0], g)
    x = torch.randn(3, f["ref_pos"].shape[0], 3, generator=g) * 10
    t = torch.tensor([0.5, 16.0, 150.0])
    with torch.no_grad():
        return x, t, module(x, t, f, *embeds)


def test_untrained_module_returns_c_skip_times_x():
    module = DiffusionModule(**SMALL).eval()
    x, t, out = _run(module)
    c_skip = 16.0**2 / (16.0**2 + t**2)
    assert torch.equal(out, c_skip[:, None, None] * x) or (out - c_skip[:, None, None] * x).abs().max() <= 1e-6


def test_initialization_override_changes_behaviour():
    module = DiffusionModule(**SMALL, initialization={"zero_init_dit_output": False}).eval()
    x, t, out = _run(module)
    c_skip = 16.0**2 / (16.0**2 + t**2)
    assert (out - c_skip[:, None, None] * x).abs().max() > 1e-3


def test_gates_and_zero_inits():
    module = DiffusionModule(**SMALL)
    blk = module.diffusion_transformer.blocks[0]
    assert torch.all(blk.attention_pair_bias.linear_a_last.bias == -2.0)
    assert torch.all(blk.conditioned_transition_block.linear_s.bias == -2.0)
    assert torch.all(blk.attention_pair_bias.linear_a_last.weight == 0)
    assert torch.all(blk.attention_pair_bias.attention.linear_g.weight == 0)
    assert torch.all(blk.attention_pair_bias.layernorm_a.linear_s.weight == 0)  # zero_init_adaln
    assert torch.all(module.atom_attention_encoder.small_mlp[5].weight == 0)
    assert torch.all(module.atom_attention_decoder.linear_no_bias_out.weight == 0)
    # He-normal (fan_in, truncated) for layers in front of ReLU/SiLU: std ≈ sqrt(2/fan_in)
    w = module.diffusion_transformer.blocks[0].conditioned_transition_block.linear_nobias_a1.weight
    assert abs(w.std().item() - (2 / w.shape[1]) ** 0.5) < 0.25 * (2 / w.shape[1]) ** 0.5
    mlp = DiffusionModule(**SMALL, initialization={"he_normal_init_atom_encoder_small_mlp": True})
    assert mlp.atom_attention_encoder.small_mlp[5].weight.abs().sum() > 0


def test_unknown_initialization_option_raises():
    with pytest.raises(ValueError, match="initialization"):
        DiffusionModule(**SMALL, initialization={"zero_everything": True})
