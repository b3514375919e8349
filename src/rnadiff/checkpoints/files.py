"""File-level helpers: what kind of file is this, load a torch file safely, write atomically.

Kinds are told apart by content, not by suffix: a safetensors file starts with an 8-byte
little-endian header length followed by a JSON header (`{`); a torch file is a zip archive
(`PK\\x03\\x04`, torch >= 1.6) or a legacy pickle stream (protocol byte `0x80`).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from rnadiff.errors import CheckpointError, OutputError

SAFETENSORS = "safetensors"
TORCH = "torch"
DIRECTORY = "directory"


def sniff(path: str | os.PathLike) -> str:
    """'directory', 'safetensors' or 'torch'; CheckpointError for anything else or a missing path."""
    p = Path(path)
    if p.is_dir():
        return DIRECTORY
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file or directory")
    try:
        with p.open("rb") as fh:
            head = fh.read(9)
        size = p.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return TORCH
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 8 + header_len > size:
            raise CheckpointError(f"{p}: truncated safetensors file (header needs {8 + header_len} bytes, file has {size})")
        return SAFETENSORS
    raise CheckpointError(f"{p}: not a checkpoint (neither safetensors nor a torch file)")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_torch_load(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, nothing executed.

    A file that would need arbitrary unpickling (custom classes, `__reduce__` tricks) is refused
    with a CheckpointError before any of its code can run.
    """
    p = Path(path)
    kind = sniff(p)
    if kind != TORCH:
        raise CheckpointError(f"{p}: not a torch checkpoint (found a {kind}; rnadiff checkpoints load with load_checkpoint)")
    try:
        # mmap avoids reading a multi-GB training checkpoint (optimizer states) into memory;
        # only zip-format files support it.
        return torch.load(p, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except pickle.UnpicklingError as exc:
        # torch names the offending global/opcode ("unsupported GLOBAL posix.system ..."); keep that part.
        found = re.search(r"unsupported (?:GLOBAL \S+|global[^.\n]*|operand[^.\n]*)", str(exc), re.IGNORECASE)
        what = _one_line(found.group(0)) if found else "objects outside tensors and plain containers"
        raise CheckpointError(
            f"{p}: refused: loading it would need arbitrary unpickling ({what}); only weights are accepted. "
            "If you trust the file, re-save its weights with torch.save(ckpt['model'])"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, struct.error) as exc:
        raise CheckpointError(f"{p}: not a readable torch checkpoint ({_one_line(exc)})") from None


def check_can_write(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists; pass overwrite=True (--overwrite) to replace it")
    if not target.parent.is_dir():
        raise OutputError(f"{target.parent}: output directory does not exist")


def atomic_write_file(target: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call write(tmp_path) on a temporary file beside `target`, then os.replace it into place.

    A crash or error leaves no partial `target`. Refuses an existing target unless overwrite.
    """
    target = Path(target)
    check_can_write(target, overwrite)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        _fsync(tmp_path)
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
    return target


def atomic_write_dir(target: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Fill a temporary directory beside `target` with write(tmp_dir), then move it into place.

    An existing target (overwrite=True) is first moved aside and removed only after the new one is
    in place, so at every moment `target` is either the complete old or the complete new one.
    """
    target = Path(target)
    check_can_write(target, overwrite)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a directory")
    tmp_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    old = None
    try:
        write(tmp_dir)
        for child in tmp_dir.iterdir():
            _fsync(child)
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            os.replace(target, old / "previous")
        try:
            os.replace(tmp_dir, target)
        except BaseException:
            if old is not None:  # put the previous checkpoint back rather than lose it
                os.replace(old / "previous", target)
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn low-level read failures of a safetensors/JSON file into a CheckpointError naming it."""
    try:
        yield
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: cannot read {what}: {_one_line(exc)}") from None
