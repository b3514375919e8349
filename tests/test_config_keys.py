"""The Hydra tree: loading, bad overrides, and every owned key changes what the code does."""
import pytest
import torch
from omegaconf import OmegaConf

from rnadiff.config import CONFIG_DIR, load_config, stage_d
from rnadiff.pipeline.manager import ProtenixDiffusionManager
from rnadiff.errors import ConfigError
from tests.test_diffusion_toys import ToyDenoiser, make_target, toy_embeddings, toy_features

N_ATOM, N_TOK = 24, 6
SMALL = dict(c_atom=16, c_atompair=4, c_token=32, c_s=16, c_z=8, c_s_inputs=8, c_noise_embedding=8,
             atom_encoder={"n_blocks": 1, "n_heads": 2}, transformer={"n_blocks": 1, "n_heads": 2},
             atom_decoder={"n_blocks": 1, "n_heads": 2})


class RecordingToy(ToyDenoiser):
    """ToyDenoiser that records the keyword options and autocast state of each call."""

    def __init__(self):
        super().__init__(make_target(N_ATOM))
        with torch.no_grad():
            self.scale.fill_(0.9)  # an imperfect denoiser, so that every loss term is non-zero
        self.seen = []

    def forward(self, x_noisy, t_hat, *args, **kwargs):
        self.seen.append({**kwargs, "autocast": torch.is_autocast_enabled("cpu"), "n": x_noisy.shape[-3]})
        kwargs.pop("cache", None)
        return super().forward(x_noisy, t_hat, *args, **kwargs)


def test_load_config_and_overrides():
    cfg = load_config(["model.stageD.inference.num_steps=50", "device=cpu"])
    assert cfg.model.stageD.inference.num_steps == 50 and cfg.device == "cpu"
    assert load_config(config_name="train").model.stageD.training.N_sample == 48
    assert stage_d(cfg)["memory"]["max_sequence_length"] == 4096
    mgr = ProtenixDiffusionManager.from_config(cfg, denoiser=RecordingToy())
    assert mgr.device == torch.device("cpu") and mgr.config["inference"]["num_steps"] == 50
    # keys owned elsewhere exist with their defaults
    d = cfg.model.stageD
    assert d.energy_minimization.enabled is False and d.lora.r == 8 and d.guidance.enabled is True


@pytest.mark.parametrize("overrides, match", [
    (["model.stageD.no_such_key=1"], "no_such_key"),
    (["model.stageD.inference.num_steps"], "key=value"),
    (["model.stageD.memory.mixed_precision=int8"], "mixed_precision"),
    (["model.stageD.inference.num_steps=abc"], "type"),
    (["model.stageD.inference.num_steps=0"], "num_steps"),
    (["model.stageD.inference.refinement.start_fraction=1.5"], "start_fraction"),
])
def test_bad_overrides_raise_config_error(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides)
    with pytest.raises(ConfigError):
        load_config(["model.stageD.training.N_sample=0"], config_name="train")
    with pytest.raises(ConfigError):
        load_config([], config_name="nope")


def _mgr(cfg, denoiser=None):
    return ProtenixDiffusionManager(cfg, denoiser=denoiser if denoiser is not None else RecordingToy())


def _infer(mgr, params=None, coords=None):
    params = {"num_steps": 6, **(params or {})}
    return mgr.multi_step_inference(coords, toy_embeddings(N_TOK), params, override_input_features=toy_features(N_ATOM, N_TOK))


DIM_KEYS = {"c_atom": 8, "c_atompair": 2, "c_token": 16, "c_s": 8, "c_z": 4, "c_s_inputs": 4, "c_noise_embedding": 4,
            "atom_encoder": {"n_blocks": 2, "n_heads": 2}, "transformer": {"n_blocks": 2, "n_heads": 2},
            "atom_decoder": {"n_blocks": 2, "n_heads": 2}}


@pytest.mark.parametrize("key", sorted(DIM_KEYS))
def test_module_dimension_keys_reach_the_model(key):
    base = ProtenixDiffusionManager(SMALL).diffusion_module
    changed = ProtenixDiffusionManager({**SMALL, key: DIM_KEYS[key]}).diffusion_module
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes(base) != shapes(changed)


def test_sigma_data_and_gradient_checkpointing_reach_the_model():
    m = ProtenixDiffusionManager({**SMALL, "sigma_data": 8.0, "memory": {"gradient_checkpointing": True}})
    assert m.diffusion_module.sigma_data == 8.0 and m.schedule.sigma_data == 8.0
    assert m.diffusion_module.blocks_per_ckpt == 1
    assert ProtenixDiffusionManager(SMALL).diffusion_module.blocks_per_ckpt is None


@pytest.mark.parametrize("key, value", [("s_max", 80.0), ("s_min", 1e-3), ("p", 5.0), ("dt", 0.01)])
def test_schedule_keys(key, value):
    base = _mgr({}).schedule.inference_sigmas()
    changed = _mgr({"schedule": {key: value}}).schedule.inference_sigmas()
    assert base.shape != changed.shape or not torch.equal(base, changed)


def test_training_optimizer_keys():
    t = {"lr": 0.5, "weight_decay": 0.1, "adam_betas": [0.8, 0.9], "warmup_steps": 2,
         "lr_decay_every_n_steps": 1, "lr_decay_factor": 0.5, "grad_clip_norm": 1.0, "ema_decay": 0.25}
    mgr = _mgr({"training": t})
    opt = mgr.build_optimizer()
    g = opt.param_groups[0]
    assert g["lr"] == 0.5 and g["weight_decay"] == 0.1 and g["betas"] == (0.8, 0.9)
    sched = mgr.build_lr_scheduler(opt)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [0.25, 0.5, 0.5, 0.25]
    assert mgr.build_ema().decay == 0.25
    mgr.diffusion_module.scale.grad = torch.tensor(5.0)
    mgr.clip_gradients()
    assert abs(float(mgr.diffusion_module.scale.grad) - 1.0) < 1e-6
    mgr2 = _mgr({"training": {"grad_clip_norm": None}})
    mgr2.diffusion_module.scale.grad = torch.tensor(5.0)
    mgr2.clip_gradients()
    assert float(mgr2.diffusion_module.scale.grad) == 5.0


def _train(cfg, toy=None, **kw):
    toy = toy or RecordingToy()
    mgr = _mgr(cfg, toy)
    emb = toy_embeddings(N_TOK)
    x = make_target(N_ATOM)
    bonds = torch.tensor([[0, 1], [1, 2], [2, 3]])
    return mgr.train_diffusion_step({"coordinate": x, "bond_index": bonds}, toy_features(N_ATOM, N_TOK),
                                    emb["s_inputs"], emb["s_trunk"], emb["z_trunk"], {},
                                    generator=torch.Generator().manual_seed(0), **kw), toy


def test_training_sampling_keys():
    out, _ = _train({"training": {"N_sample": 5}})
    assert out.sigma.shape == (5,)
    a, _ = _train({"training": {"N_sample": 4000}})
    b, _ = _train({"training": {"N_sample": 4000, "p_mean": 0.5}})
    c, _ = _train({"training": {"N_sample": 4000, "p_std": 0.5}})
    la, lb, lc = (torch.log(o.sigma / 16) for o in (a, b, c))
    assert abs(float(la.mean()) + 1.2) < 0.1 and abs(float(lb.mean()) - 0.5) < 0.1
    assert abs(float(lc.std()) - 0.5) < 0.05
    _, toy = _train({"training": {"N_sample": 5, "diffusion_chunk_size": 2}})
    assert [s["n"] for s in toy.seen] == [2, 2, 1]


@pytest.mark.parametrize("key, value", [
    ("alpha_diffusion", 2.0), ("weight_mse", 1.0), ("weight_smooth_lddt", 3.0), ("alpha_bond", 1.0),
    ("alpha_base_pair", 1.0), ("weight_rna", 1.0), ("weight_dna", 9.0), ("weight_ligand", 9.0),
    ("lddt_nucleotide_radius", 5.0), ("lddt_other_radius", 40.0),
])
def test_loss_keys_change_the_loss(key, value):
    feats_flags = {"weight_dna": "is_dna", "weight_ligand": "is_ligand"}
    if key == "alpha_base_pair":  # acts on the atom pairs of annotated base pairs
        f, emb = toy_features(N_ATOM, N_TOK), toy_embeddings(N_TOK)
        labels = {"coordinate": make_target(N_ATOM), "pair_atom_index": torch.tensor([[0, 20], [1, 21], [2, 19]])}
        res = [_mgr({"training": {"N_sample": 2, **cfg}}).train_diffusion_step(
            labels, f, emb["s_inputs"], emb["s_trunk"], emb["z_trunk"], {}, generator=torch.Generator().manual_seed(0))
            for cfg in ({}, {"loss": {key: value}})]
        assert float(res[1].metrics["base_pair_loss"]) > 0
        assert float(res[0].loss.detach()) != float(res[1].loss.detach())
        return
    base, _ = _train({"training": {"N_sample": 2}})
    changed, _ = _train({"training": {"N_sample": 2, "loss": {key: value}}})
    if key in feats_flags or key == "lddt_other_radius":
        # these act only on DNA / ligand / non-nucleotide atoms: mark some atoms as such
        f = toy_features(N_ATOM, N_TOK)
        f["is_rna"] = torch.cat([torch.zeros(8), torch.ones(N_ATOM - 8)])
        f[feats_flags.get(key, "is_ligand")] = torch.cat([torch.ones(8), torch.zeros(N_ATOM - 8)])
        emb = toy_embeddings(N_TOK)
        res = []
        for cfg in ({}, {"loss": {key: value}}):
            mgr = _mgr({"training": {"N_sample": 2, **cfg}})
            res.append(mgr.train_diffusion_step({"coordinate": make_target(N_ATOM)}, f, emb["s_inputs"], emb["s_trunk"],
                                                emb["z_trunk"], {}, generator=torch.Generator().manual_seed(0)).loss)
        assert float(res[0].detach()) != float(res[1].detach())
        return
    assert float(base.loss.detach()) != float(changed.loss.detach())


def test_inference_keys_change_sampling():
    base = _infer(_mgr({}), {"N_sample": 2})
    assert _infer(_mgr({"inference": {"N_sample": 3}})).shape == (1, 3, N_ATOM, 3)
    assert not torch.equal(_infer(_mgr({"inference": {"seed": 1}}), {"N_sample": 2}), base)
    m = _mgr({"inference": {"num_steps": 4, "return_trajectory": True}})
    m.multi_step_inference(None, toy_embeddings(N_TOK), {}, override_input_features=toy_features(N_ATOM, N_TOK))
    assert m.last_output.trajectory.shape[0] == 5
    for key, value in [("gamma0", 0.2), ("gamma_min", 100.0), ("noise_scale_lambda", 2.0), ("step_scale_eta", 1.0)]:
        m = _mgr({"inference": {"sampling": {key: value}, "return_trajectory": True}})
        ref = _mgr({"inference": {"return_trajectory": True}})
        _infer(m), _infer(ref)
        assert not torch.equal(m.last_output.trajectory, ref.last_output.trajectory), key
    hot, cold = _mgr({"inference": {"return_trajectory": True}}), _mgr({"inference": {"temperature": 0.0, "return_trajectory": True}})
    _infer(hot), _infer(cold)
    assert not torch.equal(hot.last_output.trajectory[1], cold.last_output.trajectory[1])
    toy = RecordingToy()
    _infer(_mgr({"inference": {"N_sample": 3, "sampling": {"diffusion_chunk_size": 2}}}, toy))
    assert [s["n"] for s in toy.seen] == [2] * 6 + [1] * 6  # chunk by chunk, every step
    aligned = _infer(_mgr({"inference": {"sampling": {"align_to_prediction": True}, "num_steps": 6}}), {"N_sample": 2})
    assert not torch.equal(aligned, base)
    toy = RecordingToy()
    _infer(_mgr({"inference": {"sampling": {"inplace_safe": True}}}, toy))
    assert toy.seen[0]["inplace_safe"] is True


def test_early_stopping_keys():
    on = _mgr({"inference": {"num_steps": 40, "early_stopping": {"enabled": True, "patience": 2, "min_delta": 0.05}}})
    _infer(on, {"num_steps": 40})
    assert bool(on.last_output.stopped_early.all()) and int(on.last_output.steps_run.max()) < 40
    patient = _mgr({"inference": {"early_stopping": {"enabled": True, "patience": 6, "min_delta": 0.05}}})
    _infer(patient, {"num_steps": 40})
    assert int(patient.last_output.steps_run.max()) > int(on.last_output.steps_run.max())
    strict = _mgr({"inference": {"early_stopping": {"enabled": True, "patience": 2, "min_delta": 0.0}}})
    _infer(strict, {"num_steps": 40})
    assert not bool(strict.last_output.stopped_early.any())
    off = _mgr({})
    _infer(off, {"num_steps": 40})
    assert not bool(off.last_output.stopped_early.any())


def test_refinement_keys():
    coords = make_target(N_ATOM)[None]
    for ref, n_run in [({"start_sigma": 1.0}, None), ({"start_fraction": 0.5, "start_sigma": None}, 10)]:
        m = _mgr({"inference": {"num_steps": 20, "return_trajectory": True, "refinement": ref}})
        _infer(m, {"num_steps": 20}, coords=coords)
        steps = m.last_output.trajectory.shape[0] - 1
        sig = m.schedule.inference_sigmas(20)
        assert steps == (n_run if n_run is not None else int((sig[:-1] <= 1.0).sum()))


def test_memory_keys():
    toy = RecordingToy()
    _infer(_mgr({"memory": {"attention_chunk_size": 7}}, toy))
    assert toy.seen[0]["chunk_size"] == 7
    toy = RecordingToy()
    _infer(_mgr({"memory": {"memory_efficient_attention": True}}, toy))
    assert toy.seen[0]["chunk_size"] == 256
    toy = RecordingToy()
    _infer(_mgr({}, toy))
    assert toy.seen[0]["chunk_size"] is None and toy.seen[0]["autocast"] is False
    toy = RecordingToy()
    out = _infer(_mgr({"memory": {"mixed_precision": "bf16"}}, toy))
    assert toy.seen[0]["autocast"] is True and out.dtype == torch.float32
    from rnadiff.errors import InputError
    with pytest.raises(InputError, match="max_sequence_length=5"):
        _infer(_mgr({"memory": {"max_sequence_length": 5}}))
    # "compile": every transformer block of the real module is wrapped by torch.compile (numbers:
    # test_model_parity.test_compiled_blocks_match_golden); a denoiser without blocks is refused.
    blocks = lambda m: [b for b in m.diffusion_module.modules() if type(b).__name__ == "DiffusionTransformerBlock"]
    assert all(b._compiled_call_impl is None for b in blocks(ProtenixDiffusionManager(SMALL)))
    compiled = blocks(ProtenixDiffusionManager({**SMALL, "memory": {"compile": True}}))
    assert compiled and all(b._compiled_call_impl is not None for b in compiled)
    with pytest.raises(ConfigError, match="compile"):
        _mgr({"memory": {"compile": True}})


def test_guidance_keys(rna_dev_dir):
    """Every model.stageD.guidance key reaches RNAGuidance through the manager and changes what it does."""
    from rnadiff.chem import featurize
    from rnadiff.io import read_structure
    from rnadiff.pipeline.inference_options import guidance_for

    f = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / "1I9X_B.pdb"))
    bad = (f["coords"] + 0.25 * torch.randn(f["coords"].shape, generator=torch.Generator().manual_seed(0)))[None]
    low = torch.tensor([0.5])

    def guidance(cfg):
        return guidance_for(_mgr({"guidance": {"enabled": True, **cfg}}).config["guidance"], None, f, False)

    assert guidance_for(_mgr({}).config["guidance"], None, f, False) is not None  # "enabled": on by default
    assert guidance_for(_mgr({"guidance": {"enabled": False}}).config["guidance"], None, f, False) is None
    ref = guidance({}).guide(bad, low)
    for key, value in [("n_steps", 2), ("step_size", 0.3)]:
        assert not torch.equal(guidance({key: value}).guide(bad, low), ref), key
    moved = guidance({"max_displacement": 0.05}).guide(bad, low)
    assert float((moved - bad).norm(dim=-1).max()) <= 0.05 + 1e-5
    g_every, g_rare = guidance({"neighbor_every": 1}), guidance({"neighbor_every": 5})
    for step in range(3):
        g_every.guide(bad, low, step=step), g_rare.guide(bad, low, step=step)
    assert (g_every.stats.neighbor_builds, g_rare.stats.neighbor_builds) == (3, 1)
    flat = bad.double().numpy().reshape(-1, 3)
    assert len(guidance({"neighbor_skin": 0.0}).neighbor_pairs(flat, 1)[0]) < g_rare.stats.pairs_last
    # per-potential schedule keys
    for key, value in [("weight", 3.0), ("sigma_max", 8.0), ("sigma_full", 2.0)]:
        g = guidance({"potentials": {"bond": {key: value}}})
        assert g.config.terms["bond"].factor(3.0) != g_rare.config.terms["bond"].factor(3.0), key
    e = lambda g: g.energies(bad)["bond"].item()
    assert e(guidance({"potentials": {"bond": {"tolerance": 0.0}}})) > e(g_rare)
    # steering keys
    g = guidance({"steering": {"enabled": True, "interval": 1, "sigma_max": 1.0, "lambda": 0.0}})
    g.start(torch.Generator().manual_seed(0))
    x4 = bad.expand(4, -1, -1) + 0.3 * torch.randn(4, *bad.shape[1:], generator=torch.Generator().manual_seed(1))
    assert g.resample(x4, x4, torch.full((4,), 2.0), step=0, n_steps=10)[1] is None  # above sigma_max
    assert g.resample(x4, x4, torch.full((4,), 0.5), step=3, n_steps=10)[1] is not None  # interval 1
    g5 = guidance({"steering": {"enabled": True, "interval": 5}})
    g5.start(torch.Generator().manual_seed(0))
    assert g5.resample(x4, x4, torch.full((4,), 0.5), step=3, n_steps=10)[1] is None
    sharp = guidance({"steering": {"enabled": True, "lambda": 100.0}})
    sharp.start(torch.Generator().manual_seed(0))
    x4 = torch.cat([f["coords"][None], x4[1:]])  # sample 0 is the crystal: lowest energy
    assert torch.equal(sharp.resample(x4, x4, torch.full((4,), 0.5), step=0, n_steps=10)[1], torch.zeros(4, dtype=torch.long))


def test_schema_types_every_yaml_key_and_nothing_else():
    """The YAML holds the values, rnadiff.config.schema the types: the two name the same keys."""
    from rnadiff.config.schema import RefineGroup, StageD

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            if isinstance(v, dict) and k != "guidance":
                out |= keys(v, prefix + k + ".")
            else:
                out.add(prefix + k)
        return out

    yaml = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / "stageD.yaml"))
    assert keys(yaml) == keys(OmegaConf.to_container(OmegaConf.structured(StageD)))
    group = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "standalone_refine" / "default.yaml"))
    group.pop("model")
    assert keys(group) == keys(OmegaConf.to_container(OmegaConf.structured(RefineGroup)))


@pytest.mark.parametrize("override, key", [
    ("model.stageD.inference.num_steps=abc", "inference.num_steps"),
    ("model.stageD.training.adam_betas=fast", "training.adam_betas"),
    ("model.stageD.memory.compile=maybe", "memory.compile"),
    ("model.stageD.lora.r=eight", "lora.r"),
])
def test_wrong_types_are_one_line_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        load_config([override])
    assert "\n" not in str(err.value)
    assert isinstance(load_config(["model.stageD.training.lr=0.01"]).model.stageD.training.lr, float)
