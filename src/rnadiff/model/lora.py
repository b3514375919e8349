"""LoRA fine-tuning of the DiffusionModule through peft.

    apply_lora(module, settings=None, **overrides) -> module      adapters injected in place, base frozen
    lora_state_dict(module) -> {name: tensor}                      the adapter weights only
    save_lora_adapters(path, module, provenance=None, *, overwrite=False) -> Path
    load_lora_adapters(path, module) -> module                     applies LoRA first if needed
    merge_lora(module) -> DiffusionModule                          a new plain module, W + s·B·A

Settings mirror the config keys `model.stageD.lora.{r, alpha, dropout, target_modules}`; by default
the adapters sit on the q/k/v/output projections of every attention (token transformer and both
atom transformers). peft's `inject_adapter_in_model` is used rather than `get_peft_model`: it
modifies the module in place, so it stays a `DiffusionModule` and its keyword-only forward,
`prepare_cache` and `.config` keep working unchanged.

Our `primitives.Linear` may compute in a fixed precision (float32 under autocast). peft's LoRA
Linear would run the adapter branch in the autocast dtype; `PrecisionLoraLinear` keeps the whole
layer (base + adapter) in the base layer's precision so the precision contract still holds.

Adapter file: safetensors, tensors named `<module path>.lora_A.weight` / `.lora_B.weight`, and
metadata `rnadiff_lora` = JSON {format, format_version, lora: settings, base_model: config, provenance}.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from peft.tuners.lora.layer import Linear as PeftLoraLinear
from safetensors import safe_open

from rnadiff.checkpoints.build import check_state_dict, module_from_state_dict
from rnadiff.checkpoints.files import SAFETENSORS, atomic_write_file, reading, sniff
from rnadiff.errors import CheckpointError, ConfigError
from rnadiff.model.diffusion_module import DiffusionModule
from rnadiff.model.primitives import Linear

ADAPTER = "default"
DEFAULT_TARGET_MODULES = ("linear_q", "linear_k", "linear_v", "linear_o")
LORA_FORMAT = "rnadiff-lora"
LORA_FORMAT_VERSION = 1
METADATA_KEY = "rnadiff_lora"
_SETTINGS_ATTR = "_rnadiff_lora_settings"
# Config entries that describe a base model's architecture (an adapter only fits its own).
_ARCH_KEYS = ("c_atom", "c_atompair", "c_token", "c_s", "c_z", "c_s_inputs", "c_noise_embedding")
_STACKS = ("atom_encoder", "transformer", "atom_decoder")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA rank, scale numerator (scaling = alpha / r), input dropout and target module names.

    target_modules follow peft's matching: a name matches a module whose path equals it or ends
    with "." + name (e.g. "linear_q" matches every attention's query projection).
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGET_MODULES)

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str) or not isinstance(self.target_modules, Sequence):
            raise ConfigError(f"lora.target_modules must be a list of module names, got {self.target_modules!r}")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
            raise ConfigError(f"lora.target_modules must be non-empty names, got {list(self.target_modules)}")
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ConfigError(f"lora.r must be a positive integer, got {self.r!r}")
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) or self.alpha <= 0:
            raise ConfigError(f"lora.alpha must be a positive number, got {self.alpha!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout must lie in [0, 1), got {self.dropout!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LoraSettings:
        """From a mapping like `model.stageD.lora` (its `enabled` switch is not ours to read)."""
        unknown = set(config) - {"r", "alpha", "dropout", "target_modules", "enabled"}
        if unknown:
            raise ConfigError(f"unknown lora config key(s) {sorted(unknown)}")
        values = {k: v for k, v in config.items() if k != "enabled"}
        targets = values.get("target_modules")
        if targets is not None and not isinstance(targets, str):
            values["target_modules"] = list(targets)  # e.g. an OmegaConf ListConfig
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


class PrecisionLoraLinear(PeftLoraLinear):
    """peft's LoRA Linear that honours `primitives.Linear.precision` for the adapter branch too."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        precision = getattr(self.get_base_layer(), "precision", None)
        if precision is None:
            return super().forward(x, *args, **kwargs)
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = super().forward(x.to(precision), *args, **kwargs)
        return out if out.dtype == x.dtype else out.to(x.dtype)


# --------------------------------------------------------------------------------------------
def has_lora(module: torch.nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in module.modules())


def lora_settings(module: torch.nn.Module) -> LoraSettings:
    settings = getattr(module, _SETTINGS_ATTR, None)
    if settings is None:
        raise ConfigError("module has no LoRA adapters (use rnadiff.lora.apply_lora)")
    return settings


def apply_lora(module: DiffusionModule, settings: LoraSettings | None = None, **overrides: Any) -> DiffusionModule:
    """Inject LoRA adapters in place; every base parameter is frozen, only adapters train.

    settings: a LoraSettings (default r=8, alpha=16, dropout=0, q/k/v/o projections); keyword
    overrides (r=, alpha=, dropout=, target_modules=) replace single fields. The adapters start
    as an exact no-op (B = 0), so the module's outputs are unchanged until it is trained.
    """
    if has_lora(module):
        raise ConfigError("module already carries LoRA adapters")
    base = settings or LoraSettings()
    settings = LoraSettings(**{**base.to_dict(), **overrides}) if overrides else base
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules), bias="none",
    )
    # isinstance-based: covers LinearNoBias / BiasInitLinear, the subclasses of our Linear.
    config._register_custom_module({Linear: PrecisionLoraLinear})
    try:
        inject_adapter_in_model(config, module, adapter_name=ADAPTER)
    except ValueError as exc:
        raise ConfigError(f"cannot apply LoRA to {list(settings.target_modules)}: {' '.join(str(exc).split())}") from None
    for name, param in module.named_parameters():
        param.requires_grad_(_is_lora_name(name))
    # peft creates the adapter layers in training mode whatever the module's mode: without this an
    # eval-mode module would apply LoRA dropout at inference.
    module.train(module.training)
    setattr(module, _SETTINGS_ATTR, settings)
    return module


def _is_lora_name(name: str) -> bool:
    return f".lora_A.{ADAPTER}." in name or f".lora_B.{ADAPTER}." in name


def lora_parameters(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The adapter parameters, named as in the adapter file."""
    return {name.replace(f".{ADAPTER}.", "."): p for name, p in module.named_parameters() if _is_lora_name(name)}


def lora_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of the adapter weights (what `save_lora_adapters` writes)."""
    return {k: p.detach().to("cpu").contiguous().clone() for k, p in lora_parameters(module).items()}


# --------------------------------------------------------------------------------------------
def save_lora_adapters(
    path: str | os.PathLike,
    module: DiffusionModule,
    provenance: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the adapters alone (safetensors + JSON metadata); atomic, no overwrite unless asked."""
    settings = lora_settings(module)
    document = {
        "format": LORA_FORMAT, "format_version": LORA_FORMAT_VERSION, "lora": settings.to_dict(),
        "base_model": module.config, "provenance": dict(provenance or {}),
    }
    try:
        text = json.dumps(document, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"adapter provenance must be JSON-serialisable: {exc}") from None
    tensors = lora_state_dict(module)
    return atomic_write_file(
        path, lambda tmp: safetensors.torch.save_file(tensors, str(tmp), {METADATA_KEY: text}), overwrite
    )


def load_lora_adapters(path: str | os.PathLike, module: DiffusionModule) -> DiffusionModule:
    """Load saved adapters into `module` (in place), applying LoRA with the file's settings if needed.

    CheckpointError when the file is malformed, was made for another architecture, or its
    settings differ from adapters already on the module.
    """
    path = Path(path)
    if sniff(path) != SAFETENSORS:
        raise CheckpointError(f"{path}: not a safetensors adapter file")
    with reading(path, "adapter metadata"):
        with safe_open(str(path), framework="pt") as fh:
            text = (fh.metadata() or {}).get(METADATA_KEY)
    document = _validate_document(text, path)
    _check_base(document["base_model"], module.config, path)
    try:
        settings = LoraSettings.from_config(document["lora"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid LoRA settings: {exc}") from None
    if has_lora(module):
        if lora_settings(module) != settings:
            raise CheckpointError(f"{path}: adapters were made with {settings}, the module carries {lora_settings(module)}")
    else:
        apply_lora(module, settings)
    with reading(path, "adapter weights"):
        tensors = safetensors.torch.load_file(str(path))
    params = lora_parameters(module)
    check_state_dict(params, tensors, str(path))
    with torch.no_grad():
        for key, param in params.items():
            param.copy_(tensors[key])
    return module


def _validate_document(text: str | None, path: Path) -> dict[str, Any]:
    if text is None:
        raise CheckpointError(f"{path}: no '{METADATA_KEY}' entry in the safetensors metadata; not an rnadiff adapter file")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{path}: invalid JSON in the adapter metadata: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != LORA_FORMAT:
        raise CheckpointError(f"{path}: not an rnadiff LoRA adapter file (format {LORA_FORMAT!r} expected)")
    if document.get("format_version") != LORA_FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported adapter format_version {document.get('format_version')!r}")
    for key in ("lora", "base_model"):
        if not isinstance(document.get(key), dict):
            raise CheckpointError(f"{path}: adapter metadata lacks the {key!r} object")
    return document


def _check_base(saved: Mapping[str, Any], current: Mapping[str, Any], path: Path) -> None:
    diffs = [f"{k}={saved.get(k)} (module: {current.get(k)})" for k in _ARCH_KEYS if saved.get(k) != current.get(k)]
    for stack in _STACKS:
        for k in ("n_blocks", "n_heads"):
            a, b = (saved.get(stack) or {}).get(k), (current.get(stack) or {}).get(k)
            if a != b:
                diffs.append(f"{stack}.{k}={a} (module: {b})")
    if diffs:
        raise CheckpointError(f"{path}: adapters belong to another architecture: {', '.join(diffs)}")


# --------------------------------------------------------------------------------------------
@torch.no_grad()
def merge_lora(module: DiffusionModule) -> DiffusionModule:
    """A new plain DiffusionModule whose weights are W + (alpha/r)·B·A; the input is left as is.

    Its state-dict keys equal the base model's, so it saves/loads like any checkpoint.
    """
    if not has_lora(module):
        raise ConfigError("module has no LoRA adapters to merge")
    state = {
        name.replace(".base_layer.", "."): tensor
        for name, tensor in module.state_dict().items()
        if ".lora_" not in name
    }
    for name, layer in module.named_modules():
        if isinstance(layer, LoraLayer):
            key = f"{name}.weight"
            state[key] = state[key] + layer.get_delta_weight(ADAPTER).to(state[key].dtype)
    kwargs = {**module.config, "blocks_per_ckpt": module.blocks_per_ckpt,
              "use_fine_grained_checkpoint": module.use_fine_grained_checkpoint}
    merged = module_from_state_dict(kwargs, state, "merge_lora")
    return merged.to(next(module.parameters()).device)
