"""Atom attention decoder. Implements Algorithm 6 (AF3)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from rnadiff.chem.bridging import broadcast_token_to_atom
from rnadiff.model.primitives import LinearNoBias, layer_norm
from rnadiff.model.transformer import AtomTransformer
from rnadiff.model.windows import LocalWindows


class AtomAttentionDecoder(nn.Module):
    def __init__(
        self,
        c_token: int,
        c_atom: int = 128,
        c_atompair: int = 16,
        n_blocks: int = 3,
        n_heads: int = 4,
        n_queries: int = 32,
        n_keys: int = 128,
        blocks_per_ckpt: int | None = None,
    ) -> None:
        super().__init__()
        self.n_queries = n_queries
        self.n_keys = n_keys
        self.linear_no_bias_a = LinearNoBias(c_token, c_atom)
        self.layernorm_q = layer_norm(c_atom, offset=False)
        self.linear_no_bias_out = LinearNoBias(c_atom, 3, precision=torch.float32)
        self.atom_transformer = AtomTransformer(
            c_atom=c_atom, c_atompair=c_atompair, n_blocks=n_blocks, n_heads=n_heads,
            n_queries=n_queries, n_keys=n_keys, blocks_per_ckpt=blocks_per_ckpt,
        )

    def forward(
        self,
        a: torch.Tensor,
        q_skip: torch.Tensor,
        c_skip: torch.Tensor,
        atom_to_token_idx: torch.Tensor,
        windows: LocalWindows,
        biases: Sequence[torch.Tensor] | None = None,
        p_skip: torch.Tensor | None = None,
        chunk_size: int | None = None,
        inplace_safe: bool = False,
    ) -> torch.Tensor:
        """a [*b, S, N_token, c_token] -> r_update [*b, S, N_atom, 3]."""
        q = broadcast_token_to_atom(self.linear_no_bias_a(a), atom_to_token_idx) + q_skip
        q = self.atom_transformer(
            q, c_skip, windows, biases=biases, p_lm=p_skip, chunk_size=chunk_size, inplace_safe=inplace_safe
        )
        return self.linear_no_bias_out(self.layernorm_q(q))
