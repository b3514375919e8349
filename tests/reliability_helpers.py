"""Builders for the reliability tests (issue 9): a tiny checkpoint, a corpus of bad inputs, the CLI
in a subprocess, and a snapshot of a directory tree (to check that a failure wrote nothing)."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tests.train_helpers import EXAMPLES

TINY_DIFFUSION = dict(c_token=32, c_s=32, c_z=16, c_s_inputs=81, c_atom=16, c_atompair=8, c_noise_embedding=16,
                      atom_encoder=dict(n_blocks=1, n_heads=2), transformer=dict(n_blocks=1, n_heads=2),
                      atom_decoder=dict(n_blocks=1, n_heads=2))
TINY_CONDITIONER = dict(c_atom=8, n_blocks=1, n_heads=2)
# steps 4 + 20 polish iterations: the tiny random model's samples pass the output gate (2 steps do not)
FAST = ["--samples", "1", "--steps", "4", "--no-progress", "postprocess.max_iter=20"]
GOOD_PDB = EXAMPLES / "4phy_A_c1.pdb"  # 26 nt, C1' only


def tiny_model(seed: int = 0):
    from rnadiff.model.refinement_model import RefinementModel

    torch.manual_seed(seed)
    return RefinementModel(conditioner=dict(TINY_CONDITIONER), diffusion=dict(TINY_DIFFUSION))


def make_tiny_checkpoint(target: Path) -> Path:
    from rnadiff.checkpoints.refinement import save_refinement_checkpoint

    return save_refinement_checkpoint(target, tiny_model(), {"test": True})


def cli_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(args: list[str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnadiff.cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=cli_env(), timeout=timeout)


def start_cli(args: list[str], cwd: Path | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnadiff.cli.main", *map(str, args)], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def snapshot(root: Path) -> dict[str, int]:
    """Every path under `root` with its size (directories: -1)."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = -1 if p.is_dir() else p.stat().st_size
    return out


# --- structure text ---------------------------------------------------------------------------------
def atom_line(serial, name, resname, chain, resseq, xyz, element, record="ATOM"):
    name_field = f" {name:<3}" if len(name) < 4 else name
    x, y, z = (f"{v:>8.3f}" if isinstance(v, float) else f"{v:>8}" for v in xyz)
    return (f"{record:<6}{serial:>5} {name_field} {resname:>3} {chain}{resseq:>4}    "
            f"{x}{y}{z}{1.0:>6.2f}{20.0:>6.2f}          {element:>2}")


def c1_chain(resnames, atom="C1'", element="C", coord=None) -> str:
    lines = []
    for k, rn in enumerate(resnames):
        xyz = coord(k) if coord else (5.9 * k, 0.1 * k, 0.0)
        lines.append(atom_line(k + 1, atom, rn, "A", k + 1, xyz, element))
    return "\n".join(lines + ["END", ""])


def mmcif_c1(resnames, coord) -> str:
    rows = [f"ATOM {k + 1} C \"C1'\" . {rn} A 1 {k + 1} ? {x} {y} {z} 1.0 20.0 1 A"
            for k, rn in enumerate(resnames) for (x, y, z) in [coord(k)]]
    return "\n".join(["data_test", "loop_", "_atom_site.group_PDB", "_atom_site.id", "_atom_site.type_symbol",
                      "_atom_site.label_atom_id", "_atom_site.label_alt_id", "_atom_site.label_comp_id",
                      "_atom_site.label_asym_id", "_atom_site.label_entity_id", "_atom_site.label_seq_id",
                      "_atom_site.pdbx_PDB_ins_code", "_atom_site.Cartn_x", "_atom_site.Cartn_y",
                      "_atom_site.Cartn_z", "_atom_site.occupancy", "_atom_site.B_iso_or_equiv",
                      "_atom_site.pdbx_PDB_model_num", "_atom_site.auth_asym_id", *rows, ""])


def good_cif_text() -> str:
    import gemmi

    st = gemmi.read_structure(str(EXAMPLES / "4phy_A.pdb"))
    st.setup_entities()
    return st.make_mmcif_document().as_string()


def mirrored_pdb_text(path: Path) -> str:
    """The structure reflected through the plane y = 0 (its mirror image)."""
    import gemmi

    st = gemmi.read_structure(str(path))
    for res in st[0][0]:
        for atom in res:
            atom.pos = gemmi.Position(atom.pos.x, -atom.pos.y, atom.pos.z)
    return st.make_pdb_string()


class RunsShell:
    """Unpickling this runs `touch marker`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- the corpus -------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    argv: list[str]               # CLI words after `rnadiff`
    names: list[str]              # must appear in the stderr line (file names)
    problem: list[str]            # must appear in the stderr line (any one of them, lower case)
    watch: Path = None            # directory that must hold nothing new
    forbid: list[Path] = field(default_factory=list)  # paths that must not exist afterwards


SEQ = list("GGCGAUACGCC")


def build_corpus(root: Path, ckpt: Path) -> list[Case]:
    """Write every bad input under `root` and return the table of cases."""
    inp = root / "in"
    inp.mkdir(parents=True, exist_ok=True)
    out = root / "out"  # refine --out: exists beforehand and must stay empty
    out.mkdir(exist_ok=True)
    cases: list[Case] = []

    def refine_case(cid, filename, content, problem, extra=(), checkpoint=ckpt, mode="w"):
        path = inp / filename
        if content is not None:
            (path.write_bytes if mode == "wb" else path.write_text)(content)
        argv = ["refine", str(path), "--out", str(out), "--checkpoint", str(checkpoint), *FAST, *extra]
        cases.append(Case(cid, argv, [filename], problem, watch=root, forbid=[]))
        return path

    good = GOOD_PDB.read_text()
    cif = good_cif_text()
    refine_case("empty", "empty.pdb", "", ["empty"])
    refine_case("blank_lines", "blank.cif", "\n\n   \n", ["empty"])
    refine_case("truncated_cif", "truncated.cif", cif[: len(cif) // 2].rsplit("\n", 1)[0] + "\nATOM 77 C", ["trunc", "pars", "invalid", "error", "column", "incomplete"])
    refine_case("truncated_pdb_line", "cut.pdb", "\n".join(good.splitlines()[:5]) + "\nATOM      6  C1'   U A   6      4.0", ["trunc", "coordinate", "invalid", "short", "pars"])
    refine_case("binary", "binary.pdb", bytes(range(256)) * 8, ["binary"], mode="wb")
    refine_case("gzip_garbage", "junk.cif.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 20, ["gzip", "compress", "truncat", "corrupt", "read"], mode="wb")
    refine_case("json", "model.cif", json.dumps({"atoms": [[0, 0, 0]], "seq": "GGC"}), ["pars", "cif", "format", "not a", "no atom", "invalid", "error"])
    refine_case("fasta", "seq.pdb", ">seq1\nGGCGAUACGCCUUAGG\n", ["no atom", "no rna", "no residue", "not a", "empty", "nothing"])
    refine_case("protein_only", "protein.pdb", c1_chain(["ALA", "GLY", "SER"], atom="CA"), ["protein", "no rna", "rna", "nucleotide"])
    refine_case("dna_only", "dna.pdb", c1_chain(["DA", "DT", "DG", "DC"]), ["dna", "no rna", "rna"])
    refine_case("unknown_residues_only", "unk.pdb", c1_chain(["XYZ", "QQQ", "ZZZ"]), ["xyz", "unknown", "no rna"])
    refine_case("nan_coords", "nan.cif", mmcif_c1(SEQ, lambda k: (5.9 * k, "nan" if k == 3 else 0.0, 0.0)), ["nan", "finite", "coordinate"])
    refine_case("inf_coords", "inf.cif", mmcif_c1(SEQ, lambda k: (5.9 * k, 0.0, "inf" if k == 2 else 0.0)), ["inf", "finite", "coordinate"])
    refine_case("absurd_coords", "far.cif", mmcif_c1(SEQ, lambda k: (1e8 * (k + 1), 0.0, 0.0)), ["coordinate", "absurd", "large", "range", "1e+08", "100000000"])
    # issue 18: coordinates gemmi would read as numbers, or no RNA can have
    lines = good.splitlines()
    atoms = [i for i, ln in enumerate(lines) if ln.startswith("ATOM")]
    for i in atoms[::3]:
        lines[i] = lines[i][:30] + "12.x3-4..7  NaNa  ++1.0 " + lines[i][54:]
    refine_case("garbage_coordinate_fields", "garbage.pdb", "\n".join(lines) + "\n", ["not a number"])
    refine_case("garbage_cif_coordinate", "garbage.cif", mmcif_c1(SEQ, lambda k: (5.9 * k, "12.x3" if k == 5 else 0.0, 0.0)),
                ["not a number"])
    refine_case("missing_cif_coordinate", "missing.cif", mmcif_c1(SEQ, lambda k: (5.9 * k, 0.0, "?" if k == 2 else 0.0)),
                ["missing coordinate"])
    full = (EXAMPLES / "4phy_A.pdb").read_text().splitlines()
    k = next(i for i, ln in enumerate(full) if ln.startswith("ATOM") and ln[12:16].strip() == "N9")
    full[k] = full[k][:30] + f"{float(full[k][30:38]) + 40:>8.3f}" + full[k][38:]
    refine_case("residue_atoms_far_apart", "split.pdb", "\n".join(full) + "\n", ["bonds allow"])
    refine_case("c1_trace_every_other_9999", "far9999.pdb",
                c1_chain(SEQ, coord=lambda k: (5.9 * k, 0.0, 0.0) if k % 2 else (9999.0, -9999.0, 9999.0)),
                ["apart", "corrupt"])
    refine_case("one_residue_far_away", "outlier.pdb",
                c1_chain(SEQ, coord=lambda k: (-999.0, 0.0, 0.0) if k == 5 else (5.9 * k, 0.1 * k, 0.0)),
                ["neighbours"])
    refine_case("c1_trace_all_zero", "zeros.pdb", c1_chain(SEQ, coord=lambda k: (0.0, 0.0, 0.0)), ["collapsed"])
    # issue 18 (refine's inputs): a mirror image refused on request, malformed submissions, a gated sample
    refine_case("mirror_error", "mirror.pdb", mirrored_pdb_text(GOOD_PDB), ["mirror"], extra=["--mirror", "error"])
    header = "ID,resname,resid,x_1,y_1,z_1"
    for cid, name, text, problem in (
            ("submission_bad_header", "sub_header.csv", "ID,sequence,x\nT_1,G,1\n", ["header"]),
            ("submission_not_a_number", "sub_number.csv", f"{header}\nT_1,G,1,0,0,0\nT_2,C,2,5.9,12.x3,0\n",
             ["not a number"]),
            ("submission_unknown_residue", "sub_residue.csv", f"{header}\nT_1,XYZ,1,0,0,0\n", ["unknown residue"])):
        (inp / name).write_text(text)
        cases.append(Case(cid, ["refine", "--from-c1-csv", str(inp / name), "--out", str(out), "--checkpoint", str(ckpt),
                                *FAST], [name], problem, watch=root))
    # the untrained tiny model's raw atoms, the polish off: no molecule (bonds of 5+ Å), gated
    refine_case("gate_exploded_sample", "exploding.pdb", good, ["output gate"], extra=["postprocess.regularize=false"])
    dup = good.splitlines()
    refine_case("duplicate_atoms", "dup.pdb", "\n".join(dup[:4] + [dup[3]] + dup[4:]) + "\n", ["duplicate"])
    refine_case("zero_residues", "noatoms.pdb", "HEADER    RNA\nREMARK  nothing here\nEND\n", ["no atom", "no residue", "no rna", "empty", "nothing"])
    refine_case("hetatm_water_only", "water.pdb", c1_chain(["HOH", "HOH"], atom="O", element="O").replace("ATOM  ", "HETATM"), ["no rna", "rna", "no residue", "no atom", "water", "nothing"])
    refine_case("too_long", "long.pdb", good, ["max_sequence_length", "residues"],
                extra=["model.stageD.memory.max_sequence_length=10"])
    d = inp / "dir.pdb"
    d.mkdir(exist_ok=True)
    cases.append(Case("directory_as_file", ["refine", str(d), "--out", str(out), "--checkpoint", str(ckpt), *FAST],
                      ["dir.pdb"], ["directory", "not a file", "not a regular"], watch=root, forbid=[]))
    cases.append(Case("missing_file", ["refine", str(inp / "absent.pdb"), "--out", str(out), "--checkpoint", str(ckpt), *FAST],
                      ["absent.pdb"], ["not found", "no such", "does not exist", "missing"], watch=root, forbid=[]))
    good_in = inp / "good.pdb"
    good_in.write_text(good)
    blocker = root / "a_file"
    blocker.write_text("x\n")
    cases.append(Case("out_under_regular_file", ["refine", str(good_in), "--out", str(blocker / "sub"), "--checkpoint", str(ckpt), *FAST],
                      ["a_file"], ["not a directory", "cannot", "writ", "create"], watch=root))
    cases.append(Case("override_unknown_key", ["refine", str(good_in), "--out", str(out), "--checkpoint", str(ckpt), *FAST, "postprocess.no_such_key=1"],
                      ["no_such_key"], ["no_such_key"], watch=root, forbid=[]))
    cases.append(Case("override_wrong_type", ["refine", str(good_in), "--out", str(out), "--checkpoint", str(ckpt), "--samples", "1", "--steps", "2", "--no-progress", "postprocess.max_iter=lots"],
                      ["max_iter"], ["lots", "int", "type", "invalid"], watch=root, forbid=[]))
    cases.append(Case("override_malformed", ["refine", str(good_in), "--out", str(out), "--checkpoint", str(ckpt), *FAST, "anchoring.strength=[1,"],
                      ["[1,"], ["pars", "invalid", "no viable", "override", "error"], watch=root, forbid=[]))
    for cid, flag, value in (("samples_zero", "--samples", "0"), ("samples_negative", "--samples", "-3"),
                             ("steps_zero", "--steps", "0"), ("threads_zero", "--threads", "0")):
        cases.append(Case(cid, ["refine", str(good_in), "--out", str(out), "--checkpoint", str(ckpt), "--no-progress", flag, value],
                          [flag], [">= 1", "must be"], watch=root, forbid=[]))
    cases.append(Case("samples_not_int", ["refine", str(good_in), "--out", str(out), "--checkpoint", str(ckpt), "--samples", "many"],
                      ["--samples"], ["invalid int", "many"], watch=root, forbid=[]))
    # checkpoints
    ck = root / "ckpts"
    ck.mkdir(exist_ok=True)
    st = (ckpt / "model.safetensors").read_bytes()
    (ck / "cut.safetensors").write_bytes(st[: len(st) // 3])
    (ck / "notes.safetensors").write_text("just some text, not weights\n")
    (ck / "evil.ckpt").write_bytes(pickle.dumps(RunsShell(str(root / "pwned")), protocol=2))
    (ck / "weights.json").write_text(json.dumps({"c_token": 32}))
    (ck / "model.pdb").write_text(good)
    torch.save({"state_dict": {"x": torch.zeros(2)}}, ck / "other.ckpt")  # a torch file, not ours
    for cid, name, problem in (("ckpt_truncated", "cut.safetensors", ["checkpoint", "trunc", "corrupt", "safetensors", "invalid"]),
                               ("ckpt_text", "notes.safetensors", ["checkpoint", "safetensors", "invalid", "not a"]),
                               ("ckpt_malicious_pickle", "evil.ckpt", ["refused", "unpickl"]),
                               ("ckpt_json", "weights.json", ["checkpoint", "format", "not a", "unsupported", "unknown"]),
                               ("ckpt_pdb", "model.pdb", ["checkpoint", "format", "not a", "unsupported", "unknown"]),
                               ("ckpt_foreign_torch", "other.ckpt", ["checkpoint", "missing", "not a", "no ", "key"])):
        cases.append(Case(cid, ["refine", str(good_in), "--out", str(out), "--checkpoint", str(ck / name), *FAST],
                          [name], problem, watch=root, forbid=[root / "pwned"]))
    # the other commands
    cases.append(Case("evaluate_binary_model", ["evaluate", str(inp / "binary.pdb"), str(good_in)], ["binary.pdb"], ["binary", "no atoms"], watch=root))
    cases.append(Case("evaluate_missing_reference", ["evaluate", str(good_in), str(inp / "nope.cif")], ["nope.cif"], ["not found", "no such"], watch=root))
    cases.append(Case("minimize_fasta", ["minimize", str(inp / "seq.pdb"), "--out", str(root / "min.pdb")], ["seq.pdb"],
                      ["no atom", "no rna", "no residue", "not a", "empty", "nothing"], watch=root, forbid=[root / "min.pdb"]))
    cases.append(Case("minimize_out_under_file", ["minimize", str(EXAMPLES / "4phy_A.pdb"), "--out", str(blocker / "m.pdb")], ["a_file"],
                      ["not a directory", "cannot", "writ", "create"], watch=root))
    cases.append(Case("minimize_bad_override", ["minimize", str(EXAMPLES / "4phy_A.pdb"), "--out", str(root / "min2.pdb"), "no_such_option=3"],
                      ["no_such_option"], ["no_such_option"], watch=root, forbid=[root / "min2.pdb"]))
    cases.append(Case("convert_protenix_malicious", ["convert-protenix", str(ck / "evil.ckpt"), "--out", str(root / "conv")], ["evil.ckpt"],
                      ["refused", "unpickl"], watch=root, forbid=[root / "conv", root / "pwned"]))
    cases.append(Case("convert_protenix_text", ["convert-protenix", str(ck / "notes.safetensors"), "--out", str(root / "conv2")], ["notes.safetensors"],
                      ["checkpoint", "torch", "not a", "invalid", "read"], watch=root, forbid=[root / "conv2"]))
    return cases
