"""Sequence-local atom windows: 32 queries attend to 128 keys centred on them.

Implements the "dense trunk" layout of Protenix (AF3 §3.2, Algorithm 7's beta mask): atoms are
cut into query blocks of `n_queries`; block b sees keys [b*nq - (nk-nq)/2, b*nq + (nk+nq)/2).
Positions outside [0, N_atom) are zero-padded and masked, exactly as Protenix pads, so derived
tensors (d_lm, v_lm, p_lm) equal Protenix's including their padded entries.

Memory is O(N_atom * n_keys): never an N_atom x N_atom tensor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LocalWindows:
    n_atom: int
    n_queries: int
    n_keys: int
    n_trunks: int
    q_pad: int
    k_pad_left: int
    k_pad_right: int
    # [n_trunks, n_keys]: atom index of each key slot, `n_atom` where the slot is padding
    key_index: torch.Tensor
    # [*batch, n_trunks, n_queries, n_keys]: query and key both real (and unmasked) atoms
    mask: torch.Tensor

    @staticmethod
    def build(
        n_atom: int,
        n_queries: int = 32,
        n_keys: int = 128,
        atom_mask: torch.Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> "LocalWindows":
        if n_keys < n_queries or n_queries % 2 or n_keys % 2:
            raise ValueError(f"need even n_keys >= n_queries, got n_queries={n_queries} n_keys={n_keys}")
        if n_atom < 1:
            raise ValueError("cannot build attention windows for zero atoms")
        n_trunks = math.ceil(n_atom / n_queries)
        q_pad = n_trunks * n_queries - n_atom
        k_pad_left = (n_keys - n_queries) // 2
        k_pad_right = int((n_trunks - 0.5) * n_queries + n_keys / 2 - n_atom + 0.5)
        starts = torch.arange(n_trunks, device=device) * n_queries - k_pad_left
        key_pos = starts[:, None] + torch.arange(n_keys, device=device)[None, :]  # [T, nk]
        key_valid = (key_pos >= 0) & (key_pos < n_atom)
        key_index = torch.where(key_valid, key_pos, torch.full_like(key_pos, n_atom))
        query_pos = torch.arange(n_trunks * n_queries, device=device).reshape(n_trunks, n_queries)
        query_valid = query_pos < n_atom
        mask = query_valid[:, :, None] & key_valid[:, None, :]  # [T, nq, nk]
        if atom_mask is not None:
            atom_mask = atom_mask.to(device=mask.device, dtype=torch.bool)
            if atom_mask.shape[-1] != n_atom:
                raise ValueError(f"atom_mask has {atom_mask.shape[-1]} atoms, expected {n_atom}")
            q_ok = F.pad(atom_mask, (0, q_pad)).reshape(*atom_mask.shape[:-1], n_trunks, n_queries)
            k_ok = F.pad(atom_mask, (0, 1))[..., key_index]  # [*batch, T, nk]
            mask = mask & q_ok[..., :, :, None] & k_ok[..., :, None, :]
        return LocalWindows(n_atom, n_queries, n_keys, n_trunks, q_pad, k_pad_left, k_pad_right, key_index, mask)

    def pad_info(self) -> dict:
        """Protenix's `pad_info` dict (for parity checks)."""
        return {
            "mask_trunked": self.mask,
            "q_pad": self.q_pad,
            "k_pad_left": self.k_pad_left,
            "k_pad_right": self.k_pad_right,
        }

    def queries(self, x: torch.Tensor, dim: int = -2) -> torch.Tensor:
        """[..., N_atom (at dim), ...] -> [..., n_trunks, n_queries, ...] (zero padded)."""
        dim = dim % x.dim()
        pad = [0, 0] * (x.dim() - 1 - dim) + [0, self.q_pad]
        x = F.pad(x, pad)
        return x.reshape(*x.shape[:dim], self.n_trunks, self.n_queries, *x.shape[dim + 1 :])

    def keys(self, x: torch.Tensor, dim: int = -2) -> torch.Tensor:
        """[..., N_atom (at dim), ...] -> [..., n_trunks, n_keys, ...] (zero padded)."""
        dim = dim % x.dim()
        pad = [0, 0] * (x.dim() - 1 - dim) + [0, 1]  # one zero row at index n_atom
        x = F.pad(x, pad)
        out = x.index_select(dim, self.key_index.reshape(-1))
        return out.reshape(*x.shape[:dim], self.n_trunks, self.n_keys, *x.shape[dim + 1 :])

    def gather_token_pairs(self, z_token: torch.Tensor, atom_to_token_idx: torch.Tensor) -> torch.Tensor:
        """Pair features of the tokens of each (query, key) atom pair.

        z_token [*batch, N_tok, N_tok, C], atom_to_token_idx [*batch, N_atom]
        -> [*batch, n_trunks, n_queries, n_keys, C]. Padded slots read token 0, as in Protenix.
        """
        idx_q = self.queries(atom_to_token_idx, dim=-1)  # [*b, T, nq]
        idx_k = self.keys(atom_to_token_idx, dim=-1)  # [*b, T, nk]
        n_tok = z_token.shape[-2]
        flat = idx_q[..., :, :, None] * n_tok + idx_k[..., :, None, :]  # [*b, T, nq, nk]
        batch_shape = atom_to_token_idx.shape[:-1]
        z_flat = z_token.reshape(*batch_shape, n_tok * n_tok, z_token.shape[-1])
        if not batch_shape:
            return z_flat[flat]
        n_b = math.prod(batch_shape)
        z_flat = z_flat.reshape(n_b, n_tok * n_tok, -1)
        flat = flat.reshape(n_b, -1)
        out = torch.gather(z_flat, 1, flat[..., None].expand(-1, -1, z_flat.shape[-1]))
        return out.reshape(*batch_shape, self.n_trunks, self.n_queries, self.n_keys, -1)
