"""Guidance during sampling (issue 10): its cost per sampler step, and reconstruction with and without it.

    python benchmarks/guidance.py [--checkpoint PATH] [--n-chains 6] [--max-length 30] [--steps 50]
        [--kinds c1,p,backbone] [--guidance key=value ...] [--json OUT]

1. Cost: one dev chain refined with the model (or the ideal toy denoiser with --toy), timing
   seconds per sampler step with guidance off and on, plus guidance's own breakdown
   (L-BFGS time, neighbour-list builds, FK resampling).
2. Reconstruction: the held-out chains of `benchmarks/reconstruct.py` (same split and selection)
   reduced to C1'-only / P-only / backbone, refined by `rnadiff.refine.refine_structure` with the
   checkpoint and `rnadiff refine`'s settings, once plain (--no-guidance) and once with guidance
   (same seed). Table: RMSD, lDDT, clashes,
   bond/angle/link outliers, chirality errors, s/nt. The acceptance rule for making guidance
   the default: chemistry errors cut by >= half, RMSD not worse by > 0.1 Å.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rnadiff.diffusion.guidance import GuidanceConfig, RNAGuidance  # noqa: E402
from rnadiff.io import build_gemmi_structure  # noqa: E402
from rnadiff.metrics import compare_structures  # noqa: E402

CHEMISTRY = ("bond_outliers", "angle_outliers", "link_outliers", "chirality_errors", "clashes")


def parse_overrides(items: list[str]) -> dict:
    """key=value pairs (dotted keys) -> nested mapping of model.stageD.guidance overrides."""
    out: dict = {}
    for item in items:
        key, value = item.split("=", 1)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = json.loads(value) if value not in ("true", "false") else value == "true"
    return out


def refine_with(features, model, settings, guidance: RNAGuidance | None):
    """rnadiff.refine.refine_structure with (or without) sampler guidance."""
    from rnadiff.refine.core import refine_structure

    return refine_structure(features, model, settings, guidance=guidance)


def score(record, coords: np.ndarray, seconds: float) -> dict:
    model = build_gemmi_structure(record.layout, coords)
    native = build_gemmi_structure(record.layout, record.features["coords"].numpy(),
                                   atom_mask=record.features["atom_present_mask"].numpy() > 0)
    c = compare_structures(model, native)
    out = {"rmsd": c["rmsd"], "lddt": c["lddt"], "s_per_nt": seconds / record.n_token}
    out.update({k: c["model"][k] for k in CHEMISTRY})
    out["chemistry_errors"] = sum(c["model"][k] for k in CHEMISTRY if k != "link_outliers")
    return out


def guidance_for(features, cfg: GuidanceConfig) -> RNAGuidance:
    return RNAGuidance.from_features(features, cfg)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/rna_dev.tar.gz"))
    p.add_argument("--checkpoint", default=None, help="refinement checkpoint (default: the packaged one)")
    p.add_argument("--n-chains", type=int, default=6)
    p.add_argument("--max-length", type=int, default=30)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default="c1,p,backbone")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--guidance", nargs="*", default=[], help="model.stageD.guidance overrides, e.g. n_steps=10")
    p.add_argument("--cost-only", action="store_true", help="only the per-step cost on one chain")
    p.add_argument("--json", help="write per-chain results here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from reconstruct import KINDS, reduce_to  # benchmarks/reconstruct.py: same inputs and split

    from rnadiff.cli.refine import settings_from
    from rnadiff.refine import load_refinement_model
    from rnadiff.train.data import load_records, split_records

    cfg = GuidanceConfig.from_mapping({"enabled": True, **parse_overrides(a.guidance)})
    records, _ = load_records(a.data)
    _, val = split_records(records, a.val_fraction)
    chains = sorted((r for r in val if r.n_token <= a.max_length and r.features["atom_present_mask"].mean() > 0.95),
                    key=lambda r: (r.n_token, r.name))[: a.n_chains]
    model, source = load_refinement_model(a.checkpoint)
    # `rnadiff refine`'s own settings (standalone_refine config: temperature, start levels,
    # anchoring, regularization), with its default guidance taken out: "plain" is --no-guidance,
    # "guided" adds the RNAGuidance built from `--guidance` below.
    settings = dataclasses.replace(settings_from(a, []), guidance=None)
    kinds = {label: k for label, k in KINDS.items() if k in a.kinds.split(",")}
    print(f"{len(chains)} held-out chains ({min(r.n_token for r in chains)}-{max(r.n_token for r in chains)} nt), "
          f"checkpoint {source}, {a.steps} steps", file=sys.stderr)

    # --- cost per sampler step on the longest chosen chain, backbone input
    r = chains[-1]
    feats = reduce_to(r, "backbone")
    cost = {}
    for label, g in (("off", None), ("on", guidance_for(feats, cfg))):
        t0 = time.perf_counter()
        res = refine_with(feats, model, settings, g)
        wall = time.perf_counter() - t0
        cost[label] = {"s_per_step": wall / res.steps_run, "steps": res.steps_run,
                       **({} if g is None else g.stats.as_dict())}
    extra = cost["on"]["s_per_step"] - cost["off"]["s_per_step"]
    guided = cost["on"]["guided_steps"]
    print(f"\nCost on {r.name} ({r.n_token} nt, {r.features['coords'].shape[0]} atoms, {a.samples} sample(s)):")
    print(f"  s/step off {cost['off']['s_per_step']:.4f}, on {cost['on']['s_per_step']:.4f} "
          f"(+{100 * extra / cost['off']['s_per_step']:.0f}%); {guided} of {cost['on']['steps']} steps guided, "
          f"{cost['on']['guide_seconds'] / max(guided, 1):.4f} s per guided step; "
          f"{cost['on']['neighbor_builds']} neighbour builds ({cost['on']['neighbor_seconds']:.4f} s, "
          f"{cost['on']['pairs_last']} pairs)")
    if a.cost_only:
        return 0

    # --- reconstruction with / without guidance
    results: dict[tuple[str, str], list[dict]] = {}
    per_chain = []
    for r in chains:
        for label, kind in kinds.items():
            feats = reduce_to(r, kind)
            row = {"chain": r.name, "n": r.n_token, "input": label}
            for method, g in (("plain", None), ("guided", guidance_for(feats, cfg))):
                t0 = time.perf_counter()
                res = refine_with(feats, model, settings, g)
                s = score(r, res.samples[0], time.perf_counter() - t0)
                results.setdefault((label, method), []).append(s)
                row[method] = s
            per_chain.append(row)
        print(f"  {r.name} ({r.n_token} nt) done", file=sys.stderr)
    cols = ("rmsd", "lddt", "clashes", "bond_outliers", "angle_outliers", "link_outliers", "chirality_errors",
            "chemistry_errors", "s_per_nt")
    print("\n| input | method | RMSD (Å) | lDDT | clashes | bond outl. | angle outl. | link outl. | chirality err. "
          "| chem. errors | s/nt |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (label, method), rows in results.items():
        m = [np.mean([row[c] for row in rows]) for c in cols]
        print(f"| {label} | {method} | {m[0]:.2f} | {m[1]:.3f} | {m[2]:.1f} | {m[3]:.1f} | {m[4]:.1f} | {m[5]:.1f} | "
              f"{m[6]:.1f} | {m[7]:.1f} | {m[8]:.3f} |")
    plain = [row["plain"] for row in per_chain]
    guided = [row["guided"] for row in per_chain]
    chem_p, chem_g = (sum(x["chemistry_errors"] for x in rows) for rows in (plain, guided))
    d_rmsd = float(np.mean([g["rmsd"] - q["rmsd"] for g, q in zip(guided, plain)]))
    ok = chem_g <= 0.5 * chem_p and d_rmsd <= 0.1
    print(f"\nchemistry errors {chem_p} -> {chem_g} ({100 * (chem_g - chem_p) / max(chem_p, 1):+.0f}%), "
          f"mean RMSD change {d_rmsd:+.3f} Å: default-flip rule {'MET' if ok else 'NOT met'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"checkpoint": source, "config": repr(cfg), "cost": cost,
                                            "chains": per_chain}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
