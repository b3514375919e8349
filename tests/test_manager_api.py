"""ProtenixDiffusionManager and DiffusionConfig: shapes, seeds, refinement, errors, the real model."""
import logging

import pytest
import torch

from rnadiff.api import DiffusionConfig, ProtenixDiffusionManager
from rnadiff.diffusion.alignment import aligned_rmsd
from rnadiff.errors import ConfigError, InputError
from tests.test_diffusion_toys import ToyDenoiser, make_target, toy_embeddings, toy_features

N_ATOM, N_TOK = 40, 8


@pytest.fixture()
def toy_mgr():
    return ProtenixDiffusionManager({"inference": {"num_steps": 12}}, denoiser=ToyDenoiser(make_target(N_ATOM)))


def test_diffusion_config_validates_mode():
    ok = DiffusionConfig(partial_coords=None, trunk_embeddings={}, diffusion_config={}, mode="train")
    assert ok.device == "cpu" and ok.input_features is None and ok.debug_logging is False
    with pytest.raises(ValueError, match="mode"):
        DiffusionConfig(partial_coords=None, trunk_embeddings={}, diffusion_config={}, mode="sample")


def test_output_shapes_one_and_several_samples(toy_mgr):
    f, emb = toy_features(N_ATOM, N_TOK), toy_embeddings(N_TOK)
    one = toy_mgr.multi_step_inference(None, emb, {"N_sample": 1}, override_input_features=f)
    several = toy_mgr.multi_step_inference(None, emb, {"N_sample": 3}, override_input_features=f)
    assert one.shape == (1, N_ATOM, 3) and several.shape == (1, 3, N_ATOM, 3)
    coords = make_target(N_ATOM).expand(2, -1, -1)
    batch = toy_mgr.multi_step_inference(coords, emb, {"N_sample": 2}, override_input_features=f)
    assert batch.shape == (2, 2, N_ATOM, 3)


def test_seeded_and_reproducible(toy_mgr):
    f, emb = toy_features(N_ATOM, N_TOK), toy_embeddings(N_TOK)
    a = toy_mgr.multi_step_inference(None, emb, {"seed": 3, "N_sample": 2}, override_input_features=f)
    b = toy_mgr.multi_step_inference(None, emb, {"seed": 3, "N_sample": 2}, override_input_features=f)
    c = toy_mgr.multi_step_inference(None, emb, {"seed": 4, "N_sample": 2}, override_input_features=f)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float((a - c).abs().max()) > 1.0


def test_refinement_with_missing_atoms(toy_mgr):
    f, emb = toy_features(N_ATOM, N_TOK), toy_embeddings(N_TOK)
    target = make_target(N_ATOM)
    partial = target.clone()
    partial[::3] = float("nan")  # a third of the atoms missing
    out = toy_mgr.multi_step_inference(partial[None], emb, {"start_sigma": 5.0, "return_trajectory": True},
                                       override_input_features=f)
    traj = toy_mgr.last_output.trajectory
    assert traj.shape[0] - 1 < 12  # started inside the schedule
    assert bool(torch.isfinite(out).all())
    assert float(aligned_rmsd(out[0], target)) < 0.5  # 12-step schedule: the last Euler step overshoots a little
    # start at the top = de novo: identical to sampling without coordinates
    de_novo = toy_mgr.multi_step_inference(None, emb, {"seed": 5}, override_input_features=f)
    top = toy_mgr.multi_step_inference(partial[None], emb, {"seed": 5, "start_fraction": 1.0}, override_input_features=f)
    torch.testing.assert_close(top, de_novo, rtol=0, atol=0)


def test_errors_are_clear(toy_mgr):
    f, emb = toy_features(N_ATOM, N_TOK), toy_embeddings(N_TOK)
    with pytest.raises(ConfigError, match="unknown inference_params"):
        toy_mgr.multi_step_inference(None, emb, {"num_stepz": 3}, override_input_features=f)
    with pytest.raises(InputError, match="z_trunk"):
        toy_mgr.multi_step_inference(None, {"s_inputs": emb["s_inputs"], "s_trunk": emb["s_trunk"]}, {},
                                     override_input_features=f)
    with pytest.raises(InputError, match="no input features"):
        toy_mgr.multi_step_inference(None, emb, {})
    short = ProtenixDiffusionManager({"memory": {"max_sequence_length": 4}}, denoiser=ToyDenoiser(make_target(N_ATOM)))
    with pytest.raises(InputError, match="max_sequence_length"):
        short.multi_step_inference(None, emb, {}, override_input_features=f)
    with pytest.raises(ConfigError):
        ProtenixDiffusionManager({"inference": {"num_stepz": 3}}, denoiser=ToyDenoiser(make_target(N_ATOM)))
    # coordinates and masks that do not match the features are refused, never reshaped
    target = make_target(N_ATOM)
    with pytest.raises(InputError, match=f"N_atom = {N_ATOM}"):
        toy_mgr.multi_step_inference(target[:-1], emb, {"start_sigma": 5.0}, override_input_features=f)
    with pytest.raises(InputError, match="coords_mask"):
        toy_mgr.multi_step_inference(target, emb, {"start_sigma": 5.0, "coords_mask": torch.ones(2 * N_ATOM)},
                                     override_input_features=f)


def test_sequence_fallback_logs_a_warning(caplog):
    from rnadiff.chem.features import features_from_sequence

    n_atom = features_from_sequence("GAC")["atom_to_token_idx"].shape[0]
    mgr = ProtenixDiffusionManager({"inference": {"num_steps": 3}}, denoiser=ToyDenoiser(make_target(n_atom)))
    with caplog.at_level(logging.WARNING):
        out = mgr.multi_step_inference(None, toy_embeddings(3), {"sequence": "GAC"})
    assert out.shape == (1, n_atom, 3)
    assert any("sequence" in r.getMessage() for r in caplog.records)


def test_train_step_with_toy_unpacks_and_backpropagates():
    target = make_target(N_ATOM)
    toy = ToyDenoiser(target)
    mgr = ProtenixDiffusionManager({"training": {"N_sample": 3}}, denoiser=toy)
    f, emb = toy_features(N_ATOM, N_TOK), toy_embeddings(N_TOK)
    out = mgr.train_diffusion_step({"coordinate": target}, f, emb["s_inputs"], emb["s_trunk"], emb["z_trunk"], {},
                                   generator=torch.Generator().manual_seed(0))
    x_gt, x_den, sigma = out  # seed-compatible unpacking
    assert x_gt.shape == x_den.shape == (3, N_ATOM, 3) and sigma.shape == (3,)
    out.loss.backward()
    assert toy.scale.grad is not None
    assert set(out.metrics) == {"mse_loss", "smooth_lddt_loss", "bond_loss", "base_pair_loss", "loss"}
    two = mgr.train_diffusion_step({"coordinate": target}, f, emb["s_inputs"], emb["s_trunk"], emb["z_trunk"], {},
                                   N_sample=2)
    assert two.sigma.shape == (2,)


@pytest.fixture(scope="module")
def golden_mgr(golden):
    cfg = {k: golden["config"][k] for k in ("sigma_data", "c_atom", "c_atompair", "c_token", "c_s", "c_z",
                                            "c_s_inputs", "c_noise_embedding", "transformer")}
    enc = {**golden["config"]["atom_encoder"], "n_queries": 32, "n_keys": 128}
    dec = {**golden["config"]["atom_decoder"], "n_queries": 32, "n_keys": 128}
    mgr = ProtenixDiffusionManager({**cfg, "atom_encoder": enc, "atom_decoder": dec})
    mgr.diffusion_module.load_state_dict(golden["state_dict"])
    return mgr


def test_real_model_denoiser_through_manager_matches_golden(golden, golden_mgr):
    """The manager's cached denoiser path reproduces Protenix's denoised output."""
    g = golden["inputs"]
    case = golden["denoiser"]["cases"][0]
    denoise = golden_mgr.conditioning().denoiser(g["features"], (g["s_inputs"], g["s_trunk"], g["z_trunk"]))
    with torch.no_grad():
        out = denoise(case["x_noisy"], case["t_hat"])
    torch.testing.assert_close(out, case["x_denoised"], atol=1e-4, rtol=0)


def test_real_model_train_step_and_inference(golden, golden_mgr):
    g = golden["inputs"]
    labels = {"coordinate": g["x_true"], "coordinate_mask": golden["losses"]["coordinate_mask"]}
    out = golden_mgr.train_diffusion_step(labels, g["features"], g["s_inputs"], g["s_trunk"], g["z_trunk"], {},
                                          N_sample=2, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    grads = [p.grad for p in golden_mgr.diffusion_module.parameters() if p.requires_grad]
    assert any(gr is not None and float(gr.abs().sum()) > 0 for gr in grads)
    emb = {"s_inputs": g["s_inputs"], "s_trunk": g["s_trunk"], "z_trunk": g["z_trunk"]}
    x = golden_mgr.multi_step_inference(None, emb, {"num_steps": 4, "N_sample": 2}, override_input_features=g["features"])
    assert x.shape == (1, 2, 250, 3) and bool(torch.isfinite(x).all())
