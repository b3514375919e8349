"""The output gate: a refined sample that is not physically sane is never written as if it were.

A sample fails when any of these holds (the first one found is its reason):
- a coordinate is NaN or infinite;
- a given atom lies further from its input position than the stated tolerance allows
  (`given_tolerance` + `GIVEN_SLACK_A`; the finish puts them within the tolerance, so this only
  trips when something upstream broke), or, for noisy inputs (no tolerance), the given-atom RMSD
  exceeds `NOISY_GIVEN_RMSD_A`;
- a covalent bond of a residue is longer than `BOND_STRETCH` times its library length (a bond at
  3 Å instead of 1.5 Å is no model of a molecule, however it came about);
- an O3'-P link within a chain is longer than `LINK_LIMIT_A`: the C1'-C1' distance that makes an
  input's step a chain break (`io.breaks`), so no input that was read as linked asks for it;
- the radius of gyration exceeds both the input's (its given atoms) + `RG_SLACK_A` and
  `RG_FACTOR` x the compact-RNA law 5.5 Å * N^(1/3) (Hyeon & Thirumalai 2006) + `RG_SLACK_A`:
  an exploded sample, far larger than the input and than any folded RNA of that length.
A failed sample is not written; its summary.json record holds `"failed": reason`; when every
sample fails, the input fails (`GateError`) and nothing is written.
Limits are deliberately loose: the gate catches broken output, not poor models (those are what
the summary's quality numbers are for).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnadiff.errors import RnadiffError

GIVEN_SLACK_A = 0.05
NOISY_GIVEN_RMSD_A = 10.0
BOND_STRETCH = 2.0
LINK_LIMIT_A = 12.0
RG_COMPACT_A = 5.5
RG_FACTOR = 3.0
RG_SLACK_A = 20.0


class GateError(RnadiffError):
    """Every sample of an input failed the output gate."""


@dataclass(frozen=True)
class GateInput:
    """What the gate needs of one refined structure (all samples)."""

    samples: np.ndarray  # [S, N, 3]
    bonds: np.ndarray  # [B, 2] atom indices (topology.bonds)
    bond_lengths: np.ndarray  # [B] library lengths
    bond_is_link: np.ndarray  # [B] bool: O3'-P between residues
    given_coords: np.ndarray  # [G, 3] the input's given atoms
    n_residues: int
    given_rmsd: np.ndarray  # [S]
    given_max_deviation: np.ndarray  # [S]
    given_tolerance: float | None  # None: noisy input, given atoms free

    @classmethod
    def from_result(cls, result, given_tolerance: float | None) -> "GateInput":
        """From a `RefineResult` (features with layout and topology)."""
        feats = result.features
        topology = feats.topology()
        given = feats["atom_present_mask"].numpy() > 0
        return cls(samples=np.asarray(result.samples, np.float64), bonds=topology.bonds,
                   bond_lengths=np.asarray(topology.bond_lengths, np.float64),
                   bond_is_link=np.asarray(topology.bond_is_link, bool),
                   given_coords=feats["coords"].double().numpy()[given], n_residues=feats.layout.n_tokens,
                   given_rmsd=np.asarray(result.given_rmsd), given_max_deviation=np.asarray(result.given_max_deviation),
                   given_tolerance=given_tolerance)


def radius_of_gyration(x: np.ndarray) -> float:
    if len(x) == 0:
        return 0.0
    return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()))


def rg_limit(given_coords: np.ndarray, n_residues: int) -> float:
    compact = RG_FACTOR * RG_COMPACT_A * max(n_residues, 1) ** (1.0 / 3.0)
    return max(radius_of_gyration(given_coords), compact) + RG_SLACK_A


def sample_failure(g: GateInput, k: int) -> str | None:
    """Why sample k fails the gate (one phrase), or None when it passes."""
    x = g.samples[k]
    if not np.isfinite(x).all():
        return f"{int((~np.isfinite(x).all(axis=1)).sum())} atoms with non-finite coordinates"
    if g.given_tolerance is not None:
        if g.given_max_deviation[k] > g.given_tolerance + GIVEN_SLACK_A:
            return (f"a given atom moved {g.given_max_deviation[k]:.2f} Å from the input "
                    f"(tolerance {g.given_tolerance:g} Å)")
    elif g.given_rmsd[k] > NOISY_GIVEN_RMSD_A:
        return (f"given-atom RMSD {g.given_rmsd[k]:.1f} Å to the input "
                f"(limit {NOISY_GIVEN_RMSD_A:g} Å for noisy input)")
    if len(g.bonds):
        length = np.linalg.norm(x[g.bonds[:, 0]] - x[g.bonds[:, 1]], axis=1)
        inner = ~g.bond_is_link
        stretched = inner & (length > BOND_STRETCH * g.bond_lengths)
        if stretched.any():
            i = int(np.argmax(np.where(stretched, length / g.bond_lengths, 0.0)))
            return (f"exploded geometry: {int(stretched.sum())} covalent bonds over {BOND_STRETCH:g}x their length "
                    f"(worst {length[i]:.1f} Å for {g.bond_lengths[i]:.2f})")
        links = g.bond_is_link & (length > LINK_LIMIT_A)
        if links.any():
            return (f"exploded geometry: {int(links.sum())} O3'-P links longer than {LINK_LIMIT_A:g} Å "
                    f"(worst {length[g.bond_is_link].max():.1f} Å)")
    rg, limit = radius_of_gyration(x), rg_limit(g.given_coords, g.n_residues)
    if rg > limit:
        return f"exploded geometry: radius of gyration {rg:.1f} Å (limit {limit:.1f} Å for {g.n_residues} nt)"
    return None


def gate_failures(g: GateInput) -> list[str | None]:
    """Per sample: the reason it fails, or None."""
    return [sample_failure(g, k) for k in range(len(g.samples))]


__all__ = ["GateError", "GateInput", "gate_failures", "rg_limit", "radius_of_gyration", "sample_failure"]
