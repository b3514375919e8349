"""The denoiser demo: train a small diffusion model on one RNA, then regenerate it from pure noise.

This is the smallest run that exercises every part of the generative model together (features,
denoiser, noise schedule, training objective, EMA, sampler): if the sampled structures land within
~2 Å of the RNA, schedule, loss, sampler and model fit together. The conditioning (s_inputs,
s_trunk, z_trunk) is a set of free parameters trained jointly; it carries no coordinates, so the
structure has to be learned by the denoiser.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch

SMALL_MODEL = dict(
    sigma_data=16.0, c_atom=32, c_atompair=8, c_token=64, c_s=48, c_z=16, c_s_inputs=40, c_noise_embedding=32,
    atom_encoder={"n_blocks": 1, "n_heads": 2, "n_queries": 32, "n_keys": 128},
    transformer={"n_blocks": 2, "n_heads": 4},
    atom_decoder={"n_blocks": 1, "n_heads": 2, "n_queries": 32, "n_keys": 128},
)
EXAMPLE_NAME = "1f27_B.pdb"  # 11 nt, 230 heavy atoms, complete (PDB 1F27 chain B)


def example_path() -> Path:
    return Path(str(resources.files("rnadiff") / "examples" / EXAMPLE_NAME))


@dataclass
class DemoResult:
    rmsd_per_sample: list[float]
    train_seconds: float
    sample_seconds: float
    train_steps: int
    final_loss: float
    log: list[str] = field(default_factory=list)


def train_and_regenerate(
    path: str | Path,
    *,
    steps: int = 400,
    n_sample_train: int = 16,
    n_sample: int = 5,
    sampling_steps: int = 200,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> tuple[DemoResult, torch.Tensor, object]:
    """Returns the result, the samples [n_sample, N_atom, 3] and the Features of the input."""
    from rnadiff.chem.features import featurize
    from rnadiff.diffusion.alignment import aligned_rmsd, weighted_rigid_align
    from rnadiff.pipeline.manager import ProtenixDiffusionManager
    from rnadiff.io import read_structure

    torch.manual_seed(seed)
    feats = featurize(read_structure(path))
    f = {k: v.to(device) for k, v in feats.items()}
    x_true = f["coords"].float()
    present = f["atom_present_mask"].float()
    n_tok = f["residue_index"].shape[0]
    config = {**SMALL_MODEL, "training": {"lr": lr, "warmup_steps": 20, "N_sample": n_sample_train,
                                          "grad_clip_norm": 10.0, "lr_decay_every_n_steps": 0, "ema_decay": 0.99},
              # the demo measures what the denoiser itself learned: no chemistry guidance
              "guidance": {"enabled": False}}
    mgr = ProtenixDiffusionManager(config, device=device)
    cond = torch.nn.ParameterDict({
        "s_inputs": torch.nn.Parameter(torch.randn(n_tok, SMALL_MODEL["c_s_inputs"]) * 0.5),
        "s_trunk": torch.nn.Parameter(torch.randn(n_tok, SMALL_MODEL["c_s"]) * 0.5),
        "z_trunk": torch.nn.Parameter(torch.randn(n_tok, n_tok, SMALL_MODEL["c_z"]) * 0.5),
    }).to(device)
    lines, loss, t0 = _train(mgr, cond, f, {"coordinate": x_true, "coordinate_mask": present}, steps=steps, lr=lr,
                             seed=seed, log=log)
    train_s = time.time() - t0
    t1 = time.time()
    emb = {k: v.detach() for k, v in cond.items()}
    samples = mgr.multi_step_inference(
        None, emb, {"N_sample": n_sample, "num_steps": sampling_steps, "seed": seed + 1}, override_input_features=f
    )[0]  # [n_sample, N, 3]
    sample_s = time.time() - t1
    rmsd = aligned_rmsd(samples, x_true.expand(n_sample, -1, -1), present.expand(n_sample, -1))
    # superpose every sample onto the input for writing
    aligned = weighted_rigid_align(samples, x_true.expand(n_sample, -1, -1), present.expand(n_sample, -1))
    result = DemoResult([round(float(r), 4) for r in rmsd], round(train_s, 1), round(sample_s, 1), steps, round(loss, 4), lines)
    return result, aligned, feats


def _train(mgr, cond, f, labels, *, steps: int, lr: float, seed: int, log: Callable[[str], None]):
    """The denoiser and the free conditioning trained jointly; returns (log lines, last loss, start time)."""
    opt = torch.optim.AdamW(list(mgr.diffusion_module.parameters()) + list(cond.parameters()), lr=lr, betas=(0.9, 0.95))
    sched = mgr.build_lr_scheduler(opt)
    ema = mgr.build_ema()
    gen = torch.Generator().manual_seed(seed)
    lines: list[str] = []
    t0 = time.time()
    loss = float("nan")
    for step in range(steps):
        out = mgr.train_diffusion_step(labels, f, cond["s_inputs"], cond["s_trunk"], cond["z_trunk"], {}, generator=gen)
        opt.zero_grad()
        out.loss.backward()
        mgr.clip_gradients()
        opt.step()
        sched.step()
        ema.update(mgr.diffusion_module)
        loss = float(out.loss.detach())
        if step % 50 == 0 or step == steps - 1:
            lines.append(f"step {step}: loss {loss:.3f} ({time.time() - t0:.0f} s)")
            log(lines[-1])
    ema.copy_to(mgr.diffusion_module)
    return lines, loss, t0


def run_demo(out_dir: Path, *, input_path: Path | None = None, overwrite: bool = False, **kwargs) -> DemoResult:
    """Run the demo and write `regenerated.cif` (one model per sample) and `summary.json`."""
    from rnadiff.errors import OutputError
    from rnadiff.io import write_structure
    from rnadiff.io.atomic import atomic_write_text

    out_dir = Path(out_dir)
    targets = [out_dir / "regenerated.cif", out_dir / "summary.json"]
    if not overwrite and any(t.exists() for t in targets):
        raise OutputError(f"{out_dir}: outputs exist already (use --overwrite)")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = Path(input_path) if input_path else example_path()
    result, samples, feats = train_and_regenerate(path, **kwargs)
    write_structure(targets[0], feats, samples.detach().cpu())
    summary = {"input": str(path), **asdict(result)}
    atomic_write_text(targets[1], json.dumps(summary, indent=2))
    return result
