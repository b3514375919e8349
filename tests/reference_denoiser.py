"""A deliberately naive, dense re-implementation of Protenix's DiffusionModule forward.

It shares no code with rnadiff: plain tensors from a state dict, dense N_atom x N_atom atom-pair
features with a banded mask instead of windows, Python loops for the relative-position one-hot
and the atom->token mean. Slow and memory-hungry by design; only for small test systems. It is
anchored to Protenix by test_model_parity (it must reproduce golden_small.pt too), and then
serves as the spec for configurations the golden file does not cover.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

NEG = -1e10


def _ln(x, w=None, b=None):
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)


class Reference:
    def __init__(self, state_dict: dict, cfg: dict):
        self.P = {k: v.double() for k, v in state_dict.items()}
        self.cfg = cfg

    def lin(self, x, name, bias=False):
        y = x @ self.P[name + ".weight"].T
        return y + self.P[name + ".bias"] if bias else y

    def transition(self, pre, x):
        x = _ln(x, self.P[pre + ".layernorm1.weight"], self.P[pre + ".layernorm1.bias"])
        return self.lin(F.silu(self.lin(x, pre + ".linear_no_bias_a")) * self.lin(x, pre + ".linear_no_bias_b"), pre + ".linear_no_bias")

    def adaln(self, pre, a, s):
        s = _ln(s, self.P[pre + ".layernorm_s.weight"])
        return torch.sigmoid(self.lin(s, pre + ".linear_s", True)) * _ln(a) + self.lin(s, pre + ".linear_nobias_s")

    def block(self, pre, a, s, z, mask_bias, n_heads, cross):
        ap = pre + ".attention_pair_bias"
        a_n = self.adaln(ap + ".layernorm_a", a, s)
        kv = self.adaln(ap + ".layernorm_kv", a_n, s) if cross else a_n
        bias = self.lin(_ln(z, self.P[ap + ".layernorm_z.weight"]), ap + ".linear_nobias_z")  # [.., Q, K, H]
        bias = bias.movedim(-1, -3) + mask_bias  # [.., H, Q, K]
        q = self.lin(a_n, ap + ".attention.linear_q", True)
        k = self.lin(kv, ap + ".attention.linear_k")
        v = self.lin(kv, ap + ".attention.linear_v")
        d = q.shape[-1] // n_heads
        split = lambda t: t.unflatten(-1, (n_heads, d)).transpose(-2, -3)  # noqa: E731
        w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        o = (w @ split(v)).transpose(-2, -3).flatten(-2)
        o = o * torch.sigmoid(self.lin(a_n, ap + ".attention.linear_g"))
        a = a + torch.sigmoid(self.lin(s, ap + ".linear_a_last", True)) * self.lin(o, ap + ".attention.linear_o")
        ct = pre + ".conditioned_transition_block"
        x = self.adaln(ct + ".adaln", a, s)
        b = F.silu(self.lin(x, ct + ".linear_nobias_a1")) * self.lin(x, ct + ".linear_nobias_a2")
        return a + torch.sigmoid(self.lin(s, ct + ".linear_s", True)) * self.lin(b, ct + ".linear_nobias_b")

    def relp(self, f):
        n = f["asym_id"].shape[0]
        out = torch.zeros(n, n, 139, dtype=torch.float64)
        for i in range(n):
            for j in range(n):
                same_chain = f["asym_id"][i] == f["asym_id"][j]
                same_res = f["residue_index"][i] == f["residue_index"][j]
                same_ent = f["entity_id"][i] == f["entity_id"][j]
                dr = int(min(max(f["residue_index"][i] - f["residue_index"][j] + 32, 0), 64)) if same_chain else 65
                dt = int(min(max(f["token_index"][i] - f["token_index"][j] + 32, 0), 64)) if (same_chain and same_res) else 65
                dc = int(min(max(f["sym_id"][i] - f["sym_id"][j] + 2, 0), 4)) if same_ent else 5
                out[i, j, dr] = 1
                out[i, j, 66 + dt] = 1
                out[i, j, 132] = float(same_ent)
                out[i, j, 133 + dc] = 1
        return out

    @staticmethod
    def band_mask(n_atom, n_queries, n_keys):
        allowed = torch.zeros(n_atom, n_atom, dtype=torch.bool)
        half = (n_keys - n_queries) // 2
        for l in range(n_atom):
            b = l // n_queries
            lo, hi = b * n_queries - half, b * n_queries - half + n_keys
            allowed[l, max(lo, 0) : min(hi, n_atom)] = True
        return allowed

    def forward(self, x_noisy, t_hat, f, s_inputs, s_trunk, z_trunk, use_conditioning=True):
        cfg, P = self.cfg, self.P
        sd = cfg["sigma_data"]
        x, t = x_noisy.double(), t_hat.double()
        s_inputs, s_trunk, z_trunk = s_inputs.double(), s_trunk.double(), z_trunk.double()
        s_c, z_c = (s_trunk, z_trunk) if use_conditioning else (0 * s_trunk, 0 * z_trunk)
        # Alg. 21
        z = torch.cat([z_c, self.lin(self.relp(f), "diffusion_conditioning.relpe.linear_no_bias")], -1)
        z = self.lin(_ln(z, P["diffusion_conditioning.layernorm_z.weight"]), "diffusion_conditioning.linear_no_bias_z")
        z = z + self.transition("diffusion_conditioning.transition_z1", z)
        z = z + self.transition("diffusion_conditioning.transition_z2", z)
        s = self.lin(_ln(torch.cat([s_c, s_inputs], -1), P["diffusion_conditioning.layernorm_s.weight"]), "diffusion_conditioning.linear_no_bias_s")
        noise = torch.cos(2 * math.pi * (torch.log(t / sd)[:, None] / 4 * P["diffusion_conditioning.fourier_embedding.w"] + P["diffusion_conditioning.fourier_embedding.b"]))
        s = s[None] + self.lin(_ln(noise, P["diffusion_conditioning.layernorm_n.weight"]), "diffusion_conditioning.linear_no_bias_n")[:, None]
        s = s + self.transition("diffusion_conditioning.transition_s1", s)
        s = s + self.transition("diffusion_conditioning.transition_s2", s)
        # Alg. 5 (dense)
        e = "atom_attention_encoder"
        tok = f["atom_to_token_idx"].long()
        n_atom, n_tok = tok.shape[0], z.shape[0]
        ref_pos = f["ref_pos"].double()
        mask = f["ref_mask"].double()[:, None]
        c = self.lin(ref_pos, e + ".linear_no_bias_ref_pos") + self.lin(torch.arcsinh(f["ref_charge"].double())[:, None], e + ".linear_no_bias_ref_charge")
        c = c + self.lin(torch.cat([mask, f["ref_element"].double(), f["ref_atom_name_chars"].double().reshape(n_atom, 256)], -1), e + ".linear_no_bias_f")
        c = c * mask
        d = ref_pos[:, None] - ref_pos[None]
        v = (f["ref_space_uid"][:, None] == f["ref_space_uid"][None]).double()[..., None]
        p = self.lin(d, e + ".linear_no_bias_d") * v + self.lin(1 / (1 + (d**2).sum(-1, keepdim=True)), e + ".linear_no_bias_invd") * v + self.lin(v, e + ".linear_no_bias_v")
        zp = self.lin(_ln(z, P[e + ".layernorm_z.weight"]), e + ".linear_no_bias_z")
        p = p + zp[tok[:, None], tok[None, :]]
        c = c + self.lin(_ln(s_trunk, P[e + ".layernorm_s.weight"]), e + ".linear_no_bias_s")[tok]
        q = c + self.lin(r := x / torch.sqrt(sd**2 + t**2)[:, None, None], e + ".linear_no_bias_r")
        p = p + self.lin(F.relu(c), e + ".linear_no_bias_cl")[:, None] + self.lin(F.relu(c), e + ".linear_no_bias_cm")[None, :]
        p = p + self.lin(F.relu(self.lin(F.relu(self.lin(F.relu(p), e + ".small_mlp.1")), e + ".small_mlp.3")), e + ".small_mlp.5")
        band = torch.where(self.band_mask(n_atom, cfg["n_queries"], cfg["n_keys"]), 0.0, NEG).double()
        for i in range(cfg["enc_blocks"]):
            q = self.block(f"{e}.atom_transformer.diffusion_transformer.blocks.{i}", q, c, p, band, cfg["enc_heads"], True)
        qa = F.relu(self.lin(q, e + ".linear_no_bias_q"))
        a = torch.stack([qa[:, tok == j].mean(1) if (tok == j).any() else torch.zeros_like(qa[:, 0]) for j in range(n_tok)], 1)
        del r
        # Alg. 20 main path
        a = a + self.lin(_ln(s, P["layernorm_s.weight"]), "linear_no_bias_s")
        for i in range(cfg["trf_blocks"]):
            a = self.block(f"diffusion_transformer.blocks.{i}", a, s, z, 0.0, cfg["trf_heads"], False)
        a = _ln(a, P["layernorm_a.weight"])
        # Alg. 6
        dd = "atom_attention_decoder"
        qd = self.lin(a, dd + ".linear_no_bias_a")[:, tok] + q
        for i in range(cfg["dec_blocks"]):
            qd = self.block(f"{dd}.atom_transformer.diffusion_transformer.blocks.{i}", qd, c, p, band, cfg["dec_heads"], True)
        r_update = self.lin(_ln(qd, P[dd + ".layernorm_q.weight"]), dd + ".linear_no_bias_out")
        ratio = (t / sd)[:, None, None]
        return 1 / (1 + ratio**2) * x + t[:, None, None] / torch.sqrt(1 + ratio**2) * r_update
