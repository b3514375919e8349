"""Read RNA chains from PDB or mmCIF files (gemmi) into an `RNAStructure`.

Kept: the first model, the first alternative location, every RNA chain, standard and modified
ribonucleotides (their atoms restricted to the template vocabulary). Dropped, with a note on
`structure.notes`: other models, other altlocs, hydrogens, water, ions, ligands, protein, DNA,
atoms outside a residue's vocabulary, OP3 on a residue that does not start a chain segment.
Chain breaks (O3'-P > 2.0 Å, see `io.breaks`) are flagged as `Residue.chain_break_before`.

Every problem a user can cause raises `InputError` (or `UnknownResidueError`) naming the file.
"""
from __future__ import annotations

import gzip
import zlib
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path

import gemmi
import numpy as np

from rnadiff.chem.library import get_template
from rnadiff.chem.vocab import (
    BACKBONE_ATOMS,
    DNA_RESIDUES,
    FALLBACK_RENAMES,
    FIVE_PRIME_EXTRA_ATOM,
    RESIDUE_ALIASES,
    canonical_atom_name,
    parent_of,
    template_name_for,
)
from rnadiff.errors import InputError, UnknownResidueError
from rnadiff.io.breaks import mark_chain_breaks
from rnadiff.io.fields import check_mmcif_coordinate_fields, check_pdb_coordinate_fields
from rnadiff.io.sanity import check_chain_steps, check_residue_coordinates
from rnadiff.io.structure import Chain, Residue, RNAStructure

DEFAULT_MAX_RESIDUES = 4096
WATER_NAMES = frozenset({"HOH", "WAT", "DOD", "H2O", "TIP", "TIP3", "SOL"})
# An unknown residue with this many ribose-phosphate atom names is a nucleotide we cannot place,
# not a ligand: an error rather than a silent drop.
_NUCLEOTIDE_EVIDENCE = 3
_SNIFF_BYTES = 8192
_CONTROL_BYTES = bytes(c for c in range(32) if c not in (9, 10, 13))


def _read_text(path: Path) -> str:
    """File text; InputError for missing, empty, binary or undecodable files."""
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, not a structure file", path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"truncated or corrupt gzip file ({exc})", path) from None
    if not raw.strip():
        raise InputError("empty file", path)
    head = raw[:_SNIFF_BYTES]
    if b"\x00" in head:
        raise InputError("binary file, not PDB or mmCIF text", path)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("binary file, not PDB or mmCIF text", path) from None
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if control > len(head) // 100:
        raise InputError("binary file, not PDB or mmCIF text", path)
    return text


def _is_mmcif(path: Path, text: str) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".cif", ".mmcif")):
        return True
    if name.endswith((".pdb", ".ent")):
        return False
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            return s.startswith("data_")
    return False


def _parse(path: Path, text: str) -> gemmi.Structure:
    try:
        if _is_mmcif(path, text):
            doc = gemmi.cif.read_string(text)
            if len(doc) == 0:
                raise InputError("mmCIF file without a data block", path)
            check_mmcif_coordinate_fields(doc[0], path)
            st = gemmi.make_structure_from_block(doc[0])
        else:
            check_pdb_coordinate_fields(text, path)
            st = gemmi.read_pdb_string(text)
    except InputError:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:
        # gemmi rejects short (truncated) coordinate lines and broken mmCIF loops here.
        raise InputError(f"cannot parse structure, truncated or malformed ({exc})", path) from None
    return st


def _classify(name: str, atom_names: set[str]) -> str:
    """'rna', 'water', 'dna', 'protein', 'unknown-nucleotide' or 'other' (ion or ligand)."""
    if name in WATER_NAMES:
        return "water"
    if template_name_for(name) is not None:
        return "rna"
    if name in DNA_RESIDUES:
        return "dna"
    info = gemmi.find_tabulated_residue(name)
    if info is not None:
        if info.is_amino_acid():
            return "protein"
        if info.kind == gemmi.ResidueKind.DNA:
            return "dna"
        if info.kind == gemmi.ResidueKind.HOH:
            return "water"
    backbone = {canonical_atom_name(a) for a in atom_names} & set(BACKBONE_ATOMS)
    if len(backbone) >= _NUCLEOTIDE_EVIDENCE:
        return "unknown-nucleotide"
    return "other"


class _Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped_residues: Counter[str] = Counter()
        self.dropped_atoms: Counter[str] = Counter()
        self.hydrogens = 0
        self.altlocs = 0

    def finish(self) -> list[str]:
        out = list(self.lines)
        if self.altlocs:
            out.append(f"alternative locations present: kept the first, dropped {self.altlocs} atoms")
        if self.hydrogens:
            out.append(f"dropped {self.hydrogens} hydrogen atoms")
        for kind, n in sorted(self.dropped_residues.items()):
            out.append(f"dropped {n} {kind} residues")
        if self.dropped_atoms:
            listed = ", ".join(f"{k} x{n}" for k, n in sorted(self.dropped_atoms.items()))
            out.append(f"dropped atoms outside the residue vocabulary: {listed}")
        return out


@lru_cache(maxsize=None)
def _name_map(resname: str) -> tuple[str, dict[str, tuple[str, int] | None]]:
    """Per residue name: its template and a cache raw atom name -> (canonical name, template
    index), None for a name outside the vocabulary. Filled lazily; keeps the per-atom loop cheap."""
    return template_name_for(resname), {}


def _lookup(resname: str, raw: str) -> tuple[str, int] | None:
    template_name, cache = _name_map(resname)
    if raw not in cache:
        renames = FALLBACK_RENAMES.get(resname, {})
        name = renames[raw] if raw in renames else canonical_atom_name(raw)
        template = get_template(template_name)
        cache[raw] = (name, template.index[name]) if name is not None and template.has(name) else None
    return cache[raw]


_MISSING = object()


def _residue_atoms(path: Path, res: gemmi.Residue, resname: str, notes: _Notes):
    """Canonical (names, coords) of the heavy atoms of one RNA residue in template order."""
    template_name, cache = _name_map(resname)
    template = get_template(template_name)
    found: dict[int, list[float]] = {}
    for atom in res:
        raw = atom.name
        hit = cache.get(raw, _MISSING)
        if hit is _MISSING:
            hit = _lookup(resname, raw)
        if hit is None:
            if atom.is_hydrogen():
                notes.hydrogens += 1
            else:
                notes.dropped_atoms[f"{resname}:{raw}"] += 1
            continue
        k = hit[1]
        if k in found:
            # Rare path: a second atom with this name. Another altloc of it is skipped (the first
            # one read is kept); the same altloc twice is a duplicate.
            first = next(a for a in res if _lookup(resname, a.name) == hit)
            if first.altloc != atom.altloc and (first.has_altloc() or atom.has_altloc()):
                notes.altlocs += 1
                continue
            raise InputError(
                f"duplicate atom {hit[0]} in residue {res.name} {res.seqid.num}{res.seqid.icode.strip()}", path
            )
        found[k] = atom.pos.tolist()
    order = sorted(found)
    names = tuple(template.atom_names[k] for k in order)
    coords = np.array([found[k] for k in order], dtype=np.float64).reshape(-1, 3)
    return template_name, template, names, coords


def _rna_residue(path: Path, gchain, gres, notes: _Notes) -> Residue | None:
    """The RNA residue of one gemmi residue, or None (dropped with a note); errors for unknown
    nucleotides and impossible coordinates."""
    raw_name = gres.name.strip().upper()
    kind = "rna" if template_name_for(raw_name) is not None else _classify(raw_name, {a.name for a in gres})
    if kind == "unknown-nucleotide":
        raise UnknownResidueError(
            f"unknown residue name {raw_name!r} at {gchain.name}{gres.seqid.num}: a nucleotide "
            "that is neither standard nor a known modified ribonucleotide",
            path,
        )
    if kind != "rna":
        notes.dropped_residues["water" if kind == "water" else kind] += 1
        return None
    resname = RESIDUE_ALIASES.get(raw_name, raw_name)
    template_name, template, names, coords = _residue_atoms(path, gres, resname, notes)
    if not names:
        notes.dropped_residues["RNA (no heavy atoms)"] += 1
        return None
    residue = Residue(
        chain_id=gchain.name, seq_num=gres.seqid.num, ins_code=gres.seqid.icode.strip(), name=resname,
        template_name=template_name, parent=parent_of(resname) or template.parent, atom_names=names,
        coords=coords, elements=tuple(template.elements[template.index[n]] for n in names),
    )
    check_residue_coordinates(residue, path)
    return residue


def _read_chains(path: Path, model, notes: _Notes, limit: int) -> dict[str, Chain]:
    chains: dict[str, Chain] = {}
    seen_keys: set[tuple[str, int, str]] = set()
    for gchain in model:
        for gres in gchain:
            residue = _rna_residue(path, gchain, gres, notes)
            if residue is None:
                continue
            key = residue.key
            if key in seen_keys and all(a.has_altloc() for a in gres):
                notes.altlocs += len(gres)  # an alternative residue (microheterogeneity)
                continue
            if key in seen_keys:
                raise InputError(f"duplicate residue {gres.name.strip().upper()} {key[0]}{key[1]}{key[2]}", path)
            seen_keys.add(key)
            if len(seen_keys) > limit:
                raise InputError(f"more than {limit} RNA residues (max_sequence_length)", path)
            chains.setdefault(gchain.name, Chain(gchain.name)).residues.append(residue)
    return chains


def read_structure(path: str | os.PathLike, max_residues: int | None = None) -> RNAStructure:
    """Read the RNA chains of a PDB or mmCIF file (optionally gzipped).

    max_residues: the largest number of RNA residues accepted (default 4096, the model's
    max_sequence_length); more raises InputError.
    """
    path = Path(path)
    limit = DEFAULT_MAX_RESIDUES if max_residues is None else int(max_residues)
    text = _read_text(path)
    st = _parse(path, text)
    notes = _Notes()
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise InputError("no atoms found (empty, truncated or not a PDB/mmCIF file)", path)
    if len(st) > 1:
        notes.lines.append(f"file has {len(st)} models; used the first")
    chains = _read_chains(path, st[0], notes, limit)
    if not chains:
        dropped = ", ".join(f"{n} {k}" for k, n in notes.dropped_residues.items()) or "nothing usable"
        raise InputError(f"no RNA residues found ({dropped})", path)
    for chain in chains.values():
        check_chain_steps(chain, path)

    n_breaks = sum(mark_chain_breaks(c.residues) for c in chains.values())
    if n_breaks:
        notes.lines.append(f"{n_breaks} chain breaks (O3'-P > 2.0 Å or numbering gaps); not linked")
    _drop_internal_op3(chains.values(), notes)
    return RNAStructure(chains=list(chains.values()), notes=notes.finish(), source=str(path))


def _drop_internal_op3(chains, notes: _Notes) -> None:
    """OP3 belongs to a 5'-phosphate only: keep it on a residue that starts a chain segment."""
    for chain in chains:
        for i, r in enumerate(chain.residues):
            starts_segment = i == 0 or r.chain_break_before
            if FIVE_PRIME_EXTRA_ATOM in r.atom_names and not starts_segment:
                keep = [k for k, n in enumerate(r.atom_names) if n != FIVE_PRIME_EXTRA_ATOM]
                r.atom_names = tuple(r.atom_names[k] for k in keep)
                r.elements = tuple(r.elements[k] for k in keep)
                r.coords = r.coords[keep]
                notes.dropped_atoms[f"{r.name}:OP3 (internal residue)"] += 1


__all__ = ["read_structure", "DEFAULT_MAX_RESIDUES"]
