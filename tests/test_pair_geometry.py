"""Canonical base-pair template restraints (issue 15): the measured cross distances of a cis
Watson–Crick / G·U pair, and the polish that builds the pairs the base-pair prior asserts."""
from __future__ import annotations

import numpy as np
import torch

from rnadiff.chem import featurize
from rnadiff.chem.pair_geometry import PAIR_DISTANCES, pair_template_restraints
from rnadiff.chem.pairing import HBONDS, pair_prior
from rnadiff.chem.regularize import PolishSettings, polish_samples
from rnadiff.diffusion.guidance import polish_restraints
from rnadiff.io import read_structure
from rnadiff.metrics.basepairs import canonical_pairs, pair_set


def _hairpin(rna_dev_dir):
    feats = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp1_train" / "2qus_A.pdb"))
    pairs = canonical_pairs(feats.layout, feats["coords"].numpy(), feats["atom_present_mask"].numpy() > 0)
    return feats, [(p.i, p.j) for p in pairs]


def test_every_pair_type_fixes_the_relative_frame_of_the_two_bases():
    assert set(PAIR_DISTANCES) == set(HBONDS)
    for key, rows in PAIR_DISTANCES.items():
        assert len(rows) >= 8
        first = {a for a, _, _, _ in rows}
        second = {b for _, b, _, _ in rows}
        assert len(first) >= 3 and len(second) >= 3  # three points per base: a rigid frame each
        assert all(0 < sd < 0.5 and 2.0 < mean < 16.0 for _, _, mean, sd in rows)
        assert all(hb in {(a, b) for a, b, _, _ in rows} for hb in HBONDS[key])


def test_native_pairs_sit_on_the_template(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    atoms, target, esd = pair_template_restraints(feats, pairs, np.ones(len(pairs)))[:3]
    assert len(atoms) >= 49 * len(pairs)
    x = feats["coords"].numpy().astype(np.float64)
    z = np.abs(np.linalg.norm(x[atoms[:, 0]] - x[atoms[:, 1]], axis=-1) - target) / esd
    assert np.median(z) < 1.0 and np.mean(z < 3.0) > 0.95


def test_native_pairs_sit_on_the_plane_offsets(rna_dev_dir):
    from rnadiff.chem.restraint_energy import TiledRestraints, restraint_energy

    feats, pairs = _hairpin(rna_dev_dir)
    t = pair_template_restraints(feats, pairs, np.ones(len(pairs)))
    assert len(t.offsets) == 2 * len(pairs) and set(t.offset_pair.tolist()) == set(range(len(pairs)))
    x = feats["coords"].numpy().astype(np.float64)
    z = []
    for row, target, esd in zip(t.offsets, t.offset_target, t.offset_esd):
        one = TiledRestraints(n_atoms=len(x), n_samples=1, offsets=row[None], offset_target=np.array([target]),
                              offset_weight=np.array([1.0]))
        z.append(np.sqrt(restraint_energy(x, one)[0]) / esd)  # |h - target| / esd
    assert np.median(z) < 1.0 and np.mean(np.array(z) < 3.0) > 0.95


def test_plane_offsets_hold_a_staggered_pair_in_plane(rna_dev_dir):
    # Distances pin the stagger only to second order: shifted 2 Å along its partner's normal, a
    # base came back to 0.2-1.1 Å out of the plane with distances alone, to 0.04-0.5 Å with offsets.
    import dataclasses

    from rnadiff.metrics.basepairs import oriented_normal

    feats, pairs = _hairpin(rna_dev_dir)
    f = dict(feats.as_dict(), pair_prior=pair_prior(feats.as_dict(), pairs))
    layout, tok = feats.layout, feats["atom_to_token_idx"].numpy()
    everything = np.ones(layout.n_atoms, bool)
    restraints = polish_restraints(f, feats.topology(), pair_weight=1.0)
    distances_only = dataclasses.replace(restraints, offsets=np.zeros((0, 4), np.int64), offset_targets=np.zeros(0),
                                         offset_esds=np.zeros(0), offset_groups=None)

    def stagger(x, i, j):  # the annotator's out-of-plane measure: j's central atom on i's normal
        return abs(float(np.dot(x[layout.atom_index(j, "N3" if layout.parents[j] in "CU" else "N1")]
                                - x[layout.atom_index(i, "N1" if layout.parents[i] in "AG" else "N3")],
                                oriented_normal(layout, x, everything, i))))

    with_offsets, without = [], []
    for i, j in pairs[2:8:2]:
        purine, other = (i, j) if layout.parents[i] in "AG" else (j, i)
        x = feats["coords"].numpy().astype(np.float64).copy()
        x[tok == other] += 2.0 * oriented_normal(layout, x, everything, purine)
        assert stagger(x, purine, other) > 1.5
        settings = PolishSettings(max_iter=300, tether=0.6)
        with_offsets.append(stagger(polish_samples(x[None], restraints, settings)[0], purine, other))
        without.append(stagger(polish_samples(x[None], distances_only, settings)[0], purine, other))
    assert max(with_offsets) < 0.6 and np.mean(with_offsets) < 0.7 * np.mean(without)


def test_confidence_loosens_and_non_complementary_pairs_add_nothing(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    full = pair_template_restraints(feats, pairs[:1], [1.0])
    quarter = pair_template_restraints(feats, pairs[:1], [0.25])
    np.testing.assert_allclose(quarter.esd, 2 * full.esd)
    np.testing.assert_allclose(quarter.offset_esd, 2 * full.offset_esd)
    parents = feats.layout.parents
    i, j = next((a, b) for a in range(len(parents)) for b in range(a + 4, len(parents))
                if parents[a] == parents[b] == "A")
    assert len(pair_template_restraints(feats, [(i, j)], [1.0]).atoms) == 0
    assert len(pair_template_restraints(feats, [(i, j)], [1.0]).offsets) == 0


def _opened(feats, pairs):
    """The native with one pair's second residue turned 60° about its C1' and moved 2 Å: the
    pair's H-bonds and coplanarity are gone, the chain's bonds strained but not torn."""
    x = feats["coords"].numpy().astype(np.float64).copy()
    tok = feats["atom_to_token_idx"].numpy()
    i, j = pairs[1]
    atoms = tok == j
    c1 = x[feats.layout.atom_index(j, "C1'")]
    a = np.radians(60.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    x[atoms] = (x[atoms] - c1) @ rot.T + c1 + np.array([0.0, 0.0, 2.0])
    return x, (min(i, j), max(i, j))


def test_polish_with_pair_restraints_rebuilds_an_opened_pair(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    f = dict(feats.as_dict(), pair_prior=pair_prior(feats.as_dict(), pairs))
    x, pair = _opened(feats, pairs)
    assert pair not in pair_set(canonical_pairs(feats.layout, x))
    settings = PolishSettings(max_iter=300, tether=0.6)
    topology = feats.topology()
    with_pairs = polish_samples(x[None], polish_restraints(f, topology, pair_weight=1.0), settings)[0]
    without = polish_samples(x[None], polish_restraints(f, topology), settings)[0]
    assert pair in pair_set(canonical_pairs(feats.layout, with_pairs))
    assert pair not in pair_set(canonical_pairs(feats.layout, without))
    # the other native pairs stay formed
    assert set(map(tuple, pairs)) <= pair_set(canonical_pairs(feats.layout, with_pairs)) | {pair}


def test_pair_weight_zero_or_no_prior_adds_no_restraint(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    topology = feats.topology()
    assert len(polish_restraints(feats, topology, pair_weight=1.0).distances) == 0  # no prior in feats
    f = dict(feats.as_dict(), pair_prior=pair_prior(feats.as_dict(), pairs))
    assert len(polish_restraints(f, topology, pair_weight=0.0).distances) == 0
    r = polish_restraints(f, topology, pair_weight=4.0)
    esd = pair_template_restraints(feats, pairs, np.ones(len(pairs))).esd
    np.testing.assert_allclose(r.distance_esds, esd / 2.0)
    assert len(r.offsets) == 2 * len(pairs) and np.array_equal(np.unique(r.offset_groups), np.unique(r.distance_groups))
    assert torch.is_tensor(f["pair_prior"])


def _refine_settings(overrides):
    import argparse

    from rnadiff.cli import refine as cli_refine

    parser = argparse.ArgumentParser()
    cli_refine.register(parser.add_subparsers())
    args = parser.parse_args(["refine", "input.pdb", "--out", "unused"])
    return cli_refine.settings_from(args, overrides)


def test_refine_builds_asserted_pairs_by_default_and_the_weight_is_a_config_key():
    from rnadiff.pipeline import PipelineSettings

    assert _refine_settings([]).regularize_pairs == 1.0
    assert PipelineSettings().regularize_pairs == 1.0
    assert _refine_settings(["postprocess.base_pairs=0"]).regularize_pairs == 0.0


def test_pair_template_guidance_term_builds_an_opened_pair_and_is_off_by_default(rna_dev_dir):
    from rnadiff.diffusion.guidance import DEFAULT_TERMS, GuidanceConfig, RNAGuidance

    feats, pairs = _hairpin(rna_dev_dir)
    f = dict(feats.as_dict(), pair_prior=pair_prior(feats.as_dict(), pairs))
    x, pair = _opened(feats, pairs)
    cfg = GuidanceConfig.from_mapping({"enabled": True, "n_steps": 100, "max_displacement": 3.0,
                                       "potentials": {"pair_template": {"weight": 1.0}}})
    g = RNAGuidance.from_features(f, cfg, topology=feats.topology())
    assert len(g.terms.pair_template.atoms) >= 49 * len(pairs) and len(g.terms.pair_template.offsets) == 2 * len(pairs)
    xt = torch.from_numpy(x).float()[None]
    native = g.energies(feats["coords"].float()[None])["pair_template"].item()
    # native offsets spread as wide as their esd (a third lie outside a 1-esd flat bottom)
    assert g.energies(xt)["pair_template"].item() > 50 * max(native, 0.01)
    guided = g.guide(xt.clone(), torch.tensor([0.5]))[0].double().numpy()
    assert pair in pair_set(canonical_pairs(feats.layout, guided))
    assert DEFAULT_TERMS["pair_template"].weight == 0.0


def test_a_distance_restraint_against_a_clash_yields_to_the_clash():
    from rnadiff.chem.regularize import PolishRestraints

    # two carbons (r = 1.7 Å, contact 3.4 Å) restrained to 2.0 Å apart: the polish first meets
    # the restraint halfway, then its extra clash rounds weaken it until the overlap is < 0.4 Å
    e2, e0 = np.zeros((0, 2), np.int64), np.zeros(0)
    r = PolishRestraints(n_atoms=2, bonds=e2, bond_lengths=e0, bond_esds=e0, angles=np.zeros((0, 3), np.int64),
                         angle_values=e0, angle_esds=e0, planes=(), plane_esds=(), radius=np.full(2, 1.7),
                         polar=np.zeros(2, bool), distances=np.array([[0, 1]]), distance_targets=np.array([2.0]),
                         distance_esds=np.array([0.02]))
    x = np.array([[[0.0, 0.0, 0.0], [3.4, 0.0, 0.0]]])
    out = polish_samples(x, r, PolishSettings(max_iter=90, tether=0.6))[0]
    assert 3.4 - np.linalg.norm(out[0] - out[1]) < 0.4
    stiff = polish_samples(x, r, PolishSettings(max_iter=90, tether=0.6, distance_decay=1.0))[0]
    assert np.linalg.norm(stiff[0] - stiff[1]) < np.linalg.norm(out[0] - out[1])


def test_inferred_pairs_with_a_given_base_atom_are_left_to_the_model_but_user_pairs_are_not(rna_dev_dir):
    feats, pairs = _hairpin(rna_dev_dir)
    topology = feats.topology()
    f = dict(feats.as_dict())
    inferred = np.zeros((len(feats.layout.parents),) * 2 + (4,), np.float32)
    for i, j in pairs:
        inferred[i, j, :2] = inferred[j, i, :2] = 1.0
    f["pair_prior"] = torch.from_numpy(inferred)
    # all atoms given: every base is placed by the input; only the plane offsets are restrained
    placed = polish_restraints(f, topology, pair_weight=1.0)
    assert len(placed.distances) == 0 and len(placed.offsets) == 2 * len(pairs)
    only_p = f["atom_present_mask"] * torch.tensor([n == "P" for n in feats.layout.atom_names]).float()
    assert len(polish_restraints(dict(f, atom_present_mask=only_p), topology, pair_weight=1.0).distances) >= 49 * len(pairs)
    f["pair_prior"] = pair_prior(feats.as_dict(), pairs)  # the same pairs as a user's secondary structure
    assert len(polish_restraints(f, topology, pair_weight=1.0).distances) >= 49 * len(pairs)


def test_a_pseudouridine_is_restrained_on_its_renamed_ring_as_the_annotator_reads_it(rna_dev_dir):
    # 1EVV (tRNA-Phe): PSU39 pairs with A31; Ψ's C5 bonds C1' and its O2 takes U's O4 place (N6–O4 H-bond)
    feats = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / "1EVV_A.pdb"))
    layout = feats.layout
    psu = [t for t, name in enumerate(layout.template_names) if name == "PSU"]
    pair = next(p for p in pair_set(canonical_pairs(layout, feats["coords"].numpy())) if set(p) & set(psu))
    atoms = pair_template_restraints(feats, [pair], [1.0]).atoms
    side = next(t for t in pair if t in psu)
    names = {layout.atom_names[k] for k in atoms.ravel() if layout.atom_to_token[k] == side}
    assert "O2" in names and "O4" not in names  # U's O4 position is Ψ's O2
    assert names >= {"C1'", "N1", "C2", "N3", "C4", "C5", "C6"}


def test_one_c_glycoside_test_for_templates_features_and_h_bonds(rna_dev_dir):
    from rnadiff.chem.library import known_template_names
    from rnadiff.chem.pairing import c_glycoside_tokens, hbond_atom_pairs, is_c_glycoside

    assert [n for n in known_template_names() if is_c_glycoside(n)] == ["PSU"]
    feats = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / "1EVV_A.pdb"))
    layout = feats.layout
    expected = np.array([is_c_glycoside(n) for n in layout.template_names])
    assert expected.any() and np.array_equal(c_glycoside_tokens(feats), expected)
    # the guidance's H-bonds of a Ψ pair use the renamed ring too: Ψ's O2 stands where U's O4 is
    psu = set(np.flatnonzero(expected).tolist())
    pair = next(p for p in pair_set(canonical_pairs(layout, feats["coords"].numpy())) if set(p) & psu)
    atoms, _ = hbond_atom_pairs(feats, [pair])
    side = next(t for t in pair if t in psu)
    names = {layout.atom_names[k] for k in atoms.ravel() if layout.atom_to_token[k] == side}
    assert names == {"N3", "O2"}
