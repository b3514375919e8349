"""Issue 9: refining 200 small inputs in one process does not leak: resident memory after the 200th
is within 10% of the RSS after the first ten."""
from __future__ import annotations

import gc
import os

import pytest

from rnadiff.io import read_structure
from rnadiff.refine import RefineSettings, refine_structure
from tests.reliability_helpers import tiny_model
from tests.train_helpers import EXAMPLES


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_200_refines_no_memory_growth(tmp_path):
    model = tiny_model().eval()
    # small inputs: the first 8 residues of the C1' example and of the all-atom examples, cycled
    inputs = []
    for name in ("4phy_A_c1.pdb", "4phy_A.pdb", "1f27_B.pdb"):
        lines = (EXAMPLES / name).read_text().splitlines()
        atoms = [ln for ln in lines if ln.startswith("ATOM")]
        first = list(dict.fromkeys(ln[21:27] for ln in atoms))[:8]
        keep = [ln for ln in atoms if ln[21:27] in first]
        p = tmp_path / name
        p.write_text("\n".join(keep + ["END", ""]))
        inputs.append(p)
    settings = RefineSettings(n_samples=1, num_steps=3, regularize_iterations=3)
    samples = []
    for i in range(200):
        res = refine_structure(read_structure(inputs[i % len(inputs)]), model, settings)
        assert res.samples.shape[0] == 1
        del res
        if i == 9:
            gc.collect()
            base = rss_bytes()
        if i >= 9 and i % 10 == 9:
            samples.append(rss_bytes())
    gc.collect()
    end = rss_bytes()
    growth = (end - base) / base
    print(f"RSS after 10: {base / 2**20:.1f} MiB, after 200: {end / 2**20:.1f} MiB, growth {100 * growth:.2f}% "
          f"(every 10: {[round(s / 2**20, 1) for s in samples]})")
    assert growth < 0.10
