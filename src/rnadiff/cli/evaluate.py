"""`rnadiff evaluate MODEL REFERENCE`: quality measures of a model against a reference, as JSON."""
from __future__ import annotations

import argparse
import json
import math

from rnadiff.metrics.report import compare_structures


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="compare a model with a reference (RMSD, lDDT, TM-score, clashes, geometry)",
        description="Print RMSD, all-atom lDDT, TM-score (C1', RNA d0), clashes per 1000 atoms, "
                    "bond/angle outliers and chirality errors as JSON.")
    p.add_argument("model", help="model structure (PDB or mmCIF)")
    p.add_argument("reference", help="reference structure (PDB or mmCIF)")
    p.add_argument("--per-residue", action="store_true", help="include per-residue lDDT")
    p.set_defaults(func=run)


def json_safe(value):
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    result = compare_structures(args.model, args.reference, include_per_residue=args.per_residue)
    print(json.dumps(json_safe(result), indent=2))
    return 0
