"""`rnadiff minimize INPUT --out FILE`: OpenMM restrained relax (AMBER RNA.OL3, ε = 4r; GBn2 optional)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rnadiff.cli.evaluate import json_safe
from rnadiff.cli.overrides import accept_trailing_overrides
from rnadiff.errors import OutputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "minimize", help="energy-minimize a structure with OpenMM",
        description="Restrained energy minimization (AF2-style relax) of an RNA structure: covalent "
                    "repair of the heavy atoms (inverted sugars, O3'-P links), then AMBER RNA.OL3 with a "
                    "distance-dependent dielectric (electrostatics=reaction_field for the plain cutoff), "
                    "releasing the restraints of residues that keep "
                    "violations. Options of MinimizationConfig can be set as key=value after the "
                    "options, e.g. solvent=gbn2 (adds a final implicit-solvent pass) restraint_k=5 "
                    "cpu_threads=0 (every core, not bitwise reproducible) max_outer_iterations=2.")
    p.add_argument("input", help="input structure (PDB or mmCIF)")
    p.add_argument("--out", required=True, help="output structure (.pdb or .cif)")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--hydrogens", action="store_true", help="keep hydrogens in the output")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="MinimizationConfig overrides")
    p.set_defaults(func=run)
    accept_trailing_overrides(p)


def run(args: argparse.Namespace) -> int:
    from rnadiff.io.atomic import atomic_write_text
    from rnadiff.minimize import MinimizationConfig, minimize_file

    config = MinimizationConfig().with_overrides(list(args.overrides))
    if args.hydrogens:
        config.hydrogens = True
    report_path = Path(args.report) if args.report else None
    if report_path is not None and report_path.exists() and not args.overwrite:
        raise OutputError(f"{report_path} exists (use --overwrite to replace it)")
    for option, target in (("--out", Path(args.out)), ("--report", report_path)):
        # checked before the minimization, so that no output is written when another cannot be
        if target is not None and not target.parent.is_dir():
            why = "is not a directory" if target.parent.exists() else "does not exist"
            raise OutputError(f"{option} {target}: cannot write it ({target.parent} {why})")
    report = minimize_file(args.input, args.out, config, overwrite=args.overwrite)
    text = json.dumps(json_safe(report), indent=2)
    if report_path is not None:
        atomic_write_text(report_path, text + "\n", make_parents=False)
    a, b = report["before"], report["after"]
    print(f"minimized {args.input} -> {args.out}: E {report['energy_before_kJ_per_mol']:.0f} -> "
          f"{report['energy_after_kJ_per_mol']:.0f} kJ/mol, RMSD to start {report['rmsd_to_start']:.3f} Å, "
          f"clashes {a['clashes']} -> {b['clashes']}, chirality errors {a['chirality_errors']} -> "
          f"{b['chirality_errors']}, {report['seconds']:.1f} s")
    return 0
