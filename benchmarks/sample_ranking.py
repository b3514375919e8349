"""Which of several samples to hand a user: the first draw, the most central one (the medoid), or
the ranked first (fewest asserted base pairs unformed, then the medoid).

    python benchmarks/sample_ranking.py [--data A.tar.gz B.tar.gz] [--samples 5] [--shard 1/2] --json part.json
    python benchmarks/sample_ranking.py --report part1.json part2.json --markdown table.md

On the held-out chains of `benchmarks/reconstruct.py` (same selection, input kinds and scores), each
input is refined into `--samples` samples in draw order (`postprocess.rank=false`) and every sample
is scored against the native. The table compares, per input kind and length bin, the first draw,
the medoid (least mean RMSD to the other samples), the ranked first (`rnadiff.pipeline.ranking`:
fewest of the prior's asserted pairs unformed, then the medoid; what `rnadiff refine` writes as
sample_0 since session 8), the mean over the samples (one random draw's expected score) and
the best sample (an oracle no user has).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconstruct import DEFAULT_DATA, KINDS, groups, held_out_chains, reduce_to, refine_settings, score  # noqa: E402

from rnadiff.pipeline.ranking import rank_order  # noqa: E402

SELECTORS = ("first draw", "medoid", "ranked", "mean of samples", "best (oracle)")
MEASURES = (("rmsd", "RMSD (Å)", "{:.2f}"), ("lddt", "lDDT", "{:.3f}"), ("inf_canonical", "canonical INF", "{:.2f}"))


def run(a) -> list[dict]:
    from rnadiff.chem.pairing import prior_pairs
    from rnadiff.pipeline.ranking import pairs_missed
    from rnadiff.refine import load_refinement_model, refine_structure

    chains, _, _ = held_out_chains(a.data, a.n_chains, a.shard)
    model, _ = load_refinement_model(a.checkpoint)
    settings = refine_settings(a.samples, ["postprocess.rank=false"])
    rows = []
    for r in chains:
        for kind in a.kinds:
            feats = reduce_to(r, kind)
            t0 = time.perf_counter()
            res = refine_structure(feats, model, settings)
            seconds = time.perf_counter() - t0
            rows.append({"chain": r.name, "n": r.n_token, "input": kind,
                         "scores": [score(r, feats, x, seconds) for x in res.samples],
                         "consensus_rmsd": res.consensus_rmsd.tolist(),
                         "pairs_missed": pairs_missed(res.features.layout, res.samples,
                                                      set(prior_pairs(res.features["pair_prior"])[0])).tolist()})
        print(f"  {r.name} ({r.n_token} nt) done", file=sys.stderr, flush=True)
    return rows


def pick(row: dict, selector: str, measure: str) -> float:
    values = [s[measure] for s in row["scores"]]
    if selector == "first draw":
        return values[0]
    if selector == "medoid":
        return values[int(np.argmin(row["consensus_rmsd"]))]
    if selector == "ranked":
        return values[int(rank_order(row["consensus_rmsd"], row["pairs_missed"])[0])]
    if selector == "mean of samples":
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    best = int(np.argmin([s["rmsd"] for s in row["scores"]]))  # the sample closest to the native
    return values[best]


def table(rows: list[dict]) -> str:
    out = ["| input | length | chains | selection | " + " | ".join(m[1] for m in MEASURES) + " |",
           "|---|---|---|---|" + "---|" * len(MEASURES)]
    for label, bin_label, sel in groups(rows):
        for selector in SELECTORS:
            vals = [fmt.format(np.nanmean([pick(r, selector, m) for r in sel])) for m, _, fmt in MEASURES]
            out.append(f"| {label} | {bin_label} | {len(sel)} | {selector} | " + " | ".join(vals) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    p.add_argument("--checkpoint", default=None, help="refinement checkpoint (default: the packaged one)")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--n-chains", type=int, default=40)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--shard", default="1/1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the per-sample scores here")
    p.add_argument("--report", nargs="+", help="tabulate these JSON files instead of running")
    p.add_argument("--markdown", help="write the table here")
    a = p.parse_args(argv)
    if a.report:
        rows = [row for path in a.report for row in json.loads(Path(path).read_text())]
    else:
        import torch

        torch.set_num_threads(a.threads)
        rows = run(a)
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
    md = table(rows)
    print(md)
    if a.markdown:
        Path(a.markdown).write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
