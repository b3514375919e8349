"""Write an AtomTable as PDB or mmCIF (by extension), atomically: a temporary file in the target
folder renamed over the target, so a crash never leaves a half-written structure."""
from __future__ import annotations

import os
from pathlib import Path

import gemmi

from rnadiff.errors import OutputError
from rnadiff.io.atomic import atomic_write_text
from rnadiff.metrics.atoms import AtomTable


def table_to_gemmi(table: AtomTable) -> gemmi.Structure:
    st = gemmi.Structure()
    model = gemmi.Model("1")
    chain = None
    residue = None
    last_res_key = None
    ri = table.residue_index
    for i in range(len(table)):
        cid = str(table.chain_ids[i])
        if chain is None or chain.name != cid:
            if chain is not None:
                model.add_chain(chain)
            chain = gemmi.Chain(cid)
            last_res_key = None
        if last_res_key != ri[i]:
            residue = gemmi.Residue()
            residue.name = str(table.res_names[i])
            residue.seqid = gemmi.SeqId(int(table.res_seqs[i]), (str(table.icodes[i]) or " ")[0])
            residue.het_flag = "A" if residue.name in ("A", "C", "G", "U") else "H"
            chain.add_residue(residue)
            residue = chain[len(chain) - 1]
            last_res_key = ri[i]
        atom = gemmi.Atom()
        atom.name = str(table.atom_names[i])
        atom.element = gemmi.Element(str(table.elements[i]))
        atom.pos = gemmi.Position(*map(float, table.coords[i]))
        atom.occ = 1.0
        atom.b_iso = 0.0
        residue.add_atom(atom)
    if chain is not None:
        model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st


def write_table(table: AtomTable, path: str | os.PathLike, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists (use --overwrite to replace it)")
    if not path.parent.is_dir():
        what = "is not a directory (it is a file)" if path.parent.exists() else "does not exist"
        raise OutputError(f"output folder {path.parent} {what}")
    st = table_to_gemmi(table)
    if path.suffix.lower() in (".cif", ".mmcif"):
        text = st.make_mmcif_document().as_string()
    else:
        text = st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
    return atomic_write_text(path, text, make_parents=False)
