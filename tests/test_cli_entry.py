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
