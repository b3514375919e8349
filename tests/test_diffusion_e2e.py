"""End to end: a small DiffusionModule trained on one real RNA regenerates it from pure noise.

The conditioning (s_inputs, s_trunk, z_trunk) is a set of free parameters trained jointly with
the model: they carry no coordinates, so the structure has to be learned by the denoiser.
Run with --runslow (a few minutes on 2 CPU cores).
"""
from __future__ import annotations

import time

import pytest
import torch

SMALL = dict(
    sigma_data=16.0, c_atom=32, c_atompair=8, c_token=64, c_s=48, c_z=16, c_s_inputs=40, c_noise_embedding=32,
    atom_encoder={"n_blocks": 1, "n_heads": 2, "n_queries": 32, "n_keys": 128},
    transformer={"n_blocks": 2, "n_heads": 4},
    atom_decoder={"n_blocks": 1, "n_heads": 2, "n_queries": 32, "n_keys": 128},
)
CHAIN_FILE = "clean/rsrnasp1_train/1f27_B.pdb"  # 11 nt, 230 heavy atoms, complete, no breaks


def train_and_sample(path, *, steps: int = 400, n_sample_train: int = 16, seed: int = 0, device: str = "cpu",
                     log=print):
    from rnadiff.chem.features import featurize
    from rnadiff.diffusion.alignment import aligned_rmsd
    from rnadiff.diffusion.manager import ProtenixDiffusionManager
    from rnadiff.io import read_structure

    torch.manual_seed(seed)
    feats = featurize(read_structure(path))
    f = {k: v.to(device) for k, v in feats.items()}
    x_true = f["coords"].float()
    present = f["atom_present_mask"].float()
    n_tok = f["residue_index"].shape[0]
    config = {**SMALL, "training": {"lr": 2e-3, "warmup_steps": 20, "N_sample": n_sample_train,
                                    "grad_clip_norm": 10.0, "lr_decay_every_n_steps": 0, "ema_decay": 0.99}}
    mgr = ProtenixDiffusionManager(config, device=device)
    cond = torch.nn.ParameterDict({
        "s_inputs": torch.nn.Parameter(torch.randn(n_tok, SMALL["c_s_inputs"]) * 0.5),
        "s_trunk": torch.nn.Parameter(torch.randn(n_tok, SMALL["c_s"]) * 0.5),
        "z_trunk": torch.nn.Parameter(torch.randn(n_tok, n_tok, SMALL["c_z"]) * 0.5),
    }).to(device)
    opt = torch.optim.AdamW(list(mgr.diffusion_module.parameters()) + list(cond.parameters()), lr=2e-3,
                            betas=(0.9, 0.95))
    sched = mgr.build_lr_scheduler(opt)
    ema = mgr.build_ema()
    gen = torch.Generator().manual_seed(seed)
    labels = {"coordinate": x_true, "coordinate_mask": present}
    t0 = time.time()
    for step in range(steps):
        out = mgr.train_diffusion_step(labels, f, cond["s_inputs"], cond["s_trunk"], cond["z_trunk"], {},
                                       generator=gen)
        opt.zero_grad()
        out.loss.backward()
        mgr.clip_gradients()
        opt.step()
        sched.step()
        ema.update(mgr.diffusion_module)
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step}: loss {float(out.loss.detach()):.3f} mse {float(out.metrics['mse_loss']):.3f} "
                f"lddt {float(out.metrics['smooth_lddt_loss']):.3f} ({time.time() - t0:.0f} s)")
    train_s = time.time() - t0
    ema.copy_to(mgr.diffusion_module)
    t1 = time.time()
    emb = {k: v.detach() for k, v in cond.items()}
    samples = mgr.multi_step_inference(None, emb, {"N_sample": 5, "num_steps": 200, "seed": 1},
                                       override_input_features=f)  # [1, 5, N, 3]
    sample_s = time.time() - t1
    rmsd = aligned_rmsd(samples[0], x_true.expand(5, -1, -1), present.expand(5, -1))
    return rmsd, train_s, sample_s


@pytest.mark.slow
def test_small_model_regenerates_a_real_rna_from_noise(rna_dev_dir):
    # Measured: 400 steps gave 3.1-3.6 Å (7 min, loss still falling). 1200 steps is an unverified guess.
    rmsd, train_s, sample_s = train_and_sample(rna_dev_dir / CHAIN_FILE, steps=1200)
    print(f"RMSD per sample {rmsd.tolist()}; training {train_s:.0f} s, sampling {sample_s:.0f} s")
    assert float(rmsd.min()) < 2.0
    assert float(rmsd.median()) < 2.0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    path = Path(sys.argv[1])
    path = path if path.suffix == ".pdb" else path / CHAIN_FILE
    r, a, b = train_and_sample(path, steps=int(sys.argv[2]) if len(sys.argv) > 2 else 400,
                               device=sys.argv[3] if len(sys.argv) > 3 else "cpu")
    print("RMSD", r.tolist(), "train s", round(a), "sample s", round(b))
