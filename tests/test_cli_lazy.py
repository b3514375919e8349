"""The dispatcher imports only the command being run, and every command ends quietly when the
reader closes the pipe (issue 16 item 1, issue 18 item 7). Fresh interpreters: pytest itself has
torch imported already."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnadiff.cli.main import COMMANDS, EXIT_BROKEN_PIPE, build_parser, chosen_command

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "rnadiff" / "examples" / "1f27_B.pdb"


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_help_imports_no_command_module_nor_torch():
    loaded = _python(
        "import sys, contextlib, io\n"
        "from rnadiff.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('rnadiff.cli.', 'torch', 'gemmi')))))")
    assert loaded.split() == ["rnadiff.cli.main"]


def test_running_a_command_imports_only_its_module():
    loaded = _python(
        "import sys, contextlib, io\n"
        "from rnadiff.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['evaluate', '--help'])\n"
        "    except SystemExit: pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('rnadiff.cli.'))))")
    assert loaded.split() == ["rnadiff.cli.evaluate", "rnadiff.cli.main"]


def _help_lines(parser: argparse.ArgumentParser) -> dict[str, str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: c.help for c in action._choices_actions}


def test_placeholder_help_equals_each_modules_own():
    assert _help_lines(build_parser()) == _help_lines(build_parser(register_all=True))
    assert list(_help_lines(build_parser())) == list(COMMANDS)


@pytest.mark.parametrize("argv, expected", [
    (["refine", "x.pdb"], "refine"), (["--debug", "-v", "evaluate", "a", "b"], "evaluate"),
    (["--help"], None), (["nonsense", "refine"], None), ([], None), (["--", "refine"], None)])
def test_chosen_command(argv, expected):
    assert chosen_command(argv) == expected


def _closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI with its stdout a pipe whose reader has already gone."""
    proc = subprocess.Popen([sys.executable, "-m", "rnadiff.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, b"", err)


@pytest.mark.parametrize("args", [("--help",), ("evaluate", "--help")])
def test_help_into_closed_pipe_ends_quietly(args):
    out = _closed_pipe(*args)
    assert out.stderr == b"", out.stderr.decode()
    assert out.returncode in (0, EXIT_BROKEN_PIPE)  # argparse itself ignores the failed write


def test_command_output_into_closed_pipe_ends_quietly():
    out = _closed_pipe("evaluate", str(EXAMPLE), str(EXAMPLE), "--per-residue")
    assert out.stderr == b"", out.stderr.decode()
    assert out.returncode == EXIT_BROKEN_PIPE


def test_unknown_command_is_one_line_exit_2():
    out = subprocess.run([sys.executable, "-m", "rnadiff.cli.main", "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "frobnicate" in out.stderr


def test_openmp_workers_sleep_unless_the_user_chose():
    code = ("import os, contextlib, io\n"
            "from rnadiff.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "PASSIVE", out.stderr
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.strip() == "ACTIVE", out.stderr
