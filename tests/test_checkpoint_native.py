"""rnadiff's own checkpoint format: round trips, atomic no-clobber writes, clear errors."""
from __future__ import annotations

import json
import struct

import pytest
import safetensors.torch
import torch

from rnadiff.checkpoints import load_any_checkpoint, load_checkpoint, read_checkpoint_document, save_checkpoint
from rnadiff.checkpoints.native import CONFIG_NAME, FORMAT_VERSION, METADATA_KEY, WEIGHTS_NAME
from rnadiff.errors import CheckpointError, ConfigError, OutputError
from rnadiff.model.lora import apply_lora
from tests.model_helpers import golden_module
from tests.test_checkpoint_protenix import write_malicious

PROVENANCE = {"git_commit": "0123abc", "data": {"set": "rna_dev", "n": 12}, "steps": 500}


def outputs(module, golden) -> torch.Tensor:
    inp, case = golden["inputs"], golden["denoiser"]["cases"][1]
    with torch.no_grad():
        return module(case["x_noisy"], case["t_hat"], inp["features"], inp["s_inputs"], inp["s_trunk"], inp["z_trunk"])


@pytest.fixture(scope="module")
def module(golden):
    return golden_module(golden)


@pytest.fixture
def saved_dir(module, tmp_path):
    return save_checkpoint(tmp_path / "ckpt", module, PROVENANCE)


@pytest.mark.parametrize("name", ["ckpt", "model.safetensors"])
def test_round_trip_is_exact(module, golden, tmp_path, name):
    path = save_checkpoint(tmp_path / name, module, PROVENANCE)
    loaded = load_checkpoint(path)
    assert not loaded.training
    assert loaded.config == module.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), module.state_dict().values()))
    assert torch.equal(outputs(loaded, golden), outputs(module, golden))
    assert torch.equal(outputs(load_any_checkpoint(path), golden), outputs(module, golden))
    document = read_checkpoint_document(path)
    assert document["provenance"] == PROVENANCE
    assert document["format_version"] == FORMAT_VERSION and document["model"] == module.config


def test_directory_layout(saved_dir, module):
    assert sorted(p.name for p in saved_dir.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    document = json.loads((saved_dir / CONFIG_NAME).read_text())
    assert document["model"]["transformer"] == module.config["transformer"]
    # The weights file alone is a complete checkpoint as well.
    alone = load_checkpoint(saved_dir / WEIGHTS_NAME)
    assert alone.config == module.config


def test_no_overwrite_without_flag(module, saved_dir, tmp_path):
    before = (saved_dir / WEIGHTS_NAME).read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        save_checkpoint(saved_dir, module)
    assert (saved_dir / WEIGHTS_NAME).read_bytes() == before
    save_checkpoint(saved_dir, module, {"steps": 1}, overwrite=True)
    assert read_checkpoint_document(saved_dir)["provenance"] == {"steps": 1}
    single = save_checkpoint(tmp_path / "m.safetensors", module)
    with pytest.raises(OutputError):
        save_checkpoint(single, module)
    save_checkpoint(single, module, overwrite=True)
    # No temporary files are left beside the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "m.safetensors"]


def test_failed_write_leaves_nothing(module, tmp_path):
    with pytest.raises(ConfigError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "ckpt", module, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_lora_module_must_be_merged_first(golden, tmp_path):
    lora = apply_lora(golden_module(golden), r=2)
    with pytest.raises(CheckpointError, match="merge_lora"):
        save_checkpoint(tmp_path / "x", lora)


def test_truncated_safetensors(saved_dir):
    weights = saved_dir / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=f"{WEIGHTS_NAME}.*(incomplete|truncated)"):
        load_checkpoint(saved_dir)
    weights.write_bytes(data[:20])  # cut inside the header
    with pytest.raises(CheckpointError, match="truncated safetensors"):
        load_checkpoint(saved_dir)


def test_bad_json(saved_dir):
    (saved_dir / CONFIG_NAME).write_text('{"format": "rnadiff-diffusion-module", ')
    with pytest.raises(CheckpointError, match=f"{CONFIG_NAME}: invalid JSON"):
        load_checkpoint(saved_dir)


def test_wrong_format_version(saved_dir):
    document = json.loads((saved_dir / CONFIG_NAME).read_text())
    document["format_version"] = FORMAT_VERSION + 1
    (saved_dir / CONFIG_NAME).write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="unsupported format_version 2 \\(written by a newer rnadiff\\)"):
        load_checkpoint(saved_dir)


def test_config_disagreeing_with_weights_metadata(saved_dir):
    document = json.loads((saved_dir / CONFIG_NAME).read_text())
    document["model"]["sigma_data"] = 8.0
    (saved_dir / CONFIG_NAME).write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="describe different models"):
        load_checkpoint(saved_dir)


def rewrite_weights(path, edit) -> None:
    """Re-save a single-file checkpoint with edited tensors and its original metadata."""
    tensors = safetensors.torch.load_file(str(path))
    with safetensors.safe_open(str(path), "pt") as fh:
        metadata = fh.metadata()
    edit(tensors)
    safetensors.torch.save_file(tensors, str(path), metadata)


def test_missing_key_and_wrong_shape(module, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", module)
    key = "atom_attention_decoder.linear_no_bias_out.weight"
    rewrite_weights(path, lambda t: t.pop(key))
    with pytest.raises(CheckpointError, match=f"missing key\\(s\\) {key}"):
        load_checkpoint(path)
    path = save_checkpoint(tmp_path / "m.safetensors", module, overwrite=True)
    rewrite_weights(path, lambda t: t.__setitem__("layernorm_s.weight", torch.ones(47)))
    with pytest.raises(CheckpointError, match=r"wrong shape\(s\) layernorm_s.weight \(47,\) \(expected \(48,\)\)"):
        load_checkpoint(path)
    path = save_checkpoint(tmp_path / "m.safetensors", module, overwrite=True)
    rewrite_weights(path, lambda t: t.__setitem__("extra.weight", torch.ones(2)))
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\) extra.weight"):
        load_checkpoint(path)


def test_plain_safetensors_without_config(module, tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match=f"without an '{METADATA_KEY}' entry"):
        load_checkpoint(path)


def test_directory_missing_files_and_garbage(saved_dir, tmp_path):
    (saved_dir / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match=f"lacks {WEIGHTS_NAME}"):
        load_checkpoint(saved_dir)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(struct.pack("<Q", 5) + b"xyzzy")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_any_checkpoint(garbage)


@pytest.mark.parametrize("kind", ["zip_open", "raw_pickle"])
def test_native_loaders_refuse_pickles(tmp_path, kind):
    path, marker = write_malicious(tmp_path, kind)
    with pytest.raises(CheckpointError, match="torch file, not an rnadiff checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_any_checkpoint(path)
    assert not marker.exists()
