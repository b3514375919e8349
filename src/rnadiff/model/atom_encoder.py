"""Atom attention encoder. Implements Algorithm 5 (AF3) with Protenix's deviations.

Deviations copied from Protenix (needed for weight compatibility):
- the trunk pair term is projected at token level (W_z LN(z)) and then gathered to atom pairs;
- q_l = c_l + W_r r_noisy where c_l already holds the s_trunk term;
- linear_no_bias_v(v_lm) is added without the v_lm factor.
Everything except the W_r r_noisy term is independent of the noise level and the coordinates,
so `prepare_cache` computes c_l, p_lm and the atom-transformer pair biases once per structure.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnadiff.chem.bridging import aggregate_atom_to_token, broadcast_token_to_atom
from rnadiff.model.primitives import LinearNoBias, layer_norm
from rnadiff.model.transformer import AtomTransformer
from rnadiff.model.windows import LocalWindows

N_ELEMENTS = 128
N_NAME_CHARS = 4 * 64


@dataclass
class AtomConditioning:
    """Step-independent atom-level tensors shared by every sample and step of one structure."""

    c_l: torch.Tensor  # [*b, 1, N_atom, c_atom]   atom single conditioning incl. s_trunk
    p_lm: torch.Tensor  # [*b, 1, T, nq, nk, c_atompair]  final atom-pair features
    encoder_biases: list[torch.Tensor] | None  # per encoder block [*b, 1, H, T, nq, nk]


class AtomAttentionEncoder(nn.Module):
    def __init__(
        self,
        c_token: int,
        c_atom: int = 128,
        c_atompair: int = 16,
        c_s: int = 384,
        c_z: int = 128,
        n_blocks: int = 3,
        n_heads: int = 4,
        n_queries: int = 32,
        n_keys: int = 128,
        blocks_per_ckpt: int | None = None,
    ) -> None:
        super().__init__()
        self.n_queries = n_queries
        self.n_keys = n_keys
        self.linear_no_bias_ref_pos = LinearNoBias(3, c_atom, precision=torch.float32)
        self.linear_no_bias_ref_charge = LinearNoBias(1, c_atom)
        self.linear_no_bias_f = LinearNoBias(1 + N_ELEMENTS + N_NAME_CHARS, c_atom)
        self.linear_no_bias_d = LinearNoBias(3, c_atompair, precision=torch.float32)
        self.linear_no_bias_invd = LinearNoBias(1, c_atompair)
        self.linear_no_bias_v = LinearNoBias(1, c_atompair)
        self.layernorm_s = layer_norm(c_s, offset=False)
        self.linear_no_bias_s = LinearNoBias(c_s, c_atom, initializer="zeros", precision=torch.float32)
        self.layernorm_z = layer_norm(c_z, offset=False)
        self.linear_no_bias_z = LinearNoBias(c_z, c_atompair, initializer="zeros", precision=torch.float32)
        self.linear_no_bias_r = LinearNoBias(3, c_atom, precision=torch.float32)
        self.linear_no_bias_cl = LinearNoBias(c_atom, c_atompair)
        self.linear_no_bias_cm = LinearNoBias(c_atom, c_atompair)
        self.small_mlp = nn.Sequential(
            nn.ReLU(),
            LinearNoBias(c_atompair, c_atompair, initializer="relu"),
            nn.ReLU(),
            LinearNoBias(c_atompair, c_atompair, initializer="relu"),
            nn.ReLU(),
            LinearNoBias(c_atompair, c_atompair, initializer="zeros"),
        )
        self.atom_transformer = AtomTransformer(
            c_atom=c_atom, c_atompair=c_atompair, n_blocks=n_blocks, n_heads=n_heads,
            n_queries=n_queries, n_keys=n_keys, blocks_per_ckpt=blocks_per_ckpt,
        )
        self.linear_no_bias_q = LinearNoBias(c_atom, c_token)

    # --- step-independent parts -------------------------------------------------------------
    def atom_single_features(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        """Reference-conformer embedding c_l [*b, N_atom, c_atom] (Alg. 5 line 1)."""
        ref_pos = f["ref_pos"].float()
        n_atom = ref_pos.shape[-2]
        batch = ref_pos.shape[:-2]
        ref_mask = f["ref_mask"].to(ref_pos.dtype).reshape(*batch, n_atom, 1)
        c_l = self.linear_no_bias_ref_pos(ref_pos) + self.linear_no_bias_ref_charge(
            torch.arcsinh(f["ref_charge"].to(ref_pos.dtype)).reshape(*batch, n_atom, 1)
        )
        flat = torch.cat(
            [
                ref_mask,
                f["ref_element"].to(ref_pos.dtype).reshape(*batch, n_atom, N_ELEMENTS),
                f["ref_atom_name_chars"].to(ref_pos.dtype).reshape(*batch, n_atom, N_NAME_CHARS),
            ],
            dim=-1,
        )
        return (c_l + self.linear_no_bias_f(flat)) * ref_mask

    @staticmethod
    def pair_offsets(f: dict[str, torch.Tensor], windows: LocalWindows) -> tuple[torch.Tensor, torch.Tensor]:
        """d_lm [*b, T, nq, nk, 3] reference offsets and v_lm [*b, T, nq, nk, 1] same-conformer flag.

        v_lm is not restricted to the window mask (Protenix's convention: only the d_lm term is
        masked); entries outside the mask never reach an attention weight.
        """
        ref_pos = f["ref_pos"].float()
        uid = f["ref_space_uid"]
        d_lm = windows.queries(ref_pos)[..., :, :, None, :] - windows.keys(ref_pos)[..., :, None, :, :]
        same = windows.queries(uid, dim=-1)[..., :, :, None] == windows.keys(uid, dim=-1)[..., :, None, :]
        v_lm = same.unsqueeze(-1)
        return d_lm, v_lm

    def atom_pair_features(self, f: dict[str, torch.Tensor], windows: LocalWindows) -> torch.Tensor:
        """Embedded reference offsets p_lm [*b, T, nq, nk, c_atompair] (Alg. 5 lines 2-6)."""
        d_lm, v_lm = self.pair_offsets(f, windows)
        v = v_lm.to(d_lm.dtype)
        p_lm = self.linear_no_bias_d(d_lm) * v * windows.mask.unsqueeze(-1).to(d_lm.dtype)
        p_lm = p_lm + self.linear_no_bias_invd(1 / (1 + (d_lm**2).sum(dim=-1, keepdim=True))) * v
        return p_lm + self.linear_no_bias_v(v)

    def prepare_cache(
        self,
        f: dict[str, torch.Tensor],
        windows: LocalWindows,
        s_trunk: torch.Tensor,
        pair_z: torch.Tensor,
        cache_biases: bool = True,
        pair_chunk_size: int | None = None,
    ) -> AtomConditioning:
        """c_l, p_lm (and their pair biases) for one structure: everything but the coordinates.

        pair_chunk_size: project the token pair features row chunk by row chunk (LayerNorm of all
        of pair_z at once is another N_token² x c_z tensor: 8 GB at 4096 tokens).
        """
        idx = f["atom_to_token_idx"]
        c_l = self.atom_single_features(f)
        p_lm = self.atom_pair_features(f, windows)
        p_lm = p_lm + windows.gather_token_pairs(self._project_pairs(pair_z, pair_chunk_size), idx)
        p_lm = p_lm.unsqueeze(-5)  # sample axis of size 1: [*b, 1, T, nq, nk, c]
        s_atom = broadcast_token_to_atom(self.linear_no_bias_s(self.layernorm_s(s_trunk)), idx)
        c_l = (c_l + s_atom).unsqueeze(-3)  # [*b, 1, N_atom, c_atom]
        p_lm = (
            p_lm
            + self.linear_no_bias_cl(F.relu(windows.queries(c_l)))[..., :, :, None, :]
            + self.linear_no_bias_cm(F.relu(windows.keys(c_l)))[..., :, None, :, :]
        )
        p_lm = p_lm + self.small_mlp(p_lm)
        biases = self.atom_transformer.pair_biases(p_lm, windows) if cache_biases else None
        return AtomConditioning(c_l=c_l, p_lm=p_lm, encoder_biases=biases)

    def _project_pairs(self, pair_z: torch.Tensor, chunk_size: int | None) -> torch.Tensor:
        """W_z LN(pair_z): [*b, N, N, c_z] -> [*b, N, N, c_atompair]."""
        if chunk_size is None:
            return self.linear_no_bias_z(self.layernorm_z(pair_z))
        n = pair_z.shape[-3]
        out = pair_z.new_empty(*pair_z.shape[:-1], self.linear_no_bias_z.out_features)
        for start in range(0, n, chunk_size):
            rows = slice(start, min(start + chunk_size, n))
            out[..., rows, :, :] = self.linear_no_bias_z(self.layernorm_z(pair_z[..., rows, :, :]))
        return out

    # --- per call ----------------------------------------------------------------------------
    def forward(
        self,
        r_noisy: torch.Tensor,
        cond: AtomConditioning,
        atom_to_token_idx: torch.Tensor,
        windows: LocalWindows,
        n_token: int,
        atom_mask: torch.Tensor | None = None,
        chunk_size: int | None = None,
        inplace_safe: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """r_noisy [*b, S, N_atom, 3] -> (a [*b, S, N_token, c_token], q_skip [*b, S, N_atom, c_atom])."""
        q_l = cond.c_l + self.linear_no_bias_r(r_noisy)
        q_l = self.atom_transformer(
            q_l, cond.c_l, windows, biases=cond.encoder_biases,
            p_lm=None if cond.encoder_biases is not None else cond.p_lm,
            chunk_size=chunk_size, inplace_safe=inplace_safe,
        )
        a = aggregate_atom_to_token(F.relu(self.linear_no_bias_q(q_l)), atom_to_token_idx, n_token, atom_mask)
        return a, q_l
