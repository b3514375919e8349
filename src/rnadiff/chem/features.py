"""Protenix-encoded input features of an RNA structure (docs/design.md §4).

`featurize(structure)` returns a `Features` mapping (str -> torch.Tensor) over the FULL canonical
atom layout of every residue (what the model must output), with the atoms present in the input as
partial coordinates. Unbatched; `collate_features` adds the batch dim.

Atom level (N_atom):
  ref_pos               float32 [N_atom, 3]   template ideal coords, centred per residue
  ref_charge            float32 [N_atom]      formal charge (0 for RNA atoms, see below)
  ref_mask              float32 [N_atom]      1 for every real atom
  ref_element           float32 [N_atom, 128] one-hot of atomic number - 1
  ref_atom_name_chars   float32 [N_atom, 4, 64] one-hot of ord(c) - 32, name padded to 4
  ref_space_uid         int64   [N_atom]      residue (token) index: one conformer per residue
  atom_to_token_idx     int64   [N_atom]
  atom_present_mask     float32 [N_atom]      1 where the input gave the atom
  coords                float32 [N_atom, 3]   input coordinates, 0 where absent (never NaN)
Token level (N_tok):
  residue_index         int64 [N_tok]  1-based position in the chain; jumps by the file's
                                       numbering gap (at least 2) at a chain break
  token_index           int64 [N_tok]  0..N_tok-1
  asym_id, entity_id, sym_id int64 [N_tok]  0-based; identical residue-name sequences share an
                                       entity; sym_id counts copies within an entity
  restype               float32 [N_tok, 32] one-hot, Protenix order (RNA A 21 G 22 C 23 U 24 N 25)
  profile               float32 [N_tok, 32] = restype (single sequence, no MSA)
  deletion_mean         float32 [N_tok]  0 (single sequence, no MSA)
  is_protein, is_rna, is_dna, is_ligand int64 [N_tok]
  chain_break_before    bool  [N_tok]  True: no O3'-P link to the previous token of the chain
  five_prime_phosphate  bool  [N_tok]  True: the residue carries OP3 (a 5'-phosphate)

ref_charge: Protenix takes formal charges from the PDB chemical component dictionary, where the
nucleotide phosphate is neutral; the monomer library's -1 on OP2/OP3 (kept on the templates) is
therefore not used as a feature.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from rnadiff.chem.layout import AtomLayout, ResidueSpec, build_layout, residue_layout
from rnadiff.chem.library import get_template
from rnadiff.chem.topology import Topology, build_topology
from rnadiff.chem.vocab import (
    BACKBONE_ATOMS,
    FIVE_PRIME_EXTRA_ATOM,
    GLYCOSIDIC_N,
    N_RESTYPE,
    PHOSPHATE_ATOMS,
    RESTYPE_INDEX,
    parent_of,
    template_name_for,
)
from rnadiff.errors import InputError, UnknownResidueError

log = logging.getLogger(__name__)

N_ELEMENT = 128
N_NAME_CHARS = 4
N_CHAR_CLASSES = 64
DEFAULT_MAX_SEQUENCE_LENGTH = 4096
# Feature keys by level, used by collation to know which dimension to pad.
ATOM_FEATURES = (
    "ref_pos", "ref_charge", "ref_mask", "ref_element", "ref_atom_name_chars", "ref_space_uid",
    "atom_to_token_idx", "atom_present_mask", "coords",
)
TOKEN_FEATURES = (
    "residue_index", "token_index", "asym_id", "entity_id", "sym_id", "restype", "profile",
    "deletion_mean", "is_protein", "is_rna", "is_dna", "is_ligand", "chain_break_before",
    "five_prime_phosphate",
)


@dataclass(eq=False)
class Features(Mapping):
    """Feature tensors (a read-only mapping) plus the atom layout they index."""

    tensors: dict[str, torch.Tensor]
    layout: AtomLayout
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def as_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors)

    def topology(self) -> Topology:
        return build_topology(self.layout)


def name_char_codes(name: str) -> list[int]:
    """ord(c) - 32 of the name padded to 4 characters (space -> 0)."""
    if len(name) > N_NAME_CHARS:
        raise ValueError(f"atom name {name!r} longer than {N_NAME_CHARS} characters")
    return [ord(c) - 32 for c in name.ljust(N_NAME_CHARS)]


# One integer per atom name: the name's character codes read as base-64 digits (first character
# lowest), so that "which atoms are called C1'" is one integer comparison on a [N] tensor.
def atom_name_code(name: str) -> int:
    """The integer code of an atom name, as `atom_name_codes` gives it for a featurized atom."""
    return sum(c * N_CHAR_CLASSES**k for k, c in enumerate(name_char_codes(name)))


def atom_name_codes(ref_atom_name_chars: torch.Tensor) -> torch.Tensor:
    """[*b, N, 4, 64] one-hot name characters (`ref_atom_name_chars`) -> [*b, N] int64 codes
    (0 for padding atoms, whose one-hot rows are all zero)."""
    chars = ref_atom_name_chars.argmax(-1).long()
    weights = torch.tensor([N_CHAR_CLASSES**k for k in range(chars.shape[-1])], dtype=torch.long,
                           device=chars.device)
    return (chars * weights).sum(-1)


BACKBONE_NAME_CODES = tuple(atom_name_code(n) for n in (*BACKBONE_ATOMS, FIVE_PRIME_EXTRA_ATOM))


def glycosidic_n_mask(features: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """[N_atom] bool: each nucleotide's glycosidic N, as vocab.GLYCOSIDIC_N names it (N9 of the
    purines A and G, N1 of every other residue type)."""
    codes = atom_name_codes(features["ref_atom_name_chars"])
    restype = features["restype"].argmax(-1)[features["atom_to_token_idx"].long()]
    purine = (restype == RESTYPE_INDEX["A"]) | (restype == RESTYPE_INDEX["G"])
    return torch.where(purine, codes == atom_name_code(GLYCOSIDIC_N["A"]), codes == atom_name_code(GLYCOSIDIC_N["C"]))


def backbone_atom_mask(codes: torch.Tensor) -> torch.Tensor:
    """[*] bool: which atom name codes (`atom_name_codes`) name a backbone/sugar atom (OP3 included)."""
    return torch.isin(codes, torch.tensor(BACKBONE_NAME_CODES, dtype=codes.dtype, device=codes.device))


def _feature_charges(template) -> np.ndarray:
    charges = template.charges.copy()
    for n in ("OP1", "OP2", FIVE_PRIME_EXTRA_ATOM):
        if template.has(n):
            charges[template.index[n]] = 0.0
    return charges


def _atom_tables(layout: AtomLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-atom ideal coords [N,3], atomic numbers [N], charges [N], name codes [N,4], gathered
    from one concatenated table of the templates the layout uses."""
    names = sorted(set(layout.template_names))
    offsets, coords, z, q, chars = {}, [], [], [], []
    total = 0
    for n in names:
        t = get_template(n)
        offsets[n] = total
        total += t.n_atoms
        coords.append(t.ideal_coords)
        z.append(t.atomic_numbers)
        q.append(_feature_charges(t))
        chars.append(np.array([name_char_codes(a) for a in t.atom_names], np.int64))
    token_offset = np.array([offsets[n] for n in layout.template_names], np.int64)
    vid = token_offset[layout.atom_to_token] + layout.template_atom_idx
    return np.concatenate(coords)[vid], np.concatenate(z)[vid], np.concatenate(q)[vid], np.concatenate(chars)[vid]


def _one_hot(index: np.ndarray, n_classes: int) -> torch.Tensor:
    """float32 one-hot [*index.shape, n_classes].

    Built in numpy: np.zeros gets lazily zeroed pages from calloc, whereas torch.zeros memsets
    them; on a busy CPU that made torch's one_hot/zeros 15x slower and the largest cost of
    featurization (ref_atom_name_chars is 1 KiB per atom).
    """
    flat = np.ascontiguousarray(index, dtype=np.int64).ravel()
    out = np.zeros((flat.size, n_classes), np.float32)
    out[np.arange(flat.size), flat] = 1.0
    return torch.from_numpy(out.reshape(*np.shape(index), n_classes))


def _centre_per_token(x: np.ndarray, atom_to_token: np.ndarray, n_tok: int) -> np.ndarray:
    counts = np.bincount(atom_to_token, minlength=n_tok).astype(np.float64)
    sums = np.stack([np.bincount(atom_to_token, weights=x[:, k], minlength=n_tok) for k in range(3)], -1)
    means = sums / np.maximum(counts, 1)[:, None]
    return x - means[atom_to_token]


def _residue_index(layout: AtomLayout) -> np.ndarray:
    out = np.ones(layout.n_tokens, np.int64)
    for i in range(1, layout.n_tokens):
        if layout.asym_id[i] != layout.asym_id[i - 1]:
            continue
        step = 1
        if layout.chain_break_before[i]:
            step = max(2, int(layout.res_nums[i] - layout.res_nums[i - 1]))
        out[i] = out[i - 1] + step
    return out


def _entities(layout: AtomLayout) -> tuple[np.ndarray, np.ndarray]:
    """entity_id, sym_id per token: chains with identical residue-name sequences share an entity."""
    seqs: dict[int, list[str]] = {}
    for a, name in zip(layout.asym_id.tolist(), layout.resnames):
        seqs.setdefault(a, []).append(name)
    entity_of_seq: dict[tuple[str, ...], int] = {}
    chain_entity, chain_sym, copies = {}, {}, {}
    for a in sorted(seqs):
        e = entity_of_seq.setdefault(tuple(seqs[a]), len(entity_of_seq))
        chain_entity[a] = e
        chain_sym[a] = copies.get(e, 0)
        copies[e] = chain_sym[a] + 1
    ent = np.array([chain_entity[a] for a in layout.asym_id.tolist()], np.int64)
    sym = np.array([chain_sym[a] for a in layout.asym_id.tolist()], np.int64)
    return ent, sym


def features_from_layout(
    layout: AtomLayout,
    coords: np.ndarray | None = None,
    present: np.ndarray | None = None,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    notes: list[str] | None = None,
) -> Features:
    """Features of a layout with optional partial coordinates [N_atom, 3] and mask [N_atom]."""
    if layout.n_tokens == 0:
        raise InputError("no residues to featurize")
    if layout.n_tokens > max_sequence_length:
        raise InputError(f"{layout.n_tokens} residues, more than max_sequence_length={max_sequence_length}")
    n_atom, n_tok = layout.n_atoms, layout.n_tokens
    if coords is None:
        coords = np.zeros((n_atom, 3), np.float32)
        present = np.zeros(n_atom, bool)
    coords = np.asarray(coords, np.float64)
    present = np.ones(n_atom, bool) if present is None else np.asarray(present, bool)
    if coords.shape != (n_atom, 3) or present.shape != (n_atom,):
        raise InputError(f"partial coordinates {coords.shape} / mask {present.shape} do not match {n_atom} atoms")
    if not np.isfinite(coords[present]).all():
        raise InputError("non-finite (NaN/inf) partial coordinates")
    coords = np.where(present[:, None], coords, 0.0)  # never NaN where absent

    ideal, z, charges, chars = _atom_tables(layout)
    ref_pos = _centre_per_token(ideal.astype(np.float64), layout.atom_to_token, n_tok)
    restype_idx = np.array([RESTYPE_INDEX[p] for p in layout.parents], np.int64)
    restype = _one_hot(restype_idx, N_RESTYPE)
    entity_id, sym_id = _entities(layout)
    a2t = torch.from_numpy(layout.atom_to_token.copy())
    five_prime = np.zeros(n_tok, bool)
    op3 = np.array([n == FIVE_PRIME_EXTRA_ATOM for n in layout.atom_names], bool)
    five_prime[layout.atom_to_token[op3]] = True
    tensors = {
        "ref_pos": torch.from_numpy(ref_pos.astype(np.float32)),
        "ref_charge": torch.from_numpy(charges.astype(np.float32)),
        "ref_mask": torch.ones(n_atom, dtype=torch.float32),
        "ref_element": _one_hot(z - 1, N_ELEMENT),
        "ref_atom_name_chars": _one_hot(chars, N_CHAR_CLASSES),
        "ref_space_uid": a2t.clone(),
        "atom_to_token_idx": a2t,
        "atom_present_mask": torch.from_numpy(present.astype(np.float32)),
        "coords": torch.from_numpy(coords.astype(np.float32)),
        "residue_index": torch.from_numpy(_residue_index(layout)),
        "token_index": torch.arange(n_tok, dtype=torch.int64),
        "asym_id": torch.from_numpy(layout.asym_id.copy()),
        "entity_id": torch.from_numpy(entity_id),
        "sym_id": torch.from_numpy(sym_id),
        "restype": restype,
        "profile": restype.clone(),
        "deletion_mean": torch.zeros(n_tok, dtype=torch.float32),
        "is_protein": torch.zeros(n_tok, dtype=torch.int64),
        "is_rna": torch.ones(n_tok, dtype=torch.int64),
        "is_dna": torch.zeros(n_tok, dtype=torch.int64),
        "is_ligand": torch.zeros(n_tok, dtype=torch.int64),
        "chain_break_before": torch.from_numpy(layout.chain_break_before.copy()),
        "five_prime_phosphate": torch.from_numpy(five_prime),
    }
    return Features(tensors=tensors, layout=layout, notes=list(notes or []))


def layout_from_structure(structure) -> tuple[AtomLayout, np.ndarray, np.ndarray]:
    """Layout of an `io.RNAStructure` and its present atoms: (layout, coords [N,3], mask [N]).

    The 5' residue of each chain keeps P/OP1/OP2 only if the input has a phosphate atom; OP3 is
    added on a residue that starts a chain or follows a break and carries OP3 in the input.
    """
    specs: list[ResidueSpec] = []
    for chain in structure.chains:
        for i, r in enumerate(chain.residues):
            starts = i == 0 or r.chain_break_before
            has_p = any(r.has(n) for n in (*PHOSPHATE_ATOMS, FIVE_PRIME_EXTRA_ATOM))
            specs.append(ResidueSpec(
                resname=r.name, template_name=r.template_name, parent=r.parent, chain_id=chain.id,
                res_num=r.seq_num, ins_code=r.ins_code, chain_break_before=bool(r.chain_break_before and i > 0),
                five_prime_phosphate=starts and r.has(FIVE_PRIME_EXTRA_ATOM),
                has_phosphate=(not (i == 0)) or has_p,
            ))
    layout = build_layout(specs)
    coords = np.zeros((layout.n_atoms, 3), np.float64)
    present = np.zeros(layout.n_atoms, bool)
    starts = layout.token_atom_start
    for tok, (r, spec) in enumerate(zip(structure.residues, specs)):
        pos = residue_layout(spec.template_name, spec.five_prime_phosphate, spec.has_phosphate)[3]
        try:
            idx = [pos[n] for n in r.atom_names]
        except KeyError as exc:
            raise InputError(
                f"atom {exc.args[0]} of {r.label()} is not in its layout ({spec.template_name})", structure.source
            ) from None
        idx = np.asarray(idx, np.int64) + starts[tok]
        coords[idx] = r.coords
        present[idx] = True
    return layout, coords, present


def featurize(structure, max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH) -> Features:
    """Features of an `io.RNAStructure` (see module docstring for keys, shapes and dtypes)."""
    if structure.n_residues > max_sequence_length:
        raise InputError(
            f"{structure.n_residues} residues, more than max_sequence_length={max_sequence_length}", structure.source
        )
    layout, coords, present = layout_from_structure(structure)
    return features_from_layout(layout, coords, present, max_sequence_length, notes=list(structure.notes))


def _parse_chain(seq) -> list[str]:
    """A chain as residue names: 'GGCU', 'GG(PSU)C' or ['G', 'PSU', ...]."""
    if not isinstance(seq, str):
        return [str(s).strip().upper() for s in seq]
    out, i = [], 0
    s = "".join(seq.split()).upper()
    while i < len(s):
        if s[i] == "(":
            j = s.find(")", i)
            if j < 0:
                raise InputError(f"unclosed '(' in sequence {seq!r}")
            out.append(s[i + 1: j])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return out


def features_from_sequence(
    sequence_or_chains,
    partial_coords=None,
    partial_mask=None,
    five_prime_phosphate: bool = False,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
) -> Features:
    """Fallback features from sequences alone (+ optional partial coordinates), with a warning.

    sequence_or_chains: 'GGCAU', a list of chain sequences, or {chain_id: sequence}; a sequence
    may name modified residues in parentheses ('GG(PSU)C'). Chains get ids A, B, ... (list) and
    residues are numbered from 1 without breaks. The 5' residue has no phosphate unless
    `five_prime_phosphate` (then P, OP1, OP2 and OP3).
    partial_coords: [N_atom, 3] over the resulting layout; rows that are NaN, or rows where
    `partial_mask` [N_atom] is 0, count as absent.
    """
    log.warning(
        "no input_features given: building features from the sequence alone (reference conformers "
        "from the monomer library; chain breaks and file numbering unknown)"
    )
    if isinstance(sequence_or_chains, Mapping):
        chains = list(sequence_or_chains.items())
    elif isinstance(sequence_or_chains, str):
        chains = [("A", sequence_or_chains)]
    else:
        chains = [(_chain_id(k), s) for k, s in enumerate(sequence_or_chains)]
    specs: list[ResidueSpec] = []
    for chain_id, seq in chains:
        names = _parse_chain(seq)
        if not names:
            raise InputError(f"empty sequence for chain {chain_id}")
        for i, name in enumerate(names):
            tname = template_name_for(name)
            if tname is None:
                raise UnknownResidueError(f"unknown residue {name!r} in the sequence of chain {chain_id}")
            specs.append(ResidueSpec(
                resname=name, template_name=tname, parent=parent_of(name) or get_template(tname).parent,
                chain_id=str(chain_id), res_num=i + 1, five_prime_phosphate=i == 0 and five_prime_phosphate,
                has_phosphate=i > 0 or five_prime_phosphate,
            ))
    if len(specs) > max_sequence_length:
        raise InputError(f"{len(specs)} residues, more than max_sequence_length={max_sequence_length}")
    layout = build_layout(specs)
    coords = present = None
    if partial_coords is not None:
        coords = np.asarray(torch.as_tensor(partial_coords).detach().cpu().double().numpy())
        if coords.shape != (layout.n_atoms, 3):
            raise InputError(f"partial_coords has shape {coords.shape}, expected ({layout.n_atoms}, 3) for this sequence")
        present = np.isfinite(coords).all(-1)
        if partial_mask is not None:
            present &= np.asarray(torch.as_tensor(partial_mask).cpu().numpy()).astype(bool).reshape(-1)
    return features_from_layout(layout, coords, present, max_sequence_length, notes=["features built from sequence"])


def _chain_id(k: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[k] if k < 26 else letters[k // 26 - 1] + letters[k % 26]
