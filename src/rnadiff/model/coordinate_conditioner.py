"""Standalone conditioning: s_inputs / s_trunk / z_trunk from sequence + partial coordinates.

Without an upstream trunk (Protenix pairformer) the denoiser still needs its three conditioning
tensors. `CoordinateConditioner` builds them from what a refinement input carries:

    token features  restype, profile, deletion_mean; which atoms are given (fraction given,
                    P / C4' / C1' / base flags, mean learned embedding of the given atoms' names
                    and elements); chain starts/ends and chain breaks
    pair features   binned distances between the given anchor atoms of residues i and j
                    (anchors: P, C4', C1', centroid of the given base atoms; 4 x 4 anchor pairs,
                    each with a 'no distance known' bin), relative position (clipped offset,
                    same chain), a projection of the token features of i and j, and the
                    base-pair prior `pair_prior` [T, T, 4] (`rnadiff.chem.pairing`: pairs implied
                    by the input geometry and a user's secondary structure) when present
    trunk           a few pair-biased token self-attention blocks (no triangle updates: the
                    distances already are the geometry) and pair transitions

Distances are the only use of coordinates, so the output is invariant to any rotation and
translation of the partial coordinates by construction. Nothing is N_atom x N_atom: atoms are
reduced to a few anchors per token first (O(N_atom + 16·N_token²)).

Shapes: features unbatched ([N_atom, ...], [N_token, ...]) or with a leading batch dim and
`atom_mask` [B, N_atom] / `token_mask` [B, N_token]; outputs s_inputs [*b, T, c_s_inputs],
s_trunk [*b, T, c_s], z_trunk [*b, T, T, c_z]. Padded tokens do not influence real ones.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnadiff.chem.features import atom_name_code, atom_name_codes, backbone_atom_mask
from rnadiff.chem.pairing import N_PRIOR_CHANNELS

ANCHORS = ("P", "C4'", "C1'", "base")
# Bin edges in Å for anchor distances; bin 0 means "not known" (an anchor absent on either side).
DEFAULT_DISTANCE_EDGES = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0, 16.0, 18.0,
                          20.0, 23.0, 26.0, 30.0, 35.0, 40.0)
N_TOKEN_FLAGS = 10  # see _token_flags
N_SEQ_FEATURES = 32 + 32 + 1  # restype, profile, deletion_mean (Protenix's s_inputs prefix)


ANCHOR_CODES = {"P": atom_name_code("P"), "C4'": atom_name_code("C4'"), "C1'": atom_name_code("C1'")}


def scatter_mean_tokens(values: torch.Tensor, weight: torch.Tensor, idx: torch.Tensor, n_token: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean of atom values [*b, N, C] per token -> ([*b, T, C], count [*b, T])."""
    w = weight.to(values.dtype)
    sums = values.new_zeros((*values.shape[:-2], n_token, values.shape[-1]))
    sums = sums.scatter_add(-2, idx[..., None].expand_as(values), values * w[..., None])
    count = w.new_zeros((*w.shape[:-1], n_token)).scatter_add(-1, idx, w)
    return sums / count.clamp(min=1e-6)[..., None], count


class PairBiasBlock(nn.Module):
    """s += MHA(LN(s), bias=Linear(LN(z))); s += MLP(s); z += MLP(z). Keys masked by token_mask."""

    def __init__(self, c_s: int, c_z: int, n_heads: int, update_pair: bool = True):
        super().__init__()
        if c_s % n_heads:
            raise ValueError(f"c_s={c_s} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.ln_s = nn.LayerNorm(c_s)
        self.ln_z = nn.LayerNorm(c_z)
        self.qkvg = nn.Linear(c_s, 4 * c_s, bias=False)
        self.bias = nn.Linear(c_z, n_heads, bias=False)
        self.out = nn.Linear(c_s, c_s)
        self.mlp_s = nn.Sequential(nn.LayerNorm(c_s), nn.Linear(c_s, 2 * c_s), nn.SiLU(), nn.Linear(2 * c_s, c_s))
        self.mlp_z = (nn.Sequential(nn.LayerNorm(c_z), nn.Linear(c_z, 2 * c_z), nn.SiLU(), nn.Linear(2 * c_z, c_z))
                      if update_pair else None)

    def forward(self, s: torch.Tensor, z: torch.Tensor, key_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        *b, t, c = s.shape
        h = self.n_heads
        q, k, v, g = self.qkvg(self.ln_s(s)).reshape(*b, t, 4, h, c // h).unbind(-3)  # each [*b, T, H, d]
        q, k, v = (x.transpose(-2, -3) for x in (q, k, v))  # [*b, H, T, d]
        bias = self.bias(self.ln_z(z)).permute(*range(len(b)), -1, -3, -2)  # [*b, H, T, T]
        if key_bias is not None:
            bias = bias + key_bias[..., None, None, :]
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # [*b, H, T, d]
        att = att.transpose(-2, -3).reshape(*b, t, c) * torch.sigmoid(g.reshape(*b, t, c))
        s = s + self.out(att)
        s = s + self.mlp_s(s)
        if self.mlp_z is not None:
            z = z + self.mlp_z(z)
        return s, z


class CoordinateConditioner(nn.Module):
    """Sequence + partial coordinates -> (s_inputs, s_trunk, z_trunk) for a DiffusionModule."""

    def __init__(
        self,
        c_s_inputs: int = 449,
        c_s: int = 384,
        c_z: int = 128,
        c_atom: int = 32,
        n_blocks: int = 2,
        n_heads: int = 4,
        relpos_max: int = 32,
        distance_edges: Sequence[float] = DEFAULT_DISTANCE_EDGES,
    ) -> None:
        super().__init__()
        if c_s_inputs <= N_SEQ_FEATURES:
            raise ValueError(f"c_s_inputs must exceed {N_SEQ_FEATURES} (restype+profile+deletion_mean)")
        self.config = dict(c_s_inputs=c_s_inputs, c_s=c_s, c_z=c_z, c_atom=c_atom, n_blocks=n_blocks,
                           n_heads=n_heads, relpos_max=relpos_max, distance_edges=[float(e) for e in distance_edges])
        self.relpos_max = relpos_max
        self.register_buffer("edges", torch.tensor(list(distance_edges), dtype=torch.float32), persistent=False)
        self.n_bins = len(distance_edges) + 2  # unknown, below first edge ... above last edge
        n_anchor = len(ANCHORS)
        self.atom_embed = nn.Linear(4 * 64 + 128, c_atom)
        self.token_proj = nn.Linear(c_atom + N_TOKEN_FLAGS, c_s_inputs - N_SEQ_FEATURES)
        self.single_in = nn.Linear(c_s_inputs, c_s)
        self.dist_embed = nn.Embedding(n_anchor * n_anchor * self.n_bins, c_z)
        self.relpos_embed = nn.Embedding(2 * relpos_max + 3, c_z)  # offsets, +1 "other chain"
        self.pair_i = nn.Linear(c_s, c_z, bias=False)
        self.pair_j = nn.Linear(c_s, c_z, bias=False)
        # Zero-initialised: a model trained before the prior existed behaves exactly as it did.
        self.pair_prior_proj = nn.Linear(N_PRIOR_CHANNELS, c_z, bias=False)
        nn.init.zeros_(self.pair_prior_proj.weight)
        self.blocks = nn.ModuleList(PairBiasBlock(c_s, c_z, n_heads) for _ in range(n_blocks))
        self.ln_s_out = nn.LayerNorm(c_s)
        self.ln_z_out = nn.LayerNorm(c_z)

    # -- token features ---------------------------------------------------------------------------
    def _given(self, f: Mapping[str, torch.Tensor]) -> torch.Tensor:
        given = f["atom_present_mask"].float()
        if "atom_mask" in f:
            given = given * f["atom_mask"].float()
        return given

    def anchors(self, f: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor positions [*b, T, 4, 3] and their known-flags [*b, T, 4] (P, C4', C1', base)."""
        n_token = f["restype"].shape[-2]
        idx = f["atom_to_token_idx"].long()
        codes = atom_name_codes(f["ref_atom_name_chars"])
        given = self._given(f)
        x = f["coords"].float()
        pos, known = [], []
        backbone = backbone_atom_mask(codes)
        masks = [codes == ANCHOR_CODES["P"], codes == ANCHOR_CODES["C4'"], codes == ANCHOR_CODES["C1'"],
                 ~backbone & (codes != 0)]
        for m in masks:
            p, count = scatter_mean_tokens(x, given * m.float(), idx, n_token)
            pos.append(p)
            known.append((count > 0).float())
        known_t = torch.stack(known, -1)
        if "token_mask" in f:
            known_t = known_t * f["token_mask"].float()[..., None]
        return torch.stack(pos, -2), known_t

    def _token_flags(self, f: Mapping[str, torch.Tensor], known: torch.Tensor) -> torch.Tensor:
        """[*b, T, 10]: fraction of atoms given, 4 anchor flags, chain start/end/break flags, 5'-P."""
        n_token = f["restype"].shape[-2]
        idx = f["atom_to_token_idx"].long()
        given = self._given(f)
        real = f["atom_mask"].float() if "atom_mask" in f else torch.ones_like(given)
        _, n_given = scatter_mean_tokens(given[..., None], given, idx, n_token)
        _, n_real = scatter_mean_tokens(real[..., None], real, idx, n_token)
        frac = n_given / n_real.clamp(min=1)
        asym = f["asym_id"].long()
        brk = f["chain_break_before"].float() if "chain_break_before" in f else torch.zeros_like(frac)
        start = torch.ones_like(frac)
        start[..., 1:] = (asym[..., 1:] != asym[..., :-1]).float()
        end = torch.ones_like(frac)
        end[..., :-1] = start[..., 1:]
        if "token_mask" in f:  # the last real token of a padded item is a chain end too
            tm = f["token_mask"].float()
            nxt = torch.zeros_like(tm)
            nxt[..., :-1] = tm[..., 1:]
            end = torch.maximum(end * tm, tm * (1 - nxt))
        brk_after = torch.zeros_like(brk)
        brk_after[..., :-1] = brk[..., 1:]
        fp = f["five_prime_phosphate"].float() if "five_prime_phosphate" in f else torch.zeros_like(frac)
        return torch.cat([frac[..., None], (n_given / 25.0)[..., None], known,
                          start[..., None], end[..., None], torch.maximum(brk, brk_after)[..., None], fp[..., None]
                          ], -1)[..., :N_TOKEN_FLAGS]

    # -- pair features ------------------------------------------------------------------------------
    def distance_bins(self, pos: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Bin index per anchor pair: [*b, T, T, 16] in [0, n_bins) (0 = unknown)."""
        n_a = pos.shape[-2]
        # all anchor pairs (a of i, b of j): [*b, T, T, A, A]
        pi = pos[..., :, None, :, None, :]
        pj = pos[..., None, :, None, :, :]
        dist = (pi - pj).norm(dim=-1)  # [*b, T, T, A, A]  (16 distances per token pair)
        b = torch.bucketize(dist, self.edges) + 1
        ok = known[..., :, None, :, None] * known[..., None, :, None, :]
        b = torch.where(ok > 0, b, torch.zeros_like(b))
        pair_type = torch.arange(n_a * n_a, device=pos.device).reshape(n_a, n_a)
        return (pair_type * self.n_bins + b).flatten(-2)

    def relpos(self, f: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Clipped residue offset within a chain, a separate class across chains: [*b, T, T]."""
        r = f["residue_index"].long()
        a = f["asym_id"].long()
        off = (r[..., None, :] - r[..., :, None]).clamp(-self.relpos_max, self.relpos_max) + self.relpos_max
        same = a[..., :, None] == a[..., None, :]
        return torch.where(same, off, torch.full_like(off, 2 * self.relpos_max + 1))

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, f: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features (with `coords` / `atom_present_mask` = the partial input) -> (s_inputs, s_trunk, z_trunk)."""
        n_token = f["restype"].shape[-2]
        idx = f["atom_to_token_idx"].long()
        given = self._given(f)
        pos, known = self.anchors(f)
        atom_feat = torch.cat([f["ref_atom_name_chars"].float().flatten(-2), f["ref_element"].float()], -1)
        atom_emb, _ = scatter_mean_tokens(F.silu(self.atom_embed(atom_feat)), given, idx, n_token)
        flags = self._token_flags(f, known)
        tok = self.token_proj(torch.cat([atom_emb, flags], -1))
        seq = torch.cat([f["restype"].float(), f["profile"].float(), f["deletion_mean"].float()[..., None]], -1)
        s_inputs = torch.cat([seq, tok], -1)
        s = self.single_in(s_inputs)
        z = self.relpos_embed(self.relpos(f))
        bins = self.distance_bins(pos, known)
        for k in range(bins.shape[-1]):  # one [*b, T, T, c_z] at a time: no 16x bigger tensor
            z = z + self.dist_embed(bins[..., k])
        z = z + self.pair_i(s)[..., :, None, :] + self.pair_j(s)[..., None, :, :]
        if "pair_prior" in f:
            prior = f["pair_prior"].float()
            if prior.shape[-3:] != (n_token, n_token, N_PRIOR_CHANNELS):
                raise ValueError(f"pair_prior must be [*b, {n_token}, {n_token}, {N_PRIOR_CHANNELS}], "
                                 f"got {list(prior.shape)}")
            z = z + self.pair_prior_proj(prior)
        key_bias = None
        if "token_mask" in f:
            key_bias = (1.0 - f["token_mask"].float()) * -1e9
        for block in self.blocks:
            s, z = block(s, z, key_bias)
        s_trunk, z_trunk = self.ln_s_out(s), self.ln_z_out(z)
        if "token_mask" in f:  # padded tokens carry exact zeros (they are masked downstream anyway)
            tm = f["token_mask"].float()
            s_inputs = s_inputs * tm[..., None]
            s_trunk = s_trunk * tm[..., None]
            z_trunk = z_trunk * (tm[..., :, None] * tm[..., None, :])[..., None]
        return s_inputs, s_trunk, z_trunk
