"""Chemistry constants have one owner (rnadiff.chem): the restraints the polish, the guidance and the
loss use (chem.topology) and the ones the metrics judge by (metrics.restraints) agree."""
from __future__ import annotations

import numpy as np

from rnadiff.chem import featurize
from rnadiff.chem.library import POLYMER_ANGLE_OVERRIDES
from rnadiff.io import build_gemmi_structure, read_structure
from rnadiff.metrics.atoms import AtomTable
from rnadiff.metrics.restraints import build_restraints
from tests.train_helpers import EXAMPLES


def test_topology_and_metric_restraints_share_their_targets():
    feats = featurize(read_structure(EXAMPLES / "1f27_B.pdb"))
    topo = feats.topology()
    table = AtomTable.from_gemmi(build_gemmi_structure(feats.layout, feats["coords"].numpy()))
    assert len(table) == topo.n_atoms
    metric = build_restraints(table)
    ours = {tuple(a): (v, e) for a, v, e in zip(topo.angles.tolist(), topo.angle_values, topo.angle_esds)}
    theirs = {tuple(a): (v, e) for a, v, e in zip(metric.angles.tolist(), metric.angle_targets, metric.angle_esds)}
    shared = set(ours) & set(theirs)
    assert len(shared) > 0.9 * len(theirs)
    for key in shared:
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-3, err_msg=str(key))
    names = table.atom_names
    in_chain = [k for k in shared if tuple(names[i] for i in k) in POLYMER_ANGLE_OVERRIDES]
    assert in_chain and all(abs(ours[k][0] - 119.6) < 1e-3 for k in in_chain)  # linked P: the polymer value
    bonds = {tuple(sorted(b)): (v, e) for b, v, e in zip(topo.bonds.tolist(), topo.bond_lengths, topo.bond_esds)}
    for b, v, e in zip(metric.bonds.tolist(), metric.bond_targets, metric.bond_esds):
        if tuple(sorted(b)) in bonds:
            np.testing.assert_allclose(bonds[tuple(sorted(b))], (v, e), atol=1e-3)
