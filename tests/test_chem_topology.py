"""Structure-level restraints: template expansion, O3'-P links, breaks, restriction."""
from __future__ import annotations

import numpy as np

from rnadiff.chem import ResidueSpec, build_layout, build_topology, featurize, signed_volumes
from rnadiff.io import read_structure


def _names(layout, rows):
    return [tuple((int(layout.atom_to_token[i]), layout.atom_names[i]) for i in row) for row in rows]


def test_links_and_breaks():
    specs = [
        ResidueSpec("G", "G", "G", "A", 1, has_phosphate=False),
        ResidueSpec("PSU", "PSU", "U", "A", 2),
        ResidueSpec("C", "C", "C", "A", 3, chain_break_before=True),
        ResidueSpec("A", "A", "A", "A", 4),
        ResidueSpec("A", "A", "A", "B", 1, five_prime_phosphate=True),
        ResidueSpec("U", "U", "U", "B", 2),
    ]
    lay = build_layout(specs)
    topo = build_topology(lay)
    links = _names(lay, topo.bonds[topo.bond_is_link])
    assert links == [((0, "O3'"), (1, "P")), ((2, "O3'"), (3, "P")), ((4, "O3'"), (5, "P"))]
    assert np.allclose(topo.bond_lengths[topo.bond_is_link], 1.607)
    assert np.allclose(topo.bond_esds[topo.bond_is_link], 0.010)
    # 4 link angles per link, e.g. C3'(i)-O3'(i)-P(i+1) = 121.082.
    link_angles = [(a, v) for a, v in zip(_names(lay, topo.angles), topo.angle_values) if a[0][0] != a[2][0]]
    assert len(link_angles) == 12
    assert (((0, "C3'"), (0, "O3'"), (1, "P")), np.float32(121.082)) in link_angles
    # Intra-residue terms: sum over residues of template terms present in the layout.
    # G 26 bonds - OP3-P - 3 P bonds (no phosphate) = 22; PSU/C/U 22 - OP3 = 21; A 25 - OP3 = 24;
    # the 5'-phosphorylated A keeps all 25.
    assert int((~topo.bond_is_link).sum()) == 22 + 21 + 21 + 24 + 25 + 21
    # OP3 bond only on the residue that carries it.
    op3 = [b for b in _names(lay, topo.bonds) if any(n == "OP3" for _, n in b)]
    assert op3 == [((4, "OP3"), (4, "P"))]
    # Four sugar stereocentres per residue.
    assert len(topo.chirals) == 4 * 6


def test_restrict_keeps_only_present_terms():
    lay = build_layout([ResidueSpec("G", "G", "G", "A", 1), ResidueSpec("C", "C", "C", "A", 2)])
    topo = build_topology(lay)
    mask = np.zeros(lay.n_atoms, bool)
    mask[lay.token_atoms(1)] = True
    sub = topo.restrict(mask)
    assert sub.n_atoms == lay.n_atoms and mask[sub.bonds].all() and not sub.bond_is_link.any()
    re = topo.restrict(mask, reindex=True)
    assert re.n_atoms == int(mask.sum()) and re.bonds.max() < re.n_atoms
    assert len(re.bonds) == len(sub.bonds) == 21  # C: 22 template bonds minus OP3-P
    assert np.array_equal(re.bonds + lay.token_atom_start[1], sub.bonds)
    idx, pmask, esd = topo.padded_planes()
    assert idx.shape == pmask.shape == esd.shape and pmask.sum() == sum(len(p) for p in topo.planes)
    pairs = topo.bonded_pairs(3)
    assert (pairs[:, 0] < pairs[:, 1]).all() and len(pairs) > len(topo.bonds)


def test_bonded_pairs_are_the_atom_pairs_within_k_bonds():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    lay = build_layout([ResidueSpec("G", "G", "G", "A", 1), ResidueSpec("C", "C", "C", "A", 2),
                        ResidueSpec("A", "A", "A", "A", 3)])
    topo = build_topology(lay)
    n = topo.n_atoms
    graph = csr_matrix((np.ones(len(topo.bonds)), (topo.bonds[:, 0], topo.bonds[:, 1])), shape=(n, n))
    hops = shortest_path(graph, directed=False, unweighted=True)
    for k in (1, 2, 3):
        i, j = np.nonzero(np.triu(hops <= k, 1))
        assert np.array_equal(topo.bonded_pairs(k), np.stack([i, j], 1)), k
    assert len(topo.bonded_pairs(1)) == len({tuple(sorted(b)) for b in topo.bonds.tolist()})


def test_crystal_structure_satisfies_topology(rna_dev_dir):
    s = read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / "1EVV_A.pdb")  # tRNA-Phe, 11 modified
    f = featurize(s)
    present = f["atom_present_mask"].numpy() > 0
    x = f["coords"].numpy().astype(np.float64)
    topo = f.topology().restrict(present)
    d = np.linalg.norm(x[topo.bonds[:, 0]] - x[topo.bonds[:, 1]], axis=1)
    z = np.abs(d - topo.bond_lengths) / topo.bond_esds
    assert np.median(z) < 1.5 and (z > 6).mean() < 0.01
    link = topo.bond_is_link
    assert link.sum() == s.n_residues - 1 - sum(r.chain_break_before for r in s.residues)
    assert np.all(np.abs(d[link] - 1.607) < 0.1)
    u = x[topo.angles[:, 0]] - x[topo.angles[:, 1]]
    v = x[topo.angles[:, 2]] - x[topo.angles[:, 1]]
    ang = np.degrees(np.arccos((u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)))
    assert np.median(np.abs(ang - topo.angle_values) / topo.angle_esds) < 1.5
    vol = signed_volumes(x, topo.chirals)
    assert (np.sign(vol) == topo.chiral_signs).mean() > 0.99
