"""Issue 18: coordinates that are not numbers, or no RNA can have, are refused by the reader with a
one-line InputError naming the file and the line or residue; survivable problems stay notes."""
from __future__ import annotations

import numpy as np
import pytest

from rnadiff.errors import InputError
from rnadiff.io import read_structure
from rnadiff.io.sanity import FAR_STEP, span_bounds
from tests.reliability_helpers import GOOD_PDB, c1_chain, mmcif_c1
from tests.train_helpers import EXAMPLES

SEQ = list("GGCGAUACGCCAGU")


def refused(path, *words):
    with pytest.raises(InputError) as info:
        read_structure(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


def with_field(line: str, column: int, value: str) -> str:
    """Put `value` (8 characters) into the coordinate field starting at 0-based `column`."""
    return line[:column] + f"{value:>8}"[:8] + line[column + 8:]


@pytest.mark.parametrize("garbage", ["12.x3-4.", "4..7", "NaNa", "++1.0", "1e3", "--", "abc"])
def test_pdb_coordinate_field_that_is_not_a_number(tmp_path, garbage):
    lines = GOOD_PDB.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("ATOM")) + 4
    lines[k] = with_field(lines[k], 38, garbage)
    path = tmp_path / "garbage.pdb"
    path.write_text("\n".join(lines) + "\n")
    refused(path, f"line {k + 1}:", repr(garbage.strip()), "columns 39-46")


def test_pdb_every_third_atom_garbage_names_the_first_line(tmp_path):
    # The file: `12.x3-4..7  NaNa  ++1.0` across the x/y/z columns of every third atom.
    lines = GOOD_PDB.read_text().splitlines()
    atoms = [i for i, ln in enumerate(lines) if ln.startswith("ATOM")]
    for i in atoms[::3]:
        lines[i] = lines[i][:30] + "12.x3-4..7  NaNa  ++1.0 " + lines[i][54:]
    path = tmp_path / "third.pdb"
    path.write_text("\n".join(lines) + "\n")
    refused(path, f"line {atoms[0] + 1}:", "not a number")


@pytest.mark.parametrize("value, word", [("12.x3", "not a number"), ("?", "missing coordinate"),
                                         ("nan", "NaN/inf"), ("++1.0", "not a number")])
def test_mmcif_coordinate_value_that_is_not_a_number(tmp_path, value, word):
    path = tmp_path / "garbage.cif"
    path.write_text(mmcif_c1(SEQ, lambda k: (5.9 * k, value if k == 4 else 0.1 * k, 0.0)))
    refused(path, "atom_site row 5 (id 5, A A5)", word, "Cartn_y")


def test_mmcif_numbers_with_exponent_and_uncertainty_are_read(tmp_path):
    path = tmp_path / "ok.cif"
    path.write_text(mmcif_c1(SEQ, lambda k: (f"{5.9 * k:.3e}", "0.10(2)", 0.0)))
    s = read_structure(path)
    assert np.allclose(s.residues[3].coords, [[17.7, 0.1, 0.0]])


def test_atoms_of_one_residue_far_apart(tmp_path):
    lines = (EXAMPLES / "4phy_A.pdb").read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("ATOM") and ln[12:16].strip() == "N9")
    x = float(lines[k][30:38])
    lines[k] = with_field(lines[k], 30, f"{x + 40:.3f}")
    path = tmp_path / "split.pdb"
    path.write_text("\n".join(lines) + "\n")
    refused(path, "more than its bonds allow", "N9")


def test_bound_allows_every_conformation_of_a_bonded_path():
    bounds = span_bounds("G")
    assert np.all(np.diag(bounds) > 0)  # the slack alone: a residue's own atoms never refused
    from rnadiff.chem.library import get_template

    t = get_template("G")
    i, j = t.index["P"], t.index["N2"]
    ideal = np.linalg.norm(t.ideal_coords[i] - t.ideal_coords[j])
    assert ideal < bounds[i, j] < 40.0


def test_c1_trace_with_every_other_atom_at_9999(tmp_path):
    path = tmp_path / "trace.pdb"
    path.write_text(c1_chain(SEQ, coord=lambda k: (5.9 * k, 0.0, 0.0) if k % 2 else (9999.0, -9999.0, 9999.0)))
    refused(path, "chain A:", "consecutive residues are more than 100 Å apart")


def test_single_residue_far_from_both_neighbours(tmp_path):
    path = tmp_path / "one.pdb"
    path.write_text(c1_chain(SEQ, coord=lambda k: (-999.0, 0.0, 0.0) if k == 6 else (5.9 * k, 0.1 * k, 0.0)))
    refused(path, "residue A A7", "from both of its neighbours")


def test_survivable_problems_stay_notes(tmp_path):
    # A stretched link (30 Å, below FAR_STEP) is a chain break, a residue without C1' is read.
    assert 30.0 < FAR_STEP
    path = tmp_path / "stretched.pdb"
    path.write_text(c1_chain(SEQ, coord=lambda k: (5.9 * k + (30.0 if k >= 7 else 0.0), 0.1 * k, 0.0)))
    s = read_structure(path)
    assert s.n_residues == len(SEQ)
    assert [r.chain_break_before for r in s.residues].count(True) == 1
    assert any("chain breaks" in n for n in s.notes)
    lines = (EXAMPLES / "4phy_A.pdb").read_text().splitlines()
    without = [ln for ln in lines if not (ln.startswith("ATOM") and ln[12:16].strip() == "N9" and ln[22:26].strip() == "3")]
    path = tmp_path / "missing.pdb"
    path.write_text("\n".join(without) + "\n")
    assert read_structure(path).n_residues == 26


def test_examples_are_read():
    for name in ("4phy_A.pdb", "4phy_A_c1.pdb", "1f27_B.pdb"):
        assert read_structure(EXAMPLES / name).n_residues > 0


@pytest.mark.slow
def test_no_dev_chain_is_refused(rna_dev_dir):
    """Every rna_dev chain reads, unknown residues included (all 375 are standard or known
    modified nucleotides; the test used to skip an UnknownResidueError, the very refusal it names)."""
    files = sorted((rna_dev_dir / "clean").rglob("*.pdb"))
    assert len(files) > 300
    for f in files:
        assert read_structure(f).n_residues > 0, f


def test_numbering_gap_allows_fragments_far_apart(tmp_path):
    # Two nucleotides 300 Å apart: numbered 1 and 2 they cannot be; numbered 1 and 60, the 58
    # unmodelled nucleotides between them can span it.
    path = tmp_path / "fragments.pdb"
    path.write_text(c1_chain(["G", "C"], coord=lambda k: (300.0 * k, 0.0, 0.0)))
    refused(path, "chain A:", "1 of 1")
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:22] + f"{60:>4}" + lines[1][26:]
    path.write_text("\n".join(lines) + "\n")
    s = read_structure(path)
    assert [r.seq_num for r in s.residues] == [1, 60] and s.residues[1].chain_break_before


def test_collapsed_coordinates(tmp_path):
    path = tmp_path / "zeros.pdb"
    path.write_text(c1_chain(SEQ, coord=lambda k: (0.0, 0.0, 0.0)))
    refused(path, "chain A:", "collapsed")
