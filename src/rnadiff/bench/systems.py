"""Benchmark inputs: real chemistry for a random RNA sequence of a given length."""
from __future__ import annotations

import torch

from rnadiff.chem.features import features_from_sequence


def benchmark_system(n_token: int, c_s_inputs: int, c_s: int, c_z: int, seed: int = 0, device: str = "cpu"):
    """Features of a random ACGU sequence (about 21 atoms per nucleotide) and random trunk tensors."""
    g = torch.Generator().manual_seed(seed)
    sequence = "".join("ACGU"[i] for i in torch.randint(0, 4, (n_token,), generator=g).tolist())
    feats = features_from_sequence(sequence)
    f = {k: v.to(device) for k, v in dict(feats).items() if torch.is_tensor(v)}
    s_inputs = torch.randn(n_token, c_s_inputs, generator=g).to(device)
    s_trunk = torch.randn(n_token, c_s, generator=g).to(device)
    z_trunk = torch.randn(n_token, n_token, c_z, generator=g).to(device)
    return f, s_inputs, s_trunk, z_trunk
