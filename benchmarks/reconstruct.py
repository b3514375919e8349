"""All-atom reconstruction from partial inputs on held-out chains of every length: checkpoints vs baseline.

    python benchmarks/reconstruct.py --data ../shared/data/rna_dev.tar.gz ../shared/data/rna_extra.tar.gz \
        --checkpoint new=default --checkpoint old=/tmp/old_ckpt [--n-chains 64] [--kinds c1 p three_bead backbone] \
        [--shard 1/2] --json part1.json
    python benchmarks/reconstruct.py --merge part1.json part2.json --markdown table.md

Chains: held out by sequence under the rule `rnadiff train` uses (`rnadiff.train.split.is_heldout`:
the 15% split plus 30% of the sequences over 100 nt), ≥ 95% of their atoms resolved; every held-out
chain over 100 nt, then chains evenly spread over the shorter ones up to `--n-chains` (64 or more:
every held-out chain, one per sequence: 33 of ≤ 50 nt, 20 of 51–100, 11 over 100). (The 15%
split is the one every earlier checkpoint was held out from; the chains over 100 nt outside it were
in the first checkpoint's training set, which favours the old checkpoint there: `seen_by_v1` marks
them in the JSON.) Each native is reduced to the given atoms and rebuilt by
- each checkpoint, through `rnadiff refine`'s own settings (sample 0 of `--samples`, seed 0: with
  several samples the most central one, as `rnadiff refine` writes it first);
- the baseline: ideal nucleotides of the monomer library placed on the given atoms (Kabsch on
  ≥ 3 given atoms of a residue; for C1′/P only, oriented in a local frame of the neighbours).
Scores against the native: all-heavy-atom RMSD, all-atom lDDT, canonical base-pair INF
(`rnadiff.metrics.basepairs`), non-canonical pair and stacking INF (`rnadiff.metrics.validation`), clashes per 1000 atoms, chirality errors, the largest distance of a
given atom from its input position, and seconds. Tables: means per input kind × length bin.
`--noise S` displaces every given atom by Gaussian noise of S Å per axis (an upstream model's error;
the same draw for every method), `--noisy-input` refines as `rnadiff refine --noisy-input`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from rnadiff.chem.features import Features, features_from_layout
from rnadiff.chem.pairing import token_atom_index
from rnadiff.io import build_gemmi_structure
from rnadiff.io.breaks import breaks_link
from rnadiff.metrics import compare_structures
from rnadiff.metrics.basepairs import canonical_pairs, interaction_network_fidelity, pair_set
from rnadiff.train.data import load_records
from rnadiff.train.partial import mode_mask
from rnadiff.train.split import is_heldout, is_validation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reconstruct_baseline import baseline, fit_orientation  # noqa: E402

KINDS = {"c1": "C1′ only", "p": "P only", "three_bead": "3-bead (P, C4′, N1/N9)", "backbone": "backbone only"}
BINS = ((0, 50, "≤ 50 nt"), (51, 100, "51–100 nt"), (101, 10**6, "> 100 nt"))
COLUMNS = ("rmsd", "lddt", "inf_canonical", "inf_non_canonical", "inf_stacking", "clashes_per_1000", "chirality_errors",
           "given_max_dev", "seconds")


def reduce_to(record, kind: str, noise: float = 0.0) -> Features:
    """The native's features with only the atoms of `kind` given (same layout as the native), each
    given atom displaced by Gaussian noise of `noise` Å per axis when asked (an upstream model's
    error; seeded by the chain's sequence, so every method sees the same input). With noise, the
    chain breaks are those the reader would find in a file of the noisy given atoms."""
    f = dict(record.features)
    layout = record.layout
    given = mode_mask(kind, f, torch.Generator().manual_seed(0)) & (f["atom_present_mask"] > 0)
    coords = f["coords"]
    if noise > 0:
        g = torch.Generator().manual_seed(int(record.seq_md5[:8], 16))
        coords = coords + noise * torch.randn(coords.shape, generator=g, dtype=coords.dtype)
        breaks = noisy_breaks(f, layout, coords.numpy(), given.numpy())
        if not np.array_equal(breaks, layout.chain_break_before):
            layout = dataclasses.replace(layout, chain_break_before=breaks)
            f = dict(features_from_layout(layout, f["coords"].numpy(), f["atom_present_mask"].numpy() > 0).tensors)
    f["atom_present_mask"] = given.float()
    f["coords"] = torch.where(given[:, None], coords, torch.zeros_like(coords))
    return Features(tensors=f, layout=layout, notes=[])


def noisy_breaks(features, layout, coords: np.ndarray, given: np.ndarray) -> np.ndarray:
    """[N_tok] bool chain_break_before as `rnadiff.io.breaks` reads a file holding only the given
    atoms at `coords`: its rule on each consecutive pair of one chain."""
    index = {k: a for k, a in token_atom_index(features, ("O3'", "P", "C1'")).items() if given[a]}

    def dist(t0: int, a0: str, t1: int, a1: str) -> float | None:
        i, j = index.get((t0, a0)), index.get((t1, a1))
        return None if i is None or j is None else float(np.linalg.norm(coords[i] - coords[j]))

    out = np.zeros(layout.n_tokens, bool)
    for t in range(1, layout.n_tokens):
        if layout.asym_id[t] != layout.asym_id[t - 1]:
            continue
        gap = int(layout.res_nums[t]) - int(layout.res_nums[t - 1]) > 1
        out[t] = breaks_link(dist(t - 1, "O3'", t, "P"), gap, dist(t - 1, "C1'", t, "C1'"))
    return out


def select_chains(records, n_chains: int) -> list:
    held = [r for r in records if is_heldout(r.seq_md5, r.n_token, 0.15, 0.3)
            and float(r.features["atom_present_mask"].mean()) > 0.95]
    held = sorted({r.seq_md5: r for r in held}.values(), key=lambda r: (r.n_token, r.name))  # one per sequence
    long = [r for r in held if r.n_token > 100]
    short = [r for r in held if r.n_token <= 100]
    k = max(0, n_chains - len(long))
    picks = [short[int(i)] for i in np.linspace(0, len(short) - 1, k)] if k and short else []
    return sorted({id(r): r for r in picks + long}.values(), key=lambda r: (r.n_token, r.name))


@lru_cache(maxsize=None)
def native_pairs(record) -> frozenset:
    """The native's canonical pairs, annotated once per chain (every input kind and method reuses them)."""
    present = record.features["atom_present_mask"].numpy() > 0
    return frozenset(pair_set(canonical_pairs(record.layout, record.features["coords"].numpy(), present)))


def score(record, feats: Features, coords: np.ndarray, seconds: float) -> dict:
    """Scores of one model against the native. coords [N_atom, 3] in the native's layout; NaN rows
    are atoms the model lacks (a tool that rebuilds only the residues its input file names): left
    out of RMSD, clashes and the given-atom deviation, while lDDT counts their contacts as lost and
    INF their pairs as missed."""
    native_x = record.features["coords"].numpy()
    present = record.features["atom_present_mask"].numpy() > 0
    built = ~np.isnan(coords).any(-1)
    coords = np.where(built[:, None], coords, 0.0)
    model = build_gemmi_structure(record.layout, coords, atom_mask=None if built.all() else built)
    native = build_gemmi_structure(record.layout, native_x, atom_mask=present)
    c = compare_structures(model, native)
    given = (feats["atom_present_mask"].numpy() > 0) & built
    dev = np.linalg.norm(coords[given] - feats["coords"].numpy()[given], axis=-1)
    ref_pairs = native_pairs(record)
    model_pairs = pair_set(canonical_pairs(record.layout, coords, built))
    # INF is undefined for a native without canonical pairs (nothing to recover): NaN, left out of means.
    inf = interaction_network_fidelity(model_pairs, ref_pairs) if ref_pairs else float("nan")
    # Non-canonical pairs (residue pair and Leontis–Westhof class must match) and stacking, from
    # the validation report compare_structures already made; NaN likewise where the native has none.
    val = c["validation"]
    other = {kind: val["inf"][kind] if val["reference"][count] else float("nan")
             for kind, count in (("non_canonical", "non_canonical_pairs"), ("stacking", "stacking"))}
    return {"rmsd": c["rmsd"], "lddt": c["lddt"], "inf_canonical": inf,
            "inf_non_canonical": other["non_canonical"], "inf_stacking": other["stacking"],
            "n_pairs_native": len(ref_pairs), "n_pairs_model": len(model_pairs),
            "clashes_per_1000": c["model"]["clashes_per_1000_atoms"],
            "chirality_errors": c["model"].get("chirality_errors", float("nan")),
            "given_max_dev": float(dev.max()) if len(dev) else 0.0, "seconds": seconds}


def refine_settings(samples: int, overrides: list[str], noisy_input: bool = False):
    """Exactly the settings `rnadiff refine --samples N [--noisy-input] [overrides]` would use."""
    from rnadiff.cli import refine as cli_refine

    parser = argparse.ArgumentParser()
    cli_refine.register(parser.add_subparsers())
    flags = ["--noisy-input"] if noisy_input else []
    args = parser.parse_args(["refine", "input.pdb", "--out", "unused", "--samples", str(samples), *flags])
    return cli_refine.settings_from(args, list(overrides))


def held_out_chains(data: list[str], n_chains: int, shard: str) -> tuple[list, set, dict]:
    """This shard's held-out chains, the ids of those from the first data path (rna_dev: the only
    set the first (v1) checkpoint trained on) and the baseline's orientation fits per input kind."""
    per_path = [load_records(path)[0] for path in data]
    records = [r for recs in per_path for r in recs]
    from_first = {id(r) for r in per_path[0]}
    k, n = (int(v) for v in shard.split("/"))
    chains = select_chains(records, n_chains)[k - 1::n]
    train = [r for r in records if not is_heldout(r.seq_md5, r.n_token, 0.15, 0.3)]
    orient = {kind: fit_orientation(train[:80], kind) for kind in ("c1", "p")}
    return chains, from_first, orient


def run(a) -> dict:
    from rnadiff.refine import load_refinement_model, refine_structure

    chains, from_first, orient = held_out_chains(a.data, a.n_chains, a.shard)
    models = {}
    for spec in a.checkpoint:
        name, _, path = spec.partition("=")
        models[name] = load_refinement_model(None if path == "default" else path)
    settings = refine_settings(a.samples, a.overrides, a.noisy_input)
    print(f"{len(chains)} held-out chains ({min(r.n_token for r in chains)}-{max(r.n_token for r in chains)} nt), "
          f"checkpoints {[(k2, v[1]) for k2, v in models.items()]}", file=sys.stderr)
    rows = []
    for r in chains:
        for kind in a.kinds:
            feats = reduce_to(r, kind, a.noise)
            row = {"chain": r.name, "n": r.n_token, "input": kind,
                   "seen_by_v1": id(r) in from_first and not is_validation(r.seq_md5, 0.15)}
            t0 = time.perf_counter()
            base = baseline(feats, kind, orient.get(kind))
            row["baseline"] = score(r, feats, base, time.perf_counter() - t0)
            for name, (model, _) in models.items():
                t0 = time.perf_counter()
                res = refine_structure(feats, model, settings)
                row[name] = score(r, feats, res.samples[0], time.perf_counter() - t0)
            rows.append(row)
        print(f"  {r.name} ({r.n_token} nt) done", file=sys.stderr, flush=True)
    flags = " ".join([*(["--noisy-input"] if a.noisy_input else []), *a.overrides])
    return {"checkpoints": {k2: v[1] + (f" with {flags}" if flags else "") for k2, v in models.items()},
            "overrides": a.overrides, "noise": a.noise, "noisy_input": a.noisy_input, "rows": rows}


def merge(parts: list[dict]) -> dict:
    """One result from shards and/or runs of different checkpoints on the same chains: rows are
    matched by (chain, input), their methods combined. Parts made from different inputs (another
    --noise) or naming one method twice for the same row are refused."""
    noise = {float(part.get("noise", 0.0)) for part in parts}
    if len(noise) > 1:
        raise SystemExit(f"merge: the parts were run on different inputs (--noise {sorted(noise)})")
    rows: dict[tuple[str, str], dict] = {}
    checkpoints: dict[str, str] = {}
    for part in parts:
        checkpoints.update(part["checkpoints"])
        for row in part["rows"]:
            merged = rows.setdefault((row["chain"], row["input"]), {})
            twice = set(merged) & set(row) - {"chain", "n", "input", "seen_by_v1", "baseline"}
            if twice:
                raise SystemExit(f"merge: {sorted(twice)} twice for {row['chain']} {row['input']}: name the runs apart "
                                 "(--checkpoint NAME=PATH)")
            merged.update(row)
    return {"checkpoints": checkpoints, "overrides": parts[0]["overrides"], "noise": noise.pop(),
            "rows": list(rows.values())}


DEFAULT_DATA = [str(Path(__file__).resolve().parents[2] / "shared/data" / n) for n in ("rna_dev.tar.gz", "rna_extra.tar.gz")]


def report(result: dict, md: str, json_path: str | None, markdown_path: str | None) -> None:
    """Print the table and write the per-chain results and the table where asked."""
    print(md)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1))
    if markdown_path:
        Path(markdown_path).write_text(md + "\n")


def groups(rows: list[dict]):
    """(input label, length-bin label, rows) per input kind and length bin (then all lengths), non-empty only."""
    for kind, label in KINDS.items():
        for lo, hi, bin_label in (*BINS, (0, 10**6, "all")):
            sel = [r for r in rows if r["input"] == kind and lo <= r["n"] <= hi]
            if sel:
                yield label, bin_label, sel


def table(rows: list[dict], methods: list[str]) -> str:
    out = ["| input | length | chains | method | RMSD (Å) | lDDT | canonical INF | non-canonical INF | stacking INF "
           "| clashes/1000 | chirality errors | given-atom max dev (Å) | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, bin_label, sel in groups(rows):
        for m in methods:
            # Rows of older result files lack the later columns: NaN there.
            vals = [np.nanmean([r[m].get(c, np.nan) for r in sel]) for c in COLUMNS]
            out.append(f"| {label} | {bin_label} | {len(sel)} | {m} | {vals[0]:.2f} | {vals[1]:.3f} | {vals[2]:.2f} | "
                       f"{vals[3]:.2f} | {vals[4]:.2f} | {vals[5]:.1f} | {vals[6]:.1f} | {vals[7]:.2f} | {vals[8]:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    p.add_argument("--checkpoint", action="append", default=[],
                   help="NAME=PATH (or NAME=default for the packaged checkpoint); repeat to compare")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--n-chains", type=int, default=40)
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--shard", default="1/1", help="K/N: every N-th chain from the K-th (run shards in parallel)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--noise", type=float, default=0.0, metavar="ANGSTROM",
                   help="Gaussian noise (per axis) on the given atoms, as an upstream predictor's error")
    p.add_argument("--noisy-input", action="store_true", help="refine as `rnadiff refine --noisy-input`")
    p.add_argument("--json", help="write the per-chain results here")
    p.add_argument("--merge", nargs="+", help="merge shard JSON files instead of running")
    p.add_argument("--markdown", help="write the table here")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="refine config overrides, as for `rnadiff refine`")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.merge:
        result = merge([json.loads(Path(f).read_text()) for f in a.merge])
    else:
        if not a.checkpoint:
            a.checkpoint = ["model=default"]
        result = run(a)
    methods = ["baseline", *result["checkpoints"]]
    report(result, table(result["rows"], methods), a.json, a.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
