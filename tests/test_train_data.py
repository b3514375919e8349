"""Training data: split by sequence, crops, partial-input simulation, tarball/folder loading."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize
from rnadiff.chem.features import atom_name_code, atom_name_codes
from rnadiff.errors import ConfigError
from rnadiff.io import read_structure
from rnadiff.train.crop import contiguous_tokens, crop_bonds, crop_features, spatial_tokens
from rnadiff.train.data import Record, load_records, split_records
from rnadiff.train.examples import TrainStream, build_example, make_generator
from rnadiff.train.partial import MODES, PartialSettings, simulate_partial
from rnadiff.train.split import is_validation, sequence_md5
from tests.train_helpers import EXAMPLES


@pytest.fixture(scope="module")
def record() -> Record:
    f = featurize(read_structure(EXAMPLES / "4phy_A.pdb"))
    topo = f.topology()
    seq = "".join(f.layout.parents)
    return Record(name="4phy_A", features=f.as_dict(), bonds=np.asarray(topo.bonds, np.int64),
                  bond_lengths=np.asarray(topo.bond_lengths, np.float32), seq_md5=sequence_md5(seq), sequence=seq)


def test_split_is_by_sequence_and_deterministic():
    md5s = [sequence_md5(s) for s in ("GGGAAACCC", "ACGU" * 5, "UUCG", "GCGCGC", "AAAAUUUU")] * 3
    first = [is_validation(m, 0.4) for m in md5s]
    assert first == [is_validation(m, 0.4) for m in md5s]  # deterministic
    assert first[:5] == first[5:10] == first[10:]  # same sequence -> same side
    frac = np.mean([is_validation(f"{i:012x}", 0.15) for i in range(4000)])
    assert 0.12 < frac < 0.18
    assert not any(is_validation(f"{i:012x}", 0.0) for i in range(100))
    with pytest.raises(ValueError):
        is_validation("abc", 1.0)


def test_split_records_groups_identical_sequences(record):
    twins = [Record(name=f"c{i}", features=record.features, bonds=record.bonds, bond_lengths=record.bond_lengths,
                    seq_md5=sequence_md5(s), sequence=s) for i, s in enumerate(["AAA", "CCC", "AAA", "GGG", "CCC"])]
    train, val = split_records(twins, 0.5)
    assert len(train) + len(val) == 5
    for group in (["c0", "c2"], ["c1", "c4"]):
        sides = {any(r.name == n for r in val) for n in group}
        assert len(sides) == 1


def test_contiguous_and_spatial_crops_are_consistent(record):
    g = make_generator(1)
    n_atom_full = record.features["coords"].shape[0]
    for tokens in (contiguous_tokens(record.n_token, 10, g), spatial_tokens(record.features, 10, g)):
        assert len(tokens) == 10 and bool((tokens[1:] > tokens[:-1]).all())
        f, atoms = crop_features(record.features, tokens)
        assert f["restype"].shape[0] == 10 and f["coords"].shape[0] == len(atoms)
        assert int(f["atom_to_token_idx"].max()) == 9 and int(f["atom_to_token_idx"].min()) == 0
        torch.testing.assert_close(f["coords"], record.features["coords"][atoms])
        jumps = (tokens[1:] - tokens[:-1]) != 1
        assert torch.equal(f["chain_break_before"][1:], jumps | record.features["chain_break_before"][tokens][1:])
        bonds, lengths = crop_bonds(record.bonds, record.bond_lengths, atoms, n_atom_full)
        assert len(bonds) == len(lengths) > 0 and int(bonds.max()) < len(atoms)
        d = (f["coords"][bonds[:, 0]] - f["coords"][bonds[:, 1]]).norm(dim=-1)
        assert float((d - lengths).abs().max()) < 0.25  # real bonds of a crystal structure


def test_spatial_crop_is_compact(record):
    f = record.features
    g = make_generator(7)
    tokens = spatial_tokens(f, 8, g)
    cropped, _ = crop_features(f, tokens)
    c1 = cropped["coords"][atom_name_codes(cropped["ref_atom_name_chars"]) == atom_name_code("C1'")]
    full_c1 = f["coords"][atom_name_codes(f["ref_atom_name_chars"]) == atom_name_code("C1'")]
    assert torch.cdist(c1, c1).max() < torch.cdist(full_c1, full_c1).max()


@pytest.mark.parametrize("mode", MODES)
def test_partial_modes_give_the_right_atoms(record, mode):
    f = record.features
    out, got = simulate_partial(f, PartialSettings(), make_generator(3), mode)
    assert got == mode
    given = out["atom_present_mask"] > 0
    codes = atom_name_codes(f["ref_atom_name_chars"])
    n_tok = record.n_token
    if mode == "c1":
        assert int(given.sum()) == n_tok and bool((codes[given] == atom_name_code("C1'")).all())
    elif mode == "p":
        assert bool((codes[given] == atom_name_code("P")).all()) and int(given.sum()) >= n_tok - 1
    elif mode == "noisy":
        assert bool(given.all())
    else:
        assert 0 < int(given.sum()) < len(given)
    assert bool((out["coords"][~given] == 0).all())
    # rotated + translated + jittered: pairwise distances roughly kept, absolute positions not
    x_in, x_true = out["coords"][given], f["coords"][given]
    assert float((x_in - x_true).norm(dim=-1).mean()) > 1.0
    if given.sum() > 1:
        d_err = (torch.cdist(x_in, x_in) - torch.cdist(x_true, x_true)).abs().mean()
        assert float(d_err) < (3.0 if mode == "noisy" else 0.6)


def test_stream_is_a_function_of_the_step(record):
    kw = dict(batch_size=2, crop_size=12, spatial_prob=0.5, partial=PartialSettings(), seed=5)
    a = TrainStream([record, record], **kw)
    b = TrainStream([record, record], start_step=lambda: 3, **kw)
    it = iter(a)
    seq = [next(it) for _ in range(5)]
    first_b = next(iter(b))
    for x, y in zip(seq[3], first_b):
        assert x.mode == y.mode and torch.equal(x.features["coords"], y.features["coords"])
    ex = build_example(record, crop_size=12, spatial_prob=0.0, partial=PartialSettings(), generator=make_generator(1))
    assert ex.x_true.shape[0] == ex.features["coords"].shape[0] == ex.true_mask.shape[0]


def test_load_records_from_folder_and_tarball(tmp_path):
    folder = tmp_path / "chains"
    folder.mkdir()
    (folder / "4phy_A.pdb").write_bytes((EXAMPLES / "4phy_A.pdb").read_bytes())
    (folder / "broken.pdb").write_text("ATOM      1  C1'   X A   1   not a number\n")
    recs, report = load_records(folder)
    assert [r.name for r in recs] == ["4phy_A"] and len(report.skipped) == 1 and report.n_files == 2
    tgz = tmp_path / "chains.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder / "4phy_A.pdb", arcname="x/4phy_A.pdb")
    recs2, _ = load_records(tgz, extract_dir=tmp_path / "cache")
    assert [r.name for r in recs2] == ["4phy_A"] and recs2[0].seq_md5 == recs[0].seq_md5
    with pytest.raises(ConfigError, match="no such file"):
        load_records(tmp_path / "missing")
