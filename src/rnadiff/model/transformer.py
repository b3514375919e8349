"""Diffusion transformer. Implements Algorithm 23 (DiffusionTransformer) and Algorithm 7 (AtomTransformer).

A block is two sequential residuals: a += AttentionPairBias(a, s, z); a += ConditionedTransition(a, s).
The pair bias of every block depends only on z, so `pair_biases` computes them once per structure
and the sampler reuses them across all steps and samples (see DiffusionModule.prepare_cache).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from rnadiff.model.attention import AttentionPairBias
from rnadiff.model.transition import ConditionedTransitionBlock
from rnadiff.model.windows import LocalWindows


class DiffusionTransformerBlock(nn.Module):
    def __init__(self, c_a: int, c_s: int, c_z: int, n_heads: int, cross_attention_mode: bool = False) -> None:
        super().__init__()
        self.attention_pair_bias = AttentionPairBias(
            c_a=c_a, c_s=c_s, c_z=c_z, n_heads=n_heads, cross_attention_mode=cross_attention_mode
        )
        self.conditioned_transition_block = ConditionedTransitionBlock(c_a=c_a, c_s=c_s, n=2)

    def forward(
        self,
        a: torch.Tensor,
        s: torch.Tensor,
        bias: torch.Tensor,
        windows: LocalWindows | None = None,
        chunk_size: int | None = None,
        inplace_safe: bool = False,
    ) -> torch.Tensor:
        update = self.attention_pair_bias(a, s, bias, windows=windows, chunk_size=chunk_size)
        if inplace_safe and update.dtype == a.dtype:
            update += a
            a = update
        else:  # also when a bf16 update meets a float32 residual stream: keep the stream float32
            a = a + update
        update = self.conditioned_transition_block(a, s)
        if inplace_safe:
            a += update
            return a
        return a + update


class DiffusionTransformer(nn.Module):
    """A stack of DiffusionTransformerBlocks with optional activation checkpointing."""

    def __init__(
        self,
        c_a: int,
        c_s: int,
        c_z: int,
        n_blocks: int,
        n_heads: int,
        cross_attention_mode: bool = False,
        blocks_per_ckpt: int | None = None,
    ) -> None:
        super().__init__()
        if blocks_per_ckpt is not None and blocks_per_ckpt < 1:
            raise ValueError(f"blocks_per_ckpt must be >= 1 or None, got {blocks_per_ckpt}")
        self.blocks_per_ckpt = blocks_per_ckpt
        self.windowed = cross_attention_mode
        self.blocks = nn.ModuleList(
            DiffusionTransformerBlock(c_a, c_s, c_z, n_heads, cross_attention_mode) for _ in range(n_blocks)
        )

    def pair_biases(self, z: torch.Tensor, mask_bias: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every block's attention bias from the (step-independent) pair features z."""
        return [blk.attention_pair_bias.pair_bias(z, self.windowed, mask_bias) for blk in self.blocks]

    def forward(
        self,
        a: torch.Tensor,
        s: torch.Tensor,
        z: torch.Tensor | None = None,
        biases: Sequence[torch.Tensor] | None = None,
        mask_bias: torch.Tensor | None = None,
        windows: LocalWindows | None = None,
        chunk_size: int | None = None,
        inplace_safe: bool = False,
    ) -> torch.Tensor:
        """Give either the pair features `z` (biases computed block by block, low memory) or the
        precomputed `biases` from `pair_biases` (fast when reused across calls)."""
        if (z is None) == (biases is None):
            raise ValueError("pass exactly one of z or biases")
        if biases is not None and len(biases) != len(self.blocks):
            raise ValueError(f"got {len(biases)} biases for {len(self.blocks)} blocks")
        blocks_per_ckpt = self.blocks_per_ckpt if torch.is_grad_enabled() else None

        def run(i: int, a: torch.Tensor) -> torch.Tensor:
            blk = self.blocks[i]
            if biases is not None:
                bias = biases[i]
            elif chunk_size is not None and not self.windowed:
                bias = blk.attention_pair_bias.pair_bias_chunked(z, chunk_size, mask_bias)
            else:
                bias = blk.attention_pair_bias.pair_bias(z, self.windowed, mask_bias)
            return blk(a, s, bias, windows=windows, chunk_size=chunk_size, inplace_safe=inplace_safe)

        if not blocks_per_ckpt:
            for i in range(len(self.blocks)):
                a = run(i, a)
            return a

        def run_group(start: int, stop: int, a: torch.Tensor) -> torch.Tensor:
            for i in range(start, stop):
                a = run(i, a)
            return a

        for start in range(0, len(self.blocks), blocks_per_ckpt):
            stop = min(start + blocks_per_ckpt, len(self.blocks))
            a = checkpoint(run_group, start, stop, a, use_reentrant=False)
        return a


class AtomTransformer(nn.Module):
    """Algorithm 7: a DiffusionTransformer over atoms with sequence-local (windowed) attention."""

    def __init__(
        self,
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
        self.diffusion_transformer = DiffusionTransformer(
            c_a=c_atom,
            c_s=c_atom,
            c_z=c_atompair,
            n_blocks=n_blocks,
            n_heads=n_heads,
            cross_attention_mode=True,
            blocks_per_ckpt=blocks_per_ckpt,
        )

    def pair_biases(self, p_lm: torch.Tensor, windows: LocalWindows) -> list[torch.Tensor]:
        """p_lm [..., T, nq, nk, c] -> per block [..., H, T, nq, nk], window mask included."""
        mask_bias = _mask_to_bias(windows.mask, p_lm.dtype)
        return self.diffusion_transformer.pair_biases(p_lm, mask_bias[..., None, None, :, :, :])

    def forward(
        self,
        q: torch.Tensor,
        c: torch.Tensor,
        windows: LocalWindows,
        biases: Sequence[torch.Tensor] | None = None,
        p_lm: torch.Tensor | None = None,
        chunk_size: int | None = None,
        inplace_safe: bool = False,
    ) -> torch.Tensor:
        if windows.n_queries != self.n_queries or windows.n_keys != self.n_keys:
            raise ValueError(
                f"windows {windows.n_queries}x{windows.n_keys} do not match this transformer's "
                f"{self.n_queries}x{self.n_keys}"
            )
        mask_bias = None
        if biases is None:
            if p_lm is None:
                raise ValueError("pass p_lm or precomputed biases")
            mask_bias = _mask_to_bias(windows.mask, p_lm.dtype)[..., None, None, :, :, :]
        return self.diffusion_transformer(
            q, c, z=p_lm if biases is None else None, biases=biases, mask_bias=mask_bias,
            windows=windows, chunk_size=chunk_size, inplace_safe=inplace_safe,
        )


def _mask_to_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean "may attend" mask -> additive bias (0 or -1e10)."""
    return (~mask).to(dtype) * -1e10
