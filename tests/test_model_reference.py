"""The implementation is the spec, not the golden file: for random dims, head counts, window sizes,
chains, atoms per token and sample counts, the windowed/cached module equals the dense reference."""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnadiff.model.diffusion_module import DiffusionModule
from tests.model_helpers import random_embeddings, random_system, randomize_parameters_, reference_config
from tests.reference_denoiser import Reference


@st.composite
def configurations(draw):
    enc_heads = draw(st.sampled_from([1, 2, 4]))
    trf_heads = draw(st.sampled_from([1, 2, 4]))
    dec_heads = draw(st.sampled_from([1, 2]))
    nq = draw(st.sampled_from([4, 8, 32]))
    nk = nq + draw(st.sampled_from([0, 4, 8, 96]))
    return dict(
        module=dict(
            sigma_data=draw(st.sampled_from([16.0, 10.0])),
            c_atom=4 * draw(st.integers(1, 4)) * 2,
            c_atompair=draw(st.sampled_from([2, 4, 6])),
            c_token=4 * draw(st.integers(1, 4)),
            c_s=draw(st.sampled_from([4, 6, 10])),
            c_z=draw(st.sampled_from([3, 4, 8])),
            c_s_inputs=draw(st.sampled_from([2, 5, 9])),
            c_noise_embedding=draw(st.sampled_from([2, 4, 8])),
            atom_encoder={"n_blocks": draw(st.integers(1, 2)), "n_heads": enc_heads, "n_queries": nq, "n_keys": nk},
            transformer={"n_blocks": draw(st.integers(1, 2)), "n_heads": trf_heads},
            atom_decoder={"n_blocks": draw(st.integers(1, 2)), "n_heads": dec_heads, "n_queries": nq, "n_keys": nk},
        ),
        chains=draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)),
        entities=draw(st.sampled_from(["distinct", "homomer"])),
        max_atoms=draw(st.integers(1, 24)),
        n_sample=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 10_000)),
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_module_equals_dense_reference(cfg):
    mc = cfg["module"]
    mc["c_atom"] -= mc["c_atom"] % (mc["atom_encoder"]["n_heads"] * mc["atom_decoder"]["n_heads"])
    mc["c_atom"] = max(mc["c_atom"], 4)
    mc["c_token"] = max(mc["c_token"] - mc["c_token"] % mc["transformer"]["n_heads"], mc["transformer"]["n_heads"])
    torch.manual_seed(cfg["seed"])
    module = DiffusionModule(**mc).eval()
    randomize_parameters_(module, seed=cfg["seed"])
    g = torch.Generator().manual_seed(cfg["seed"])
    entities = None if cfg["entities"] == "distinct" else [0] * len(cfg["chains"])
    f = random_system(cfg["chains"], cfg["max_atoms"], g, entity_of_chain=entities)
    n_tok, n_atom = f["residue_index"].shape[0], f["ref_pos"].shape[0]
    s_inputs, s_trunk, z_trunk = random_embeddings(module, n_tok, g)
    x = torch.randn(cfg["n_sample"], n_atom, 3, generator=g) * 10
    t = torch.rand(cfg["n_sample"], generator=g) * 50 + 0.1
    with torch.no_grad():
        out = module(x, t, f, s_inputs, s_trunk, z_trunk)
    ref = Reference(module.state_dict(), reference_config(module)).forward(x, t, f, s_inputs, s_trunk, z_trunk)
    scale = max(1.0, ref.abs().max().item())
    assert (out.double() - ref).abs().max().item() <= 1e-4 * scale
