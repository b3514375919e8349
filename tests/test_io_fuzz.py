"""Fuzzing the readers and the featurizer: whatever the file holds, the result is a structure
with finite features or an InputError naming the file; never any other exception.

Files are generated from real residue templates with random residue mixes (standard, modified,
unknown, DNA, protein, water, ions), random missing atoms, extreme or NaN coordinates, odd chain
layouts (many chains, one-residue chains, duplicated numbering, insertion codes), as PDB and mmCIF.
"""
from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnadiff.chem.features import featurize
from rnadiff.chem.library import get_template
from rnadiff.errors import InputError
from rnadiff.io import read_structure

RNA_NAMES = ["A", "C", "G", "U", "PSU", "5MC", "OMG", "1MA", "H2U", "7MG"]
OTHER_NAMES = ["DA", "DT", "ALA", "GLY", "HOH", "MG", "NA", "XYZ", "ATP"]

coordinate = st.floats(-50, 50, allow_nan=False)
SPECIAL_VALUES = [1e5, -1e5, 9999.999, float("nan"), float("inf")]


@st.composite
def residue(draw):
    if draw(st.integers(0, 9)) < 8:
        name = draw(st.sampled_from(RNA_NAMES))
        template = get_template(name)
        names = list(template.atom_names)
        elements = list(template.elements)
        keep = draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
        atoms = [(n, e) for n, e, k in zip(names, elements, keep) if k] or [(names[0], elements[0])]
    else:
        name = draw(st.sampled_from(OTHER_NAMES))
        atoms = [("CA", "C"), ("N", "N")] if name in ("ALA", "GLY") else [("O", "O")] if name == "HOH" else [(name[:2], "Mg")]
    if draw(st.booleans()):  # old-style names
        atoms = [(a.replace("'", "*").replace("OP1", "O1P"), e) for a, e in atoms]
    shift = np.array([draw(st.floats(-30, 30)) for _ in range(3)])
    coords = [shift + np.array([draw(coordinate) for _ in range(3)]) * (1.0 if draw(st.booleans()) else 0.05) for _ in atoms]
    return name, atoms, coords


@st.composite
def structure_text(draw):
    chains = draw(st.lists(st.lists(residue(), min_size=1, max_size=5), min_size=1, max_size=4))
    duplicate_numbering = draw(st.booleans())
    st_ = gemmi.Structure()
    model = gemmi.Model("1")
    for ci, residues in enumerate(chains):
        chain = gemmi.Chain(draw(st.sampled_from(["A", "B", "a", "1", "AB"])) if ci < 4 else "Z")
        for ri, (name, atoms, coords) in enumerate(residues):
            res = gemmi.Residue()
            res.name = name
            num = 1 if duplicate_numbering and ri < 2 else ri + 1 + draw(st.integers(0, 2))
            res.seqid = gemmi.SeqId(num, draw(st.sampled_from([" ", " ", "A"])))
            for (aname, elem), xyz in zip(atoms, coords):
                atom = gemmi.Atom()
                atom.name = aname
                atom.element = gemmi.Element(elem)
                atom.pos = gemmi.Position(*[float(v) if math.isfinite(v) else v for v in xyz])
                atom.occ = 1.0
                res.add_atom(atom)
            chain.add_residue(res)
        model.add_chain(chain)
    st_.add_model(model)
    model = st_[0]
    st_.setup_entities()
    if draw(st.integers(0, 9)) == 9:  # one extreme or non-finite coordinate somewhere
        atoms = [a for ch in model for r in ch for a in r]
        atom = atoms[draw(st.integers(0, len(atoms) - 1))]
        value = draw(st.sampled_from(SPECIAL_VALUES))
        atom.pos = gemmi.Position(value, atom.pos.y, atom.pos.z)
    fmt = draw(st.sampled_from(["pdb", "cif"]))
    if fmt == "pdb":
        text = st_.make_pdb_string()
    else:
        text = st_.make_mmcif_document().as_string()
    if draw(st.integers(0, 9)) == 9:  # truncated file
        text = text[: int(len(text) * draw(st.floats(0.05, 0.95)))]
    return fmt, text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(structure_text())
def test_reader_and_featurizer_never_raise_anything_but_input_error(tmp_path, data):
    fmt, text = data
    path = tmp_path / f"fuzz.{fmt}"
    path.write_text(text)
    try:
        structure = read_structure(path)
        feats = featurize(structure)
    except InputError as exc:
        assert str(path) in str(exc) or exc.path is None
        assert "\n" not in str(exc)
        return
    for key in ("ref_pos", "coords", "ref_element", "atom_to_token_idx"):
        assert np.isfinite(np.asarray(feats[key], dtype=float)).all(), key
    n_tok = feats["residue_index"].shape[0]
    assert int(feats["atom_to_token_idx"].max()) < n_tok
    assert feats["atom_present_mask"].sum() > 0


def test_library_multiline_errors_become_one_line(tmp_path):
    """gemmi reports parse errors over several lines; users get one."""
    path = tmp_path / "cut.pdb"
    path.write_text("HETATM    7  C5    A A   1       0.000  \n")
    with pytest.raises(InputError) as info:
        read_structure(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
