"""Guidance potentials: zero on clean crystal chains, positive when perturbed, their analytic
gradient is the energy's, and their L-BFGS steps reduce the matching quality measure
(rnadiff.metrics) on a perturbed copy."""
import math

import numpy as np
import pytest
import torch

from rnadiff.chem import featurize
from rnadiff.diffusion.guidance import POTENTIALS, GuidanceConfig, RNAGuidance
from rnadiff.chem.restraint_energy import plane_deviations
from rnadiff.io import build_gemmi_structure, read_structure
from rnadiff.metrics import structure_quality
from rnadiff.metrics.superpose import rmsd_coords

# Clean crystal chains of the dev set (no geometry outliers, no clashes).
CRYSTALS = ("1I9X_B", "2R1S_A")


@pytest.fixture(scope="module")
def crystal(rna_dev_dir):
    f = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / "1I9X_B.pdb"))
    assert float(f["atom_present_mask"].min()) == 1.0  # every atom given: the full topology applies
    return f


def only(term: str, n_steps: int = 20, **extra) -> GuidanceConfig:
    """A config where only `term` acts (full weight below σ = 1)."""
    pots = {k: {"weight": 1.0 if k == term else 0.0} for k in POTENTIALS}
    pots[term].update(extra)
    return GuidanceConfig.from_mapping({"enabled": True, "n_steps": n_steps, "potentials": pots})


def quality(f, x: torch.Tensor) -> dict:
    return structure_quality(build_gemmi_structure(f.layout, x.double().numpy()))


def descend(g: RNAGuidance, x: torch.Tensor, rounds: int = 2) -> torch.Tensor:
    """`rounds` sampler steps' worth of guidance at a low noise level."""
    y = x[None]
    for step in range(rounds):
        y = g.guide(y, torch.tensor([0.5]), step=step)
    return y[0]


@pytest.mark.parametrize("name", CRYSTALS)
def test_every_potential_is_zero_on_a_crystal_and_rigid_motion_invariant(rna_dev_dir, name):
    f = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / f"{name}.pdb"))
    # the tether is harmonic by default; a 0.01 Å flat bottom absorbs the alignment's round-off
    g = RNAGuidance.from_features(f, {"potentials": {"given": {"weight": 1.0, "tolerance": 0.01}}})
    x = f["coords"]
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))[0]
    if torch.det(rot) < 0:
        rot = -rot
    moved = x @ rot.T + torch.tensor([5.0, -3.0, 12.0])
    e = g.energies(torch.stack([x, moved]))
    assert set(e) == set(POTENTIALS)
    for k, v in e.items():
        assert v.shape == (2,) and np.all(v == 0), (k, v)
    # the terms are non-trivial for this chain
    t = g.terms
    assert len(t.bonds) > 100 and len(t.links) >= 5 and len(t.chirals) >= 20 and len(t.planes) >= 5


def _reflect_centres(x: torch.Tensor, chirals: np.ndarray, which: list[int]) -> torch.Tensor:
    """Mirror the centre atom of the chosen chiral rows through the plane of its 3 neighbours."""
    y = x.clone()
    for k in which:
        c, a, b, d = (y[i] for i in chirals[k].tolist())
        n = torch.linalg.cross(b - a, d - a)
        n = n / n.norm()
        y[chirals[k, 0]] = c - 2 * ((c - a) @ n) * n
    return y


def test_chirality_inverted_centres_are_repaired(crystal):
    g = RNAGuidance.from_features(crystal, only("chirality"))
    which = list(range(0, len(g.terms.chirals), 4))[:8]
    bad = _reflect_centres(crystal["coords"], g.terms.chirals, which)
    assert g.energies(bad[None])["chirality"].item() > 0
    before = quality(crystal, bad)["chirality_errors"]
    assert before >= len(which)
    after = quality(crystal, descend(g, bad))["chirality_errors"]
    assert after <= before // 4, (before, after)


def _noisy(x: torch.Tensor, scale: float, seed: int = 0) -> torch.Tensor:
    return x + scale * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("term, metric", [
    ("bond", "bond_outliers"), ("link", "link_outliers"), ("angle", "angle_outliers"),
])
def test_covalent_terms_cut_their_outliers(crystal, term, metric):
    g = RNAGuidance.from_features(crystal, only(term))
    bad = _noisy(crystal["coords"], 0.25)
    assert g.energies(bad[None])[term].item() > 0
    before = quality(crystal, bad)[metric]
    assert before >= 3
    after = quality(crystal, descend(g, bad))[metric]
    assert after <= before // 10, (term, before, after)


def test_planarity_flattens_bases(crystal):
    g = RNAGuidance.from_features(crystal, only("planarity"))
    bad = _noisy(crystal["coords"], 0.25)
    assert g.energies(bad[None])["planarity"].item() > 0
    t = g.terms
    dev = lambda x: float(np.abs(plane_deviations(x.double().numpy(), t.planes, t.plane_mask)[0]).max())
    assert dev(bad) > 0.3
    fixed = descend(g, bad)
    assert dev(fixed) < 0.5 * dev(bad) and g.energies(fixed[None])["planarity"].item() < 1e-3


def test_clash_term_removes_clashes(crystal):
    g = RNAGuidance.from_features(crystal, only("clash"))
    x = crystal["coords"]
    centre = x.mean(0)
    squeezed = centre + 0.8 * (x - centre)  # a compressed copy: many non-bonded overlaps
    assert g.energies(squeezed[None])["clash"].item() > 0
    before = quality(crystal, squeezed)["clashes"]
    assert before >= 10
    after = quality(crystal, descend(g, squeezed))["clashes"]
    assert after <= before // 5, (before, after)


def test_given_atoms_tether_in_the_sample_frame(crystal):
    g = RNAGuidance.from_features(crystal, only("given"))
    x = crystal["coords"]
    # A sample in another frame: rotated copy with noise. The tether aligns first, so only the
    # noise (not the rigid motion) is pulled back.
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    bad = _noisy(x, 0.5) @ rot.T + 7.0
    assert g.energies(bad[None])["given"].item() > 0
    fid = lambda y: float(rmsd_coords(y.double().numpy(), x.double().numpy(), superposition=True))
    fixed = descend(g, bad)
    assert fid(fixed) < 0.3 * fid(bad)
    # the frame stays the sample's: still rotated, not snapped back onto the input
    assert float((fixed - x).norm(dim=-1).mean()) > 5.0


def test_schedule_gates_guidance_by_noise_level(crystal):
    cfg = only("bond")
    g = RNAGuidance.from_features(crystal, cfg)
    bad = _noisy(crystal["coords"], 0.25)[None]
    assert torch.equal(g.guide(bad, torch.tensor([5.0])), bad)  # above sigma_max: untouched
    assert not torch.equal(g.guide(bad, torch.tensor([0.5])), bad)
    term = cfg.terms["bond"]
    assert term.factor(5.0) == 0.0 and term.factor(1.0) == 1.0 and term.factor(0.1) == 1.0
    assert math.isclose(term.factor(2.0), 0.5)  # log-linear ramp between sigma_full 1 and sigma_max 4


def test_flat_bottom_gradient_matches_finite_differences(rna_dev_dir):
    """Every guidance potential but the tether (whose alignment is held fixed on purpose) at full
    weight, on a hairpin with its native pairs asserted: the kernel's analytic gradient equals the
    energy's central differences."""
    from rnadiff.chem.pairing import pair_prior
    from rnadiff.chem.restraint_energy import restraint_energy
    from rnadiff.diffusion.guidance.energy import guidance_restraints
    from rnadiff.metrics.basepairs import canonical_pairs

    hairpin = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp1_train" / "2qus_A.pdb"))
    native = canonical_pairs(hairpin.layout, hairpin["coords"].numpy(), hairpin["atom_present_mask"].numpy() > 0)
    f = dict(hairpin.as_dict(), pair_prior=pair_prior(hairpin.as_dict(), [(p.i, p.j) for p in native]))
    g = RNAGuidance.from_features(f, {"potentials": {"base_pair": {"weight": 1.0}, "pair_template": {"weight": 1.0}}},
                                  topology=hairpin.topology())
    x = np.concatenate([_noisy(hairpin["coords"], 0.3, seed).double().numpy() for seed in (1, 2)])
    # planarity holds its plane's normal fixed (with a flat bottom a little of the normal's
    # variation is left out, on purpose): checked apart, harmonic, where the normal is optimal
    factors = {k: 1.0 for k in POTENTIALS if k not in ("given", "planarity")}
    system = guidance_restraints(g.terms, g.config.terms, factors, 2, g.neighbor_pairs(x, 2))
    assert len(system.clash_pairs) and len(system.distances) and len(system.chirals) and len(system.angles)
    flat = only("planarity", tolerance=0.0)
    planes = guidance_restraints(g.terms, flat.terms, {"planarity": 1.0}, 2)
    assert planes.planes.size
    rng = np.random.default_rng(3)
    for t in (system, planes):
        _, grad = restraint_energy(x, t)
        for i, k in zip(rng.integers(0, len(x), 16), rng.integers(0, 3, 16)):
            hi, lo = x.copy(), x.copy()
            hi[i, k] += 1e-6
            lo[i, k] -= 1e-6
            num = (restraint_energy(hi, t)[0] - restraint_energy(lo, t)[0]) / 2e-6
            assert num == pytest.approx(grad[i, k], rel=1e-4, abs=1e-4)


def test_every_contact_after_a_guided_step_was_in_the_step_s_clash_list(crystal):
    """The default skin covers the moves of one step (2 x max_displacement): no pair outside the
    list, built from the step's input, can have come into contact by the step's end."""
    g = RNAGuidance.from_features(crystal, {})
    assert g.config.neighbor_skin >= 2 * g.config.max_displacement
    x = crystal["coords"].double()
    centre = x.mean(0)
    squeezed = (centre + 0.85 * (x - centre))[None]  # overlaps everywhere: large moves this step
    out = g.guide(squeezed, torch.tensor([0.5]))
    listed, _ = g.neighbor_pairs(squeezed.numpy().reshape(-1, 3), 1)
    moved = float((out - squeezed).norm(dim=-1).max())
    assert 0.5 < moved <= g.config.max_displacement + 1e-9
    t = g.terms
    from rnadiff.chem.restraint_energy import clash_pairs

    touching, _ = clash_pairs(out.numpy().reshape(-1, 3), 1, t.radius, t.polar, t.exclude,
                              g.config.terms["clash"].tolerance, 0.0)
    assert len(touching) and {tuple(p) for p in touching.tolist()} <= {tuple(p) for p in listed.tolist()}
