"""Read a Protenix training checkpoint into a `DiffusionModule`.

A Protenix checkpoint is a torch file holding `{"model": state_dict, "optimizer": ..., ...}`; the
diffusion weights sit under `diffusion_module.` (or `module.diffusion_module.` when saved from
DDP) next to the trunk, heads and embedders, which are ignored. Also accepted: a dict whose
weights sit under `state_dict`, or a bare DiffusionModule state dict (`torch.save(m.state_dict())`).

The file is read with `torch.load(weights_only=True)`: anything that would need arbitrary
unpickling is refused before it can run. The architecture is read off the weights
(`build.infer_config`); only sigma_data and the local-window sizes (n_queries/n_keys) are not
visible there and default to Protenix's 16.0 / 32 / 128 unless `config` says otherwise.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rnadiff.checkpoints.build import ANCHOR_KEY, infer_config, merge_config, module_from_state_dict
from rnadiff.checkpoints.files import safe_torch_load
from rnadiff.errors import CheckpointError
from rnadiff.model.diffusion_module import DiffusionModule

# When a file holds several DiffusionModule copies, prefer the plain one, then the DDP one.
PREFERRED_PREFIXES = ("diffusion_module.", "module.diffusion_module.", "")


def load_protenix_checkpoint(path: str | os.PathLike, config: Mapping[str, Any] | None = None) -> DiffusionModule:
    """The DiffusionModule of a Protenix checkpoint, weights loaded strictly, in eval mode, on CPU.

    config: optional model config (our nested constructor form or Protenix's flat form with
    `n_queries`/`n_keys`). It may set sigma_data, n_queries, n_keys and checkpointing options;
    any dimension, block or head count it names must agree with the weights (CheckpointError).
    """
    source = str(path)
    state_dict = extract_diffusion_state_dict(safe_torch_load(path), source)
    kwargs = merge_config(infer_config(state_dict, source), config, source)
    return module_from_state_dict(kwargs, state_dict, source)


def extract_diffusion_state_dict(checkpoint: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The DiffusionModule weights of a loaded checkpoint, with their prefix removed."""
    weights = _weights_container(checkpoint, source)
    prefixes = sorted({k[: -len(ANCHOR_KEY)] for k in weights if isinstance(k, str) and k.endswith(ANCHOR_KEY)})
    if not prefixes:
        raise CheckpointError(
            f"{source}: no DiffusionModule weights found (no key ending in {ANCHOR_KEY!r}); "
            f"{len(weights)} weight(s) present"
        )
    if len(prefixes) == 1:
        prefix = prefixes[0]
    else:
        preferred = [p for p in PREFERRED_PREFIXES if p in prefixes]
        if not preferred:
            raise CheckpointError(f"{source}: several DiffusionModule copies {prefixes}; cannot choose one")
        prefix = preferred[0]
    return {k[len(prefix):]: v for k, v in weights.items() if isinstance(k, str) and k.startswith(prefix)}


def _weights_container(checkpoint: Any, source: str) -> Mapping[str, Any]:
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a dict of weights, found {type(checkpoint).__name__}")
    for key in ("model", "state_dict"):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            return inner
    return checkpoint


def describe_source(path: str | os.PathLike) -> dict[str, Any]:
    """Provenance of a converted checkpoint: which file it came from (name, size, sha256)."""
    p = Path(path)
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"source_format": "protenix", "source_file": p.name, "source_bytes": p.stat().st_size,
            "source_sha256": digest.hexdigest()}
