"""The installed console script in a fresh interpreter (what a user runs): `--help` imports and
registers every command module, and an error is one line with exit code 2. (A fresh interpreter
matters: pytest itself imports modules that a user's process does not have.)"""
from __future__ import annotations

import shutil
import subprocess
import sys

COMMANDS = ("refine", "minimize", "evaluate", "train", "bench", "convert-protenix", "demo")


def _run(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("rnadiff")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "rnadiff.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_help_lists_every_command():
    out = _run("--help")
    assert out.returncode == 0, out.stderr
    for name in COMMANDS:
        assert name in out.stdout


def test_user_error_is_one_line_exit_2(tmp_path):
    out = _run("evaluate", str(tmp_path / "missing.pdb"), str(tmp_path / "also_missing.pdb"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.pdb" in lines[0] and "Traceback" not in out.stderr


def _one_line_error(out: subprocess.CompletedProcess, *names: str) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and all(n in lines[0] for n in names), out.stderr


def test_outputs_that_cannot_be_written_are_one_line_errors_before_any_output(tmp_path):
    """A report folder that does not exist fails before the minimization (no --out written); a
    demo folder that is a file fails before training (it used to be a FileExistsError traceback)."""
    from tests.train_helpers import EXAMPLES

    out_pdb = tmp_path / "min.pdb"
    out = _run("minimize", str(EXAMPLES / "1f27_B.pdb"), "--out", str(out_pdb),
               "--report", str(tmp_path / "nowhere" / "report.json"))
    _one_line_error(out, "--report", "nowhere")
    assert out.returncode == 2 and not out_pdb.exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _one_line_error(_run("demo", "--out", str(blocker), "--steps", "1"), "a_file")
    _one_line_error(_run("demo", "--out", str(tmp_path / "d"), "--threads", "-1"), "--threads")


def test_training_tools_report_errors_in_one_line(tmp_path):
    """`python -m rnadiff.train.export` (the command scripts/ run) ends a bad checkpoint path with
    rnadiff's one-line error and exit code 2, not a traceback."""
    out = subprocess.run([sys.executable, "-m", "rnadiff.train.export", str(tmp_path / "none.ckpt"), str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    _one_line_error(out, "none.ckpt")
    assert not (tmp_path / "o").exists()
