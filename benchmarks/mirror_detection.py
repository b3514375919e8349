"""Mirror-image detection (issue 18) on real dev chains and their mirror images.

    python benchmarks/mirror_detection.py --data ../shared/data/rna_dev.tar.gz [--min-length 20]

Every chain of the set's manifest with at least --min-length residues is reduced to its C1' atoms,
its P atoms, 3 beads (P, C4', N1/N9), the 12 backbone/sugar atoms, or kept all-atom; each reduction and its mirror image (reflected through a plane,
`io.mirror.reflect_structure`) goes through `io.mirror.structure_handedness`. Detection = mirrors
called left-handed; false alarm = originals called left-handed; undecidable counts as not detected.
Writes benchmarks/results/mirror_detection_dev.{md,json}.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

from rnadiff.chem.vocab import BACKBONE_ATOMS
from rnadiff.errors import RnadiffError
from rnadiff.geometry.handedness import LEFT, RIGHT, UNDECIDABLE
from rnadiff.io import read_structure
from rnadiff.io.mirror import reflect_structure, structure_handedness

MODES = {"C1' only": {"C1'"}, "P only": {"P"}, "3-bead (P, C4', N1/N9)": {"P", "C4'", "N1", "N9"},
         "backbone only": set(BACKBONE_ATOMS), "all-atom": None}
RESULTS = Path(__file__).parent / "results"


def reduce_to(structure, keep):
    """A copy with only the atoms named in `keep` (None: all); residues left empty are dropped."""
    out = copy.deepcopy(structure)
    for chain in out.chains:
        kept = []
        for r in chain.residues:
            idx = [k for k, n in enumerate(r.atom_names) if keep is None or n in keep]
            if idx:
                r.atom_names = tuple(r.atom_names[k] for k in idx)
                r.elements = tuple(r.elements[k] for k in idx)
                r.coords = r.coords[idx]
                kept.append(r)
        chain.residues = kept
    return out


def dataset_dir(data: str) -> Path:
    path = Path(data)
    if path.is_dir():
        return path
    target = Path(tempfile.mkdtemp(prefix="mirror_bench_"))
    with tarfile.open(path) as tar:
        tar.extractall(target, filter="data")
    return next(p.parent for p in target.rglob("manifest.csv"))


def measure(root: Path, min_length: int) -> dict:
    rows = [r for r in csv.DictReader(open(root / "manifest.csv")) if int(r["length"]) >= min_length]
    counts = {(m, mirrored): Counter() for m in MODES for mirrored in (False, True)}
    seconds = Counter()
    skipped = []
    for row in list(rows):
        try:
            structure = read_structure(root / row["clean_file"])
        except RnadiffError as exc:  # e.g. a residue without a template: not a chain we can judge
            skipped.append(str(exc))
            rows.remove(row)
            continue
        for mode, keep in MODES.items():
            reduced = reduce_to(structure, keep)
            for mirrored in (False, True):
                x = reflect_structure(reduced) if mirrored else reduced
                t0 = time.perf_counter()
                verdict = structure_handedness(x).verdict
                seconds[mode] += time.perf_counter() - t0
                counts[(mode, mirrored)][verdict] += 1
    table = []
    for mode in MODES:
        mir, orig = counts[(mode, True)], counts[(mode, False)]
        n = len(rows)
        table.append(dict(mode=mode, n_chains=n, detected=mir[LEFT], mirror_undecidable=mir[UNDECIDABLE],
                          mirror_called_right=mir[RIGHT], false_alarms=orig[LEFT], original_undecidable=orig[UNDECIDABLE],
                          original_right=orig[RIGHT], detection_rate=mir[LEFT] / n, false_alarm_rate=orig[LEFT] / n,
                          ms_per_chain=1000 * seconds[mode] / (2 * n)))
    return dict(min_length=min_length, n_chains=len(rows), skipped=skipped, table=table)


def markdown(result: dict, data: str) -> str:
    lines = [f"# Mirror-image detection on {result['n_chains']} dev chains >= {result['min_length']} nt",
             "", f"`python benchmarks/mirror_detection.py --data {data}` (one thread); "
             f"{len(result['skipped'])} unreadable chains skipped.", "",
             "| input | chains | mirrors detected | mirrors undecidable | mirrors called right | false alarms "
             "| originals undecidable | detection | false-alarm rate | ms/chain |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["table"]:
        lines.append(f"| {r['mode']} | {r['n_chains']} | {r['detected']} | {r['mirror_undecidable']} | "
                     f"{r['mirror_called_right']} | {r['false_alarms']} | {r['original_undecidable']} | "
                     f"{100 * r['detection_rate']:.1f}% | {100 * r['false_alarm_rate']:.1f}% | {r['ms_per_chain']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/rna_dev.tar.gz")
    parser.add_argument("--min-length", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS / "mirror_detection_dev"))
    args = parser.parse_args()
    result = measure(dataset_dir(args.data), args.min_length)
    text = markdown(result, args.data)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
