"""Typed configuration: one OmegaConf structured (dataclass) schema per section of `model.stageD`
and of the `rnadiff refine` group. The YAML files hold the values; these classes hold the types.

`typed(node, Schema)` merges a composed node onto its schema once: a value of the wrong type (e.g.
`inference.num_steps=abc`) or an unknown key is a one-line ConfigError naming the key, and the
result carries the declared types (ints, floats, bools, lists) wherever it is read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnadiff.errors import ConfigError

# Field types are spelled with typing's Optional/List/Dict: OmegaConf's structured configs read
# the annotations at runtime and do not accept `X | None` on every Python version we support.


@dataclass
class AtomBlocks:
    n_blocks: int = MISSING
    n_heads: int = MISSING
    n_queries: int = 32
    n_keys: int = 128


@dataclass
class TokenBlocks:
    n_blocks: int = MISSING
    n_heads: int = MISSING


@dataclass
class Schedule:
    s_max: float = MISSING
    s_min: float = MISSING
    p: float = MISSING
    dt: float = MISSING


@dataclass
class Loss:
    alpha_diffusion: float = MISSING
    weight_mse: float = MISSING
    weight_smooth_lddt: float = MISSING
    alpha_bond: float = MISSING
    alpha_base_pair: float = 0.0
    weight_rna: float = MISSING
    weight_dna: float = MISSING
    weight_ligand: float = MISSING
    lddt_nucleotide_radius: float = MISSING
    lddt_other_radius: float = MISSING


@dataclass
class Training:
    lr: float = MISSING
    weight_decay: float = MISSING
    adam_betas: List[float] = MISSING
    warmup_steps: int = MISSING
    lr_decay_every_n_steps: int = MISSING
    lr_decay_factor: float = MISSING
    grad_clip_norm: Optional[float] = MISSING
    ema_decay: float = MISSING
    N_sample: int = MISSING
    p_mean: float = MISSING
    p_std: float = MISSING
    diffusion_chunk_size: Optional[int] = None
    loss: Loss = field(default_factory=Loss)


@dataclass
class EarlyStopping:
    enabled: bool = MISSING
    patience: int = MISSING
    min_delta: float = MISSING


@dataclass
class Sampling:
    gamma0: float = MISSING
    gamma_min: float = MISSING
    noise_scale_lambda: float = MISSING
    step_scale_eta: float = MISSING
    diffusion_chunk_size: Optional[int] = None
    align_to_prediction: bool = MISSING
    inplace_safe: bool = MISSING


@dataclass
class StartLevel:
    start_sigma: Optional[float] = MISSING
    start_fraction: Optional[float] = MISSING


@dataclass
class Inference:
    num_steps: int = MISSING
    N_sample: int = MISSING
    seed: int = MISSING
    temperature: float = MISSING
    return_trajectory: bool = MISSING
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    sampling: Sampling = field(default_factory=Sampling)
    refinement: StartLevel = field(default_factory=StartLevel)


@dataclass
class Memory:
    gradient_checkpointing: bool = MISSING
    mixed_precision: str = MISSING
    memory_efficient_attention: bool = MISSING
    attention_chunk_size: Optional[int] = None
    max_sequence_length: int = MISSING
    compile: bool = MISSING


@dataclass
class EnergyMinimization:
    enabled: bool = MISSING
    steps: int = MISSING
    method: str = MISSING


@dataclass
class Lora:
    enabled: bool = MISSING
    r: int = MISSING
    alpha: float = MISSING
    dropout: float = MISSING
    target_modules: List[str] = MISSING


# The DiffusionModule constructor arguments among StageD's fields (the denoiser's dimensions).
DENOISER_KEYS = ("sigma_data", "c_atom", "c_atompair", "c_token", "c_s", "c_z", "c_s_inputs", "c_noise_embedding",
                 "atom_encoder", "transformer", "atom_decoder")


@dataclass
class StageD:
    sigma_data: float = MISSING
    c_atom: int = MISSING
    c_atompair: int = MISSING
    c_token: int = MISSING
    c_s: int = MISSING
    c_z: int = MISSING
    c_s_inputs: int = MISSING
    c_noise_embedding: int = MISSING
    atom_encoder: AtomBlocks = field(default_factory=AtomBlocks)
    transformer: TokenBlocks = field(default_factory=TokenBlocks)
    atom_decoder: AtomBlocks = field(default_factory=AtomBlocks)
    schedule: Schedule = field(default_factory=Schedule)
    training: Training = field(default_factory=Training)
    inference: Inference = field(default_factory=Inference)
    memory: Memory = field(default_factory=Memory)
    energy_minimization: EnergyMinimization = field(default_factory=EnergyMinimization)
    lora: Lora = field(default_factory=Lora)
    # Typed and validated by rnadiff.diffusion.guidance.GuidanceConfig (its own schema).
    guidance: Dict[str, Any] = field(default_factory=dict)


# --- the `rnadiff refine` group (config/standalone_refine/default.yaml) ---------------------------
@dataclass
class DenseStart:
    dense_sigma: Optional[float] = MISSING
    dense_fraction: float = MISSING


@dataclass
class Anchoring:
    strength: float = MISSING
    until_sigma: float = MISSING


@dataclass
class Postprocess:
    regularize: bool = MISSING
    tether: float = MISSING
    max_iter: int = MISSING
    base_pairs: float = MISSING
    rank: bool = MISSING


@dataclass
class RefineGroup:
    start: DenseStart = field(default_factory=DenseStart)
    anchoring: Anchoring = field(default_factory=Anchoring)
    postprocess: Postprocess = field(default_factory=Postprocess)


def typed(node: Any, schema: type, where: str = "") -> DictConfig:
    """`node` (a mapping or DictConfig) merged onto `schema`; ConfigError on a wrong type or key
    (named with the `where` prefix, e.g. "model.stageD")."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        OmegaConf.to_container(merged, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        key = f"{where}.{key}" if where and key else key
        text = " ".join(str(exc).split("\n")[0].split())
        raise ConfigError(f"configuration value {key}: {text}" if key else f"configuration: {text}") from None
    return merged
