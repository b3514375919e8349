"""Builders shared by the model tests: the golden-config module, random systems, random weights."""
from __future__ import annotations

import torch

from rnadiff.model.diffusion_module import DiffusionModule


def module_kwargs_from_golden(config: dict) -> dict:
    c = dict(config)
    nq, nk = c.pop("n_queries"), c.pop("n_keys")
    c.pop("blocks_per_ckpt", None)
    c.pop("use_fine_grained_checkpoint", None)
    c["atom_encoder"] = dict(c["atom_encoder"], n_queries=nq, n_keys=nk)
    c["atom_decoder"] = dict(c["atom_decoder"], n_queries=nq, n_keys=nk)
    return c


def golden_module(golden, **overrides) -> DiffusionModule:
    module = DiffusionModule(**{**module_kwargs_from_golden(golden["config"]), **overrides}).eval()
    module.load_state_dict(golden["state_dict"], strict=True)
    return module


def reference_config(module: DiffusionModule) -> dict:
    c = module.config
    return {
        "sigma_data": c["sigma_data"],
        "n_queries": c["atom_encoder"]["n_queries"],
        "n_keys": c["atom_encoder"]["n_keys"],
        "enc_blocks": c["atom_encoder"]["n_blocks"],
        "enc_heads": c["atom_encoder"]["n_heads"],
        "trf_blocks": c["transformer"]["n_blocks"],
        "trf_heads": c["transformer"]["n_heads"],
        "dec_blocks": c["atom_decoder"]["n_blocks"],
        "dec_heads": c["atom_decoder"]["n_heads"],
    }


@torch.no_grad()
def randomize_parameters_(module: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    """Every parameter random, so that no zero-initialised layer hides a mistake."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.copy_(torch.randn(p.shape, generator=g) * scale)


def random_system(
    chain_lengths: list[int],
    max_atoms_per_token: int,
    generator: torch.Generator,
    entity_of_chain: list[int] | None = None,
) -> dict[str, torch.Tensor]:
    """A synthetic multi-chain system with random atoms per token and random one-hot features."""
    entity_of_chain = entity_of_chain or list(range(len(chain_lengths)))
    residue_index, asym_id, entity_id, sym_id, atoms_per_token = [], [], [], [], []
    sym_counter: dict[int, int] = {}
    for chain, length in enumerate(chain_lengths):
        ent = entity_of_chain[chain]
        sym = sym_counter.get(ent, 0)
        sym_counter[ent] = sym + 1
        for r in range(length):
            residue_index.append(r + 1)
            asym_id.append(chain)
            entity_id.append(ent)
            sym_id.append(sym)
            atoms_per_token.append(int(torch.randint(1, max_atoms_per_token + 1, (1,), generator=generator)))
    n_tok = len(residue_index)
    atom_to_token = torch.repeat_interleave(torch.arange(n_tok), torch.tensor(atoms_per_token))
    n_atom = atom_to_token.shape[0]
    element = torch.randint(0, 128, (n_atom,), generator=generator)
    chars = torch.randint(0, 64, (n_atom, 4), generator=generator)
    ref_mask = (torch.rand(n_atom, generator=generator) > 0.05).long()
    return {
        "ref_pos": torch.randn(n_atom, 3, generator=generator) * 3,
        "ref_charge": torch.randint(-1, 2, (n_atom,), generator=generator),
        "ref_mask": ref_mask,
        "ref_element": torch.nn.functional.one_hot(element, 128),
        "ref_atom_name_chars": torch.nn.functional.one_hot(chars, 64),
        "ref_space_uid": atom_to_token.clone(),
        "atom_to_token_idx": atom_to_token,
        "residue_index": torch.tensor(residue_index),
        "token_index": torch.arange(n_tok),
        "asym_id": torch.tensor(asym_id),
        "entity_id": torch.tensor(entity_id),
        "sym_id": torch.tensor(sym_id),
    }


def random_embeddings(module: DiffusionModule, n_tok: int, generator: torch.Generator):
    c = module.config
    return (
        torch.randn(n_tok, c["c_s_inputs"], generator=generator),
        torch.randn(n_tok, c["c_s"], generator=generator),
        torch.randn(n_tok, n_tok, c["c_z"], generator=generator),
    )
