"""Canonical RNA heavy-atom vocabulary, residue-name tables and Protenix's restype order.

One vocabulary is used everywhere (reader, featurizer, topology, writer): a residue's atoms are
the 12 backbone/sugar atoms in `BACKBONE_ATOMS` order, then its base atoms, then (only for a
residue that carries a 5'-phosphate) OP3 last. OP3 goes last so that atom k of every residue of a
given kind has the same name whether or not the phosphate is there.
"""
from __future__ import annotations

import gemmi

BACKBONE_ATOMS: tuple[str, ...] = (
    "P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'",
)
PHOSPHATE_ATOMS: tuple[str, ...] = ("P", "OP1", "OP2")
FIVE_PRIME_EXTRA_ATOM = "OP3"
# Atoms whose ideal geometry (and chirality) is that of the ribose-phosphate, used when a
# modified residue's own file has the sugar wrong (5MU, 7MG, H2U upstream defects).
RIBOSE_ATOMS: frozenset[str] = frozenset(BACKBONE_ATOMS) | {FIVE_PRIME_EXTRA_ATOM}
SUGAR_CHIRAL_CENTRES: frozenset[str] = frozenset({"C1'", "C2'", "C3'", "C4'"})

BASE_ATOMS: dict[str, tuple[str, ...]] = {
    "A": ("N9", "C8", "N7", "C5", "C6", "N6", "N1", "C2", "N3", "C4"),
    "G": ("N9", "C8", "N7", "C5", "C6", "O6", "N1", "C2", "N2", "N3", "C4"),
    "C": ("N1", "C2", "O2", "N3", "C4", "N4", "C5", "C6"),
    "U": ("N1", "C2", "O2", "N3", "C4", "O4", "C5", "C6"),
    "N": (),  # unknown nucleotide: backbone only
}
# The base atom bonded to C1' (N9 of purines, N1 of pyrimidines).
GLYCOSIDIC_N: dict[str, str] = {"A": "N9", "G": "N9", "C": "N1", "U": "N1"}
STANDARD_RESIDUES: tuple[str, ...] = ("A", "C", "G", "U")
PARENTS: tuple[str, ...] = ("A", "C", "G", "U", "N")

# Protenix's restype one-hot (32): protein 0-19, UNK 20, RNA A 21 G 22 C 23 U 24 N 25,
# DNA DA 26 DG 27 DC 28 DT 29 DN 30, gap 31.
N_RESTYPE = 32
RESTYPE_INDEX: dict[str, int] = {"A": 21, "G": 22, "C": 23, "U": 24, "N": 25}

# Modified ribonucleotides the monomer library has templates for, with the parent that gives
# their restype. I -> A follows the PDB chemical component dictionary (gemmi's table says 'a').
LIBRARY_MODIFIED: dict[str, str] = {
    "1MA": "A", "2MA": "A", "6MZ": "A", "I": "A",
    "1MG": "G", "2MG": "G", "7MG": "G", "M2G": "G", "OMG": "G",
    "5MC": "C", "OMC": "C",
    "4SU": "U", "5MU": "U", "H2U": "U", "OMU": "U", "PSU": "U",
}
# Modified nucleotides with no template here: they are read onto their parent's vocabulary (atoms
# the parent lacks are dropped with a note). Parents from the PDB chemical component dictionary.
FALLBACK_MODIFIED: dict[str, str] = {
    "5BU": "U", "IU": "U", "70U": "U", "2MU": "U", "4OC": "C", "1SC": "C", "BVC": "C",
    "CCC": "C", "CBV": "C", "2SG": "G", "YG": "G", "YYG": "G", "G7M": "G", "GTP": "G",
    "7TA": "A", "T6A": "A", "12A": "A", "RIA": "A", "MIA": "A", "A2M": "A", "MA6": "A",
    "ATP": "A", "UR3": "U", "UMS": "U",
}
# Residues whose own nucleotide sugar uses other names; mapped before the parent vocabulary
# applies (RIA: 2'-O-ribosyladenosine names its nucleotide sugar *A and the extra ribose *').
FALLBACK_RENAMES: dict[str, dict[str, str | None]] = {
    "RIA": {
        "O5A": "O5'", "C5A": "C5'", "C4A": "C4'", "C3A": "C3'", "O3A": "O3'", "C2A": "C2'",
        "O2A": "O2'", "C1A": "C1'", "C1'": None, "O1'": None, "C2'": None, "O2'": None,
        "C3'": None, "O3'": None, "C4'": None, "C5'": None, "O5'": None,
    },
}
# Force-field style names some programs write.
RESIDUE_ALIASES: dict[str, str] = {
    **{f"R{b}": b for b in STANDARD_RESIDUES},
    **{f"R{b}5": b for b in STANDARD_RESIDUES},
    **{f"R{b}3": b for b in STANDARD_RESIDUES},
    **{f"{b}5": b for b in STANDARD_RESIDUES},
    **{f"{b}3": b for b in STANDARD_RESIDUES},
    "ADE": "A", "CYT": "C", "GUA": "G", "URA": "U", "URI": "U",
}
DNA_RESIDUES: frozenset[str] = frozenset({"DA", "DC", "DG", "DT", "DU", "DI", "DN", "T"})

_OLD_ATOM_NAMES: dict[str, str] = {"O1P": "OP1", "O2P": "OP2", "O3P": "OP3"}


def canonical_atom_name(name: str) -> str:
    """Map legacy atom names to the current PDB ones: O1P/O2P/O3P -> OP1/OP2/OP3, `*` -> `'`."""
    name = name.strip().replace("*", "'")
    return _OLD_ATOM_NAMES.get(name, name)


def native_atom_name(resname: str, name: str) -> str:
    """Inverse of the fallback renames: the name a canonical atom has in `resname`'s own
    nomenclature (RIA's C1' is written C1A), so written files read back identically."""
    for raw, canon in FALLBACK_RENAMES.get(resname, {}).items():
        if canon == name:
            return raw
    return name


def parent_of(resname: str) -> str | None:
    """The parent ('A'|'C'|'G'|'U'|'N') of a ribonucleotide name, or None when not an RNA residue.

    Looks at the standard names, the library's and the fallback table's modified residues, the
    aliases, then gemmi's table of PDB components (RNA kind with a lowercase parent letter).
    """
    name = resname.strip().upper()
    if name in STANDARD_RESIDUES or name == "N":
        return name
    if name in LIBRARY_MODIFIED:
        return LIBRARY_MODIFIED[name]
    if name in FALLBACK_MODIFIED:
        return FALLBACK_MODIFIED[name]
    if name in RESIDUE_ALIASES:
        return RESIDUE_ALIASES[name]
    info = gemmi.find_tabulated_residue(name)
    if info is not None and info.kind == gemmi.ResidueKind.RNA:
        letter = info.one_letter_code.upper()
        if letter in STANDARD_RESIDUES:
            return letter
    return None


def template_name_for(resname: str) -> str | None:
    """The template a residue name is featurized with: its own if the library has it, else its
    parent's (None when the name is not a known ribonucleotide)."""
    name = resname.strip().upper()
    name = RESIDUE_ALIASES.get(name, name)
    if name in STANDARD_RESIDUES or name == "N" or name in LIBRARY_MODIFIED:
        return name
    return parent_of(name)
