"""Agreement of rnadiff's base-pair / stacking annotator with RNApolis on dev chains (issue 18).

    python benchmarks/annotation_agreement.py [--data /tmp/data/rna_dev] [--n 24]

Needs RNApolis' `annotator` on PATH (pip install rnapolis; MIT). For every n-th chain of the
manifest with 20–200 nt and >= 95% of its atoms, both annotate the same clean file; counted per
interaction (residue pair): precision and recall of rnadiff against RNApolis for all base pairs,
the Leontis–Westhof class on pairs both found, non-canonical pairs with their class, canonical
pairs (RNApolis cWW with Saenger XIX/XX/XXVIII) and stacking. Writes
benchmarks/results/annotation_agreement.{md,json}.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.composition import split_rna
from rnadiff.metrics.validation import annotate

RESULTS = Path(__file__).parent / "results"
CANONICAL_SAENGER = {"XIX", "XX", "XXVIII"}
_RES = re.compile(r"^(?P<chain>[^.]+)\.(?P<name>.*?)(?P<num>-?\d+)(?:\^(?P<icode>\w))?$")


def rnapolis_annotation(path: Path, workdir: Path) -> dict[str, set]:
    out = workdir / (path.stem + ".csv")
    if not out.exists():  # --cache keeps RNApolis' output between runs
        subprocess.run(["annotator", "-c", str(out), str(path)], check=True, capture_output=True)
    ann = {"pairs": set(), "classed": set(), "canonical": set(), "stacking": set()}
    for row in csv.DictReader(out.open()):
        a, b = (_key(row["nt1"]), _key(row["nt2"]))
        lw = row["classification-1"]
        if b < a:
            a, b, lw = b, a, lw[0] + lw[2] + lw[1] if len(lw) == 3 else lw
        if row["type"] == "base pair":
            ann["pairs"].add((a, b))
            ann["classed"].add((a, b, lw))
            if lw == "cWW" and row["classification-2"] in CANONICAL_SAENGER:
                ann["canonical"].add((a, b))
        elif row["type"] == "stacking":
            ann["stacking"].add((a, b))
    return ann


def _key(text: str) -> tuple[str, int, str]:
    m = _RES.match(text)
    if m is None:
        raise ValueError(f"cannot parse RNApolis residue {text!r}")
    return m["chain"], int(m["num"]), m["icode"] or ""


def ours(path: Path) -> dict[str, set]:
    table, _ = split_rna(AtomTable.from_file(path).heavy())
    ann = annotate(table)
    k = ann.nts.keys
    classed = {(k[i], k[j], "cWW") for i, j, _ in ann.canonical}
    classed |= {(k[i], k[j], lw) for i, j, lw in ann.non_canonical}
    return {"pairs": {(a, b) for a, b, _ in classed}, "classed": classed,
            "canonical": {(k[i], k[j]) for i, j, _ in ann.canonical},
            "stacking": {(k[i], k[j]) for i, j in ann.stacking}}


def _pr(found: int, predicted: int, reference: int) -> dict:
    return {"tp": found, "n_rnadiff": predicted, "n_rnapolis": reference,
            "precision": round(found / predicted, 4) if predicted else None,
            "recall": round(found / reference, 4) if reference else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/data/rna_dev")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--cache", help="folder for RNApolis' CSV output (default: a temporary one)")
    args = ap.parse_args()
    data = Path(args.data)
    rows = [r for r in csv.DictReader((data / "manifest.csv").open())
            if 20 <= int(r["length"]) <= 200 and float(r["frac_complete"]) >= 0.95]
    chosen = rows[:: max(1, len(rows) // args.n)][: args.n]
    totals = {k: [0, 0, 0] for k in ("pairs", "canonical", "non_canonical", "stacking")}
    class_agree = class_both = 0
    seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.cache or tmp
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for r in chosen:
            path = data / r["clean_file"]
            ref = rnapolis_annotation(path, Path(tmp))
            t0 = time.perf_counter()
            mine = ours(path)
            seconds += time.perf_counter() - t0
            sets = {"pairs": (mine["pairs"], ref["pairs"]), "canonical": (mine["canonical"], ref["canonical"]),
                    "stacking": (mine["stacking"], ref["stacking"]),
                    "non_canonical": ({p for p in mine["classed"] if p[:2] not in mine["canonical"]},
                                      {p for p in ref["classed"] if p[:2] not in ref["canonical"]})}
            for kind, (a, b) in sets.items():
                totals[kind][0] += len(a & b)
                totals[kind][1] += len(a)
                totals[kind][2] += len(b)
            lw_mine = {p[:2]: p[2] for p in mine["classed"]}
            for p in ref["classed"]:
                if p[:2] in lw_mine:
                    class_both += 1
                    class_agree += lw_mine[p[:2]] == p[2]
    result = {"n_chains": len(chosen), "chains": [r["clean_file"] for r in chosen],
              **{k: _pr(*v) for k, v in totals.items()},
              "lw_class_agreement": round(class_agree / class_both, 4) if class_both else None,
              "lw_pairs_compared": class_both, "rnadiff_seconds_total": round(seconds, 2)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "annotation_agreement.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| interaction | rnadiff | RNApolis | both | precision | recall |", "|---|---|---|---|---|---|"]
    for k in totals:
        v = result[k]
        lines.append(f"| {k} | {v['n_rnadiff']} | {v['n_rnapolis']} | {v['tp']} | {v['precision']} | {v['recall']} |")
    lines.append(f"\nLeontis–Westhof class agreement on pairs both found: {result['lw_class_agreement']} "
                 f"({class_both} pairs); {len(chosen)} dev chains, rnadiff {result['rnadiff_seconds_total']} s total.")
    (RESULTS / "annotation_agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
