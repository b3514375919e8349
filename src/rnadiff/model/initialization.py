"""Initialisation of the diffusion module, as AF3 / Protenix do it.

Layer-level defaults are set where the layers are built (primitives.py): LeCun truncated normal,
He normal in front of ReLU/SiLU, zeros for gates, the trunk-to-atom projections and the last
layer of the small MLP, bias -2 on the adaLN-Zero output gates. The switches below are Protenix's
`initialization` config (same names and defaults); `zero_init_dit_output` makes an untrained
module return exactly c_skip·x_noisy.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from rnadiff.model.primitives import trunc_normal_fan_in_

DEFAULT_INITIALIZATION: dict[str, bool] = {
    "zero_init_condition_transition": False,
    "zero_init_atom_encoder_residual_linear": False,
    "he_normal_init_atom_encoder_small_mlp": False,
    "he_normal_init_atom_encoder_output": False,
    "glorot_init_self_attention": False,
    "zero_init_adaln": True,
    "zero_init_residual_condition_transition": False,
    "zero_init_dit_output": True,
    "zero_init_atom_decoder_linear": False,
}


@torch.no_grad()
def initialize_diffusion_module(module: nn.Module, options: Mapping[str, bool]) -> None:
    unknown = set(options) - set(DEFAULT_INITIALIZATION)
    if unknown:
        raise ValueError(f"unknown initialization option(s) {sorted(unknown)}")
    cond = module.diffusion_conditioning
    enc = module.atom_attention_encoder
    if options["zero_init_condition_transition"]:
        for t in (cond.transition_z1, cond.transition_z2, cond.transition_s1, cond.transition_s2):
            t.linear_no_bias.weight.zero_()
    if options["zero_init_atom_encoder_residual_linear"]:
        for layer in (enc.linear_no_bias_s, enc.linear_no_bias_z, enc.linear_no_bias_r):
            layer.weight.zero_()
    if options["he_normal_init_atom_encoder_small_mlp"]:
        for layer in enc.small_mlp:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in", nonlinearity="relu")
    if options["he_normal_init_atom_encoder_output"]:
        nn.init.kaiming_normal_(enc.linear_no_bias_q.weight, a=0, mode="fan_in", nonlinearity="relu")
    if options["glorot_init_self_attention"]:
        for blk in enc.atom_transformer.diffusion_transformer.blocks:
            att = blk.attention_pair_bias.attention
            for layer in (att.linear_q, att.linear_k, att.linear_v):
                nn.init.xavier_uniform_(layer.weight)
    for blk in module.diffusion_transformer.blocks:
        if options["zero_init_adaln"]:
            blk.attention_pair_bias.layernorm_a.zero_init_()
            blk.conditioned_transition_block.adaln.zero_init_()
        if options["zero_init_residual_condition_transition"]:
            ctb = blk.conditioned_transition_block
            trunc_normal_fan_in_(ctb.linear_nobias_a1.weight, scale=2.0)
            ctb.linear_nobias_b.weight.zero_()
    if options["zero_init_atom_decoder_linear"]:
        module.atom_attention_decoder.linear_no_bias_a.weight.zero_()
    if options["zero_init_dit_output"]:
        module.atom_attention_decoder.linear_no_bias_out.weight.zero_()
