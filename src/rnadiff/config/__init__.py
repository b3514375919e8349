"""The Hydra configuration tree of rnadiff and its loader.

    config/train.yaml, config/refine.yaml   top-level configs (device) composing
    config/model/stageD.yaml                 `model.stageD`: denoiser dims, schedule, training,
                                             inference, memory, and placeholders of other components

`load_config(["model.stageD.inference.num_steps=50"])` composes with Hydra's compose API and returns
an OmegaConf DictConfig whose `model.stageD` is typed by `rnadiff.config.schema.StageD` (unknown
keys and wrong types are errors). Bad overrides and invalid values raise
`rnadiff.errors.ConfigError` with one readable line.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rnadiff.config.schema import StageD, typed
from rnadiff.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent
CONFIG_NAMES = ("refine", "train")
MIXED_PRECISION = ("fp32", "bf16", "fp16")


def load_config(overrides: list[str] | None = None, *, config_name: str = "refine") -> DictConfig:
    """Compose `config_name` (refine | train) with Hydra-style `key=value` overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if config_name not in CONFIG_NAMES:
        raise ConfigError(f"unknown config {config_name!r}; choose one of {', '.join(CONFIG_NAMES)}")
    overrides = list(overrides or [])
    bad = [o for o in overrides if "=" not in o and not o.startswith("~")]
    if bad:
        raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
    gh = GlobalHydra.instance()
    # Inside a running Hydra app GlobalHydra is taken: step aside for the compose and restore it.
    saved = gh.hydra if gh.is_initialized() else None
    if saved is not None:
        gh.clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise ConfigError(f"bad configuration override: {text}") from None
    finally:
        if saved is not None:
            gh.clear()
            gh.initialize(saved)
    cfg.model.stageD = typed(cfg.model.stageD, StageD, "model.stageD")  # types checked once, here
    validate(cfg)
    return cfg


def stage_d(cfg: DictConfig) -> dict:
    """`model.stageD` as a plain dict (what ProtenixDiffusionManager takes)."""
    return OmegaConf.to_container(cfg.model.stageD, resolve=True)


def validate(cfg: DictConfig) -> None:
    """Value checks that YAML types cannot express; raises ConfigError naming the key."""
    d = cfg.model.stageD
    checks = [
        (d.sigma_data > 0, "model.stageD.sigma_data must be > 0"),
        (d.inference.num_steps >= 1, "model.stageD.inference.num_steps must be >= 1"),
        (d.inference.N_sample >= 1, "model.stageD.inference.N_sample must be >= 1"),
        (d.inference.temperature >= 0, "model.stageD.inference.temperature must be >= 0"),
        (d.training.N_sample >= 1, "model.stageD.training.N_sample must be >= 1"),
        (d.memory.mixed_precision in MIXED_PRECISION,
         f"model.stageD.memory.mixed_precision must be one of {', '.join(MIXED_PRECISION)}"),
        (d.memory.max_sequence_length >= 1, "model.stageD.memory.max_sequence_length must be >= 1"),
        (d.inference.early_stopping.patience >= 1, "model.stageD.inference.early_stopping.patience must be >= 1"),
        (d.schedule.s_max > d.schedule.s_min > 0, "model.stageD.schedule needs s_max > s_min > 0"),
        (0 < d.schedule.dt <= 1, "model.stageD.schedule.dt must lie in (0, 1]"),
    ]
    for chunk_key in ("inference.sampling.diffusion_chunk_size", "training.diffusion_chunk_size",
                      "memory.attention_chunk_size"):
        v = OmegaConf.select(d, chunk_key)
        checks.append((v is None or v >= 1, f"model.stageD.{chunk_key} must be >= 1 or null"))
    ref = d.inference.refinement
    if ref.start_fraction is not None:
        checks.append((0 < ref.start_fraction <= 1, "model.stageD.inference.refinement.start_fraction must lie in (0, 1]"))
    if ref.start_sigma is not None:
        checks.append((ref.start_sigma > 0, "model.stageD.inference.refinement.start_sigma must be > 0"))
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
