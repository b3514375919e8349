"""Structures for training: a folder or tarball of PDB/mmCIF files, featurized once, split by sequence.

`load_records(path)` reads every chain file (the manifest's `clean_file` list when the folder or
tarball holds an rna_dev-style `manifest.csv`, else every *.pdb/*.cif/*.mmcif/*.ent below it),
featurizes it with `rnadiff.chem.featurize`, and keeps the full-atom features (the ground truth),
the topology (real bonds with ideal lengths, for the bond loss) and the sequence hash that decides
the split. Unreadable files are skipped and counted, never silently: `LoadReport` lists them.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnadiff.chem import featurize
from rnadiff.chem.topology import Topology
from rnadiff.errors import ConfigError, RnadiffError
from rnadiff.io import read_structure
from rnadiff.metrics.basepairs import canonical_pairs
from rnadiff.train.split import is_heldout, sequence_md5

log = logging.getLogger(__name__)
STRUCTURE_SUFFIXES = (".pdb", ".cif", ".mmcif", ".ent", ".pdb.gz", ".cif.gz")


@dataclass(eq=False)
class Record:
    """One chain: full features (coords = ground truth), bonds, identity."""

    name: str
    features: dict[str, torch.Tensor]
    bonds: np.ndarray  # [n_bond, 2] global atom indices
    bond_lengths: np.ndarray  # [n_bond] ideal lengths (Å)
    seq_md5: str
    sequence: str
    layout: Any = None  # rnadiff.chem.AtomLayout (for writing structures of this chain)
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # canonical base pairs (tokens)

    @property
    def n_token(self) -> int:
        return int(self.features["restype"].shape[0])


@dataclass
class LoadReport:
    n_files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def extract_tarball(path: Path, extract_dir: str | os.PathLike | None = None) -> Path:
    """Unpack `path` once (keyed by its size and mtime) and return the directory."""
    st = path.stat()
    key = hashlib.md5(f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:10]
    stem = path.name.split(".")[0]
    root = Path(extract_dir) if extract_dir else Path.home() / ".cache" / "rnadiff"
    target = root / f"{stem}-{key}"
    done = target / ".complete"
    if not done.exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path) as tar:
            tar.extractall(target, filter="data")
        done.write_text("ok\n")
    return target


def _find_manifest(root: Path) -> Path | None:
    for cand in [root / "manifest.csv", *sorted(root.glob("*/manifest.csv"))]:
        if cand.is_file():
            return cand
    return None


def list_files(path: str | os.PathLike, extract_dir: str | os.PathLike | None = None) -> list[tuple[Path, str | None]]:
    """(file, seq_md5 or None) for every chain under a folder or tarball (sorted, deterministic)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"data.path {p}: no such file or directory")
    if p.is_file():
        if not tarfile.is_tarfile(p):
            raise ConfigError(f"data.path {p}: neither a directory nor a tar archive")
        p = extract_tarball(p, extract_dir)
    manifest = _find_manifest(p)
    if manifest is not None:
        with manifest.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "clean_file" in rows[0]:
            return [(manifest.parent / r["clean_file"], r.get("seq_md5") or None) for r in rows]
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(STRUCTURE_SUFFIXES))
    return [(f, None) for f in files]


def load_records(path: str | os.PathLike | list, *, extract_dir=None, min_length: int = 1, max_length: int = 100000,
                 progress: bool = False) -> tuple[list[Record], LoadReport]:
    """Featurize every usable chain of one data path or a list of them; files outside
    [min_length, max_length] residues are skipped. Canonical base pairs are annotated once here."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    files = [entry for p in paths for entry in list_files(p, extract_dir)]
    if not files:
        raise ConfigError(f"data.path {path}: no PDB/mmCIF files found")
    report = LoadReport(n_files=len(files))
    records: list[Record] = []
    it = files
    if progress:
        from tqdm import tqdm

        it = tqdm(files, desc="featurizing", unit="file", leave=False)
    for f, md5 in it:
        try:
            st = read_structure(f)
            if not min_length <= st.n_residues <= max_length:
                report.skipped.append((str(f), f"{st.n_residues} residues outside [{min_length}, {max_length}]"))
                continue
            feats = featurize(st)
            topo: Topology = feats.topology()
        except RnadiffError as exc:  # a bad file; anything else is a bug and must surface
            report.skipped.append((str(f), str(exc)))
            continue
        sequence = "".join(feats.layout.parents)
        pairs = canonical_pairs(feats.layout, feats["coords"].numpy(), feats["atom_present_mask"].numpy() > 0)
        records.append(Record(
            name=f.stem, features=feats.as_dict(), bonds=np.asarray(topo.bonds, np.int64).reshape(-1, 2),
            bond_lengths=np.asarray(topo.bond_lengths, np.float32), seq_md5=md5 or sequence_md5(sequence),
            sequence=sequence, layout=feats.layout,
            pairs=np.array([(p.i, p.j) for p in pairs], np.int64).reshape(-1, 2),
        ))
    if report.skipped:
        log.warning("skipped %d of %d files (first: %s: %s)", len(report.skipped), report.n_files, *report.skipped[0])
    return records, report


def split_records(records: list[Record], val_fraction: float, long_val_fraction: float = 0.0
                  ) -> tuple[list[Record], list[Record]]:
    """(train, validation) by sequence hash; see `rnadiff.train.split`."""
    held = [is_heldout(r.seq_md5, r.n_token, val_fraction, long_val_fraction) for r in records]
    return [r for r, h in zip(records, held) if not h], [r for r, h in zip(records, held) if h]


def distributed_rank_world() -> tuple[int, int]:
    """(global rank, world size) of this process: (0, 1) outside torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class RankShardedStream(torch.utils.data.IterableDataset):
    """This rank's share of a `TrainStream` (rnadiff.train.examples): disjoint across ranks.

    Global batch i holds examples i·B·W … (i+1)·B·W − 1 (B = `data.batch_size` per rank, W = world
    size: the global batch is B × W); global rank r takes examples i·B·W + r·B … i·B·W + r·B + B − 1.
    Every example is a pure function of (data.seed, global example index), so each rank's draws
    are seeded by its global rank and no two ranks see the same example; with W = 1 this is exactly
    the `TrainStream`. Rank and world size are read when iteration starts (inside the process
    group, whatever strategy launched it), as is the stream's `start_step()` (resume).
    """

    def __init__(self, stream: Any, rank_world: Any = distributed_rank_world):
        self.stream, self.rank_world = stream, rank_world

    def __iter__(self):
        rank, world = self.rank_world()
        b = int(self.stream.batch_size)
        step = int(self.stream.start_step())
        while True:
            base = (step * world + rank) * b
            yield [self.stream.example(base + j) for j in range(b)]
            step += 1
