"""DiffusionConfig end to end through run_stage: inference with and without input features,
with energy minimization on, and a training step."""
from __future__ import annotations

import logging

import pytest
import torch

from rnadiff.api import DiffusionConfig, run_stage
from rnadiff.chem import featurize
from rnadiff.errors import ConfigError
from rnadiff.io import read_structure
from rnadiff.train.partial import mode_mask
from tests.train_helpers import EXAMPLES

SMALL = dict(c_atom=16, c_atompair=8, c_token=32, c_s=32, c_z=16, c_s_inputs=40, c_noise_embedding=16,
             atom_encoder={"n_blocks": 1, "n_heads": 2}, transformer={"n_blocks": 1, "n_heads": 2},
             atom_decoder={"n_blocks": 1, "n_heads": 2},
             inference={"num_steps": 6, "N_sample": 2, "refinement": {"start_sigma": 10.0}})


def trunk(n_token: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"s_inputs": torch.randn(n_token, 40, generator=g), "s_trunk": torch.randn(n_token, 32, generator=g),
            "z_trunk": torch.randn(n_token, n_token, 16, generator=g)}


def c1_only():
    feats = featurize(read_structure(EXAMPLES / "1f27_B.pdb"))
    given = mode_mask("c1", feats, torch.Generator().manual_seed(0)) & (feats["atom_present_mask"] > 0)
    partial = torch.where(given[:, None], feats["coords"], torch.full_like(feats["coords"], float("nan")))
    return feats, partial, given


def config(partial, n_token, **kw) -> DiffusionConfig:
    stage = {**SMALL, **kw.pop("stage", {})}
    torch.manual_seed(0)
    return DiffusionConfig(partial_coords=partial, trunk_embeddings=trunk(n_token), diffusion_config=stage, **kw)


def test_inference_with_input_features_keeps_the_given_atoms():
    feats, partial, given = c1_only()
    out = run_stage(config(partial, feats["restype"].shape[0], input_features=feats))
    assert out.coordinates.shape == (2, feats["coords"].shape[0], 3)
    dev = (out.coordinates[:, given] - feats["coords"][given]).norm(dim=-1)
    assert float(dev.max()) <= 0.05
    assert out.result is not None and out.result.minimization is None


def test_inference_without_input_features_builds_them_and_warns(caplog):
    feats, partial, given = c1_only()
    with caplog.at_level(logging.WARNING, logger="rnadiff"):
        from_file = run_stage(config(str(EXAMPLES / "1f27_B.pdb"), feats["restype"].shape[0]))
    assert "no input_features" in caplog.text
    assert from_file.coordinates.shape == (2, feats["coords"].shape[0], 3)
    seq = "".join(r.name for r in read_structure(EXAMPLES / "1f27_B.pdb").chains[0].residues)
    emb = {**trunk(len(seq)), "sequence": seq}
    torch.manual_seed(0)
    cfg = DiffusionConfig(partial_coords=partial, trunk_embeddings=emb, diffusion_config=SMALL)
    out = run_stage(cfg)
    dev = (out.coordinates[:, given] - feats["coords"][given]).norm(dim=-1)
    assert float(dev.max()) <= 0.05


def test_unknown_minimization_method_fails_before_sampling():
    feats, partial, _ = c1_only()
    with pytest.raises(ConfigError, match="method"):
        run_stage(config(partial, feats["restype"].shape[0], input_features=feats,
                         stage={"energy_minimization": {"enabled": True, "method": "nonsense"}}))


@pytest.mark.slow  # three OpenMM minimizations of an untrained model's samples (~15 s)
def test_energy_minimization_keys_are_honoured():
    pytest.importorskip("openmm")
    feats, partial, _ = c1_only()
    n_token = feats["restype"].shape[0]
    plain = run_stage(config(partial, n_token, input_features=feats))
    short = run_stage(config(partial, n_token, input_features=feats,
                             stage={"energy_minimization": {"enabled": True, "steps": 2}}))
    longer = run_stage(config(partial, n_token, input_features=feats,
                              stage={"energy_minimization": {"enabled": True, "steps": 50}}))
    assert short.result.minimization is not None and len(short.result.minimization) == 2
    assert float((short.coordinates - plain.coordinates).abs().max()) > 0.01  # enabled: the samples moved
    assert float((short.coordinates - longer.coordinates).abs().max()) > 1e-3  # steps: how far they moved


def test_train_mode_runs_one_optimiser_step():
    from rnadiff.pipeline.manager import ProtenixDiffusionManager

    feats, _, _ = c1_only()
    full = torch.where((feats["atom_present_mask"] > 0)[:, None], feats["coords"],
                       torch.full_like(feats["coords"], float("nan")))
    cfg = config(full, feats["restype"].shape[0], input_features=feats, mode="train",
                 stage={"training": {"N_sample": 2}})
    manager = ProtenixDiffusionManager(cfg.diffusion_config)
    before = [p.detach().clone() for p in manager.diffusion_module.parameters()]
    out = run_stage(cfg, manager=manager)
    assert torch.isfinite(out.loss) and out.x_denoised.shape[-3] == 2
    changed = sum(not torch.equal(a, b) for a, b in zip(before, manager.diffusion_module.parameters()))
    assert changed > 0


def test_energy_minimization_section_reaches_the_minimizer_config():
    from rnadiff.pipeline.stage_config import pipeline_settings, resolve_stage_d

    assert pipeline_settings(resolve_stage_d({})).minimization is None  # enabled: false
    on = pipeline_settings(resolve_stage_d({"energy_minimization": {"enabled": True, "steps": 7}})).minimization
    assert on is not None and on.steps == 7 and on.method == "OpenMM"


def test_run_stage_and_refine_build_the_same_settings():
    """One configuration, one set of pipeline settings: the stage runner's settings for the refine
    config's model.stageD equal `rnadiff refine`'s, finish groups (start, anchoring, polish)
    included, and DiffusionConfig.finish overrides them as a refine override would."""
    import argparse

    from omegaconf import OmegaConf

    from rnadiff.cli import refine as cli_refine
    from rnadiff.config import load_config
    from rnadiff.pipeline.stage_config import finish_options, pipeline_settings

    parser = argparse.ArgumentParser()
    cli_refine.register(parser.add_subparsers())
    args = parser.parse_args(["refine", "in.pdb", "--out", "o", "--samples", "3", "--steps", "40", "--seed", "0"])
    stage_d = OmegaConf.to_container(load_config([cli_refine.REFINE_GROUP]).model.stageD, resolve=True)
    stage_d["inference"].update(N_sample=3, num_steps=40, seed=0)
    for refine_overrides, finish in (([], None), (["postprocess.rank=false", "start.dense_sigma=3.0"],
                                                  {"postprocess": {"rank": False}, "start": {"dense_sigma": 3.0}})):
        from_cli = cli_refine.settings_from(args, refine_overrides)
        from_runner = pipeline_settings(stage_d, finish_options(finish))
        assert from_runner == from_cli
    assert from_runner.dense_start_sigma == 3.0 and not from_runner.rank_samples
    with pytest.raises(ConfigError, match="postprocess"):
        finish_options({"postprocess": {"polish_harder": True}})


def test_bf16_inference_holds_the_weights_once_and_stays_close_to_fp32():
    """memory.mixed_precision=bf16 through run_stage: the matmul weights are cast once (no per-call
    re-cast) and the samples stay close to the float32 run's."""
    from rnadiff.pipeline.manager import ProtenixDiffusionManager

    feats, partial, given = c1_only()
    n = feats["restype"].shape[0]
    fp32 = run_stage(config(partial, n, input_features=feats)).coordinates
    torch.manual_seed(0)
    manager = ProtenixDiffusionManager({**SMALL, "memory": {"mixed_precision": "bf16"}})
    bf16 = run_stage(config(partial, n, input_features=feats, stage={"memory": {"mixed_precision": "bf16"}}))
    assert bf16.coordinates.shape == fp32.shape and torch.isfinite(bf16.coordinates).all()
    assert float((bf16.coordinates - fp32).norm(dim=-1).mean()) < 1.0
    manager.hold_weights_for_inference()
    dtypes = {p.dtype for p in manager.diffusion_module.parameters()}
    assert torch.bfloat16 in dtypes and torch.float32 in dtypes  # matmuls bf16, fp32 islands kept
    with pytest.raises(ConfigError, match="bf16 or fp16"):
        ProtenixDiffusionManager(SMALL).hold_weights_for_inference()


def test_partial_coords_of_another_shape_are_refused_not_reshaped():
    """Structure features describe one structure: a batch of two, or a flat array, is an error
    naming the expected shape (it used to be flattened into [2 N, 3] and fail far away)."""
    from rnadiff.errors import InputError

    feats, partial, _ = c1_only()
    n_token, n_atom = feats["restype"].shape[0], feats["coords"].shape[0]
    for bad in (torch.stack([partial, partial]), partial.reshape(-1)):
        with pytest.raises(InputError, match=rf"\[{n_atom}, 3\] or \[1, {n_atom}, 3\]"):
            run_stage(config(bad, n_token, input_features=feats))
    one = run_stage(config(partial[None], n_token, input_features=feats))
    assert one.coordinates.shape == (2, n_atom, 3)
