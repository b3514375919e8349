"""LoRA through peft: what is wrapped, what trains, merging, dropout, precision, adapter files."""
from __future__ import annotations

import json

import pytest
import safetensors
import torch
from peft.tuners.lora import LoraLayer

from rnadiff.checkpoints import load_checkpoint, save_checkpoint
from rnadiff.errors import CheckpointError, ConfigError, OutputError
from rnadiff.model.lora import (
    LoraSettings,
    PrecisionLoraLinear,
    apply_lora,
    has_lora,
    load_lora_adapters,
    lora_parameters,
    merge_lora,
    save_lora_adapters,
)
from rnadiff.model import edm
from tests.model_helpers import golden_module

# Every attention's q/k/v/o: atom encoder (1 block) + transformer (2) + atom decoder (1), x4.
N_DEFAULT_WRAPPED = 4 * (1 + 2 + 1)



def golden_args(golden, case: int = 1):
    inp, c = golden["inputs"], golden["denoiser"]["cases"][case]
    return c["x_noisy"], c["t_hat"], inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"]


def modest_args(golden, seed: int = 0):
    """Coordinates of ~15 A (float32 spacing ~1e-6) instead of golden's noisy ~55 A ones."""
    g = torch.Generator().manual_seed(seed)
    x = golden["inputs"]["x_true"]
    x = (x - x.mean(0)).expand(2, -1, -1) + torch.randn(2, x.shape[0], 3, generator=g)
    inp = golden["inputs"]
    return x, torch.tensor([1.0, 5.0]), inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"]


def randomize_adapters_(module, seed: int, std: float = 0.05) -> None:
    """Non-zero B (peft starts with B = 0, a no-op) so the adapters change the function."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(module).values():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def wrapped(module) -> dict[str, LoraLayer]:
    return {name: m for name, m in module.named_modules() if isinstance(m, LoraLayer)}


def test_default_targets_and_settings_are_honoured(golden):
    module = apply_lora(golden_module(golden), r=4, alpha=12, dropout=0.25)
    layers = wrapped(module)
    assert len(layers) == N_DEFAULT_WRAPPED
    assert {name.rsplit(".", 1)[1] for name in layers} == {"linear_q", "linear_k", "linear_v", "linear_o"}
    assert all(name.split(".")[-2] == "attention" for name in layers)
    for layer in layers.values():
        assert isinstance(layer, PrecisionLoraLinear)
        assert layer.r["default"] == 4 and layer.lora_alpha["default"] == 12
        assert layer.scaling["default"] == pytest.approx(3.0)
        assert layer.lora_dropout["default"].p == 0.25
        assert layer.lora_A["default"].weight.shape[0] == 4 and layer.lora_B["default"].weight.shape[1] == 4


def test_adapters_start_as_noop_and_forward_keywords_work(golden):
    base = golden_module(golden)
    module = apply_lora(golden_module(golden))
    args = golden_args(golden)
    with torch.no_grad():
        expected = base(*args)
        assert torch.equal(module(*args), expected)
        # keyword-only options and the cache path still reach the module through the peft layers
        options = dict(chunk_size=4, sample_chunk_size=1)
        expected = base(*args, cache=base.prepare_cache(*args[2:]), **options)
        assert torch.equal(module(*args, cache=module.prepare_cache(*args[2:]), **options), expected)


def test_only_lora_parameters_train(golden):
    module = apply_lora(golden_module(golden), r=4, alpha=8)
    frozen = {n: p.detach().clone() for n, p in module.named_parameters() if "lora_" not in n}
    lora_before = {n: p.detach().clone() for n, p in lora_parameters(module).items()}
    assert all(not p.requires_grad for n, p in module.named_parameters() if "lora_" not in n)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    assert len(optimizer.param_groups[0]["params"]) == 2 * N_DEFAULT_WRAPPED
    module.train()
    args = golden_args(golden)
    for _ in range(2):  # B moves on step 1; A only once B is non-zero
        optimizer.zero_grad()
        loss = (module(*args) - golden["inputs"]["x_true"]).pow(2).mean()
        loss.backward()
        optimizer.step()
    for name, p in module.named_parameters():
        if "lora_" not in name:
            assert p.grad is None, name
            assert torch.equal(p, frozen[name]), name
    for name, p in lora_parameters(module).items():
        assert not torch.equal(p, lora_before[name]), name


def test_merged_equals_unmerged(golden):
    module = apply_lora(golden_module(golden), r=4, alpha=8)
    randomize_adapters_(module, seed=1)
    merged = merge_lora(module)
    assert not has_lora(merged) and has_lora(module)  # the LoRA module is left as it was
    base_keys = list(golden_module(golden).state_dict())
    assert list(merged.state_dict()) == base_keys
    with torch.no_grad():
        # The adapters change the function...
        assert (module(*golden_args(golden)) - golden_module(golden)(*golden_args(golden))).abs().max() > 1e-2
        # ...and merging keeps it: raw network output on all golden cases, and the denoised output.
        for case in golden["denoiser"]["cases"]:
            r = edm.precondition_input(case["x_noisy"], case["t_hat"], module.sigma_data)
            inputs = golden_args(golden)[2:]
            a = module.f_forward(r, case["t_hat"], module.prepare_cache(*inputs))
            b = merged.f_forward(r, case["t_hat"], merged.prepare_cache(*inputs))
            assert (a - b).abs().max() <= 1e-5
        args = modest_args(golden)
        assert (module(*args) - merged(*args)).abs().max() <= 1e-5


def test_merged_module_saves_as_plain_checkpoint(golden, tmp_path):
    module = apply_lora(golden_module(golden), r=2)
    randomize_adapters_(module, seed=2)
    merged = merge_lora(module)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "merged", merged, {"lora": "r2"}))
    args = modest_args(golden)
    with torch.no_grad():
        assert torch.equal(loaded(*args), merged(*args))


def test_dropout_acts_in_train_mode_only(golden):
    module = apply_lora(golden_module(golden), r=4, alpha=8, dropout=0.5)  # an eval-mode module
    randomize_adapters_(module, seed=3)
    args = golden_args(golden)
    with torch.no_grad():
        assert not any(m.training for m in module.modules())  # the adapters inherit eval mode
        assert torch.equal(module(*args), module(*args))
        module.train()
        torch.manual_seed(0)
        first = module(*args)
        second = module(*args)
        assert (first - second).abs().max() > 1e-3
    no_dropout = apply_lora(golden_module(golden), r=4, alpha=8, dropout=0.0)
    randomize_adapters_(no_dropout, seed=3)
    with torch.no_grad():
        no_dropout.train()
        assert torch.equal(no_dropout(*args), no_dropout(*args))


def test_precision_layer_keeps_float32_under_autocast(golden):
    # linear_no_bias_s (module level) computes in float32 even under autocast; so must its adapter.
    module = apply_lora(golden_module(golden), r=4, alpha=8, target_modules=["linear_no_bias_s"])
    layer = module.linear_no_bias_s
    assert isinstance(layer, PrecisionLoraLinear) and layer.get_base_layer().precision == torch.float32
    randomize_adapters_(module, seed=4, std=0.3)
    x = torch.randn(5, layer.in_features, generator=torch.Generator().manual_seed(0))
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = x @ layer.get_base_layer().weight.T + (x @ a.T @ b.T) * layer.scaling["default"]
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16_input = layer(x.to(torch.bfloat16))
            out_fp32_input = layer(x)
    assert out_bf16_input.dtype == torch.bfloat16 and out_fp32_input.dtype == torch.float32
    # float32 input under autocast: computed entirely in float32 (a bf16 adapter branch would be off by ~1e-2)
    assert torch.allclose(out_fp32_input, expected, atol=1e-5)
    exact_from_bf16 = layer(x.to(torch.bfloat16).float())
    assert torch.equal(out_bf16_input, exact_from_bf16.to(torch.bfloat16))


def test_adapter_file_round_trip(golden, tmp_path):
    module = apply_lora(golden_module(golden), r=4, alpha=8, dropout=0.1)
    randomize_adapters_(module, seed=5)
    path = save_lora_adapters(tmp_path / "adapters.safetensors", module, {"steps": 3})
    with safetensors.safe_open(str(path), "pt") as fh:
        keys = set(fh.keys())
        meta = json.loads(fh.metadata()["rnadiff_lora"])
    assert keys == set(lora_parameters(module)) and len(keys) == 2 * N_DEFAULT_WRAPPED
    assert meta["lora"] == {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["linear_q", "linear_k", "linear_v", "linear_o"]}
    assert meta["provenance"] == {"steps": 3}
    # The file holds the adapters only: far smaller than the model.
    assert path.stat().st_size < 0.2 * sum(p.numel() * 4 for p in module.parameters())

    fresh = load_lora_adapters(path, golden_module(golden))  # applies LoRA with the file's settings
    assert has_lora(fresh)
    fresh.eval(), module.eval()
    args = modest_args(golden)
    with torch.no_grad():
        assert torch.equal(fresh(*args), module(*args))
    with pytest.raises(OutputError):
        save_lora_adapters(path, module)


def test_adapter_file_errors(golden, tmp_path):
    module = apply_lora(golden_module(golden), r=4)
    path = save_lora_adapters(tmp_path / "a.safetensors", module)
    with pytest.raises(CheckpointError, match="different|r=2"):
        load_lora_adapters(path, apply_lora(golden_module(golden), r=2))
    other = golden_module(golden)
    other.config = {**other.config, "c_token": 128}  # pretend another architecture
    with pytest.raises(CheckpointError, match="another architecture: c_token=64"):
        load_lora_adapters(path, other)
    data = path.read_bytes()
    path.write_bytes(data[:-64])
    with pytest.raises(CheckpointError, match="a.safetensors"):
        load_lora_adapters(path, golden_module(golden))
    save_checkpoint(tmp_path / "model.safetensors", golden_module(golden))
    with pytest.raises(CheckpointError, match="not an rnadiff adapter file"):
        load_lora_adapters(tmp_path / "model.safetensors", golden_module(golden))


def test_settings_from_config_and_validation(golden):
    stage_d = {"enabled": True, "r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["linear_q", "linear_v"]}
    settings = LoraSettings.from_config(stage_d)
    module = apply_lora(golden_module(golden), settings)
    assert len(wrapped(module)) == 2 * 4 and module.diffusion_transformer.blocks[0].attention_pair_bias.attention.linear_q.r["default"] == 2
    with pytest.raises(ConfigError, match="already"):
        apply_lora(module)
    for bad in ({"r": 0}, {"alpha": -1}, {"dropout": 1.0}, {"target_modules": "linear_q"}, {"rank": 4}):
        with pytest.raises(ConfigError):
            LoraSettings.from_config(bad)
    with pytest.raises(ConfigError, match="cannot apply LoRA"):
        apply_lora(golden_module(golden), target_modules=["no_such_layer"])
    with pytest.raises(ConfigError, match="no LoRA adapters"):
        merge_lora(golden_module(golden))
