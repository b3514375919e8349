"""From a weight dict (+ optional config) to a ready `DiffusionModule`, with clear errors.

Shared by the Protenix reader, our own format and `rnadiff.model.lora.merge_lora`:
- `infer_config(state_dict)`: every dimension, block count and head count read off the weight shapes;
- `normalize_config(config)`: accepts our nested constructor form and the flat Protenix/golden form
  (top-level `n_queries`/`n_keys`), returns `DiffusionModule` keyword arguments;
- `merge_config(inferred, explicit)`: an explicit config may set what weights cannot say (sigma_data,
  n_queries, n_keys, checkpointing) and must agree with them on everything they do say;
- `module_from_state_dict(kwargs, state_dict, source)`: builds the module on the meta device (the
  random initialisation of the full-size model costs over a minute on 2 cores and is thrown away),
  checks keys and shapes with a readable message, then assigns the weights (strict).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from typing import Any

import torch

from rnadiff.errors import CheckpointError, ConfigError
from rnadiff.model.diffusion_module import DiffusionModule

# Key of a parameter every DiffusionModule has; used to find the module's prefix in a bigger dict.
ANCHOR_KEY = "diffusion_conditioning.fourier_embedding.w"

# The three attention stacks: config name -> prefix of their numbered blocks.
STACK_PREFIXES = {
    "atom_encoder": "atom_attention_encoder.atom_transformer.diffusion_transformer.blocks.",
    "transformer": "diffusion_transformer.blocks.",
    "atom_decoder": "atom_attention_decoder.atom_transformer.diffusion_transformer.blocks.",
}
# The pair-bias projection has one output row per head: the only place heads show in a shape.
HEADS_KEY = "attention_pair_bias.linear_nobias_z.weight"

# Not inferable from weights; Protenix hard-codes 32/128 local windows.
DEFAULT_WINDOWS = {"n_queries": 32, "n_keys": 128}
DEFAULT_SIGMA_DATA = 16.0

TOP_LEVEL_KEYS = {
    "sigma_data", "c_atom", "c_atompair", "c_token", "c_s", "c_z", "c_s_inputs", "c_noise_embedding",
    "atom_encoder", "transformer", "atom_decoder", "blocks_per_ckpt", "use_fine_grained_checkpoint",
    "initialization",
}
# Flat-form keys (golden_small.pt / Protenix configs) folded into both atom stacks.
WINDOW_KEYS = ("n_queries", "n_keys")
STACK_KEYS = {"n_blocks", "n_heads", "n_queries", "n_keys", "drop_path_rate"}
# Values an explicit config may choose freely: the weights do not determine them.
FREE_TOP_LEVEL = {"sigma_data", "blocks_per_ckpt", "use_fine_grained_checkpoint", "initialization"}
FREE_STACK = {"n_queries", "n_keys", "drop_path_rate"}


def _shape(sd: Mapping[str, torch.Tensor], key: str, source: str) -> tuple[int, ...]:
    tensor = sd.get(key)
    if tensor is None:
        raise CheckpointError(f"{source}: missing weight {key!r}; not a DiffusionModule state dict")
    return tuple(tensor.shape)


def infer_config(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """DiffusionModule keyword arguments read off the weight shapes (keys without any prefix).

    n_queries/n_keys and sigma_data cannot be seen in weights: they get Protenix's values.
    """
    sd = state_dict
    c_token, c_s = _shape(sd, "linear_no_bias_s.weight", source)
    s_rows, s_cols = _shape(sd, "diffusion_conditioning.linear_no_bias_s.weight", source)
    config: dict[str, Any] = {
        "sigma_data": DEFAULT_SIGMA_DATA,
        "c_atom": _shape(sd, "atom_attention_encoder.linear_no_bias_ref_pos.weight", source)[0],
        "c_atompair": _shape(sd, "atom_attention_encoder.linear_no_bias_d.weight", source)[0],
        "c_token": c_token,
        "c_s": c_s,
        "c_z": _shape(sd, "diffusion_conditioning.linear_no_bias_z.weight", source)[0],
        "c_s_inputs": s_cols - s_rows,  # its input is cat[s_trunk, s_inputs]
        "c_noise_embedding": _shape(sd, ANCHOR_KEY, source)[0],
    }
    for name, prefix in STACK_PREFIXES.items():
        config[name] = _infer_stack(sd, name, prefix, source)
    return config


def _infer_stack(sd: Mapping[str, torch.Tensor], name: str, prefix: str, source: str) -> dict[str, int]:
    indices = set()
    for key in sd:
        if key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if not head.isdigit():
                raise CheckpointError(f"{source}: unexpected key {key!r} in the {name} blocks")
            indices.add(int(head))
    n_blocks = max(indices) + 1 if indices else 0
    if indices != set(range(n_blocks)):
        gaps = sorted(set(range(n_blocks)) - indices)
        raise CheckpointError(f"{source}: {name} blocks are not numbered 0..{n_blocks - 1}: missing {gaps}")
    stack: dict[str, int] = {"n_blocks": n_blocks}
    if name != "transformer":
        stack.update(DEFAULT_WINDOWS)
    if n_blocks:
        heads = {_shape(sd, f"{prefix}{i}.{HEADS_KEY}", source)[0] for i in range(n_blocks)}
        if len(heads) != 1:
            raise CheckpointError(f"{source}: {name} blocks disagree on the head count: {sorted(heads)}")
        stack["n_heads"] = heads.pop()
    return stack


def normalize_config(config: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """DiffusionModule keyword arguments from our nested form or the flat Protenix/golden form."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: a model config must be a mapping, got {type(config).__name__}")
    unknown = set(config) - TOP_LEVEL_KEYS - set(WINDOW_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown model config key(s) {sorted(unknown)}")
    out = {k: copy.deepcopy(v) for k, v in config.items() if k not in WINDOW_KEYS}
    windows = {k: config[k] for k in WINDOW_KEYS if k in config}
    for name in STACK_PREFIXES:
        stack = out.get(name)
        if stack is None and not (windows and name != "transformer"):
            continue
        stack = dict(stack or {})
        bad = set(stack) - STACK_KEYS
        if bad:
            raise ConfigError(f"{source}: unknown {name} key(s) {sorted(bad)}")
        if name != "transformer":
            for key, value in windows.items():
                if stack.setdefault(key, value) != value:
                    raise ConfigError(f"{source}: {name}.{key}={stack[key]} contradicts {key}={value}")
        out[name] = stack
    return out


def merge_config(inferred: Mapping[str, Any], explicit: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    """Inferred kwargs updated by an explicit config; a contradiction of the weights is an error."""
    merged = copy.deepcopy(dict(inferred))
    if not explicit:
        return merged
    conflicts = []
    for key, value in normalize_config(explicit, f"{source} (explicit config)").items():
        if key in STACK_PREFIXES:
            stack = merged.setdefault(key, {})
            for sub, sub_value in value.items():
                seen = stack.get(sub)
                if sub not in FREE_STACK and seen is not None and seen != sub_value:
                    conflicts.append(f"{key}.{sub}={sub_value} (weights: {seen})")
                stack[sub] = sub_value
        else:
            seen = merged.get(key)
            if key not in FREE_TOP_LEVEL and seen is not None and seen != value:
                conflicts.append(f"{key}={value} (weights: {seen})")
            merged[key] = value
    if conflicts:
        raise CheckpointError(f"{source}: the explicit config contradicts the weights: {', '.join(conflicts)}")
    return merged


def _preview(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def check_state_dict(expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, Any], source: str) -> None:
    """Raise one CheckpointError naming missing/unexpected keys, wrong shapes and non-float values."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape, not_float = [], []
    for key in expected:
        value = state_dict.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            not_float.append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            wrong_shape.append(f"{key} {tuple(value.shape)} (expected {tuple(expected[key].shape)})")
    problems = []
    if missing:
        problems.append(f"missing key(s) {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected key(s) {_preview(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shape(s) {_preview(wrong_shape)}")
    if not_float:
        problems.append(f"non-float value(s) {_preview(not_float)}")
    if problems:
        raise CheckpointError(f"{source}: weights do not match the model: {'; '.join(problems)}")


def module_from_state_dict(
    kwargs: Mapping[str, Any], state_dict: MutableMapping[str, torch.Tensor], source: str
) -> DiffusionModule:
    """Build DiffusionModule(**kwargs) without initialising it and load `state_dict` strictly.

    Entries are popped from `state_dict` as they are copied, so peak memory stays near one model.
    The module comes back on the CPU, float32, in eval mode.
    """
    try:
        with torch.device("meta"):
            module = DiffusionModule(**kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: invalid model config: {exc}") from None
    expected = module.state_dict()
    check_state_dict(expected, state_dict, source)
    # Copy (not view) so that nothing stays backed by a memory-mapped file or a caller's tensors.
    weights = {
        key: state_dict.pop(key).detach().to(device="cpu", dtype=expected[key].dtype, copy=True).contiguous()
        for key in list(expected)
    }
    module.load_state_dict(weights, strict=True, assign=True)
    return module.eval()
