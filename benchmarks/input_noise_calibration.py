"""What tells predicted (noisy) coordinates from experimental ones, measured on every dev/extra chain.

    python benchmarks/input_noise_calibration.py --data ../shared/data/rna_dev.tar.gz ../shared/data/rna_extra.tar.gz \
        --markdown benchmarks/results/input_noise_calibration.md

The numbers behind three rules of the product:
- `rnadiff.refine.strain`: the median deviation of the given bond lengths from the library's, per
  chain, experimental (all atoms, backbone atoms) and with Gaussian noise of σ Å per axis on the
  backbone atoms (`reconstruct.reduce_to`, the benchmarks' noisy inputs);
- README "Predicted (noisy) inputs": the closest C1′–C1′ pair of a chain, experimental and noisy;
- `rnadiff.io.breaks`: O3′–P distances of consecutive residues (numbered consecutively or across a
  numbering gap) in the experimental chains, and how many links noise stretches beyond 2 and 4 Å.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist

from rnadiff.chem.features import Features
from rnadiff.chem.pairing import token_atom_index
from rnadiff.refine.strain import given_bond_strain
from rnadiff.train.data import load_records

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconstruct import DEFAULT_DATA, reduce_to  # noqa: E402

NOISE = (0.05, 0.1, 0.25, 0.5, 1.0)


def bond_medians(records, kind: str | None, noise: float) -> np.ndarray:
    """Per chain: median |bond length − library| of the given bonds (kind None: every atom given)."""
    out = []
    for r in records:
        feats = Features(tensors=dict(r.features), layout=r.layout, notes=[]) if kind is None else reduce_to(r, kind, noise)
        median = given_bond_strain(feats)["median_deviation_A"]
        if median is not None:
            out.append(median)
    return np.array(out)


def closest_c1(records, noise: float) -> np.ndarray:
    """Per chain: the smallest distance between two C1′ atoms of the C1′-only input."""
    out = []
    for r in records:
        f = reduce_to(r, "c1", noise)
        x = f["coords"].numpy()[f["atom_present_mask"].numpy() > 0]
        if len(x) >= 2:
            out.append(pdist(x).min())
    return np.array(out)


def link_distances(records) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """O3′(i)–P(i+1) of consecutive residues of one chain, numbered consecutively and across a
    numbering gap; and, per σ, the consecutive ones ≤ 2 Å (links) with noise on both atoms."""
    consecutive, gap, linked_pairs = [], [], []
    for r in records:
        lay, x = r.layout, r.features["coords"].numpy()
        present = r.features["atom_present_mask"].numpy() > 0
        index = {k: a for k, a in token_atom_index(r.features, ("O3'", "P")).items() if present[a]}
        for t in range(1, lay.n_tokens):
            o3, p = index.get((t - 1, "O3'")), index.get((t, "P"))
            if lay.asym_id[t] != lay.asym_id[t - 1] or o3 is None or p is None:
                continue
            d = float(np.linalg.norm(x[o3] - x[p]))
            if int(lay.res_nums[t]) - int(lay.res_nums[t - 1]) > 1:
                gap.append(d)
            else:
                consecutive.append(d)
                if d <= 2.0:
                    linked_pairs.append(x[p] - x[o3])
    rng = np.random.default_rng(0)
    v = np.array(linked_pairs)
    noisy = [np.linalg.norm(v + rng.normal(0, s, v.shape) - rng.normal(0, s, v.shape), axis=1) for s in NOISE]
    return np.array(consecutive), np.array(gap), noisy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    p.add_argument("--markdown", required=True)
    a = p.parse_args(argv)
    records = [r for path in a.data for r in load_records(path)[0]]
    n = len(records)
    md = [f"# Noisy against experimental coordinates: calibration on {n} chains", "",
          f"`benchmarks/input_noise_calibration.py` on {', '.join(Path(d).name for d in a.data)}: every chain. "
          "Noise: Gaussian, σ Å per axis on every given atom, seeded per chain (as `reconstruct.py --noise`).", "",
          "## Median bond-length deviation per chain (`rnadiff.refine.strain`, threshold 0.1 Å)", "",
          "| input | chains | min (Å) | median | 99th pct | max |", "|---|---|---|---|---|---|"]
    rows = [("experimental, all atoms", None, 0.0), ("experimental, backbone", "backbone", 0.0)]
    rows += [(f"backbone, σ = {s} Å", "backbone", s) for s in NOISE]
    for label, kind, s in rows:
        v = bond_medians(records, kind, s)
        md.append(f"| {label} | {len(v)} | {v.min():.3f} | {np.median(v):.3f} | {np.percentile(v, 99):.3f} | {v.max():.3f} |")
    md += ["", "## Closest C1′–C1′ pair per chain (C1′-only inputs)", "",
           "| input | chains | under 3.6 Å | 1st pct (Å) | median (Å) |", "|---|---|---|---|---|"]
    for s in (0.0, 0.5, 1.0):
        v = closest_c1(records, s)
        md.append(f"| {'experimental' if s == 0 else f'σ = {s} Å'} | {len(v)} | {int((v < 3.6).sum())} "
                  f"({(v < 3.6).mean():.1%}) | {np.percentile(v, 1):.2f} | {np.median(v):.2f} |")
    cons, gap, noisy = link_distances(records)
    md += ["", "## O3′–P of consecutive residues (`rnadiff.io.breaks`: a link up to 4.0 Å, 2.0 Å across a numbering gap)", "",
           "| pairs | n | ≤ 2.0 Å | 2.0–4.0 Å | 4.0–5.5 Å | > 5.5 Å |", "|---|---|---|---|---|---|"]
    for label, v in (("numbered consecutively", cons), ("across a numbering gap", gap)):
        md.append(f"| {label} | {len(v)} | {int((v <= 2).sum())} | {int(((v > 2) & (v <= 4)).sum())} | "
                  f"{int(((v > 4) & (v <= 5.5)).sum())} | {int((v > 5.5).sum())} |")
    md += ["", "Experimental links (≤ 2.0 Å, numbered consecutively) with noise on both atoms:", "",
           "| σ (Å) | beyond 2.0 Å | beyond 4.0 Å |", "|---|---|---|"]
    for s, v in zip(NOISE, noisy):
        md.append(f"| {s} | {(v > 2).mean():.2%} | {(v > 4).mean():.3%} |")
    text = "\n".join(md) + "\n"
    print(text)
    Path(a.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
