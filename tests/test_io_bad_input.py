"""Bad input raises InputError naming the file and the problem; dropped content is noted."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from rnadiff.errors import InputError, UnknownResidueError
from rnadiff.io import read_structure


def atom_line(serial, name, resname, chain, resseq, xyz, element, record="ATOM", altloc=" ", icode=" "):
    name_field = f" {name:<3}" if len(name) < 4 else name
    x, y, z = xyz
    return (f"{record:<6}{serial:>5} {name_field}{altloc}{resname:>3} {chain}{resseq:>4}{icode}   "
            f"{x:>8.3f}{y:>8.3f}{z:>8.3f}{1.0:>6.2f}{20.0:>6.2f}          {element:>2}")


def nucleotide_lines(resname, chain, resseq, start_serial=1, shift=0.0, atoms=("P", "C1'", "C4'", "O3'", "N9")):
    out = []
    for k, name in enumerate(atoms):
        out.append(atom_line(start_serial + k, name, resname, chain, resseq, (shift + k, 0.0, 0.0), name[0]))
    return out


def write(tmp_path, text, name="in.pdb", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def check_error(path, pattern, exc=InputError, **kw):
    with pytest.raises(exc) as info:
        read_structure(path, **kw)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert pattern in msg, msg
    return info.value


def test_missing_file(tmp_path):
    check_error(tmp_path / "nope.pdb", "not found")


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_file(tmp_path, content):
    check_error(write(tmp_path, content), "empty")


def test_binary_file(tmp_path):
    check_error(write(tmp_path, bytes(range(256)) * 10, mode="wb"), "binary")
    check_error(write(tmp_path, b"\x89PNG\r\n\x1a\n" + b"\xff\xfe" * 100, "img.cif", mode="wb"), "binary")


def test_truncated_pdb(tmp_path):
    lines = nucleotide_lines("G", "A", 1)
    text = "\n".join(lines)[:-40]  # cut in the middle of the last coordinate record
    check_error(write(tmp_path, text), "truncated")


def test_truncated_mmcif(tmp_path):
    text = (
        "data_x\nloop_\n_atom_site.group_PDB\n_atom_site.id\n_atom_site.type_symbol\n_atom_site.label_atom_id\n"
        "_atom_site.label_comp_id\n_atom_site.auth_asym_id\n_atom_site.auth_seq_id\n_atom_site.Cartn_x\n"
        "_atom_site.Cartn_y\n_atom_site.Cartn_z\nATOM 1 P P G A 1 1.0 2.0 3.0\nATOM 2 C \"C1'\" G A 1 4.0"
    )
    check_error(write(tmp_path, text, "t.cif"), "truncated")


def test_truncated_gzip(tmp_path):
    data = gzip.compress("\n".join(nucleotide_lines("G", "A", 1)).encode())
    check_error(write(tmp_path, data[: len(data) // 2], "t.pdb.gz", mode="wb"), "gzip")


def test_no_rna(tmp_path):
    lines = [atom_line(1, "CA", "ALA", "A", 1, (0, 0, 0), "C"), atom_line(2, "O", "HOH", "W", 1, (5, 0, 0), "O", "HETATM"),
             atom_line(3, "P", "DA", "B", 1, (9, 0, 0), "P")]
    err = check_error(write(tmp_path, "\n".join(lines) + "\nEND\n"), "no RNA")
    assert "protein" in err.problem and "dna" in err.problem and "water" in err.problem


def test_unknown_residue(tmp_path):
    lines = nucleotide_lines("G", "A", 1) + nucleotide_lines("XYZ", "A", 2, 10, shift=7)
    err = check_error(write(tmp_path, "\n".join(lines) + "\n"), "XYZ", exc=UnknownResidueError)
    assert "unknown residue" in err.problem


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_non_finite_coordinates(tmp_path, bad):
    lines = nucleotide_lines("G", "A", 1)
    lines[1] = lines[1][:30] + f"{bad:>8}" + lines[1][38:]
    check_error(write(tmp_path, "\n".join(lines) + "\n"), "NaN/inf")


def test_duplicate_atoms(tmp_path):
    lines = nucleotide_lines("G", "A", 1)
    lines.append(atom_line(9, "C1'", "G", "A", 1, (9, 9, 9), "C"))
    check_error(write(tmp_path, "\n".join(lines) + "\n"), "duplicate atom C1'")
    # Old and new names of the same atom are duplicates too.
    lines = nucleotide_lines("G", "A", 1, atoms=("P", "OP1", "O1P", "C1'"))
    check_error(write(tmp_path, "\n".join(lines) + "\n"), "duplicate atom OP1")


def test_too_many_residues(tmp_path):
    lines = []
    for i in range(6):
        lines += nucleotide_lines("A", "A", i + 1, 10 * i + 1, shift=7.0 * i)
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert read_structure(path, max_residues=6).n_residues == 6
    check_error(path, "max_sequence_length", max_residues=5)


def test_drops_are_noted_and_names_mapped(tmp_path):
    lines = nucleotide_lines("G", "A", 1, atoms=("P", "O1P", "O2P", "O5*", "C1*", "N9"))
    lines += nucleotide_lines("U", "A", 2, 10, shift=7, atoms=("P", "C1'", "N1", "OP3"))
    lines.append(atom_line(20, "H1'", "U", "A", 2, (0, 5, 0), "H"))
    lines.append(atom_line(21, "MG", "MG", "A", 101, (0, 9, 9), "MG", "HETATM"))
    lines.append(atom_line(22, "O", "HOH", "A", 102, (0, 9, 3), "O", "HETATM"))
    lines.append(atom_line(23, "CA", "GLY", "B", 1, (0, 3, 3), "C"))
    lines[5] = lines[5][:16] + "A" + lines[5][17:]  # first altloc of N9 ...
    lines.insert(6, atom_line(24, "N9", "G", "A", 1, (5, 5, 5), "N", altloc="B"))  # ... and the second
    s = read_structure(write(tmp_path, "\n".join(lines) + "\nEND\n"))
    g, u = s.residues
    assert g.atom_names == ("P", "OP1", "OP2", "O5'", "C1'", "N9")
    assert np.allclose(g.coord("N9"), [5.0, 0, 0])  # altloc A kept
    assert u.atom_names == ("P", "C1'", "N1")  # OP3 on an internal residue dropped
    notes = " | ".join(s.notes)
    for word in ("hydrogen", "water", "protein", "other", "alternative", "OP3"):
        assert word in notes, (word, notes)
    assert [c.id for c in s.chains] == ["A"]


def test_chain_break_detection(tmp_path):
    # O3'(1)-P(2) 1.6 Å: linked. O3'(2)-P(3) 3 Å between consecutive numbers: a stretched link
    # (no dev chain has a real break under 5.5 Å). O3'(3)-P(5) 3 Å across a numbering gap: break.
    # Residue 6 has no P: C1'-C1' 4 Å, linked. Residue 8: numbering gap without O3'/P, break.
    lines = [
        atom_line(1, "O3'", "G", "A", 1, (0, 0, 0), "O"), atom_line(2, "C1'", "G", "A", 1, (0, 2, 0), "C"),
        atom_line(3, "P", "A", "A", 2, (1.6, 0, 0), "P"), atom_line(4, "O3'", "A", "A", 2, (4, 0, 0), "O"),
        atom_line(5, "P", "C", "A", 3, (7, 0, 0), "P"), atom_line(6, "O3'", "C", "A", 3, (10, 0, 0), "O"),
        atom_line(7, "P", "U", "A", 5, (13, 0, 0), "P"), atom_line(8, "C1'", "U", "A", 5, (14, 2, 0), "C"),
        atom_line(9, "C1'", "U", "A", 6, (18, 2, 0), "C"),
        atom_line(10, "C1'", "U", "A", 8, (23, 2, 0), "C"),
    ]
    s = read_structure(write(tmp_path, "\n".join(lines) + "\n"))
    assert [r.chain_break_before for r in s.residues] == [False, False, False, True, False, True]
    assert any("chain breaks" in n for n in s.notes)
    # a consecutive pair stretched beyond the longest link any model keeps is a break
    far = [ln if not ln.startswith("ATOM      5") else atom_line(5, "P", "C", "A", 3, (9.5, 0, 0), "P") for ln in lines]
    s = read_structure(write(tmp_path, "\n".join(far) + "\n"))
    assert [r.chain_break_before for r in s.residues] == [False, False, True, True, False, True]


def test_fallback_modified_and_unknown_base(tmp_path):
    lines = nucleotide_lines("5BU", "A", 1, atoms=("C1'", "N1", "BR"))
    lines += nucleotide_lines("N", "A", 2, 10, shift=6, atoms=("P", "C1'"))
    s = read_structure(write(tmp_path, "\n".join(lines) + "\n"))
    bu, n = s.residues
    assert (bu.name, bu.template_name, bu.parent, bu.atom_names) == ("5BU", "U", "U", ("C1'", "N1"))
    assert (n.template_name, n.parent) == ("N", "N")
    assert "5BU:BR" in " ".join(s.notes)
    from rnadiff.chem import featurize

    f = featurize(s)
    assert f["restype"].argmax(-1).tolist() == [24, 25]
