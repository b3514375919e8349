"""Shared builders for the training / refine tests: tiny model dims and a few real chains."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import rnadiff

EXAMPLES = Path(rnadiff.__file__).parent / "examples"

TINY_OVERRIDES = [
    "model.stageD.c_token=32", "model.stageD.c_s=32", "model.stageD.c_z=16", "model.stageD.c_s_inputs=81",
    "model.stageD.c_atom=16", "model.stageD.c_atompair=8", "model.stageD.c_noise_embedding=16",
    "model.stageD.transformer.n_blocks=1", "model.stageD.transformer.n_heads=2",
    "model.stageD.atom_encoder.n_heads=2", "model.stageD.atom_decoder.n_heads=2",
    "conditioner.c_atom=8", "conditioner.n_blocks=1", "conditioner.n_heads=2",
    "model.stageD.training.N_sample=2", "data.crop_size=16", "trainer.progress_bar=false", "trainer.threads=1",
]
# The same tiny dimensions as keyword arguments of DiffusionModule (RefinementModel(diffusion=...)).
TINY_DIFFUSION = dict(c_token=32, c_s=32, c_z=16, c_s_inputs=81, c_atom=16, c_atompair=8, c_noise_embedding=16,
                      atom_encoder=dict(n_blocks=1, n_heads=2), transformer=dict(n_blocks=1, n_heads=2),
                      atom_decoder=dict(n_blocks=1, n_heads=2))


def noisy_tiny_model():
    """A tiny RefinementModel (seeded) with every weight perturbed: untrained, so its given atoms come
    out far from the input, and the zero-initialised output layers no longer hide the conditioning."""
    import torch

    from rnadiff.model.refinement_model import RefinementModel

    torch.manual_seed(0)
    m = RefinementModel(conditioner=dict(c_atom=8, n_blocks=1, n_heads=2), diffusion=TINY_DIFFUSION).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def short_chains(rna_dev_dir: Path, target: Path, n: int = 6, max_length: int = 14) -> Path:
    """Copy `n` short complete chains of the dev set (plus a manifest) into `target`."""
    rows = list(csv.DictReader((rna_dev_dir / "manifest.csv").open()))
    pick = [r for r in rows if int(r["length"]) <= max_length and r["frac_complete"] == "1.0"][:n]
    target.mkdir(parents=True, exist_ok=True)
    for r in pick:
        dest = target / r["clean_file"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rna_dev_dir / r["clean_file"], dest)
    with (target / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(pick)
    return target
