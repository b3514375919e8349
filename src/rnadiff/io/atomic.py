"""Atomic file writes, the one implementation in rnadiff: a temporary file in the target's
folder, written, flushed to disk, then moved over the target with os.replace.

A reader never sees a half-written file, and an interrupted write leaves the old file (if any)
untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, make_parents: bool = True) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, then move it into place.

    For writers that want a file name (gemmi, safetensors, torch.save)."""
    path = Path(path)
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
