"""`train_from_config(cfg)`: build data, model, Trainer (checkpoints, logs, early stopping) and fit.

Run directory (`trainer.run_dir`):
    checkpoints/last.ckpt   saved every `trainer.checkpoint_every` steps and at the end (resume point)
    checkpoints/best.ckpt   lowest val_loss so far (EMA weights used for validation)
    logs/version_N/metrics.csv   CSV log, one version per session (TensorBoard under logs/tb)
Resuming: `trainer.resume=auto` (default) continues from checkpoints/last.ckpt when it exists;
`trainer.resume=PATH` from a given Lightning checkpoint; `never` starts afresh. Checkpoints are
read with `weights_only=True` (the module stores only tensors and plain values).

Scaling out (GitHub issue 11): `trainer.accelerator`, `trainer.devices`, `trainer.num_nodes` and
`trainer.strategy` go straight to Lightning's Trainer (e.g. `trainer.devices=4 trainer.strategy=ddp`;
on CPU the gloo backend). Each rank trains on its own disjoint share of the example stream
(`RankShardedStream`): the global batch is `data.batch_size` × world size. Lightning logs and
checkpoints on global rank 0 only; the export is written by global rank 0 only. With a launcher
that runs the ranks in child processes (ddp_spawn, ddp_fork) the final state is read back from
checkpoints/last.ckpt in the calling process.
"""
from __future__ import annotations

import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from rnadiff.errors import ConfigError
from rnadiff.train.data import RankShardedStream, load_records, split_records
from rnadiff.train.examples import TrainStream, ValidationSet
from rnadiff.train.lightning_module import RefinementLightning, model_config_from_stage_d
from rnadiff.train.partial import PartialSettings

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    global_step: int
    metrics: dict[str, float]
    exported: Path | None
    module: Any
    is_global_zero: bool = True  # False on the other DDP ranks (they return too, and stay quiet)


def _resume_path(cfg: DictConfig, ckpt_dir: Path) -> Path | None:
    mode = str(cfg.trainer.resume)
    if mode == "never":
        return None
    if mode == "auto":
        last = ckpt_dir / "last.ckpt"
        return last if last.exists() else None
    p = Path(mode)
    if not p.is_file():
        raise ConfigError(f"trainer.resume={mode}: no such checkpoint file")
    return p


def _loggers(run_dir: Path):
    from lightning.pytorch.loggers import CSVLogger

    # A new version_N per session: a resumed run must not overwrite the CSV of the earlier ones.
    loggers = [CSVLogger(str(run_dir), name="logs")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(run_dir / "logs"), name="tb"))
    except ImportError:  # optional: CSV is always written
        pass
    return loggers


class _GlobalStep:
    """`start_step` of the stream: the module's restored global step (picklable, for ddp_spawn)."""

    def __init__(self, module):
        self.module = module

    def __call__(self) -> int:
        return int(self.module.global_step)


class _Session(Callback):
    """Runs inside every rank's process: torch threads at setup, the final resume point at the end
    (module level so that ddp_spawn can pickle it)."""

    def __init__(self, threads: int, last: Path):
        self.threads, self.last = threads, last

    def setup(self, trainer, pl_module, stage: str) -> None:
        torch.set_num_threads(self.threads)  # spawned ranks start with the default thread count
        # ddp_spawn pickles the module with torch.multiprocessing: plain tensor attributes (the EMA
        # shadow, not a registered buffer) would land in memory shared by all ranks, each rank then
        # updating the same EMA. Lightning un-shares parameters and buffers only; own copies here.
        ema = getattr(pl_module, "ema", None)
        if ema is not None:
            ema.shadow = {k: v.clone() for k, v in ema.shadow.items()}

    def on_train_end(self, trainer, pl_module) -> None:
        # the final state is always a resume point (every rank calls it; global rank 0 writes)
        trainer.save_checkpoint(str(self.last), weights_only=False)


def _ran_in_child_processes(trainer) -> bool:
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


def _load_and_split(cfg: DictConfig, records) -> tuple[list, list, int]:
    """(train records, validation records, files skipped) under the config's split."""
    n_skipped = 0
    if records is None:
        records, report = load_records(cfg.data.path, extract_dir=cfg.data.extract_dir,
                                       min_length=int(cfg.data.min_length), max_length=int(cfg.data.max_length),
                                       progress=bool(cfg.trainer.progress_bar))
        n_skipped = len(report.skipped)
    train_records, val_records = split_records(records, float(cfg.data.val_fraction),
                                               float(cfg.data.get("long_val_fraction", 0.0)))
    if not train_records:
        raise ConfigError(f"data.path {cfg.data.path}: no training structures after the split")
    return train_records, val_records[: int(cfg.data.max_val_structures)], n_skipped


def _provenance(cfg: DictConfig, command: str | None, train_records, val_records, n_skipped: int) -> dict[str, Any]:
    path = cfg.data.path
    return {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "data": {"path": OmegaConf.to_container(path) if OmegaConf.is_list(path) else str(path),
                 "n_train": len(train_records), "n_val": len(val_records), "n_skipped": n_skipped,
                 "val_fraction": float(cfg.data.val_fraction), "val_names": [r.name for r in val_records]},
    }


def _build_module(cfg: DictConfig, stage_d: dict[str, Any], seed: int, provenance: dict[str, Any]) -> RefinementLightning:
    """The Lightning module: fresh weights, or trainer.init_from's; LoRA adapters when enabled."""
    torch.manual_seed(seed)  # the initial weights are part of the run's reproducibility
    model_config = model_config_from_stage_d(stage_d, OmegaConf.to_container(cfg.conditioner, resolve=True))
    init_model = None
    if cfg.trainer.get("init_from"):
        from rnadiff.checkpoints.refinement import load_refinement_model

        # The architecture comes from the checkpoint; model.stageD still gives schedule and losses.
        init_model, source = load_refinement_model(None if cfg.trainer.init_from == "default" else cfg.trainer.init_from)
        model_config = init_model.config
        provenance["init_from"] = source
    module = RefinementLightning(model_config, stage_d, seed=seed, provenance=provenance)
    if init_model is not None:
        module.load_initial_weights(init_model)
    if stage_d["lora"].get("enabled"):
        from rnadiff.model.lora import LoraSettings

        n_trainable = module.enable_lora(LoraSettings.from_config(stage_d["lora"]))
        n_total = sum(p.numel() for p in module.model.parameters())
        provenance["lora"] = dict(stage_d["lora"], trainable=n_trainable, total=n_total)
        log.warning("LoRA fine-tuning: %d of %d parameters train (%.2f%%)", n_trainable, n_total,
                    100 * n_trainable / n_total)
    return module


def _loaders(cfg: DictConfig, module, train_records, val_records, seed: int):
    """(training loader over the endless, rank-sharded stream; validation loader or None)."""
    partial = PartialSettings.from_mapping(OmegaConf.to_container(cfg.data.partial, resolve=True))
    stream = TrainStream(train_records, batch_size=int(cfg.data.batch_size), crop_size=int(cfg.data.crop_size),
                         spatial_prob=float(cfg.data.spatial_crop_prob), partial=partial, seed=seed,
                         start_step=_GlobalStep(module), length_balanced=bool(cfg.data.length_balanced),
                         ss_prob=float(cfg.data.ss_prob))
    train_loader = torch.utils.data.DataLoader(RankShardedStream(stream), batch_size=None, num_workers=0)
    if not val_records:
        return train_loader, None
    val_set = ValidationSet(val_records, crop_size=int(cfg.data.crop_size), partial=partial, seed=seed,
                            ss_prob=float(cfg.data.ss_prob))
    return train_loader, torch.utils.data.DataLoader(val_set, batch_size=None, num_workers=0)


def _callbacks(cfg: DictConfig, ckpt_dir: Path, validate: bool) -> tuple[list[Any], Any]:
    """(callbacks, the best-checkpoint callback or None)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

    # last.ckpt is replaced in place (no last-v1.ckpt): `_Session` writes it at train end, which
    # Lightning runs before ModelCheckpoint's own train-end save (checkpoint callbacks run last).
    callbacks: list[Any] = [ModelCheckpoint(dirpath=str(ckpt_dir), save_last=True, save_top_k=0,
                                            every_n_train_steps=int(cfg.trainer.checkpoint_every),
                                            enable_version_counter=False)]
    best_cb = None
    if validate:
        best_cb = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor="val_loss", mode="min",
                                  save_top_k=1, enable_version_counter=False)
        callbacks += [best_cb, EarlyStopping(monitor="val_loss", mode="min",
                                             patience=int(cfg.trainer.early_stopping_patience))]
    if cfg.trainer.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=int(cfg.trainer.progress_refresh)))
    callbacks.append(_Session(int(cfg.trainer.threads), ckpt_dir / "last.ckpt"))
    return callbacks, best_cb


def _trainer(cfg: DictConfig, stage_d: dict[str, Any], callbacks: list[Any], run_dir: Path, validate: bool):
    import lightning.pytorch as pl

    grad_clip = stage_d["training"]["grad_clip_norm"]
    return pl.Trainer(
        accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, num_nodes=int(cfg.trainer.num_nodes),
        strategy=cfg.trainer.strategy, max_steps=int(cfg.trainer.max_steps),
        max_time=cfg.trainer.max_time, val_check_interval=int(cfg.trainer.val_check_interval),
        check_val_every_n_epoch=None, num_sanity_val_steps=0, limit_val_batches=None if validate else 0,
        gradient_clip_val=float(grad_clip) if grad_clip and grad_clip > 0 else None,
        gradient_clip_algorithm="norm", callbacks=callbacks, logger=_loggers(run_dir),
        log_every_n_steps=int(cfg.trainer.log_every), enable_progress_bar=bool(cfg.trainer.progress_bar),
        enable_model_summary=False, default_root_dir=str(run_dir), precision="32-true",
    )


def train_from_config(cfg: DictConfig, *, command: str | None = None, records=None) -> TrainResult:
    """Train (or resume) the standalone refinement model described by the composed config."""
    from rnadiff.checkpoints.refinement import save_refinement_checkpoint

    if records is None and not cfg.data.path:
        raise ConfigError("data.path is required (a folder or .tar.gz of PDB/mmCIF files)")
    torch.set_num_threads(int(cfg.trainer.threads))
    logging.getLogger("lightning.pytorch").propagate = False  # it has its own handler: no double lines
    stage_d = OmegaConf.to_container(cfg.model.stageD, resolve=True)
    if stage_d["memory"]["mixed_precision"] != "fp32":
        raise ConfigError("rnadiff train runs in fp32 (bf16 is emulated and very slow on CPUs without AMX)")
    train_records, val_records, n_skipped = _load_and_split(cfg, records)
    seed = int(cfg.data.seed)
    provenance = _provenance(cfg, command, train_records, val_records, n_skipped)
    module = _build_module(cfg, stage_d, seed, provenance)
    train_loader, val_loader = _loaders(cfg, module, train_records, val_records, seed)
    run_dir = Path(cfg.trainer.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.ckpt"
    callbacks, best_cb = _callbacks(cfg, ckpt_dir, val_loader is not None)
    trainer = _trainer(cfg, stage_d, callbacks, run_dir, val_loader is not None)
    resume = _resume_path(cfg, ckpt_dir)
    if resume is not None:
        log.warning("resuming from %s", resume)
    t0 = time.time()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None, weights_only=True)
    global_step = int(trainer.global_step)
    if _ran_in_child_processes(trainer):
        # ddp_spawn/ddp_fork trained in child processes: take their final state from the checkpoint
        state = torch.load(last, map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
        module.on_load_checkpoint(state)
        global_step = int(state["global_step"])
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    exported = None
    if cfg.export.path and trainer.is_global_zero:
        prov = dict(provenance, steps=global_step, metrics=metrics,
                    train_seconds_this_session=round(time.time() - t0, 1), weights="ema")
        exported = save_refinement_checkpoint(cfg.export.path, module.ema_model(), prov,
                                              overwrite=bool(cfg.export.overwrite))
    best = Path(best_cb.best_model_path) if best_cb is not None and best_cb.best_model_path else None
    if best is None and best_cb is not None and _ran_in_child_processes(trainer) and (ckpt_dir / "best.ckpt").is_file():
        best = ckpt_dir / "best.ckpt"
    return TrainResult(run_dir=run_dir, last_checkpoint=last, best_checkpoint=best, global_step=global_step,
                       metrics=metrics, exported=exported, module=module, is_global_zero=trainer.is_global_zero)
