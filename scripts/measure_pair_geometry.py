"""Re-measure `rnadiff.chem.pair_geometry.PAIR_DISTANCES` and `PAIR_OFFSETS`: the cross distances
and the central H-bond atoms' offsets from the partner's ring plane of the canonical pairs that
`rnadiff.metrics.basepairs.canonical_pairs` annotates in the native training chains (held-out
chains excluded by `rnadiff.train.split.is_heldout`, the rule `rnadiff train` uses).

    OMP_NUM_THREADS=1 python3 scripts/measure_pair_geometry.py [--data A.tar.gz B.tar.gz]

Prints the tables as Python source, to paste over PAIR_DISTANCES and PAIR_OFFSETS.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from rnadiff.chem.pair_geometry import OFFSET_PLANE, pair_atom_names, pair_offset_names
from rnadiff.chem.pairing import C_GLYCOSIDE_NAMES, HBONDS, complementary_type, is_c_glycoside
from rnadiff.metrics.basepairs import canonical_pairs
from rnadiff.train.data import load_records
from rnadiff.train.split import is_heldout


def _position(layout, coords, present, token: int, name: str):
    if is_c_glycoside(layout.template_names[token]):
        name = C_GLYCOSIDE_NAMES.get(name, name)
    k = layout.atom_index(token, name)
    return None if k is None or not present[k] else coords[k]


def _offset(layout, coords, present, plane_token: int, atom_token: int, atom: str) -> float | None:
    """Signed distance (Å) of an atom from the plane of OFFSET_PLANE of another base."""
    a, b, c = (_position(layout, coords, present, plane_token, n) for n in OFFSET_PLANE)
    p = _position(layout, coords, present, atom_token, atom)
    if a is None or b is None or c is None or p is None:
        return None
    normal = np.cross(b - a, c - a)
    return float(np.dot(p - a, normal / np.linalg.norm(normal)))


def measure(records) -> dict[tuple[str, str], list[tuple[str, str, float, float, int]]]:
    """{pair type: [(first-base atom, second-base atom, mean, sd, n)]} of the cross distances, and
    {pair type: [("first" | "second" plane, atom, mean, sd, n)]} of the offsets under key "offsets"."""
    samples: dict[tuple[str, str], dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    offsets: dict[tuple[str, str], dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    seen = set()
    for r in records:
        if is_heldout(r.seq_md5, r.n_token, 0.15, 0.3) or r.seq_md5 in seen:
            continue
        seen.add(r.seq_md5)  # one chain per sequence: repeated copies would weight a structure twice
        coords = r.features["coords"].numpy().astype(np.float64)
        present = r.features["atom_present_mask"].numpy() > 0
        layout = r.layout
        for p in canonical_pairs(layout, coords, present):
            key, swapped = complementary_type(layout.parents[p.i], layout.parents[p.j])
            first, second = (p.j, p.i) if swapped else (p.i, p.j)
            for na, nb in pair_atom_names(key):
                xa = _position(layout, coords, present, first, na)
                xb = _position(layout, coords, present, second, nb)
                if xa is not None and xb is not None:
                    samples[key][(na, nb)].append(float(np.linalg.norm(xa - xb)))
            tokens = {"first": (first, second), "second": (second, first)}
            for plane, atom in pair_offset_names(key):
                h = _offset(layout, coords, present, *tokens[plane], atom)
                if h is not None:
                    offsets[key][(plane, atom)].append(h)

    def stats(table):
        return {key: [(a, b, float(np.mean(v)), float(np.std(v)), len(v)) for (a, b), v in d.items()]
                for key, d in table.items()}

    return {**stats(samples), "offsets": stats(offsets)}


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[2] / "shared/data"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=[str(root / n) for n in ("rna_dev.tar.gz", "rna_extra.tar.gz")])
    a = p.parse_args(argv)
    records = [r for path in a.data for r in load_records(path)[0]]
    table = measure(records)
    print("PAIR_DISTANCES: dict[tuple[str, str], tuple[tuple[str, str, float, float], ...]] = {")
    for key in HBONDS:
        rows = table.get(key, [])
        n = max((row[4] for row in rows), default=0)
        print(f"    # {key[0]}-{key[1]}: {n} pairs")
        print(f"    {key!r}: (")
        for na, nb, mean, sd, _ in rows:
            print(f"        ({na!r}, {nb!r}, {mean:.3f}, {sd:.3f}),")
        print("    ),")
    print("}")
    print("PAIR_OFFSETS: dict[tuple[str, str], tuple[tuple[str, str, float, float], ...]] = {")
    for key in HBONDS:
        rows = table["offsets"].get(key, [])
        print(f"    {key!r}: ({', '.join(f'({pl!r}, {atom!r}, {mean:.3f}, {sd:.3f})' for pl, atom, mean, sd, _ in rows)}),")
    print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
