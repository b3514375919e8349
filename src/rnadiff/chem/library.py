"""Residue templates (heavy atoms only) parsed from the bundled CCP4 monomer-library CIFs.

One API serves features, losses, metrics, guidance and minimization:

    t = get_template("G")
    t.atom_names            # ("P", "OP1", ..., "C4", "OP3")  canonical order, OP3 last
    t.ideal_coords          # float32 [n, 3]   (not centred; the featurizer centres per residue)
    t.bonds, t.bond_lengths, t.bond_esds         # int64 [nb, 2], float32 [nb] (Å)
    t.angles, t.angle_values, t.angle_esds       # int64 [na, 3], float32 [na] (degrees)
    t.chirals, t.chiral_signs                    # int64 [nc, 4] (centre, a, b, c), int8 [nc]
    t.planes, t.plane_esds                       # tuple of int64 arrays, tuple of float32 arrays

Signed volume convention: sign((a - centre) · ((b - centre) × (c - centre))), i.e. the CCP4
`volume_sign`; chiral centres marked `both` (the phosphorus) carry no restraint and are left out.

Data: `rnadiff/data/monomers/*.cif` (copied from the CCP4 Monomer Library, LGPL-3.0; see SOURCE.md
there). Nothing is read from outside the installed package.

Upstream defects handled here (docs/design.md §6): 5MU, 7MG and H2U carry inverted sugar stereochemistry,
so their ribose-phosphate ideal coordinates and sugar chiral signs are taken from the parent and the
base is superposed onto the parent's base; 6MZ's old names (O1P/O2P/O3P) are mapped. PSU keeps its
own connectivity (C1'-C5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import gemmi
import numpy as np

from rnadiff.chem.regularize import regularize_coords
from rnadiff.chem.vocab import (
    BACKBONE_ATOMS,
    BASE_ATOMS,
    FIVE_PRIME_EXTRA_ATOM,
    LIBRARY_MODIFIED,
    RIBOSE_ATOMS,
    STANDARD_RESIDUES,
    SUGAR_CHIRAL_CENTRES,
    canonical_atom_name,
)
from rnadiff.errors import UnknownResidueError
from rnadiff.geometry.superpose import kabsch
from rnadiff.geometry.volumes import signed_volumes

# The O3'(i)-P(i+1) link (CCP4 link `p`, data/monomers/link_p.cif); a test checks these against it.
LINK_BOND_LENGTH: float = 1.607
LINK_BOND_ESD: float = 0.010
# (atom, residue offset) triples: offset 0 = residue i (the 3' side of the link), 1 = residue i+1.
LINK_ANGLES: tuple[tuple[tuple[str, int], tuple[str, int], tuple[str, int], float, float], ...] = (
    (("C3'", 0), ("O3'", 0), ("P", 1), 121.082, 1.50),
    (("OP1", 1), ("P", 1), ("O3'", 0), 109.493, 3.00),
    (("OP2", 1), ("P", 1), ("O3'", 0), 109.493, 3.00),
    (("O5'", 1), ("P", 1), ("O3'", 0), 100.661, 3.00),
)

# The monomer files describe a free 5'-phosphate (PO3 with OP3), whose OP1-P-OP2 angle (112.9°)
# is wrong inside a chain, where the two non-bridging oxygens open to ~119.6° (Parkinson et al.
# 1996, Acta Cryst D52:57). Applied to every residue whose P is linked to the previous residue.
POLYMER_ANGLE_OVERRIDES: dict[tuple[str, str, str], tuple[float, float]] = {
    ("OP1", "P", "OP2"): (119.6, 1.5), ("OP2", "P", "OP1"): (119.6, 1.5)}

# Upstream files whose ribose stereochemistry is wrong; their sugar comes from the parent.
RIBOSE_FROM_PARENT: frozenset[str] = frozenset({"5MU", "7MG", "H2U"})

MONOMER_PACKAGE = "rnadiff"
MONOMER_SUBDIR = "data/monomers"


@dataclass(frozen=True, eq=False)
class ResidueTemplate:
    """Heavy-atom template of one residue kind; all index arrays refer to `atom_names`."""

    name: str
    parent: str
    atom_names: tuple[str, ...]
    elements: tuple[str, ...]
    atomic_numbers: np.ndarray  # int64 [n]
    ideal_coords: np.ndarray  # float32 [n, 3]
    charges: np.ndarray  # float32 [n], formal charges as in the library (OP2/OP3 -1)
    bonds: np.ndarray  # int64 [nb, 2]
    bond_lengths: np.ndarray  # float32 [nb]
    bond_esds: np.ndarray  # float32 [nb]
    angles: np.ndarray  # int64 [na, 3], vertex in the middle
    angle_values: np.ndarray  # float32 [na], degrees
    angle_esds: np.ndarray  # float32 [na], degrees
    chirals: np.ndarray  # int64 [nc, 4]: centre, a, b, c
    chiral_signs: np.ndarray  # int8 [nc], +1 / -1
    planes: tuple[np.ndarray, ...]  # each int64 [k >= 4]
    plane_esds: tuple[np.ndarray, ...]  # each float32 [k], Å
    index: dict[str, int] = field(repr=False, default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return len(self.atom_names)

    def has(self, atom_name: str) -> bool:
        return atom_name in self.index

    def indices(self, names) -> np.ndarray:
        """int64 [k]: template indices of the given atom names (KeyError for a foreign name)."""
        return np.fromiter((self.index[n] for n in names), dtype=np.int64)

    def residue_atom_names(self, five_prime_phosphate: bool = False, has_phosphate: bool = True) -> tuple[str, ...]:
        """The canonical atom list of one residue in a chain.

        OP3 appears only on a residue carrying a 5'-phosphate; `has_phosphate=False` (a 5' residue
        without P) removes P/OP1/OP2.
        """
        names = self.atom_names
        if not five_prime_phosphate:
            names = tuple(n for n in names if n != FIVE_PRIME_EXTRA_ATOM)
        if not has_phosphate:
            names = tuple(n for n in names if n not in ("P", "OP1", "OP2", FIVE_PRIME_EXTRA_ATOM))
        return names


def _monomer_path(filename: str):
    return resources.files(MONOMER_PACKAGE).joinpath(MONOMER_SUBDIR).joinpath(filename)


def monomer_dir():
    """The bundled monomer folder (a Traversable inside the installed package)."""
    return resources.files(MONOMER_PACKAGE).joinpath(MONOMER_SUBDIR)


def _read_block(name: str) -> gemmi.cif.Block:
    path = _monomer_path(f"{name}.cif")
    if not path.is_file():
        raise UnknownResidueError(f"no monomer template for residue {name!r}")
    doc = gemmi.cif.read_string(path.read_text())
    block = doc.find_block(f"comp_{name}")
    if block is None:
        raise UnknownResidueError(f"monomer file for {name!r} has no data_comp_{name} block")
    return block


def _atom_order(cif_names: list[str], parent: str) -> list[str]:
    """Backbone in canonical order, then the parent's base atoms present, then the rest in file
    order, OP3 last."""
    present = set(cif_names)
    order = [n for n in BACKBONE_ATOMS if n in present]
    order += [n for n in BASE_ATOMS[parent] if n in present and n not in order]
    order += [n for n in cif_names if n not in order and n != FIVE_PRIME_EXTRA_ATOM]
    if FIVE_PRIME_EXTRA_ATOM in present:
        order.append(FIVE_PRIME_EXTRA_ATOM)
    return order


def _heavy_atoms(block) -> list[tuple[str, str, float, tuple[float, float, float]]]:
    """(name, element, formal charge, ideal xyz) of every non-hydrogen atom of a monomer block."""
    raw = []
    for row in block.find("_chem_comp_atom.", ["atom_id", "type_symbol", "charge", "x", "y", "z"]):
        element = row.str(1).strip()
        if element.upper() in ("H", "D"):
            continue
        charge = row.str(2)
        raw.append((
            canonical_atom_name(row.str(0)),
            element.capitalize(),
            float(charge) if charge not in ("", ".", "?") else 0.0,
            (float(row.str(3)), float(row.str(4)), float(row.str(5))),
        ))
    return raw


def _restraints(block, category: str, atom_cols: list[str], value_cols: list[str], ids
                ) -> tuple[list[list[int]], list[list[float]]]:
    """Rows of a restraint category whose atoms are all heavy template atoms: (atom index lists,
    one value list per value column)."""
    idx: list[list[int]] = []
    values: list[list[float]] = [[] for _ in value_cols]
    for row in block.find(category, [*atom_cols, *value_cols]):
        atoms = ids(*(row.str(k) for k in range(len(atom_cols))))
        if atoms is None:
            continue
        idx.append(atoms)
        for k in range(len(value_cols)):
            values[k].append(float(row.str(len(atom_cols) + k)))
    return idx, values


def _chirals(block, ids) -> tuple[list[list[int]], list[int]]:
    chirals, signs = [], []
    for row in block.find("_chem_comp_chir.", ["atom_id_centre", "atom_id_1", "atom_id_2", "atom_id_3", "volume_sign"]):
        sign = row.str(4).strip().lower()
        quad = ids(row.str(0), row.str(1), row.str(2), row.str(3))
        if quad is None or sign not in ("positive", "negative"):
            continue  # 'both' (phosphorus) is not a stereocentre restraint
        chirals.append(quad)
        signs.append(1 if sign == "positive" else -1)
    return chirals, signs


def _planes(block, index: dict[str, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    planes: dict[str, tuple[list[int], list[float]]] = {}
    for row in block.find("_chem_comp_plane_atom.", ["plane_id", "atom_id", "dist_esd"]):
        i = index.get(canonical_atom_name(row.str(1)))
        if i is not None:
            entry = planes.setdefault(row.str(0), ([], []))
            entry[0].append(i)
            entry[1].append(float(row.str(2)))
    return [(np.array(a, np.int64), np.array(e, np.float32)) for a, e in planes.values() if len(a) >= 4]


def _parse(name: str, parent: str) -> ResidueTemplate:
    block = _read_block(name)
    raw = _heavy_atoms(block)
    by_name = {r[0]: r for r in raw}
    names = _atom_order([r[0] for r in raw], parent)
    index = {n: i for i, n in enumerate(names)}

    def ids(*cols: str) -> list[int] | None:
        out = [index.get(canonical_atom_name(c)) for c in cols]
        return None if any(o is None for o in out) else out

    bonds, (blen, besd) = _restraints(block, "_chem_comp_bond.", ["atom_id_1", "atom_id_2"],
                                      ["value_dist", "value_dist_esd"], ids)
    angles, (aval, aesd) = _restraints(block, "_chem_comp_angle.", ["atom_id_1", "atom_id_2", "atom_id_3"],
                                       ["value_angle", "value_angle_esd"], ids)
    chirals, csign = _chirals(block, ids)
    plane_list = _planes(block, index)
    coords = np.array([by_name[n][3] for n in names], dtype=np.float64)
    elements = tuple(by_name[n][1] for n in names)
    return ResidueTemplate(
        name=name,
        parent=parent,
        atom_names=tuple(names),
        elements=elements,
        atomic_numbers=np.array([gemmi.Element(e).atomic_number for e in elements], np.int64),
        ideal_coords=coords.astype(np.float32),
        charges=np.array([by_name[n][2] for n in names], np.float32),
        bonds=np.array(bonds, np.int64).reshape(-1, 2),
        bond_lengths=np.array(blen, np.float32),
        bond_esds=np.array(besd, np.float32),
        angles=np.array(angles, np.int64).reshape(-1, 3),
        angle_values=np.array(aval, np.float32),
        angle_esds=np.array(aesd, np.float32),
        chirals=np.array(chirals, np.int64).reshape(-1, 4),
        chiral_signs=np.array(csign, np.int8),
        planes=tuple(p[0] for p in plane_list),
        plane_esds=tuple(p[1] for p in plane_list),
        index=index,
    )


def _with_parent_ribose(t: ResidueTemplate, p: ResidueTemplate) -> ResidueTemplate:
    """Replace the ribose-phosphate coordinates and sugar chiralities of `t` by the parent's.

    The base (every non-ribose atom) is moved rigidly so that the base atoms shared with the
    parent land on the parent's base, which keeps the glycosidic geometry of the parent.
    """
    coords = t.ideal_coords.astype(np.float64).copy()
    base = [n for n in t.atom_names if n not in RIBOSE_ATOMS]
    shared = [n for n in base if p.has(n)]
    r, tr = kabsch(coords[t.indices(shared)], p.ideal_coords[p.indices(shared)].astype(np.float64))
    bi = t.indices(base)
    coords[bi] = coords[bi] @ r.T + tr
    for n in t.atom_names:
        if n in RIBOSE_ATOMS and p.has(n):
            coords[t.index[n]] = p.ideal_coords[p.index[n]]
    # Sugar chiral restraints: the parent's definitions (same atom names around the sugar).
    keep = [i for i, c in enumerate(t.chirals) if t.atom_names[c[0]] not in SUGAR_CHIRAL_CENTRES]
    chirals = [t.chirals[i] for i in keep]
    signs = [int(t.chiral_signs[i]) for i in keep]
    for c, s in zip(p.chirals, p.chiral_signs):
        if p.atom_names[c[0]] in SUGAR_CHIRAL_CENTRES:
            chirals.append(t.indices(p.atom_names[j] for j in c))
            signs.append(int(s))
    return ResidueTemplate(
        **{
            **{f: getattr(t, f) for f in t.__dataclass_fields__},
            "ideal_coords": coords.astype(np.float32),
            "chirals": np.array(chirals, np.int64).reshape(-1, 4),
            "chiral_signs": np.array(signs, np.int8),
        }
    )


# Every template's regularised ideal coordinates, computed once by scripts/regularize_monomers.py
# (a test checks them against a fresh computation): regularising in each process cost ~0.05 s per
# residue name, 0.2 s for A/C/G/U and 0.9 s with every modification.
REGULARIZED_FILE = "regularized_coords.npz"


@lru_cache(maxsize=1)
def _shipped_regularized() -> dict[str, np.ndarray]:
    """{residue name: coords [n, 3]} and {name + ".names": atom names [n]} from REGULARIZED_FILE."""
    path = _monomer_path(REGULARIZED_FILE)
    if not path.is_file():
        return {}
    with path.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _regularize(t: ResidueTemplate, shipped: bool = True) -> ResidueTemplate:
    """Ideal coordinates polished against the template's own restraints (chem/regularize.py):
    the shipped result when its atom names match the template's, computed otherwise.

    Chirality is kept: the start is on the right side and the moves (~0.1 Å) are far too small
    to pass through a planar configuration; a check falls back to the input if it ever did.
    """
    stored = _shipped_regularized() if shipped else {}
    if t.name in stored and tuple(stored[t.name + ".names"]) == t.atom_names:
        new = stored[t.name]
    else:
        new = regularize_coords(
            t.ideal_coords, t.bonds, t.bond_lengths, t.bond_esds, t.angles, t.angle_values, t.angle_esds,
            t.planes, t.plane_esds,
        )
        if np.any(np.sign(signed_volumes(new, t.chirals)) != t.chiral_signs):
            return t
    return ResidueTemplate(**{**{f: getattr(t, f) for f in t.__dataclass_fields__}, "ideal_coords": new.astype(np.float32)})


def regularized_coords(shipped: bool = True) -> dict[str, np.ndarray]:
    """{name: coords} and {name + ".names": atom names} of every template with a CIF of its own
    (all but 'N'), the content of REGULARIZED_FILE; shipped=False computes each afresh."""
    out: dict[str, np.ndarray] = {}
    for name in known_template_names():
        if name == "N":
            continue
        t = _regularize(_unregularized(name), shipped=shipped)
        out[name], out[name + ".names"] = t.ideal_coords, np.array(t.atom_names)
    return out


def _backbone_only(a: ResidueTemplate) -> ResidueTemplate:
    """Template 'N' (unknown base): A's ribose-phosphate without the base."""
    keep = [i for i, n in enumerate(a.atom_names) if n in RIBOSE_ATOMS]
    remap = -np.ones(a.n_atoms, np.int64)
    remap[keep] = np.arange(len(keep))

    def sub(rows: np.ndarray, *values: np.ndarray):
        ok = (remap[rows] >= 0).all(axis=1) if len(rows) else np.zeros(0, bool)
        return (remap[rows[ok]],) + tuple(v[ok] for v in values)

    bonds, bl, be = sub(a.bonds, a.bond_lengths, a.bond_esds)
    angles, av, ae = sub(a.angles, a.angle_values, a.angle_esds)
    chirals, cs = sub(a.chirals, a.chiral_signs)
    names = tuple(a.atom_names[i] for i in keep)
    return ResidueTemplate(
        name="N", parent="N", atom_names=names, elements=tuple(a.elements[i] for i in keep),
        atomic_numbers=a.atomic_numbers[keep], ideal_coords=a.ideal_coords[keep], charges=a.charges[keep],
        bonds=bonds, bond_lengths=bl, bond_esds=be, angles=angles, angle_values=av, angle_esds=ae,
        chirals=chirals, chiral_signs=cs, planes=(), plane_esds=(),
        index={n: i for i, n in enumerate(names)},
    )


def known_template_names() -> tuple[str, ...]:
    """Every residue name `get_template` accepts: A C G U, N and the 16 library modifications."""
    return (*STANDARD_RESIDUES, "N", *sorted(LIBRARY_MODIFIED))


def _unregularized(name: str) -> ResidueTemplate:
    """The template of a standard or library-modified name as parsed, with the parent's ribose
    where the library's own is defective (RIBOSE_FROM_PARENT)."""
    if name in STANDARD_RESIDUES:
        return _parse(name, name)
    parent = LIBRARY_MODIFIED[name]
    t = _parse(name, parent)
    return _with_parent_ribose(t, get_template(parent)) if name in RIBOSE_FROM_PARENT else t


@lru_cache(maxsize=None)
def get_template(resname: str) -> ResidueTemplate:
    """The heavy-atom template of a residue name (standard, 'N' or library-modified).

    Raises UnknownResidueError for any other name; map fallback modifications to their parent
    first (`rnadiff.chem.vocab.template_name_for`).
    """
    name = resname.strip().upper()
    if name == "N":
        return _backbone_only(get_template("A"))
    if name in STANDARD_RESIDUES or name in LIBRARY_MODIFIED:
        return _regularize(_unregularized(name))
    raise UnknownResidueError(f"unknown residue name {resname!r}: no template in the monomer library")
