"""The full canonical atom layout of a structure: what the model must output.

An `AtomLayout` lists, residue (token) by residue, every canonical heavy atom of that residue's
template (not only the atoms present in an input): the 12 ribose-phosphate atoms, the base, OP3
last on a residue carrying a 5'-phosphate; the 5' residue of a chain without a phosphate in the
input has no P/OP1/OP2. It is the bridge between file residues (chain id, number, insertion code)
and tensors (global atom indices), used by the featurizer, the topology and the writers.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rnadiff.chem.library import ResidueTemplate, get_template


@dataclass(eq=False)
class AtomLayout:
    """Token (residue) and atom tables. N_tok tokens, N_atom atoms.

    Token level: resnames (as in the file), template_names (the template used; a fallback
    modification uses its parent's), parents, chain_ids, res_nums int64, ins_codes,
    chain_break_before bool (True: no covalent link to the previous residue of the same chain),
    asym_id int64 (chain index, 0-based), token_atom_start int64 [N_tok+1].
    Atom level: atom_names, elements, atom_to_token int64, template_atom_idx int64 (index into the
    token's template).
    """

    resnames: tuple[str, ...]
    template_names: tuple[str, ...]
    parents: tuple[str, ...]
    chain_ids: tuple[str, ...]
    res_nums: np.ndarray
    ins_codes: tuple[str, ...]
    chain_break_before: np.ndarray
    asym_id: np.ndarray
    token_atom_start: np.ndarray
    atom_names: tuple[str, ...]
    elements: tuple[str, ...]
    atom_to_token: np.ndarray
    template_atom_idx: np.ndarray

    @property
    def n_tokens(self) -> int:
        return len(self.resnames)

    @property
    def n_atoms(self) -> int:
        return len(self.atom_names)

    def template(self, token: int) -> ResidueTemplate:
        return get_template(self.template_names[token])

    def token_atoms(self, token: int) -> slice:
        """Slice of the global atom indices of one token."""
        return slice(int(self.token_atom_start[token]), int(self.token_atom_start[token + 1]))

    def atom_index(self, token: int, atom_name: str) -> int | None:
        """Global index of a named atom of a token, None when the token has no such atom."""
        sl = self.token_atoms(token)
        for k in range(sl.start, sl.stop):
            if self.atom_names[k] == atom_name:
                return k
        return None


@dataclass(frozen=True)
class ResidueSpec:
    """What the layout builder needs per residue; atom_names None = the template's full list."""

    resname: str
    template_name: str
    parent: str
    chain_id: str
    res_num: int
    ins_code: str = ""
    chain_break_before: bool = False
    five_prime_phosphate: bool = False
    has_phosphate: bool = True


@lru_cache(maxsize=None)
def residue_layout(template_name: str, five_prime_phosphate: bool, has_phosphate: bool):
    """(atom names, template indices int64, elements, {name: position}) of one residue kind;
    cached because every residue of a structure repeats one of a handful of kinds."""
    t = get_template(template_name)
    names = t.residue_atom_names(five_prime_phosphate, has_phosphate)
    idx = t.indices(names)
    return names, idx, tuple(t.elements[j] for j in idx), {n: k for k, n in enumerate(names)}


def build_layout(residues: list[ResidueSpec]) -> AtomLayout:
    """Concatenate the canonical atom lists of the residues (chains in order of first use)."""
    atom_names: list[str] = []
    elements: list[str] = []
    tmpl_idx: list[np.ndarray] = []
    starts = np.zeros(len(residues) + 1, np.int64)
    chain_order: dict[str, int] = {}
    asym = np.zeros(len(residues), np.int64)
    for i, r in enumerate(residues):
        names, idx, elems, _ = residue_layout(r.template_name, r.five_prime_phosphate, r.has_phosphate)
        atom_names.extend(names)
        elements.extend(elems)
        tmpl_idx.append(idx)
        starts[i + 1] = starts[i] + len(names)
        asym[i] = chain_order.setdefault(r.chain_id, len(chain_order))
    counts = np.diff(starts)
    return AtomLayout(
        resnames=tuple(r.resname for r in residues),
        template_names=tuple(r.template_name for r in residues),
        parents=tuple(r.parent for r in residues),
        chain_ids=tuple(r.chain_id for r in residues),
        res_nums=np.array([r.res_num for r in residues], np.int64),
        ins_codes=tuple(r.ins_code for r in residues),
        chain_break_before=np.array([r.chain_break_before for r in residues], bool),
        asym_id=asym,
        token_atom_start=starts,
        atom_names=tuple(atom_names),
        elements=tuple(elements),
        atom_to_token=np.repeat(np.arange(len(residues), dtype=np.int64), counts),
        template_atom_idx=np.concatenate(tmpl_idx) if tmpl_idx else np.zeros(0, np.int64),
    )
