"""Write src/rnadiff/data/monomers/regularized_coords.npz: every monomer template's ideal
coordinates regularised against its own restraints (`rnadiff.chem.library.regularized_coords`),
so that no process pays for it. Re-run after changing a CIF, the restraints or the regulariser;
tests/test_refine_library.py fails while the file is stale.

    python scripts/regularize_monomers.py
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np

from rnadiff.chem.library import MONOMER_SUBDIR, REGULARIZED_FILE, regularized_coords


def main() -> int:
    target = Path(__file__).resolve().parents[1] / "src" / "rnadiff" / MONOMER_SUBDIR / REGULARIZED_FILE
    buffer = io.BytesIO()
    np.savez(buffer, **regularized_coords(shipped=False))
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
