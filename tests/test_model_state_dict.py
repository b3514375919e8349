"""Weight compatibility with Protenix: same keys, shapes and element count at the default dims."""
from __future__ import annotations

import torch

from rnadiff.model.diffusion_module import DiffusionModule
from tests.conftest import STATE_DICT_KEYS_PATH


def _protenix_keys() -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in STATE_DICT_KEYS_PATH.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shape, _dtype = line.split("\t")
        keys[name] = tuple(int(x) for x in shape.strip("()").split(",") if x.strip())
    return keys


def test_default_module_has_protenix_state_dict():
    reference = _protenix_keys()
    with torch.device("meta"):  # shapes only: no 800 MB of random init
        module = DiffusionModule()
    mine = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert len(reference) == 766
    assert set(mine) == set(reference), (set(mine) ^ set(reference))
    assert {k: v for k, v in mine.items() if reference[k] != v} == {}
    assert sum(torch.Size(s).numel() for s in mine.values()) == 203_257_585


def test_fourier_embedding_is_frozen_but_in_state_dict():
    module = DiffusionModule(c_atom=8, c_atompair=4, c_token=16, c_s=8, c_z=4, c_s_inputs=5, c_noise_embedding=4,
                             atom_encoder={"n_blocks": 1, "n_heads": 2}, transformer={"n_blocks": 1, "n_heads": 2},
                             atom_decoder={"n_blocks": 1, "n_heads": 2})
    fourier = module.diffusion_conditioning.fourier_embedding
    assert not fourier.w.requires_grad and not fourier.b.requires_grad
    assert "diffusion_conditioning.fourier_embedding.w" in module.state_dict()
    # Protenix draws them from torch.randn with a Generator seeded 42: checkpoints agree with fresh modules.
    g = torch.Generator().manual_seed(42)
    assert torch.equal(fourier.w, torch.randn(4, generator=g))


def test_golden_weights_load_strict(golden):
    from tests.model_helpers import golden_module

    module = golden_module(golden)
    for key, value in golden["state_dict"].items():
        assert torch.equal(module.state_dict()[key], value), key


def test_constructor_options_reach_layers():
    module = DiffusionModule(
        c_atom=8, c_atompair=4, c_token=16, c_s=8, c_z=4, c_s_inputs=5, c_noise_embedding=6,
        atom_encoder={"n_blocks": 2, "n_heads": 2, "n_queries": 16, "n_keys": 64},
        transformer={"n_blocks": 3, "n_heads": 4},
        atom_decoder={"n_blocks": 1, "n_heads": 1, "n_queries": 16, "n_keys": 64},
    )
    assert module.diffusion_conditioning.fourier_embedding.w.shape == (6,)
    assert module.diffusion_conditioning.layernorm_n.weight.shape == (6,)
    assert len(module.atom_attention_encoder.atom_transformer.diffusion_transformer.blocks) == 2
    assert module.atom_attention_encoder.atom_transformer.n_queries == 16
    assert module.atom_attention_decoder.atom_transformer.n_keys == 64
    assert len(module.diffusion_transformer.blocks) == 3
    assert module.diffusion_transformer.blocks[0].attention_pair_bias.linear_nobias_z.weight.shape == (4, 4)
    assert module.atom_attention_decoder.atom_transformer.diffusion_transformer.blocks[0].attention_pair_bias.attention.n_heads == 1


def test_bad_constructor_options_raise():
    import pytest

    with pytest.raises(ValueError, match="n_queries"):
        DiffusionModule(atom_encoder={"n_queries": 16}, c_token=16, c_s=8, c_z=4, c_s_inputs=5)
    with pytest.raises(ValueError, match="unknown"):
        DiffusionModule(transformer={"n_blocks": 1, "n_heads": 2, "n_layers": 3})
    with pytest.raises(ValueError, match="divisible"):
        DiffusionModule(c_token=30, transformer={"n_blocks": 1, "n_heads": 4}, c_s=8, c_z=4, c_s_inputs=5, c_atom=8, c_atompair=4)
