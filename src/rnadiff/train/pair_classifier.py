"""Train the canonical base-pair classifier of `rnadiff.chem.pair_classifier` and export it.

    python -m rnadiff.train.pair_classifier --data A.tar.gz B.tar.gz --out src/rnadiff/data/pair_classifier

Examples: every complementary candidate pair of every training chain (held-out chains excluded by
the rule `rnadiff train` uses, `rnadiff.train.split.is_heldout`), under each partial-input mode of
training (C1′, P, 3-bead, backbone, random subsets, noisy all-atom; the same jitter and noise),
labelled by the chain's annotated canonical pairs. A tenth of the training sequences is kept
aside to choose the matching threshold that maximises INF (√(precision · recall)) after the
one-partner matching. Deterministic under --seed on CPU.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnadiff.chem.pair_classifier import N_FEATURES, PairClassifier
from rnadiff.chem.pairing import candidate_features, match_pairs
from rnadiff.errors import exit_code_of
from rnadiff.io.atomic import atomic_write_dir
from rnadiff.train.data import load_records
from rnadiff.train.examples import make_generator
from rnadiff.train.partial import MODES, PartialSettings, simulate_partial
from rnadiff.train.split import is_heldout

HIDDEN = (128, 64)


def chain_examples(record, mode: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidate pairs [M, 2], features [M, F], labels [M]) of one chain under one input mode."""
    g = make_generator(seed, int(record.seq_md5[:8], 16), MODES.index(mode))
    given, _ = simulate_partial(record.features, PartialSettings(), g, mode=mode)
    pairs, x = candidate_features(given)
    native = {(int(a), int(b)) for a, b in record.pairs}
    y = np.array([(int(a), int(b)) in native for a, b in pairs], np.float32)
    return pairs, x, y


def build_mlp() -> nn.Sequential:
    sizes = (N_FEATURES, *HIDDEN, 1)
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def fit(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int) -> tuple[nn.Sequential, np.ndarray, np.ndarray]:
    """An MLP fitted with Adam on standardised features; (model, feature mean, feature std)."""
    torch.manual_seed(seed)
    mean = x.mean(0)
    std = np.maximum(x.std(0), 1e-3)
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y).float()
    mlp = build_mlp()
    opt = torch.optim.Adam(mlp.parameters(), lr=2e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=g)
        total = 0.0
        for start in range(0, len(xt), 1024):
            idx = order[start:start + 1024]
            loss = loss_fn(mlp(xt[idx])[:, 0], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(xt):.4f}", file=sys.stderr, flush=True)
    return mlp, mean, std


def to_classifier(mlp: nn.Sequential, mean: np.ndarray, std: np.ndarray, threshold: float) -> tuple[PairClassifier, dict]:
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    arrays = {"feature_mean": mean.astype(np.float32), "feature_std": std.astype(np.float32)}
    for k, lin in enumerate(linears):
        arrays[f"layer{k}.weight"] = lin.weight.detach().numpy().astype(np.float32)
        arrays[f"layer{k}.bias"] = lin.bias.detach().numpy().astype(np.float32)
    return PairClassifier.from_arrays(arrays, threshold), arrays


def matched_inf(chains: list[tuple[np.ndarray, np.ndarray, set]], threshold: float) -> float:
    """Mean INF over chains with native pairs of the one-partner matching above `threshold`."""
    infs = []
    for pairs, prob, native in chains:
        if not native:
            continue
        kept = set(match_pairs(pairs, prob, threshold)) if len(pairs) else set()
        tp = len(kept & native)
        infs.append(np.sqrt(tp / len(kept) * tp / len(native)) if kept and tp else 0.0)
    return float(np.mean(infs)) if infs else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", required=True, help="folder for model.safetensors + config.json (replaced atomically)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=1,
                   help="partial inputs drawn per training chain and mode (each with its own jitter and noise)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    records = [r for r in load_records(a.data)[0] if not is_heldout(r.seq_md5, r.n_token, 0.15, 0.3)]
    records = sorted({r.seq_md5: r for r in records}.values(), key=lambda r: r.name)
    aside = [r for r in records if int(hashlib.md5(("pairclf" + r.seq_md5).encode()).hexdigest(), 16) % 10 == 0]
    fit_set = [r for r in records if r not in aside]
    if not aside or not fit_set:
        raise SystemExit(f"pair classifier: {len(records)} training chains are too few to keep a tenth aside")
    xs, ys = [], []
    for r in fit_set:
        for mode in a.modes:
            for draw in range(a.draws):
                # draw 0 uses the seed itself; the aside chains are scored with seed + 1, so the
                # further draws take seed + 2, seed + 3, ...
                _, x, y = chain_examples(r, mode, a.seed if draw == 0 else a.seed + 1 + draw)
                xs.append(x)
                ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    print(f"{len(fit_set)} chains, {len(x)} candidates ({int(y.sum())} pairs); {len(aside)} chains aside",
          file=sys.stderr)
    mlp, mean, std = fit(x, y, epochs=a.epochs, seed=a.seed)
    clf, arrays = to_classifier(mlp, mean, std, 0.5)
    per_mode = {}
    for mode in a.modes:
        chains = []
        for r in aside:
            pairs, xa, _ = chain_examples(r, mode, a.seed + 1)
            prob = clf.probability(xa) if len(pairs) else np.zeros(0)
            chains.append((pairs, prob, {(int(i), int(j)) for i, j in r.pairs}))
        per_mode[mode] = chains
    grid = [round(t, 2) for t in np.arange(0.05, 0.81, 0.05)]
    mean_inf = {t: float(np.mean([matched_inf(c, t) for c in per_mode.values()])) for t in grid}
    threshold = max(grid, key=lambda t: mean_inf[t])
    report = {m: round(matched_inf(c, threshold), 4) for m, c in per_mode.items()}
    print(f"threshold {threshold}: INF on the aside chains {report}", file=sys.stderr)
    meta = {"format": "rnadiff-pair-classifier", "n_features": N_FEATURES, "hidden": list(HIDDEN),
            "threshold": threshold, "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "provenance": {"command": "python -m rnadiff.train.pair_classifier " + " ".join(argv or sys.argv[1:]),
                           "data": [Path(d).name for d in a.data], "n_chains": len(fit_set), "n_aside": len(aside),
                           "n_candidates": int(len(x)), "n_positive": int(y.sum()), "modes": a.modes,
                           "epochs": a.epochs, "seed": a.seed, "draws": a.draws, "aside_inf_by_mode": report,
                           "seconds": round(time.time() - t0, 1)}}

    def write(folder: Path) -> None:
        from safetensors.numpy import save_file

        save_file(arrays, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(meta, indent=1) + "\n")

    atomic_write_dir(Path(a.out), write)
    return 0


if __name__ == "__main__":
    sys.exit(exit_code_of(main, "python -m rnadiff.train.pair_classifier"))
