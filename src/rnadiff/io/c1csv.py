"""C1' coordinates of every sample in the Stanford RNA 3D Folding submission layout (writer; the
reader is `io.submission`).

    ID,resname,resid,x_1,y_1,z_1,...,x_N,y_N,z_N
    <target>_<resid>,G,1,12.345,...
resid is the 1-based position of the residue in the input (chains in file order).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnadiff.chem.layout import AtomLayout
from rnadiff.errors import OutputError
from rnadiff.io.atomic import atomic_write_text


def c1_rows(target: str, layout: AtomLayout, samples: np.ndarray) -> list[list[str]]:
    """One row per residue: ID, resname, resid, then x/y/z of C1' for each sample [S, N, 3]."""
    rows = []
    for tok in range(layout.n_tokens):
        idx = layout.atom_index(tok, "C1'")
        if idx is None:
            raise OutputError(f"{target}: residue {tok + 1} has no C1' atom")
        xyz = np.asarray(samples)[:, idx, :]  # [S, 3]
        rows.append([f"{target}_{tok + 1}", layout.resnames[tok], str(tok + 1),
                     *(f"{v:.3f}" for v in xyz.reshape(-1))])
    return rows


def write_c1_csv(path: str | os.PathLike, rows: list[list[str]], n_samples: int, overwrite: bool = False) -> Path:
    """Write the rows atomically with the header for `n_samples` samples."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
    header = ["ID", "resname", "resid"] + [f"{c}_{k}" for k in range(1, n_samples + 1) for c in "xyz"]
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    return atomic_write_text(path, text)


__all__ = ["c1_rows", "write_c1_csv"]
