"""Write structures (one model per sample) as mmCIF or PDB through gemmi, atomically.

`write_structure(path, structure_or_layout, coords, b_factors=None, atom_mask=None)`:
- structure_or_layout: an `RNAStructure` (coords index its present atoms, file order), an
  `AtomLayout` or a `Features` (coords index the full canonical layout).
- coords: [N_atom, 3] or [n_models, N_atom, 3] (numpy or torch); one MODEL per sample.
- b_factors: [N_atom] or [n_models, N_atom]: a per-atom value for the B-factor column (e.g. the
  ensemble spread); 0 when None. PDB's fixed columns clip it to [-99.99, 999.99].
- atom_mask: [N_atom] (or [n_models, N_atom]) bool: only these atoms are written.
Chain ids, residue numbers, insertion codes and names come from the input; elements from the
residue templates. The file appears complete or not at all (temp file + os.replace).
"""
from __future__ import annotations

import os
from pathlib import Path

import gemmi
import numpy as np

from rnadiff.chem.vocab import FALLBACK_RENAMES, STANDARD_RESIDUES, native_atom_name
from rnadiff.io.atomic import atomic_write_text
from rnadiff.errors import OutputError

_PDB_SUFFIXES = (".pdb", ".ent")
_CIF_SUFFIXES = (".cif", ".mmcif")


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x)


def _residue_groups(obj) -> tuple[list[tuple[str, list[tuple[str, int, str, list[int]]]]], list[str], list[str]]:
    """(chains [(chain_id, [(resname, seq_num, ins_code, atom indices)])], atom names, elements)."""
    layout = getattr(obj, "layout", obj)  # Features -> its layout
    chains: dict[str, list] = {}
    if hasattr(layout, "token_atom_start"):
        starts = layout.token_atom_start.tolist()
        for t in range(layout.n_tokens):
            chains.setdefault(layout.chain_ids[t], []).append(
                (layout.resnames[t], int(layout.res_nums[t]), layout.ins_codes[t], list(range(starts[t], starts[t + 1])))
            )
        return list(chains.items()), list(layout.atom_names), list(layout.elements)
    names: list[str] = []
    elements: list[str] = []
    for chain in obj.chains:
        groups = chains.setdefault(chain.id, [])
        for r in chain.residues:
            k = len(names)
            groups.append((r.name, r.seq_num, r.ins_code, list(range(k, k + len(r.atom_names)))))
            names.extend(r.atom_names)
            elements.extend(r.elements)
    return list(chains.items()), names, elements


def _new_model(number: int) -> gemmi.Model:
    try:
        return gemmi.Model(number)  # gemmi >= 0.7 numbers models
    except TypeError:
        return gemmi.Model(str(number))


def build_gemmi_structure(structure_or_layout, coords, b_factors=None, atom_mask=None, name: str = "rnadiff") -> gemmi.Structure:
    """The gemmi.Structure that `write_structure` writes (shapes as there)."""
    chains, atom_names, elements = _residue_groups(structure_or_layout)
    n_atom = len(atom_names)
    # Round to file precision (3 decimals): float32 inputs would otherwise print as 22.3999996.
    xyz = np.round(_as_numpy(coords).astype(np.float64), 3)
    if xyz.ndim == 2:
        xyz = xyz[None]
    if xyz.ndim != 3 or xyz.shape[1:] != (n_atom, 3):
        raise ValueError(f"coords has shape {tuple(_as_numpy(coords).shape)}, expected [n_models, {n_atom}, 3]")
    n_models = xyz.shape[0]
    b = np.zeros((n_models, n_atom)) if b_factors is None else _as_numpy(b_factors).astype(np.float64)
    b = np.round(np.broadcast_to(b.reshape(-1, n_atom), (n_models, n_atom)), 2)
    mask = np.ones((n_models, n_atom), bool) if atom_mask is None else np.broadcast_to(
        _as_numpy(atom_mask).astype(bool).reshape(-1, n_atom), (n_models, n_atom))
    if not np.isfinite(xyz[mask]).all():
        raise ValueError("non-finite coordinates among the atoms to write")
    gemmi_elements = [gemmi.Element(e) for e in elements]

    st = gemmi.Structure()
    st.name = name
    for m in range(n_models):
        # Python lists: indexing them is several times cheaper than numpy scalars per atom.
        pos, bf, keep_m = xyz[m].tolist(), b[m].tolist(), mask[m].tolist()
        model = _new_model(m + 1)
        for chain_id, residues in chains:
            gch = gemmi.Chain(chain_id)
            for resname, num, icode, idx in residues:
                keep = [i for i in idx if keep_m[i]]
                if not keep:
                    continue
                gres = gemmi.Residue()
                gres.name = resname
                gres.seqid = gemmi.SeqId(num, icode or " ")
                gres.het_flag = "A" if resname in STANDARD_RESIDUES else "H"
                gres.entity_type = gemmi.EntityType.Polymer
                renamed = resname in FALLBACK_RENAMES
                for i in keep:
                    atom = gemmi.Atom()
                    atom.name = native_atom_name(resname, atom_names[i]) if renamed else atom_names[i]
                    atom.element = gemmi_elements[i]
                    atom.pos = gemmi.Position(*pos[i])
                    atom.b_iso = bf[i]
                    atom.occ = 1.0
                    gres.add_atom(atom)
                gch.add_residue(gres)
            if len(gch):
                model.add_chain(gch)
        st.add_model(model)
    st.setup_entities()
    return st


def _format_for(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt.lower() not in ("cif", "mmcif", "pdb"):
            raise OutputError(f"unknown output format {fmt!r} (use cif or pdb)")
        return "pdb" if fmt.lower() == "pdb" else "cif"
    suffix = path.suffix.lower()
    if suffix in _PDB_SUFFIXES:
        return "pdb"
    if suffix in _CIF_SUFFIXES:
        return "cif"
    raise OutputError(f"{path}: cannot tell the format from the suffix {suffix!r} (use .cif or .pdb)")


def write_structure(
    path: str | os.PathLike,
    structure_or_layout,
    coords,
    b_factors=None,
    atom_mask=None,
    fmt: str | None = None,
) -> Path:
    """Write coords as mmCIF or PDB (format from `fmt` or the suffix); returns the path."""
    path = Path(path)
    kind = _format_for(path, fmt)
    if kind == "pdb" and b_factors is not None:
        b_factors = np.clip(_as_numpy(b_factors), -99.99, 999.99)
    st = build_gemmi_structure(structure_or_layout, coords, b_factors, atom_mask, name=path.stem)
    if kind == "pdb":
        if any(len(ch.name) > 2 for ch in st[0]):
            raise OutputError(f"{path}: chain ids longer than 2 characters do not fit PDB; write mmCIF")
        text = st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
    else:
        text = st.make_mmcif_document().as_string()
    atomic_write_text(path, text)
    return path
