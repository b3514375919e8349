"""`rnadiff train` fine-tunes a trained checkpoint with LoRA: only adapters train, the export is a
plain merged model whose non-target weights equal the starting checkpoint's."""
from __future__ import annotations

import pytest
import torch

from rnadiff.cli.train import compose
from rnadiff.checkpoints.refinement import load_refinement_checkpoint, read_refinement_document
from rnadiff.train.data import load_records
from rnadiff.train.run import train_from_config
from tests.train_helpers import TINY_OVERRIDES, short_chains

TARGETS = ("linear_q", "linear_k", "linear_v", "linear_o")


@pytest.fixture(scope="module")
def records(rna_dev_dir, tmp_path_factory):
    recs, _ = load_records(short_chains(rna_dev_dir, tmp_path_factory.mktemp("chains"), n=6))
    return recs


def test_lora_finetune_from_a_checkpoint(records, tmp_path):
    base_dir = tmp_path / "base_ckpt"
    train_from_config(compose([*TINY_OVERRIDES, "trainer.max_steps=2", f"trainer.run_dir={tmp_path / 'base'}",
                               f"export.path={base_dir}"]), records=records)
    base = load_refinement_checkpoint(base_dir)
    result = train_from_config(compose([
        *TINY_OVERRIDES, "trainer.max_steps=4", f"trainer.run_dir={tmp_path / 'ft'}",
        f"trainer.init_from={base_dir}", "model.stageD.lora.enabled=true", "model.stageD.lora.r=2",
        "model.stageD.training.lr=0.01", f"export.path={tmp_path / 'ft_ckpt'}",
    ]), records=records)
    model = result.module.model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # frozen base weights did not move during training
    live = dict(model.diffusion_module.named_parameters())
    for name, value in base.diffusion_module.state_dict().items():
        head, leaf = name.rsplit(".", 1)
        current = live[name] if name in live else live[f"{head}.base_layer.{leaf}"]  # peft-wrapped
        assert torch.equal(current, value), name
    # the export is merged: same keys as the base, only target projections changed
    tuned = load_refinement_checkpoint(tmp_path / "ft_ckpt")
    before, after = base.state_dict(), tuned.state_dict()
    assert set(before) == set(after)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.split(".")[-2] in TARGETS for k in changed), changed
    doc = read_refinement_document(tmp_path / "ft_ckpt")
    assert doc["provenance"]["lora"]["r"] == 2 and doc["provenance"]["init_from"]
