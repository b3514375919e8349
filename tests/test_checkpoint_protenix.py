"""load_protenix_checkpoint: Protenix-layout files built from golden_small.pt's weights."""
from __future__ import annotations

import ast
import os
import pickle
import pickletools

import pytest
import torch

from rnadiff.checkpoints import infer_config, load_any_checkpoint, load_protenix_checkpoint
from rnadiff.errors import CheckpointError, ConfigError
from rnadiff.model.diffusion_module import DiffusionModule
from tests.model_helpers import module_kwargs_from_golden


def protenix_checkpoint(state_dict: dict, prefix: str = "diffusion_module.") -> dict:
    """What Protenix's trainer saves: the whole model under "model" plus optimizer/scheduler state."""
    model = {f"{prefix}{k}": v for k, v in state_dict.items()}
    trunk_prefix = prefix.replace("diffusion_module.", "")
    model[f"{trunk_prefix}pairformer_stack.blocks.0.x.weight"] = torch.randn(4, 4)
    model[f"{trunk_prefix}input_embedder.linear.weight"] = torch.randn(3, 5)
    model[f"{trunk_prefix}distogram_head.linear.bias"] = torch.randn(7)
    optimizer = {
        "state": {i: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)} for i in range(3)},
        "param_groups": [{"lr": 1.8e-3, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0, "params": [0, 1, 2]}],
    }
    return {"model": model, "optimizer": optimizer, "scheduler": {"last_epoch": 10}, "step": 10}


def denoise_all(module: DiffusionModule, golden) -> list[tuple[torch.Tensor, torch.Tensor]]:
    inp = golden["inputs"]
    with torch.no_grad():
        return [
            (module(case["x_noisy"], case["t_hat"], inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"]),
             case["x_denoised"])
            for case in golden["denoiser"]["cases"]
        ]


@pytest.mark.parametrize("prefix", ["diffusion_module.", "module.diffusion_module."])
def test_protenix_checkpoint_reproduces_golden(golden, tmp_path, prefix):
    path = tmp_path / "protenix.pt"
    torch.save(protenix_checkpoint(golden["state_dict"], prefix), path)
    module = load_protenix_checkpoint(path)
    assert not module.training
    expected = module_kwargs_from_golden(golden["config"])
    for key in ("c_atom", "c_atompair", "c_token", "c_s", "c_z", "c_s_inputs", "c_noise_embedding", "sigma_data"):
        assert module.config[key] == expected[key], key
    for stack in ("atom_encoder", "transformer", "atom_decoder"):
        for key, value in expected[stack].items():
            assert module.config[stack][key] == value, (stack, key)
    for got, want in denoise_all(module, golden):
        assert (got - want).abs().max() <= 1e-4


def test_inferred_heads_and_blocks_differ_per_stack(tmp_path):
    # Head counts are invisible in most shapes; make every stack's count distinct to catch a mix-up.
    kwargs = dict(c_atom=16, c_atompair=4, c_token=48, c_s=24, c_z=8, c_s_inputs=12, c_noise_embedding=8,
                  atom_encoder={"n_blocks": 2, "n_heads": 4}, transformer={"n_blocks": 3, "n_heads": 6},
                  atom_decoder={"n_blocks": 1, "n_heads": 2})
    state = DiffusionModule(**kwargs).state_dict()
    config = infer_config(state)
    for key, value in kwargs.items():
        if isinstance(value, dict):
            assert {k: config[key][k] for k in value} == value
        else:
            assert config[key] == value
    torch.save({"model": {f"diffusion_module.{k}": v for k, v in state.items()}}, tmp_path / "c.pt")
    loaded = load_protenix_checkpoint(tmp_path / "c.pt")
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_bare_state_dict_and_generic_loader(golden, tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(golden["state_dict"], path)
    module = load_any_checkpoint(path)
    got, want = denoise_all(module, golden)[0]
    assert (got - want).abs().max() <= 1e-4


def test_explicit_config_overrides_what_weights_cannot_say(golden, tmp_path):
    path = tmp_path / "protenix.pt"
    torch.save(protenix_checkpoint(golden["state_dict"]), path)
    flat = {**golden["config"], "n_queries": 16, "n_keys": 64, "sigma_data": 8.0}  # Protenix/golden flat form
    module = load_protenix_checkpoint(path, config=flat)
    assert module.sigma_data == 8.0
    assert module.config["atom_encoder"]["n_queries"] == 16 and module.config["atom_decoder"]["n_keys"] == 64
    assert module.n_queries == 16 and module.n_keys == 64
    # Different windows and sigma_data change the function, so the golden outputs no longer match.
    got, want = denoise_all(module, golden)[1]
    assert (got - want).abs().max() > 1e-2
    nested = load_protenix_checkpoint(path, config={"atom_encoder": {"n_queries": 16, "n_keys": 64},
                                                     "atom_decoder": {"n_queries": 16, "n_keys": 64}})
    assert nested.n_queries == 16


@pytest.mark.parametrize(
    "config, named",
    [
        ({"c_token": 128}, "c_token=128"),
        ({"transformer": {"n_heads": 8}}, "transformer.n_heads=8"),
        ({"atom_decoder": {"n_blocks": 3}}, "atom_decoder.n_blocks=3"),
    ],
)
def test_mismatched_explicit_config_is_refused(golden, tmp_path, config, named):
    path = tmp_path / "protenix.pt"
    torch.save(protenix_checkpoint(golden["state_dict"]), path)
    with pytest.raises(CheckpointError, match="contradicts the weights") as info:
        load_protenix_checkpoint(path, config=config)
    assert named in str(info.value)


def test_unknown_config_key_is_refused(golden, tmp_path):
    path = tmp_path / "protenix.pt"
    torch.save(protenix_checkpoint(golden["state_dict"]), path)
    with pytest.raises(ConfigError, match="c_tokens"):
        load_protenix_checkpoint(path, config={"c_tokens": 64})


def test_broken_diffusion_weights_name_the_problem(golden, tmp_path):
    state = dict(golden["state_dict"])
    removed = "diffusion_transformer.blocks.1.attention_pair_bias.attention.linear_v.weight"
    del state[removed]
    torch.save(protenix_checkpoint(state), tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing key") as info:
        load_protenix_checkpoint(tmp_path / "missing.pt")
    assert removed in str(info.value)

    state = dict(golden["state_dict"])
    state["layernorm_a.weight"] = torch.ones(65)
    torch.save(protenix_checkpoint(state), tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"wrong shape.*layernorm_a\.weight \(65,\) \(expected \(64,\)\)"):
        load_protenix_checkpoint(tmp_path / "shape.pt")


def test_file_without_diffusion_weights(tmp_path):
    torch.save({"model": {"pairformer_stack.blocks.0.x.weight": torch.ones(2)}}, tmp_path / "trunk.pt")
    with pytest.raises(CheckpointError, match="no DiffusionModule weights"):
        load_protenix_checkpoint(tmp_path / "trunk.pt")


def test_truncated_and_missing_files(golden, tmp_path):
    path = tmp_path / "protenix.pt"
    torch.save(protenix_checkpoint(golden["state_dict"]), path)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_protenix_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="no such"):
        load_any_checkpoint(tmp_path / "absent.pt")


# --- unsafe pickles ----------------------------------------------------------------------------
class CreatesMarker:
    """Unpickling this calls open(marker, "w"): it creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class RunsShell:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip_member(path, suffix: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(suffix)))


def write_malicious(tmp_path, kind: str):
    """A checkpoint-looking file whose unpickling would create `marker`; returns (file, marker)."""
    marker = tmp_path / f"pwned_{kind}"
    path = tmp_path / f"evil_{kind}.pt"
    if kind == "zip_open":
        torch.save({"model": {"diffusion_module.x": CreatesMarker(str(marker))}}, path)
    elif kind == "zip_system":
        torch.save({"model": RunsShell(str(marker))}, path)
    elif kind == "raw_pickle":
        path.write_bytes(pickle.dumps(CreatesMarker(str(marker)), protocol=2))
    return path, marker


@pytest.mark.parametrize("kind", ["zip_open", "zip_system", "raw_pickle"])
@pytest.mark.parametrize("loader", [load_protenix_checkpoint, load_any_checkpoint])
def test_malicious_pickle_refused_without_running(tmp_path, kind, loader):
    path, marker = write_malicious(tmp_path, kind)
    payload = path.read_bytes() if kind == "raw_pickle" else _zip_member(path, "data.pkl")
    calls = [str(arg) for op, arg, _ in pickletools.genops(payload) if op.name == "GLOBAL"]
    assert any(c.endswith((" open", " system")) for c in calls), calls  # the file really carries the call
    with pytest.raises(CheckpointError, match="refused: loading it would need arbitrary unpickling") as info:
        loader(path)
    assert "\n" not in str(info.value)
    assert "GLOBAL" in str(info.value)  # names what it refused (e.g. posix.system, builtins.open)
    assert not marker.exists()


def test_infers_protenix_default_dimensions_from_its_key_list():
    """Protenix v2.0.0's full-size key/shape list (meta tensors: shapes only, no memory)."""
    from tests.conftest import STATE_DICT_KEYS_PATH

    shapes = {}
    for line in STATE_DICT_KEYS_PATH.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, _dtype = line.split("\t")
            shapes[key] = torch.empty(ast.literal_eval(shape), device="meta")
    assert len(shapes) == 766
    config = infer_config(shapes)
    assert config == {
        "sigma_data": 16.0, "c_atom": 128, "c_atompair": 16, "c_token": 768, "c_s": 384, "c_z": 128,
        "c_s_inputs": 449, "c_noise_embedding": 256,
        "atom_encoder": {"n_blocks": 3, "n_heads": 4, "n_queries": 32, "n_keys": 128},
        "transformer": {"n_blocks": 24, "n_heads": 16},
        "atom_decoder": {"n_blocks": 3, "n_heads": 4, "n_queries": 32, "n_keys": 128},
    }
