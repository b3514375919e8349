"""Parity with Protenix's own DiffusionModule (golden_small.pt) and with the dense reference.

Tolerance: 1e-4 Å on denoised coordinates (docs/design.md §5; Protenix's own SDPA vs softmax paths differ by 4e-6).
"""
from __future__ import annotations

import shutil

import pytest
import torch

from rnadiff.model.atom_encoder import AtomAttentionEncoder
from rnadiff.model.embedders import relative_position_features
from rnadiff.model.windows import LocalWindows
from tests.model_helpers import golden_module, reference_config
from tests.reference_denoiser import Reference

TOL = 1e-4


@pytest.fixture(scope="module")
def model(golden):
    return golden_module(golden)


def _run(model, golden, case, **kw):
    inp = golden["inputs"]
    with torch.no_grad():
        return model(case["x_noisy"], case["t_hat"], inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"], **kw)


def test_derived_features_equal_protenix(golden):
    inp = golden["inputs"]
    f = inp["features"]
    assert torch.equal(relative_position_features(f), inp["relp"])
    windows = LocalWindows.build(f["ref_pos"].shape[0], 32, 128)
    info = windows.pad_info()
    for key in ("q_pad", "k_pad_left", "k_pad_right"):
        assert info[key] == inp["pad_info"][key]
    assert torch.equal(info["mask_trunked"], inp["pad_info"]["mask_trunked"])
    d_lm, v_lm = AtomAttentionEncoder.pair_offsets(f, windows)
    assert torch.equal(d_lm, inp["d_lm"])
    assert torch.equal(v_lm, inp["v_lm"])


@pytest.mark.parametrize("case_index", [0, 1, 2])
def test_denoiser_cases(model, golden, case_index):
    case = golden["denoiser"]["cases"][case_index]
    out = _run(model, golden, case)
    assert (out - case["x_denoised"]).abs().max() <= TOL


def test_use_conditioning_false(model, golden):
    case = golden["denoiser"]["cases"][0]
    out = _run(model, golden, case, use_conditioning=False)
    assert (out - golden["denoiser"]["x_denoised_no_conditioning_case0"]).abs().max() <= TOL
    assert (out - case["x_denoised"]).abs().max() > 1e-3  # the switch does something


def test_cached_path_and_its_tensors(model, golden):
    inp, cached = golden["inputs"], golden["denoiser"]["cached"]
    f = inp["features"]
    with torch.no_grad():
        cache = model.prepare_cache(f, inp["s_inputs"], inp["s_trunk"], inp["z_trunk"])
        enc = model.atom_attention_encoder
        assert (cache.pair_z - cached["pair_z"]).abs().max() <= 1e-5
        assert (enc.atom_single_features(f) - cached["c_l"]).abs().max() <= 1e-5
        p_lm = enc.atom_pair_features(f, cache.windows) + cache.windows.gather_token_pairs(
            enc.linear_no_bias_z(enc.layernorm_z(cache.pair_z)), f["atom_to_token_idx"]
        )
        assert (p_lm.unsqueeze(-5) - cached["p_lm"]).abs().max() <= 1e-5
        case = golden["denoiser"]["cases"][0]
        out = _run(model, golden, case, cache=cache)
    assert (out - cached["x_denoised"]).abs().max() <= TOL


def test_submodule_intermediates(model, golden):
    inp, im = golden["inputs"], golden["denoiser"]["intermediates_case0"]
    case = golden["denoiser"]["cases"][0]
    f = inp["features"]
    with torch.no_grad():
        cache = model.prepare_cache(f, inp["s_inputs"], inp["s_trunk"], inp["z_trunk"])
        s_single = model.diffusion_conditioning.single(case["t_hat"], cache.single_base)
        assert (s_single - im["diffusion_conditioning.out0"]).abs().max() <= 1e-5
        assert (cache.pair_z - im["diffusion_conditioning.out1"]).abs().max() <= 1e-5
        r = case["x_noisy"] / torch.sqrt(16.0**2 + case["t_hat"] ** 2)[..., None, None]
        assert (r - im["encoder_in.r_l"]).abs().max() <= 1e-6
        a, q_skip = model.atom_attention_encoder(r, cache.atoms, cache.atom_to_token_idx, cache.windows, cache.n_token)
        assert (a - im["atom_attention_encoder.out0"]).abs().max() <= 1e-5
        assert (q_skip - im["atom_attention_encoder.out1"]).abs().max() <= 1e-5
        assert (cache.atoms.c_l - im["atom_attention_encoder.out2"]).abs().max() <= 1e-5
        assert (cache.atoms.p_lm - im["atom_attention_encoder.out3"]).abs().max() <= 1e-5
        projected = model.linear_no_bias_s(model.layernorm_s(s_single))  # the hooked layer's own output
        assert (projected - im["linear_no_bias_s"]).abs().max() <= 1e-5
        a = a + projected
        a = model.diffusion_transformer(a, s_single, biases=cache.token_biases)
        assert (a - im["diffusion_transformer"]).abs().max() <= 1e-4
        a = model.layernorm_a(a)
        assert (a - im["layernorm_a"]).abs().max() <= 1e-4
        r_update = model.atom_attention_decoder(
            a, q_skip, cache.atoms.c_l, cache.atom_to_token_idx, cache.windows, biases=cache.decoder_biases
        )
        assert (r_update - im["atom_attention_decoder"]).abs().max() <= 1e-4


@pytest.mark.parametrize("case_index", [0, 2])
def test_dense_reference_reproduces_golden(golden, case_index):
    """Anchors the naive reference used by test_model_reference to Protenix itself."""
    module = golden_module(golden)
    ref = Reference(module.state_dict(), reference_config(module))
    inp = golden["inputs"]
    case = golden["denoiser"]["cases"][case_index]
    out = ref.forward(case["x_noisy"], case["t_hat"], inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"])
    assert (out.float() - case["x_denoised"]).abs().max() <= TOL


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                    reason="torch.compile's CPU backend needs a C++ compiler")
def test_compiled_blocks_match_golden(golden):
    """The optional torch.compile path (inductor-fused blocks) stays on the golden tensors, and
    compiling leaves the parameter names (checkpoint format) unchanged."""
    compiled = golden_module(golden)
    keys = list(compiled.state_dict())
    n_blocks = sum(len(t.blocks) for t in (compiled.diffusion_transformer,
                                           compiled.atom_attention_encoder.atom_transformer.diffusion_transformer,
                                           compiled.atom_attention_decoder.atom_transformer.diffusion_transformer))
    assert compiled.compile_blocks(dynamic=False) == n_blocks
    assert all(b._compiled_call_impl is not None for b in compiled.diffusion_transformer.blocks)
    assert list(compiled.state_dict()) == keys
    for case in golden["denoiser"]["cases"]:
        out = _run(compiled, golden, case)
        assert (out - case["x_denoised"]).abs().max() <= TOL
