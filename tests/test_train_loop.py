"""Training: the loss falls on one RNA, resume continues exactly, export round-trips, CLI wiring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize
from rnadiff.cli.main import main
from rnadiff.cli.train import compose
from rnadiff.io import read_structure
from rnadiff.checkpoints.refinement import load_refinement_checkpoint, read_refinement_document
from rnadiff.train.data import Record, load_records
from rnadiff.train.examples import build_example, make_generator
from rnadiff.train.export import export_lightning_checkpoint
from rnadiff.train.lightning_module import RefinementLightning, model_config_from_stage_d
from rnadiff.train.partial import PartialSettings
from rnadiff.train.run import train_from_config
from rnadiff.train.split import sequence_md5
from tests.train_helpers import EXAMPLES, TINY_OVERRIDES, short_chains


def _module(extra=()) -> RefinementLightning:
    from omegaconf import OmegaConf

    cfg = compose([*TINY_OVERRIDES, *extra])
    stage_d = OmegaConf.to_container(cfg.model.stageD, resolve=True)
    cond = OmegaConf.to_container(cfg.conditioner, resolve=True)
    torch.manual_seed(0)
    return RefinementLightning(model_config_from_stage_d(stage_d, cond), stage_d, seed=0)


def test_a_few_steps_reduce_the_loss_on_one_rna():
    f = featurize(read_structure(EXAMPLES / "4phy_A.pdb"))
    topo = f.topology()
    rec = Record(name="4phy_A", features=f.as_dict(), bonds=np.asarray(topo.bonds, np.int64),
                 bond_lengths=np.asarray(topo.bond_lengths, np.float32), seq_md5=sequence_md5("x"), sequence="x")
    ex = build_example(rec, crop_size=12, spatial_prob=0.0, partial=PartialSettings(), generator=make_generator(0),
                       mode="backbone")
    module = _module(["model.stageD.training.N_sample=4"])
    opt = torch.optim.Adam(module.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, parts = module.example_loss(module.model, ex, make_generator(42))  # same noise every step
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        assert all(torch.isfinite(v) for v in parts.values())
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


@pytest.fixture(scope="module")
def chains(rna_dev_dir, tmp_path_factory):
    folder = short_chains(rna_dev_dir, tmp_path_factory.mktemp("chains"), n=6)
    recs, _ = load_records(folder)
    return folder, recs


def test_resume_continues_exactly(chains, tmp_path):
    folder, recs = chains
    common = [*TINY_OVERRIDES, f"data.path={folder}", "trainer.val_check_interval=3", "trainer.checkpoint_every=2",
              "data.max_val_structures=1", "data.val_fraction=0.3"]
    straight = train_from_config(compose([*common, "trainer.max_steps=6", f"trainer.run_dir={tmp_path / 'a'}"]), records=recs)
    first = train_from_config(compose([*common, "trainer.max_steps=3", f"trainer.run_dir={tmp_path / 'b'}"]), records=recs)
    assert first.global_step == 3
    last = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)  # plain tensors/values only
    assert last["global_step"] == 3 and "ema" in last
    resumed = train_from_config(compose([*common, "trainer.max_steps=6", f"trainer.run_dir={tmp_path / 'b'}"]), records=recs)
    assert resumed.global_step == straight.global_step == 6
    a, b = straight.module.model.state_dict(), resumed.module.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    for k in straight.module.ema.shadow:
        torch.testing.assert_close(straight.module.ema.shadow[k], resumed.module.ema.shadow[k], atol=1e-6, rtol=1e-5)
    # the weights moved at all (otherwise the comparison above proves nothing)
    fresh = first.module.model.state_dict()
    assert any(not torch.equal(fresh[k], a[k]) for k in a)
    assert (tmp_path / "a" / "logs" / "version_0" / "metrics.csv").is_file()
    # a resumed session logs beside the first one instead of replacing its CSV
    assert (tmp_path / "b" / "logs" / "version_0" / "metrics.csv").is_file()
    assert (tmp_path / "b" / "logs" / "version_1" / "metrics.csv").is_file()

    out = export_lightning_checkpoint(tmp_path / "a" / "checkpoints" / "last.ckpt", tmp_path / "export")
    model = load_refinement_checkpoint(out)
    ema = straight.module.ema_model()
    for k, v in ema.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    doc = read_refinement_document(out)
    assert doc["provenance"]["steps"] == 6 and doc["model"]["diffusion"]["c_token"] == 32
    assert doc["provenance"]["data"]["n_val"] == 1 and doc["provenance"]["data"]["n_train"] >= 1


def test_train_cli_show_config_and_bad_override(capsys):
    assert main(["train", "--show-config", "data.path=/x", "model.stageD.c_token=48"]) == 0
    out = capsys.readouterr().out
    assert "c_token: 48" in out and "crop_size" in out
    assert main(["train", "data.path=/x", "trainer.nonexistent_key=1"]) == 2
    assert "nonexistent_key" in capsys.readouterr().err
    assert main(["train", "data.path=/definitely/not/here", *TINY_OVERRIDES]) == 2
    assert "no such file" in capsys.readouterr().err


def test_ema_is_current_when_checkpoint_callbacks_run(chains):
    """Lightning runs callbacks' on_train_batch_end (where ModelCheckpoint saves last.ckpt) before
    the module's: the EMA must already include the step's update by then, or mid-run checkpoints
    hold an EMA one update behind their weights."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from rnadiff.train.examples import TrainStream

    _, recs = chains
    # a small decay, so that one update is far above float tolerance
    module = _module(["model.stageD.training.N_sample=2", "model.stageD.training.ema_decay=0.5"])
    seen = []

    class Probe(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            # replay: the EMA after this step from the shadow before it and the current weights
            seen.append({k: v.clone() for k, v in pl_module.ema.shadow.items()})
            expected.update({k: before[k] * pl_module.ema.decay + v.detach() * (1 - pl_module.ema.decay)
                             for k, v in pl_module.model.state_dict().items()
                             if v.dtype.is_floating_point and k not in pl_module.ema.frozen})

    before = {k: v.clone() for k, v in module.ema.shadow.items()}
    expected: dict = {}
    stream = TrainStream(recs, batch_size=1, crop_size=12, spatial_prob=0.0, partial=PartialSettings(), seed=0)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=0)
    trainer = pl.Trainer(max_steps=1, callbacks=[Probe()], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(module, loader)
    assert len(seen) == 1
    moved = [k for k in expected if not torch.equal(before[k], expected[k])]
    assert moved  # the step changed the weights, so the EMA had to move
    for k in moved:
        assert not torch.equal(seen[0][k], before[k]), k  # the update had happened ...
        torch.testing.assert_close(seen[0][k], expected[k], rtol=0, atol=1e-7)  # ... and was this step's


def test_a_checkpoint_saved_during_validation_holds_one_copy_of_the_weights():
    """ModelCheckpoint saves best.ckpt inside validation, while the EMA copy validation runs with
    exists: that copy must not be a submodule, or best.ckpt carries a second set of weights
    ("_ema_model.*") that a strict resume from it refuses."""
    module = _module()
    keys = set(module.state_dict())
    module.on_validation_start()
    assert set(module.state_dict()) == keys and all(k.startswith("model.") for k in keys)
    module.on_validation_end()
