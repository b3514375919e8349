"""Feature encoding (Protenix, docs/design.md §4), bridging, collation and the sequence fallback."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rnadiff.chem import (
    RESTYPE_INDEX,
    aggregate_atom_to_token,
    broadcast_token_to_atom,
    collate_features,
    featurize,
    features_from_sequence,
    get_template,
    validate_atom_to_token,
)
from rnadiff.chem.features import BACKBONE_NAME_CODES, atom_name_code, atom_name_codes
from rnadiff.errors import InputError, UnknownResidueError
from rnadiff.io.structure import Chain, Residue, RNAStructure


def make_structure(chains: dict[str, list[str]], keep=None, breaks=(), op3_first=False) -> RNAStructure:
    """Residues placed 6 Å apart with their template's ideal coords; `keep(name)` selects atoms."""
    out = []
    for cid, names in chains.items():
        ch = Chain(cid)
        for i, name in enumerate(names):
            t = get_template(name)
            atoms = [n for n in t.atom_names if (n != "OP3" or (i == 0 and op3_first))]
            if i == 0 and not op3_first:
                atoms = [n for n in atoms if n not in ("P", "OP1", "OP2")]
            if keep is not None:
                atoms = [n for n in atoms if keep(n)]
            idx = t.indices(atoms)
            ch.residues.append(Residue(
                chain_id=cid, seq_num=i + 1, ins_code="", name=name, template_name=name, parent=t.parent,
                atom_names=tuple(atoms), coords=t.ideal_coords[idx].astype(np.float64) + [6.0 * i, 0, 0],
                elements=tuple(t.elements[j] for j in idx), chain_break_before=(cid, i) in breaks,
            ))
        out.append(ch)
    return RNAStructure(chains=out)


def _decode_names(chars: torch.Tensor) -> list[str]:
    codes = chars.argmax(-1) + 32
    return ["".join(chr(c) for c in row).rstrip() for row in codes.tolist()]


def test_atom_features_encoding():
    s = make_structure({"A": ["G", "A", "PSU", "C", "U"]})
    f = featurize(s)
    lay = f.layout
    n = lay.n_atoms
    assert n == 20 + 22 + 20 + 20 + 20  # 5' G without P/OP1/OP2
    assert f["ref_pos"].shape == (n, 3) and f["ref_pos"].dtype == torch.float32
    assert f["ref_element"].shape == (n, 128) and f["ref_atom_name_chars"].shape == (n, 4, 64)
    # One-hots: exactly one 1 per row; element = atomic number - 1; name chars = ord - 32.
    assert torch.equal(f["ref_element"].sum(-1), torch.ones(n))
    assert torch.equal(f["ref_atom_name_chars"].sum(-1), torch.ones(n, 4))
    z = f["ref_element"].argmax(-1) + 1
    expected_z = {"C": 6, "N": 7, "O": 8, "P": 15}
    assert z.tolist() == [expected_z[e] for e in lay.elements]
    assert _decode_names(f["ref_atom_name_chars"]) == list(lay.atom_names)
    assert f["ref_atom_name_chars"][0, 3, 0] == 1  # "O5'" padded with a space -> class 0
    # Centred per residue, one conformer (space uid) per residue.
    a2t = f["atom_to_token_idx"]
    means = aggregate_atom_to_token(f["ref_pos"].double(), a2t, lay.n_tokens)
    assert means.abs().max() < 1e-5
    assert torch.equal(f["ref_space_uid"], a2t)
    # ref_pos is the template conformer (up to the shift): distances match the template.
    g = get_template("G")
    sl = lay.token_atoms(0)
    i1, i2 = lay.atom_names.index("C1'", sl.start), lay.atom_names.index("N9", sl.start)
    d = (f["ref_pos"][i1] - f["ref_pos"][i2]).norm().item()
    assert d == pytest.approx(np.linalg.norm(g.ideal_coords[g.index["C1'"]] - g.ideal_coords[g.index["N9"]]), abs=1e-5)
    assert torch.equal(f["ref_mask"], torch.ones(n))
    assert torch.all(f["ref_charge"] == 0)  # CCD formal charges: RNA atoms are neutral


def test_atom_name_codes_identify_each_name():
    f = featurize(make_structure({"A": ["G", "A", "PSU", "C", "U"]}))
    codes = atom_name_codes(f["ref_atom_name_chars"])
    expected = torch.tensor([atom_name_code(a) for a in f.layout.atom_names])
    assert torch.equal(codes, expected)
    # distinct names never share a code; backbone codes select exactly the backbone/sugar atoms
    assert len({atom_name_code(a) for a in set(f.layout.atom_names)}) == len(set(f.layout.atom_names))
    assert atom_name_code("P") == ord("P") - 32 and atom_name_code("C1'") != atom_name_code("C1")
    assert len(set(BACKBONE_NAME_CODES)) == len(BACKBONE_NAME_CODES)
    assert atom_name_codes(torch.zeros(2, 4, 64)).tolist() == [0, 0]  # padding atoms
    with pytest.raises(ValueError, match="longer than"):
        atom_name_code("C1'XY")


def test_token_features_and_restype():
    s = make_structure({"A": ["G", "A", "PSU", "C", "U", "7MG"]})
    f = featurize(s)
    assert f["restype"].shape == (6, 32)
    assert f["restype"].argmax(-1).tolist() == [22, 21, 24, 23, 24, 22]
    assert RESTYPE_INDEX == {"A": 21, "G": 22, "C": 23, "U": 24, "N": 25}
    assert torch.equal(f["restype"].sum(-1), torch.ones(6))
    assert torch.equal(f["profile"], f["restype"])
    assert f["residue_index"].tolist() == [1, 2, 3, 4, 5, 6]
    assert f["token_index"].tolist() == list(range(6))
    assert f["is_rna"].tolist() == [1] * 6 and f["is_protein"].sum() == 0
    assert f["five_prime_phosphate"].sum() == 0


def test_entities_for_identical_chains():
    s = make_structure({"A": ["G", "C"], "B": ["G", "C"], "C": ["A", "U"]})
    f = featurize(s)
    assert f["asym_id"].tolist() == [0, 0, 1, 1, 2, 2]
    assert f["entity_id"].tolist() == [0, 0, 0, 0, 1, 1]
    assert f["sym_id"].tolist() == [0, 0, 1, 1, 0, 0]


def test_partial_coordinates_and_mask():
    s = make_structure({"A": ["G", "A", "C"]}, keep=lambda n: n in ("C1'", "P"))
    f = featurize(s)
    present = f["atom_present_mask"].bool()
    assert int(present.sum()) == s.n_atoms == 3 + 2  # C1' x3, P x2 (5' residue has none)
    assert torch.isfinite(f["coords"]).all()
    assert torch.all(f["coords"][~present] == 0)
    names = [f.layout.atom_names[i] for i in torch.nonzero(present).flatten().tolist()]
    assert sorted(names) == sorted(["C1'", "C1'", "C1'", "P", "P"])
    _, xyz = s.atom_table()
    assert np.allclose(np.sort(f["coords"][present].numpy(), 0), np.sort(xyz, 0), atol=1e-5)
    # The full canonical layout is the output: 20 (5' G, no phosphate) + 22 + 20.
    assert f.layout.n_atoms == 62


def test_five_prime_phosphate_and_chain_break_encoding():
    s = make_structure({"A": ["G", "A", "C", "U"]}, breaks={("A", 2)}, op3_first=True)
    s.chains[0].residues[2].seq_num = 7  # a numbering gap of 4 at the break
    s.chains[0].residues[3].seq_num = 8
    f = featurize(s)
    assert f["five_prime_phosphate"].tolist() == [True, False, False, False]
    assert f.layout.atom_names[f.layout.token_atoms(0)][-1] == "OP3"
    assert f["chain_break_before"].tolist() == [False, False, True, False]
    assert f["residue_index"].tolist() == [1, 2, 7, 8]
    topo = f.topology()
    links = topo.bonds[topo.bond_is_link]
    linked_tokens = sorted(int(f.layout.atom_to_token[a]) for a, _ in links)
    assert linked_tokens == [0, 2]  # 0-1 and 2-3 linked, 1-2 not (break)


def test_break_without_numbering_gap_still_jumps():
    s = make_structure({"A": ["G", "A", "C"]}, breaks={("A", 1)})
    f = featurize(s)
    assert f["residue_index"].tolist() == [1, 3, 4]


def test_max_sequence_length():
    s = make_structure({"A": ["G"] * 10})
    with pytest.raises(InputError, match="max_sequence_length"):
        featurize(s, max_sequence_length=9)


def test_bridging_round_trip_and_validation():
    f = featurize(make_structure({"A": ["G", "A", "PSU", "C"]}))
    a2t = f["atom_to_token_idx"]
    x_tok = torch.randn(2, 4, 7)  # extra sample dim
    x_atom = broadcast_token_to_atom(x_tok, a2t)
    assert x_atom.shape == (2, f.layout.n_atoms, 7)
    assert torch.allclose(aggregate_atom_to_token(x_atom, a2t, 4), x_tok, atol=1e-6)
    counts = validate_atom_to_token(a2t, 4, torch.tensor([20, 22, 20, 20]))
    assert counts.tolist() == [20, 22, 20, 20]
    with pytest.raises(ValueError, match="disagree"):
        validate_atom_to_token(a2t, 4, torch.tensor([20, 21, 21, 20]))
    with pytest.raises(ValueError, match="without atoms"):
        validate_atom_to_token(a2t, 5)
    with pytest.raises(ValueError, match="contiguous"):
        validate_atom_to_token(a2t.flip(0), 4)


def test_collation_pads_and_keeps_items():
    f1 = featurize(make_structure({"A": ["G", "A"]}))
    f2 = featurize(make_structure({"A": ["G", "A", "C", "U"], "B": ["A"]}))
    batch = collate_features([f1, f2])
    n1, n2 = f1.layout.n_atoms, f2.layout.n_atoms
    assert batch["ref_pos"].shape == (2, n2, 3)
    assert batch["ref_atom_name_chars"].shape == (2, n2, 4, 64)
    assert batch["restype"].shape == (2, 5, 32)
    assert batch["atom_mask"][0].sum() == n1 and batch["atom_mask"][1].sum() == n2
    assert batch["token_mask"].tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    for key, value in f1.items():
        real = batch[key][0, : value.shape[0]]
        assert torch.equal(real, value), key
        assert torch.all(batch[key][0, value.shape[0]:] == 0), key  # index padding 0, masks 0
    for key, value in f2.items():
        assert torch.equal(batch[key][1], value), key
    assert batch["chain_break_before"].dtype == torch.bool


def test_features_from_sequence(caplog):
    with caplog.at_level(logging.WARNING):
        f = features_from_sequence({"A": "GG(PSU)C", "B": "GG(PSU)C"})
    assert "sequence alone" in caplog.text
    assert f["restype"].argmax(-1).tolist() == [22, 22, 24, 23] * 2
    assert f["entity_id"].tolist() == [0] * 8 and f["sym_id"].tolist() == [0] * 4 + [1] * 4
    assert f.layout.resnames[2] == "PSU"
    assert f.layout.n_atoms == 2 * (20 + 23 + 20 + 20)
    assert torch.all(f["atom_present_mask"] == 0) and torch.all(f["coords"] == 0)
    # Real chemistry, not zeros: conformers and elements are populated.
    assert f["ref_pos"].abs().sum() > 0 and torch.all(f["ref_element"].sum(-1) == 1)


def test_features_from_sequence_partial_coords():
    base = features_from_sequence("GAC")
    n = base.layout.n_atoms
    xyz = torch.full((n, 3), float("nan"))
    c1 = [i for i, a in enumerate(base.layout.atom_names) if a == "C1'"]
    xyz[c1] = torch.arange(9.0).reshape(3, 3)
    f = features_from_sequence("GAC", partial_coords=xyz)
    assert torch.nonzero(f["atom_present_mask"]).flatten().tolist() == c1
    assert torch.isfinite(f["coords"]).all()
    assert torch.equal(f["coords"][c1], torch.arange(9.0).reshape(3, 3))
    with pytest.raises(InputError, match="partial_coords"):
        features_from_sequence("GAC", partial_coords=torch.zeros(n + 1, 3))
    with pytest.raises(UnknownResidueError):
        features_from_sequence("GXC")
    five = features_from_sequence("GAC", five_prime_phosphate=True)
    assert five.layout.n_atoms == n + 4 and five["five_prime_phosphate"].tolist() == [True, False, False]
