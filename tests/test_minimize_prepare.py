"""Minimization set-up that needs no OpenMM run: config validation, structure preparation, CLI errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from rnadiff.errors import ConfigError
from rnadiff.metrics import AtomTable
from rnadiff.minimize.config import MinimizationConfig
from rnadiff.geometry.dihedral import dihedral
from rnadiff.minimize.phosphate import place
from rnadiff.minimize.prepare import prepare

ENTRY = "clean_entry/rsrnasp_train/5V1K.pdb"  # 2 chains x 11 nt, 5BU in each, a break in each


def test_config_defaults_and_overrides():
    cfg = MinimizationConfig()
    assert (cfg.method, cfg.solvent, cfg.restraint_k, cfg.tolerance, cfg.cutoff) == ("OpenMM", "none", 10.0, 10.0, 1.0)
    assert cfg.electrostatics == "distance_dielectric" and cfg.cpu_threads == 1  # cheap; reproducible
    assert cfg.with_overrides(["solvent=vacuum"]).solvent == "none"  # the old name
    cfg2 = cfg.with_overrides(["solvent=obc2", "energy_minimization.steps=50", "hydrogens=true"])
    assert (cfg2.solvent, cfg2.steps, cfg2.hydrogens) == ("obc2", 50, True)
    for bad in (["solvent=water"], ["electrostatics=pme"], ["platform=TPU"], ["restraint_k=-1"], ["nonsense=1"],
                ["steps=abc"], ["steps"]):
        with pytest.raises(ConfigError):
            cfg.with_overrides(bad)


def test_from_dict_types_option_strings_and_names_the_bad_key():
    cfg = MinimizationConfig.from_dict({"steps": "5", "enabled": "false", "tolerance": "2.5", "cpu_threads": "0",
                                        "method": "openmm"})
    assert (cfg.steps, cfg.enabled, cfg.tolerance, cfg.cpu_threads, cfg.method) == (5, False, 2.5, 0, "OpenMM")
    assert isinstance(cfg, MinimizationConfig) and isinstance(cfg.steps, int) and isinstance(cfg.tolerance, float)
    for bad, key in (({"steps": "abc"}, "energy_minimization.steps"),
                     ({"enabled": "maybe"}, "energy_minimization.enabled"),
                     ({"cpu_threads": "1.5"}, "energy_minimization.cpu_threads"), ({"nonsense": 1}, "nonsense")):
        with pytest.raises(ConfigError, match=key) as info:
            MinimizationConfig.from_dict(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("method,exes", [("GROMACS", ("gmx",)), ("AMBER", ("sander", "pmemd"))])
def test_external_backends_fail_at_config_time(method, exes, monkeypatch, tmp_path):
    # Missing executables: the message names them.
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=exes[0]):
        MinimizationConfig(method=method)
    # Present executables: still a ConfigError (backend not implemented), never a silent fallback.
    fake = tmp_path / exes[0]
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert shutil.which(exes[0])
    with pytest.raises(ConfigError, match="not implemented"):
        MinimizationConfig(method=method)
    with pytest.raises(ConfigError):
        MinimizationConfig(method="CHARMM")


def test_prepare_splits_breaks_strips_5p_and_maps_modified(rna_dev_dir):
    table = AtomTable.from_file(rna_dev_dir / ENTRY)
    prep = prepare(table)
    # 2 chains, each split once at its real break -> 4 segments.
    assert prep.n_segments == 4
    firsts = {}
    for res in prep.residues:
        firsts.setdefault(res.segment, res)
    for res in firsts.values():
        assert "P" not in res.kept and "OP1" not in res.kept
    inner = [r for r in prep.residues if r not in firsts.values()]
    assert all("P" in r.kept for r in inner if not r.modified)
    mods = [r for r in prep.residues if r.modified]
    assert len(mods) == 2 and all(r.name == "U" and r.out_name == "5BU" for r in mods)
    # The bromine is not a U atom: held out, restored afterwards.
    assert all(any(table.atom_names[i] == "BR" for i in r.held) for r in mods)


def test_prepare_renames_amber_residues_and_passes_ions_through(rna_dev_dir):
    t = AtomTable.from_file(rna_dev_dir / "clean/rsrnasp1_train/1yzd_A.pdb")
    names = t.res_names.copy()
    first = t.residue_index == 0
    names[first] = "RG5"
    ion = AtomTable(["Z"], [900], [""], ["MG"], ["MG"], ["MG"], np.array([[50.0, 50.0, 50.0]]))
    t2 = AtomTable(np.concatenate([t.chain_ids, ion.chain_ids]), np.concatenate([t.res_seqs, ion.res_seqs]),
                   np.concatenate([t.icodes, ion.icodes]), np.concatenate([names, ion.res_names]),
                   np.concatenate([t.atom_names, ion.atom_names]), np.concatenate([t.elements, ion.elements]),
                   np.concatenate([t.coords, ion.coords]))
    prep = prepare(t2)
    assert prep.residues[0].name == "G" and prep.residues[0].out_name == "G"
    assert len(prep.passthrough) == 1 and any("MG" in n for n in prep.notes)


def test_nerf_place_reproduces_geometry():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 3)) * 2
    d = place(a, b, c, 1.6, 110.0, -65.0)
    assert np.linalg.norm(d - c) == pytest.approx(1.6)
    u, w = b - c, d - c
    assert np.degrees(np.arccos(u @ w / np.linalg.norm(u) / np.linalg.norm(w))) == pytest.approx(110.0)
    assert dihedral(a, b, c, d) == pytest.approx(-65.0)


def test_minimize_cli_refuses_to_overwrite(rna_dev_dir, tmp_path, capsys):
    from rnadiff.cli.main import main

    out = tmp_path / "out.pdb"
    out.write_text("keep me")
    assert main(["minimize", str(rna_dev_dir / ENTRY), "--out", str(out)]) == 2
    assert out.read_text() == "keep me"
    assert "exists" in capsys.readouterr().err
    assert main(["minimize", str(rna_dev_dir / ENTRY), "--out", str(tmp_path / "x.pdb"), "method=GROMACS"]) == 2
