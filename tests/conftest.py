"""Shared fixtures and the opt-in flags for slow and GPU tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
GOLDEN_PATH = SHARED / "protenix" / "golden_small.pt"
STATE_DICT_KEYS_PATH = SHARED / "protenix" / "state_dict_keys.txt"
RNA_DEV_TARBALL = SHARED / "data" / "rna_dev.tar.gz"
MONOMER_DIR = SHARED / "chem" / "monomers"


# Many small tensors: one intra-op thread per test process is faster than two fighting over two
# cores (and lets `pytest -n 2` use both cores without oversubscription).
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption("--rungpu", action="store_true", default=False, help="run tests marked gpu")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="gpu: run with --rungpu on a CUDA machine")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not config.getoption("--rungpu"):
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def golden():
    if not GOLDEN_PATH.exists():
        pytest.fail(f"reference tensors missing: {GOLDEN_PATH} (../shared must sit beside the checkout)")
    return torch.load(GOLDEN_PATH, weights_only=True)


@pytest.fixture(scope="session")
def rna_dev_dir(tmp_path_factory):
    """The dev set unpacked once per test session."""
    import tarfile

    if not RNA_DEV_TARBALL.exists():
        pytest.fail(f"dev structures missing: {RNA_DEV_TARBALL}")
    target = tmp_path_factory.mktemp("rna_dev")
    with tarfile.open(RNA_DEV_TARBALL) as tar:
        tar.extractall(target, filter="data")
    return target / "rna_dev"
