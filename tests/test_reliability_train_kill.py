"""Issue 9: `rnadiff train` killed with SIGKILL after its first last.ckpt, then re-run with the same
command (trainer.resume=auto), ends with the same weights as an uninterrupted run (same seed)."""
from __future__ import annotations

import signal
import time

import pytest
import torch

from tests.reliability_helpers import run_cli, start_cli
from tests.train_helpers import TINY_OVERRIDES, short_chains

MAX_STEPS = 8


def common(data, run_dir):
    return ["train", *TINY_OVERRIDES, f"data.path={data}", "trainer.val_check_interval=4", "trainer.checkpoint_every=2",
            "data.max_val_structures=1", "data.val_fraction=0.3", f"trainer.max_steps={MAX_STEPS}",
            f"trainer.run_dir={run_dir}"]


def weights(run_dir):
    ck = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    return ck["global_step"], ck["state_dict"], ck.get("ema")


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(rna_dev_dir, tmp_path):
    data = short_chains(rna_dev_dir, tmp_path / "data", n=6, max_length=14)
    straight = run_cli(common(data, tmp_path / "a"), timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    run_b = tmp_path / "b"
    proc = start_cli(common(data, run_b))
    last = run_b / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed: " + proc.communicate()[1][-2000:]
    assert last.exists()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    step_killed, _, _ = weights(run_b)
    assert step_killed < MAX_STEPS

    resumed = run_cli(common(data, run_b), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    step_a, a, ema_a = weights(tmp_path / "a")
    step_b, b, ema_b = weights(run_b)
    assert step_a == step_b == MAX_STEPS
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    if ema_a is not None:
        torch.testing.assert_close(ema_a, ema_b, atol=1e-6, rtol=1e-5)
