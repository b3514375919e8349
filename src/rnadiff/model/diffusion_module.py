"""The denoiser D(x, σ). Implements Algorithm 20 (AF3) with Protenix's parameter names.

    r      = c_in·x_noisy
    s, z   = DiffusionConditioning(σ, relp, s_inputs, s_trunk, z_trunk)          (Alg. 21)
    a, q   = AtomAttentionEncoder(r, s_trunk, z)                                   (Alg. 5)
    a     += Linear(LN(s));  a = DiffusionTransformer(a, s, z);  a = LN(a)          (Alg. 23)
    r_upd  = AtomAttentionDecoder(a, q)                                             (Alg. 6)
    x̂      = c_skip·x_noisy + c_out·r_upd                                          (EDM)

Everything that depends on neither x nor σ (pair conditioning, atom-pair features, every
block's pair bias, the σ-free part of the single conditioning) lives in a `DiffusionCache` made
once per structure by `prepare_cache`; the sampler passes it to every step and sample.
Passing no cache computes one on the fly, which gives identical numbers.

Reduced precision for inference (`hold_weights_in(torch.bfloat16)`): the weights of every
matmul are cast once and kept in bf16, and the network runs under autocast, which then has no
weight to re-cast (re-casting the 200 M float32 weights per call costs more than the bf16 matmuls
save at RNA sizes). float32 islands: the EDM preconditioning and final combination, the Fourier
noise embedding and every layer Protenix pins to float32 (coordinates in and out, conditioning
projections), LayerNorm statistics, the attention softmax, and the cached pair biases.

Shapes: features unbatched ([N_atom, ...], [N_token, ...]) or with leading batch dims [*b, ...]
plus `atom_mask` [*b, N_atom] / `token_mask` [*b, N_token] marking padding; coordinates
[*b, N_sample, N_atom, 3]; σ [*b, N_sample] (or anything that broadcasts to it).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from rnadiff.model import edm
from rnadiff.model.atom_decoder import AtomAttentionDecoder
from rnadiff.model.atom_encoder import AtomAttentionEncoder, AtomConditioning
from rnadiff.model.conditioning import DiffusionConditioning
from rnadiff.model.initialization import DEFAULT_INITIALIZATION, initialize_diffusion_module
from rnadiff.model.precision import cast_matmul_weights_, reduced_precision
from rnadiff.model.primitives import LinearNoBias, layer_norm
from rnadiff.model.transformer import DiffusionTransformer
from rnadiff.model.windows import LocalWindows

REQUIRED_ATOM_FEATURES = ("ref_pos", "ref_charge", "ref_mask", "ref_element", "ref_atom_name_chars", "ref_space_uid", "atom_to_token_idx")
REQUIRED_TOKEN_FEATURES = ("residue_index", "token_index", "asym_id", "entity_id", "sym_id")

# Above this many bytes the per-block token pair biases are recomputed in every call instead of
# being cached (24 blocks x 16 heads x N_token^2 floats: 1.6 GB at 1024 tokens).
DEFAULT_BIAS_CACHE_BYTES = 1 << 30


@dataclass
class DiffusionCache:
    """Per-structure conditioning, reused by every denoiser call on that structure."""

    windows: LocalWindows
    atom_to_token_idx: torch.Tensor  # [*b, N_atom]
    n_token: int
    single_base: torch.Tensor  # [*b, N_token, c_s]       σ-independent part of the single conditioning
    pair_z: torch.Tensor  # [*b, N_token, N_token, c_z]
    token_mask_bias: torch.Tensor | None  # [*b, 1, 1, 1, N_token] or None (no padding)
    token_biases: list[torch.Tensor] | None  # per block [*b, 1, H, N_token, N_token] or None
    atoms: AtomConditioning
    decoder_biases: list[torch.Tensor] | None
    atom_mask: torch.Tensor | None  # [*b, N_atom] or None


class DiffusionModule(nn.Module):
    def __init__(
        self,
        sigma_data: float = 16.0,
        c_atom: int = 128,
        c_atompair: int = 16,
        c_token: int = 768,
        c_s: int = 384,
        c_z: int = 128,
        c_s_inputs: int = 449,
        c_noise_embedding: int = 256,
        atom_encoder: Mapping[str, int] | None = None,
        transformer: Mapping[str, int] | None = None,
        atom_decoder: Mapping[str, int] | None = None,
        blocks_per_ckpt: int | None = None,
        use_fine_grained_checkpoint: bool = False,
        initialization: Mapping[str, bool] | None = None,
    ) -> None:
        super().__init__()
        enc = {"n_blocks": 3, "n_heads": 4, "n_queries": 32, "n_keys": 128, **(atom_encoder or {})}
        trf = {"n_blocks": 24, "n_heads": 16, **(transformer or {})}
        dec = {"n_blocks": 3, "n_heads": 4, "n_queries": 32, "n_keys": 128, **(atom_decoder or {})}
        _check_keys("atom_encoder", enc, {"n_blocks", "n_heads", "n_queries", "n_keys"})
        _check_keys("transformer", trf, {"n_blocks", "n_heads", "drop_path_rate"})
        _check_keys("atom_decoder", dec, {"n_blocks", "n_heads", "n_queries", "n_keys"})
        if trf.get("drop_path_rate", 0):
            raise ValueError("drop_path_rate > 0 is not supported")
        if (enc["n_queries"], enc["n_keys"]) != (dec["n_queries"], dec["n_keys"]):
            # The decoder reuses the encoder's atom-pair features, which live in its window layout.
            raise ValueError("atom_encoder and atom_decoder must use the same n_queries/n_keys")
        self.sigma_data = sigma_data
        self.config = dict(
            sigma_data=sigma_data, c_atom=c_atom, c_atompair=c_atompair, c_token=c_token, c_s=c_s,
            c_z=c_z, c_s_inputs=c_s_inputs, c_noise_embedding=c_noise_embedding,
            atom_encoder=dict(enc), transformer={k: v for k, v in trf.items() if k != "drop_path_rate"},
            atom_decoder=dict(dec),
        )
        self.n_queries, self.n_keys = enc["n_queries"], enc["n_keys"]
        self.blocks_per_ckpt = blocks_per_ckpt
        self.use_fine_grained_checkpoint = use_fine_grained_checkpoint

        self.diffusion_conditioning = DiffusionConditioning(
            sigma_data=sigma_data, c_z=c_z, c_s=c_s, c_s_inputs=c_s_inputs, c_noise_embedding=c_noise_embedding
        )
        self.atom_attention_encoder = AtomAttentionEncoder(
            c_token=c_token, c_atom=c_atom, c_atompair=c_atompair, c_s=c_s, c_z=c_z,
            blocks_per_ckpt=blocks_per_ckpt, **enc,
        )
        self.layernorm_s = layer_norm(c_s, offset=False)
        self.linear_no_bias_s = LinearNoBias(c_s, c_token, initializer="zeros", precision=torch.float32)
        self.diffusion_transformer = DiffusionTransformer(
            c_a=c_token, c_s=c_s, c_z=c_z, n_blocks=trf["n_blocks"], n_heads=trf["n_heads"],
            blocks_per_ckpt=blocks_per_ckpt,
        )
        self.layernorm_a = layer_norm(c_token, offset=False)
        self.atom_attention_decoder = AtomAttentionDecoder(
            c_token=c_token, c_atom=c_atom, c_atompair=c_atompair, blocks_per_ckpt=blocks_per_ckpt, **dec
        )
        self.initialization = {**DEFAULT_INITIALIZATION, **(initialization or {})}
        initialize_diffusion_module(self, self.initialization)
        self.weight_dtype: torch.dtype | None = None  # set by hold_weights_in

    # ------------------------------------------------------------------------------------------
    def hold_weights_in(self, dtype: torch.dtype = torch.bfloat16) -> "DiffusionModule":
        """Cast the matmul weights to `dtype` (bf16 or fp16) once, for inference; returns self.

        Every later call (and `prepare_cache`) runs the network under autocast to `dtype`, with the
        float32 islands listed in the module docstring. One way: the float32 weights are not kept
        (reload the checkpoint to go back); training such a module is refused.
        """
        cast_matmul_weights_(self, dtype)
        self.weight_dtype = dtype
        return self

    def _low_precision(self, device: torch.device):
        return reduced_precision(self.weight_dtype, device, self.training)

    # ------------------------------------------------------------------------------------------
    def compile_blocks(self, **compile_kwargs: Any) -> int:
        """torch.compile every transformer block (token and atom), in place; returns how many.

        Why blocks and not the whole forward: a block is the repeated unit (the default 24 token
        and 6 atom blocks share two graphs, so compile time is paid twice, not 30 times), it has no data-dependent
        Python control flow (the shared-σ test in `f_forward` would break a whole-model graph),
        and parameter names stay unchanged, so checkpoints load as before. Inductor fuses the
        AdaLN / gate / SwiGLU element-wise chains around the matmuls; measured 1.19x per denoiser
        step at 64 nt on the CPU, 1.5e-5 Å from eager (`rnadiff bench --compile`).
        The first call at a new shape compiles (tens of seconds on a CPU).
        """
        from rnadiff.model.transformer import DiffusionTransformerBlock

        blocks = [m for m in self.modules() if isinstance(m, DiffusionTransformerBlock)]
        for block in blocks:
            block.compile(**compile_kwargs)
        return len(blocks)

    def _checkpointed(self, fn, *args):
        if self.blocks_per_ckpt and self.use_fine_grained_checkpoint and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def prepare_cache(
        self,
        input_feature_dict: Mapping[str, torch.Tensor],
        s_inputs: torch.Tensor,
        s_trunk: torch.Tensor,
        z_trunk: torch.Tensor,
        use_conditioning: bool = True,
        cache_pair_biases: bool | None = None,
        pair_chunk_size: int | None = None,
        overwrite_trunk_pair: bool = False,
    ) -> DiffusionCache:
        """Compute everything that depends on neither coordinates nor σ, once per structure.

        cache_pair_biases: keep every block's pair bias (fast, memory H·N_token²·n_blocks·4 bytes);
        None decides by size (DEFAULT_BIAS_CACHE_BYTES).
        pair_chunk_size: compute the pair conditioning this many token rows at a time, without the
        relative-position one-hot (the memory option for long RNAs; same numbers).
        overwrite_trunk_pair: with pair_chunk_size, write the pair conditioning into z_trunk's own
        memory instead of a new N_token²·c_z buffer (half the pair memory at 4096 nt: 8.6 GB). The
        caller's z_trunk then holds the conditioned pair, not the trunk's.
        """
        with self._low_precision(self.linear_no_bias_s.weight.device):
            return self._prepare_cache(input_feature_dict, s_inputs, s_trunk, z_trunk, use_conditioning,
                                       cache_pair_biases, pair_chunk_size, overwrite_trunk_pair)

    def _prepare_cache(self, input_feature_dict, s_inputs, s_trunk, z_trunk, use_conditioning,
                       cache_pair_biases, pair_chunk_size, overwrite_trunk_pair) -> DiffusionCache:
        f = input_feature_dict
        n_atom, n_token = _validate_features(f, s_inputs, s_trunk, z_trunk, self.config)
        atom_mask = f.get("atom_mask")
        token_mask = f.get("token_mask")
        windows = LocalWindows.build(
            n_atom, self.n_queries, self.n_keys, atom_mask=atom_mask, device=f["ref_pos"].device
        )
        s_cond, z_cond = (s_trunk, z_trunk) if use_conditioning else (torch.zeros_like(s_trunk), torch.zeros_like(z_trunk))
        if overwrite_trunk_pair:
            if pair_chunk_size is None or "relp" in f or not use_conditioning:
                raise ValueError("overwrite_trunk_pair needs pair_chunk_size, use_conditioning and no 'relp' feature")
            if torch.is_grad_enabled() and z_trunk.requires_grad:
                raise ValueError("overwrite_trunk_pair cannot overwrite a z_trunk that requires grad")
        if pair_chunk_size is not None and "relp" not in f:
            out = z_cond if overwrite_trunk_pair else None
            pair_z = self.diffusion_conditioning.pair_chunked(f, z_cond, pair_chunk_size, out=out)
        else:
            relp = f["relp"] if "relp" in f else self.diffusion_conditioning.relpe.features(f)
            pair_z = self._checkpointed(self.diffusion_conditioning.pair, relp.to(z_cond.dtype), z_cond)
        single_base = self.diffusion_conditioning.single_base(s_inputs, s_cond)
        token_mask_bias = None
        if token_mask is not None:
            token_mask_bias = ((1.0 - token_mask.to(pair_z.dtype)) * -1e10)[..., None, None, None, :]
        n_blocks = len(self.diffusion_transformer.blocks)
        n_heads = self.config["transformer"]["n_heads"]
        batch = pair_z.shape[:-3]
        bias_bytes = n_blocks * n_heads * n_token * n_token * max(1, _prod(batch)) * 4  # held in float32
        if cache_pair_biases is None:
            cache_pair_biases = bias_bytes <= DEFAULT_BIAS_CACHE_BYTES
        token_biases = None
        if cache_pair_biases:
            # float32 once here: the attention takes its bias in float32 (softmax island), and
            # under reduced precision it would otherwise be re-cast in every call.
            biases = self.diffusion_transformer.pair_biases(pair_z.unsqueeze(-4), token_mask_bias)
            token_biases = [b.float() for b in biases]
        atoms = self._checkpointed(
            lambda ff, st, pz: self.atom_attention_encoder.prepare_cache(
                ff, windows, st, pz, cache_pair_biases, pair_chunk_size=pair_chunk_size
            ),
            f, s_trunk, pair_z,
        )
        decoder_biases = None
        if cache_pair_biases:
            biases = self.atom_attention_decoder.atom_transformer.pair_biases(atoms.p_lm, windows)
            decoder_biases = [b.float() for b in biases]
        return DiffusionCache(
            windows=windows, atom_to_token_idx=f["atom_to_token_idx"].long(), n_token=n_token,
            single_base=single_base, pair_z=pair_z, token_mask_bias=token_mask_bias,
            token_biases=token_biases, atoms=atoms, decoder_biases=decoder_biases, atom_mask=atom_mask,
        )

    # ------------------------------------------------------------------------------------------
    def f_forward(
        self,
        r_noisy: torch.Tensor,
        t_hat_noise_level: torch.Tensor,
        cache: DiffusionCache,
        chunk_size: int | None = None,
        inplace_safe: bool = False,
    ) -> torch.Tensor:
        """The raw network F(c_in·x, c_noise(σ)): r_noisy [*b, S, N_atom, 3] -> r_update [*b, S, N_atom, 3]."""
        t_cond = t_hat_noise_level
        if t_cond.shape[-1] > 1 and not torch.is_grad_enabled() and bool((t_cond == t_cond[..., :1]).all()):
            # The sampler gives every sample the same σ: the single conditioning, and with it every
            # block's AdaLN and gate projections of s, is then computed once and broadcast over samples.
            t_cond = t_cond[..., :1]
        s_single = self._checkpointed(self.diffusion_conditioning.single, t_cond, cache.single_base)
        a, q_skip = self._checkpointed(
            lambda r: self.atom_attention_encoder(
                r, cache.atoms, cache.atom_to_token_idx, cache.windows, cache.n_token, cache.atom_mask,
                chunk_size=chunk_size, inplace_safe=inplace_safe,
            ),
            r_noisy,
        )
        a = a + self.linear_no_bias_s(self.layernorm_s(s_single))
        if cache.token_biases is not None:
            a = self.diffusion_transformer(a, s_single, biases=cache.token_biases, chunk_size=chunk_size, inplace_safe=inplace_safe)
        else:
            a = self.diffusion_transformer(
                a, s_single, z=cache.pair_z.unsqueeze(-4), mask_bias=cache.token_mask_bias,
                chunk_size=chunk_size, inplace_safe=inplace_safe,
            )
        a = self.layernorm_a(a)
        r_update = self._checkpointed(
            lambda a_, q_: self.atom_attention_decoder(
                a_, q_, cache.atoms.c_l, cache.atom_to_token_idx, cache.windows,
                biases=cache.decoder_biases,
                p_skip=None if cache.decoder_biases is not None else cache.atoms.p_lm,
                chunk_size=chunk_size, inplace_safe=inplace_safe,
            ),
            a, q_skip,
        )
        if cache.atom_mask is not None:
            r_update = r_update * cache.atom_mask[..., None, :, None].to(r_update.dtype)
        return r_update

    def forward(
        self,
        x_noisy: torch.Tensor,
        t_hat_noise_level: torch.Tensor,
        input_feature_dict: Mapping[str, torch.Tensor],
        s_inputs: torch.Tensor | None,
        s_trunk: torch.Tensor | None,
        z_trunk: torch.Tensor | None,
        *,
        cache: DiffusionCache | None = None,
        chunk_size: int | None = None,
        sample_chunk_size: int | None = None,
        inplace_safe: bool = False,
        use_conditioning: bool = True,
    ) -> torch.Tensor:
        """One denoising call: x_noisy [*b, S, N_atom, 3], σ [*b, S] -> x_denoised [*b, S, N_atom, 3].

        chunk_size: queries (token attention) / windows (atom attention) per attention chunk.
        sample_chunk_size: samples per network pass (bounds activation memory for many samples).
        With a `cache`, the trunk tensors are not read and may be None: a caller short of memory can
        free z_trunk (N_token² x c_z floats) once the cache holds the pair conditioning.
        inplace_safe: allow in-place updates (only under no_grad). All agree with the plain path to float
        rounding (chunk_size and the cache exactly; sample chunks to ~1e-5 Å, as matmul blocking changes).
        """
        if inplace_safe and torch.is_grad_enabled():
            raise ValueError("inplace_safe=True needs torch.no_grad(): it would corrupt autograd")
        if cache is None:
            if s_inputs is None or s_trunk is None or z_trunk is None:
                raise ValueError("s_inputs, s_trunk and z_trunk are required without a cache")
            cache = self.prepare_cache(input_feature_dict, s_inputs, s_trunk, z_trunk, use_conditioning=use_conditioning)
        if x_noisy.dim() < 3 or x_noisy.shape[-1] != 3 or x_noisy.shape[-2] != cache.windows.n_atom:
            raise ValueError(
                f"x_noisy must be [..., N_sample, {cache.windows.n_atom}, 3], got {tuple(x_noisy.shape)}"
            )
        sigma = torch.as_tensor(t_hat_noise_level, dtype=x_noisy.dtype, device=x_noisy.device)
        try:
            sigma = torch.broadcast_to(sigma, x_noisy.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"t_hat_noise_level {tuple(sigma.shape)} does not broadcast to x_noisy's sample dims {tuple(x_noisy.shape[:-2])}"
            ) from None
        n_sample = x_noisy.shape[-3]
        if sample_chunk_size is None or sample_chunk_size >= n_sample:
            return self._denoise(x_noisy, sigma, cache, chunk_size, inplace_safe)
        chunks = [
            self._denoise(x_noisy.narrow(-3, i, min(sample_chunk_size, n_sample - i)),
                          sigma.narrow(-1, i, min(sample_chunk_size, n_sample - i)), cache, chunk_size, inplace_safe)
            for i in range(0, n_sample, sample_chunk_size)
        ]
        return torch.cat(chunks, dim=-3)

    def _denoise(self, x_noisy, sigma, cache, chunk_size, inplace_safe):
        r_noisy = edm.precondition_input(x_noisy, sigma, self.sigma_data)
        with self._low_precision(x_noisy.device):
            r_update = self.f_forward(r_noisy, sigma, cache, chunk_size=chunk_size, inplace_safe=inplace_safe)
        if self.weight_dtype is not None:  # the final coordinate update is a float32 island
            x_noisy, r_update, sigma = x_noisy.float(), r_update.float(), sigma.float()
        return edm.combine(x_noisy, r_update, sigma, self.sigma_data)


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _check_keys(name: str, cfg: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(cfg) - allowed
    if unknown:
        raise ValueError(f"unknown {name} option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _validate_features(f, s_inputs, s_trunk, z_trunk, config) -> tuple[int, int]:
    missing = [k for k in REQUIRED_ATOM_FEATURES + REQUIRED_TOKEN_FEATURES if k not in f]
    if missing:
        raise ValueError(f"input_feature_dict lacks {missing}")
    ref_pos = f["ref_pos"]
    if ref_pos.shape[-1] != 3:
        raise ValueError(f"ref_pos must be [..., N_atom, 3], got {tuple(ref_pos.shape)}")
    batch, n_atom = ref_pos.shape[:-2], ref_pos.shape[-2]
    n_token = f["residue_index"].shape[-1]
    for key in REQUIRED_ATOM_FEATURES:
        if tuple(f[key].shape[: len(batch) + 1]) != (*batch, n_atom):
            raise ValueError(f"{key} has shape {tuple(f[key].shape)}, expected leading dims {(*batch, n_atom)}")
    for key in REQUIRED_TOKEN_FEATURES:
        if tuple(f[key].shape) != (*batch, n_token):
            raise ValueError(f"{key} has shape {tuple(f[key].shape)}, expected {(*batch, n_token)}")
    expect = {
        "s_inputs": (s_inputs, (*batch, n_token, config["c_s_inputs"])),
        "s_trunk": (s_trunk, (*batch, n_token, config["c_s"])),
        "z_trunk": (z_trunk, (*batch, n_token, n_token, config["c_z"])),
    }
    for name, (t, shape) in expect.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape}")
    idx = f["atom_to_token_idx"]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_token):
        raise ValueError(f"atom_to_token_idx must lie in [0, {n_token}), got [{int(idx.min())}, {int(idx.max())}]")
    return n_atom, n_token
