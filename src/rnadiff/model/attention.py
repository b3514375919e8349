"""Gated multi-head attention with pair bias. Implements Algorithm 24 (AttentionPairBias).

Two layouts share one module: full attention over tokens (bias [..., H, N, N]) and sequence-local
attention over atoms (bias [..., H, n_trunks, n_queries, n_keys], see `windows.py`).
The kernel is torch's scaled_dot_product_attention (flash / memory-efficient kernels where the
device has them) in float32: the softmax stays fp32 under autocast, as docs/design.md §3 asks.
Padded keys get a large negative bias (-1e10, Protenix's value) so they receive zero weight.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnadiff.model.adaln import AdaptiveLayerNorm
from rnadiff.model.primitives import BiasInitLinear, Linear, LinearNoBias, layer_norm
from rnadiff.model.windows import LocalWindows

MASK_BIAS = -1e10


def scaled_dot_product(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor,
    chunk_size: int | None = None,
    chunk_dim: int = -2,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v in float32, optionally chunked.

    q [..., Q, d], k/v [..., K, d], bias broadcastable to [..., Q, K]. `chunk_dim` names the axis
    to chunk: -2 chunks the queries of full attention; -3 chunks the trunks of windowed attention
    (then keys/values are per trunk and are chunked too). The bias's chunk axis is q's in both
    layouts. Chunking bounds the size of the attention matrix and leaves the result unchanged.
    """
    if chunk_dim not in (-2, -3):
        raise ValueError(f"chunk_dim must be -2 or -3, got {chunk_dim}")
    dtype = v.dtype
    q, k, v, bias = q.float(), k.float(), v.float(), bias.float()
    with torch.autocast(device_type=q.device.type, enabled=False):
        n = q.shape[chunk_dim]
        if chunk_size is None or n <= chunk_size:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias).to(dtype)

        def part(t: torch.Tensor, start: int, length: int) -> torch.Tensor:
            return t.narrow(chunk_dim, start, length) if t.shape[chunk_dim] == n else t

        out = []
        for start in range(0, n, chunk_size):
            length = min(chunk_size, n - start)
            kc, vc = (k, v) if chunk_dim == -2 else (part(k, start, length), part(v, start, length))
            out.append(F.scaled_dot_product_attention(part(q, start, length), kc, vc, attn_mask=part(bias, start, length)))
        return torch.cat(out, dim=chunk_dim).to(dtype)


class Attention(nn.Module):
    """Multi-head attention with a query bias, no k/v bias, and a sigmoid gate (no bias)."""

    def __init__(self, c_a: int, n_heads: int) -> None:
        super().__init__()
        if c_a % n_heads:
            raise ValueError(f"c_a={c_a} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.linear_q = Linear(c_a, c_a, bias=True)
        self.linear_k = LinearNoBias(c_a, c_a)
        self.linear_v = LinearNoBias(c_a, c_a)
        self.linear_o = LinearNoBias(c_a, c_a)
        self.linear_g = LinearNoBias(c_a, c_a, initializer="zeros")

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # [..., N, H*d] -> [..., H, N, d]
        return x.unflatten(-1, (self.n_heads, -1)).transpose(-2, -3)

    def forward(
        self,
        q_x: torch.Tensor,
        kv_x: torch.Tensor,
        bias: torch.Tensor,
        windows: LocalWindows | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        q = self._heads(self.linear_q(q_x))  # [..., H, N, d]
        k = self._heads(self.linear_k(kv_x))
        v = self._heads(self.linear_v(kv_x))
        if windows is None:
            o = scaled_dot_product(q, k, v, bias, chunk_size=chunk_size, chunk_dim=-2)  # [..., H, N, d]
        else:
            qw = windows.queries(q, dim=-2)  # [..., H, T, nq, d]
            kw = windows.keys(k, dim=-2)  # [..., H, T, nk, d]
            vw = windows.keys(v, dim=-2)
            heads_trunks = bias.shape[-4:-2] == qw.shape[-4:-2]
            if heads_trunks:
                # Fold (H, T) into one axis: torch's flash CPU kernel takes 4-D inputs only and
                # falls back to the unfused math path for 5-D ones (2.4x slower here).
                qw, kw, vw, bias = (t.flatten(-4, -3) for t in (qw, kw, vw, bias))
            o = scaled_dot_product(qw, kw, vw, bias, chunk_size=chunk_size, chunk_dim=-3)
            if heads_trunks:
                o = o.unflatten(-3, (self.n_heads, windows.n_trunks))
            o = o.reshape(*o.shape[:-3], -1, o.shape[-1])[..., : windows.n_atom, :]  # [..., H, N, d]
        o = o.transpose(-2, -3)  # [..., N, H, d]
        g = torch.sigmoid(self.linear_g(q_x)).unflatten(-1, (self.n_heads, -1))
        return self.linear_o((o * g).flatten(-2))


class AttentionPairBias(nn.Module):
    """Algorithm 24 with adaLN conditioning on s and an adaLN-Zero output gate (bias init -2).

    In cross-attention mode (the atom transformer) keys/values are normalised by a second AdaLN
    applied to the already-normalised queries: kv = AdaLN_kv(AdaLN_a(a, s), s), as Protenix does.
    """

    def __init__(
        self,
        c_a: int,
        c_s: int,
        c_z: int,
        n_heads: int,
        cross_attention_mode: bool = False,
        biasinit: float = -2.0,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.cross_attention_mode = cross_attention_mode
        self.layernorm_a = AdaptiveLayerNorm(c_a=c_a, c_s=c_s)
        if cross_attention_mode:
            self.layernorm_kv = AdaptiveLayerNorm(c_a=c_a, c_s=c_s)
        self.attention = Attention(c_a, n_heads)
        self.layernorm_z = layer_norm(c_z, offset=False)
        self.linear_nobias_z = LinearNoBias(c_z, n_heads)
        self.linear_a_last = BiasInitLinear(c_s, c_a, biasinit=biasinit)

    def pair_bias(
        self, z: torch.Tensor, windowed: bool, mask_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-head bias from pair features, heads moved before the pair axes.

        z [..., N, N, c_z] -> [..., H, N, N]; windowed z [..., T, nq, nk, c_z] -> [..., H, T, nq, nk].
        It depends on z only, so callers compute it once per structure and reuse it.
        """
        b = self.linear_nobias_z(self.layernorm_z(z))
        b = b.movedim(-1, -4 if windowed else -3)
        return b if mask_bias is None else b + mask_bias

    def pair_bias_chunked(self, z: torch.Tensor, chunk_size: int, mask_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Token-level `pair_bias` computed `chunk_size` query rows at a time: never materialises
        LayerNorm(z) for all pairs (8 GB at 4096 tokens). z [..., N, N, c_z] -> [..., H, N, N]."""
        n = z.shape[-3]
        out = z.new_empty(*z.shape[:-3], self.n_heads, n, z.shape[-2])
        for start in range(0, n, chunk_size):
            rows = slice(start, min(start + chunk_size, n))
            out[..., rows, :] = self.linear_nobias_z(self.layernorm_z(z[..., rows, :, :])).movedim(-1, -3)
        return out if mask_bias is None else out + mask_bias

    def forward(
        self,
        a: torch.Tensor,
        s: torch.Tensor,
        bias: torch.Tensor,
        windows: LocalWindows | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        a = self.layernorm_a(a, s)
        kv = self.layernorm_kv(a, s) if self.cross_attention_mode else a
        a = self.attention(a, kv, bias, windows=windows, chunk_size=chunk_size)
        return torch.sigmoid(self.linear_a_last(s)) * a
