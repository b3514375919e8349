"""Atomic file and directory writes, the one implementation in rnadiff: a temporary file (or
folder) beside the target, written, flushed to disk, then moved over the target with os.replace.

A reader never sees a half-written file or folder, and an interrupted write leaves the old one (if
any) untouched. An operating-system failure (a missing or read-only folder, a full disk) is an
`OutputError` naming the target, so commands report it in one line.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from rnadiff.errors import OutputError


@contextlib.contextmanager
def _output_errors(path: Path):
    """OSError -> OutputError naming the target (the cause stays chained for --debug)."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror or exc})") from exc


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, make_parents: bool = True) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, then move it into place.

    For writers that want a file name (gemmi, safetensors, torch.save)."""
    path = Path(path)
    with _output_errors(path):
        return _atomic_write(path, write, make_parents)


def _atomic_write(path: Path, write: Callable[[Path], None], make_parents: bool) -> Path:
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:  # the data is on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, make_parents: bool = True) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), make_parents=make_parents)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, make_parents: bool = True) -> Path:
    """`atomic_write_text` for binary content (images, archives)."""
    return atomic_write(path, lambda p: p.write_bytes(data), make_parents=make_parents)


def _fsync_tree(path: Path) -> None:
    for child in path.rglob("*"):
        if child.is_file():
            with open(child, "rb") as fh:
                os.fsync(fh.fileno())


def atomic_write_dir(path: str | os.PathLike, write: Callable[[Path], None], *, mode: int = 0o755) -> Path:
    """Fill a temporary folder beside `path` with write(tmp_dir), then move it into place.

    An existing folder at `path` is first moved aside and removed only after the new one is in
    place, so at every moment `path` is either the complete old or the complete new folder."""
    path = Path(path)
    with _output_errors(path):
        return _atomic_write_dir(path, write, mode)


def _atomic_write_dir(path: Path, write: Callable[[Path], None], mode: int) -> Path:
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        write(tmp_dir)
        _fsync_tree(tmp_dir)
        os.chmod(tmp_dir, mode)  # mkdtemp makes it private (0o700)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "previous")
        try:
            os.replace(tmp_dir, path)
        except BaseException:
            if old is not None:  # put the previous folder back rather than lose it
                os.replace(old / "previous", path)
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path
