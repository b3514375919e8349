"""`rnadiff evaluate MODEL REFERENCE`: quality measures of a model against a reference, as JSON."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rnadiff.errors import ConfigError, OutputError

KEYS = """\
JSON keys (stable; all scores are on the RNA only):
  rmsd, rmsd_no_superposition     heavy-atom RMSD (Å) with / without Kabsch superposition
  n_matched_atoms, n_reference_atoms   atoms matched by chain, number, insertion code, name
  lddt, lddt_pairs, lddt_missing_atoms  all-atom lDDT (15 Å, 0.5/1/2/4 Å)
  tm_score, tm_d0, tm_length      TM-score on C1' atoms with the RNA d0
  model                           the model's own quality: n_atoms, n_residues, clashes,
                                  clashes_per_1000_atoms, bond/link/angle outliers, chirality
                                  errors, residues_without_template, left_out
  model.left_out, reference_left_out   what was not scored: residues by kind (protein, dna,
                                  ions, ligands, water), heavy atoms, total_residues
  validation.model                base pairs and more of the model: canonical_pairs (cWW G-C,
                                  A-U, G.U), non_canonical_pairs (+ non_canonical_by_class,
                                  Leontis-Westhof), stacking, pucker (C3'-endo / C2'-endo / other
                                  from the pseudorotation phase), pucker_outliers (delta vs the
                                  P-perp test), backbone_torsion_outliers (alpha, gamma, delta,
                                  epsilon, zeta), and the lists base_pairs, stacked,
                                  pucker_outlier_residues, backbone_outlier_residues
  validation.reference            the same counts for the reference (no lists)
  validation.inf                  interaction network fidelity, sqrt(PPV*sensitivity), of the
                                  model vs the reference: canonical, non_canonical (class must
                                  match), stacking, all_pairs, all
  lddt_per_residue, per_residue   with --per-residue: residues, deviation (Å, after global
                                  superposition), spread (model B-factor = sample spread, Å), lddt
Non-finite numbers are written as null."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        # The help line must equal cli/main.py's placeholder for this command (tested).
        "evaluate", help="compare a model with a reference (RMSD, lDDT, TM-score, clashes, geometry)",
        description="Compare the RNA of MODEL with the RNA of REFERENCE and print a JSON report: "
                    "RMSD, all-atom lDDT, TM-score (C1', RNA d0), clashes, bond/angle outliers, "
                    "chirality, base pairs and stacking with INF, sugar pucker and backbone "
                    "outliers. Protein, DNA, ions, ligands and water are left out and counted.",
        epilog=KEYS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model structure (PDB or mmCIF)")
    p.add_argument("reference", help="reference structure (PDB or mmCIF)")
    p.add_argument("--per-residue", action="store_true",
                   help="include per-residue lDDT, deviation and sample spread")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw per-residue deviation, lDDT and confidence (sample spread) to a PNG")
    p.add_argument("--no-validation", action="store_true",
                   help="skip the base-pair / stacking / pucker report (faster)")
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


def _check_plot_target(path: str) -> None:
    """Refuse a bad --plot target before any work is done."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ConfigError(f"--plot {path}: the plot is a PNG, give a file name ending in .png")
    if target.is_dir():
        raise OutputError(f"--plot {path}: is a directory")
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'rnadiff[plot]'") from exc


def run(args: argparse.Namespace) -> int:
    from rnadiff.metrics.report import compare_structures

    if args.plot:
        _check_plot_target(args.plot)
    result = compare_structures(args.model, args.reference,
                                include_per_residue=args.per_residue or bool(args.plot),
                                validation=not args.no_validation)
    if args.plot:
        from rnadiff.metrics.plot import plot_per_residue

        title = (f"{Path(args.model).name} vs {Path(args.reference).name}: RMSD {result['rmsd']:.2f} Å, "
                 f"lDDT {result['lddt']:.3f}, TM {result['tm_score']:.3f}")
        try:
            plot_per_residue(result["per_residue"], args.plot, title)
        except OSError as exc:
            raise OutputError(f"--plot {args.plot}: cannot write ({exc.strerror or exc})") from exc
        if not args.per_residue:
            result.pop("per_residue"), result.pop("lddt_per_residue")
    print(json.dumps(json_safe(result), indent=2))
    return 0
