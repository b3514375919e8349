"""File-level helpers: what kind of file is this, load a torch file safely, write atomically.

Kinds are told apart by content, not by suffix: a safetensors file starts with an 8-byte
little-endian header length followed by that many bytes of JSON object (checked by parsing it);
a torch file is a zip archive (`PK\\x03\\x04`, torch >= 1.6) or a legacy pickle stream (`0x80`
and a protocol number 2-5).
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from rnadiff.errors import CheckpointError, OutputError
from rnadiff.io.atomic import atomic_write
from rnadiff.io.atomic import atomic_write_dir as write_dir_atomically

SAFETENSORS = "safetensors"
TORCH = "torch"
DIRECTORY = "directory"


# The safetensors format caps its JSON header at 100 MB; a larger length is not a header.
_MAX_SAFETENSORS_HEADER = 100_000_000
# Pickle streams start with PROTO (0x80) and a protocol number; torch.save has written 2 (legacy
# format) and the zip format since 1.6, Python's pickle up to 5.
_PICKLE_PROTOCOLS = frozenset(range(2, 6))


def _safetensors_header(fh, size: int) -> tuple[bool, int]:
    """(looks like safetensors, declared header length). True only if the 8-byte little-endian
    length is followed by that many bytes that parse as a JSON object; the length alone decides
    nothing (its low byte can be any value, 0x80 -- a pickle's first byte -- included)."""
    fh.seek(0)
    head = fh.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False, 0
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len < 2 or header_len > _MAX_SAFETENSORS_HEADER or 8 + header_len > size:
        return False, header_len
    fh.seek(8)
    try:
        header = json.loads(fh.read(header_len).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, header_len
    return isinstance(header, dict), header_len


def sniff(path: str | os.PathLike) -> str:
    """'directory', 'safetensors' or 'torch'; CheckpointError for anything else or a missing path.

    Safetensors is tested first and completely (length, then a parsing JSON header), so that a
    header length whose low byte is 0x80 is never taken for a pickle; then the zip magic, then a
    pickle PROTO opcode with a known protocol.
    """
    p = Path(path)
    if p.is_dir():
        return DIRECTORY
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file or directory")
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            is_safetensors, header_len = _safetensors_header(fh, size)
            fh.seek(0)
            head = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if is_safetensors:
        return SAFETENSORS
    if head[:4] == b"PK\x03\x04":
        return TORCH
    # Before the pickle test: a cut safetensors file can start 0x80 0x02 too (header length 640).
    if 8 + header_len > size and 0 < header_len <= _MAX_SAFETENSORS_HEADER:
        raise CheckpointError(f"{p}: truncated safetensors file (header needs {8 + header_len} bytes, file has {size})")
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in _PICKLE_PROTOCOLS:
        return TORCH
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
    """`rnadiff.io.atomic.atomic_write` with the checkpoint policy: refuses an existing target
    unless overwrite, and a missing output directory (checkpoints never create folders)."""
    target = Path(target)
    check_can_write(target, overwrite)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory")
    return atomic_write(target, write, make_parents=False)


def atomic_write_dir(target: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """`rnadiff.io.atomic.atomic_write_dir` with the checkpoint policy: refuses an existing target
    unless overwrite, and anything there that is not a directory."""
    target = Path(target)
    check_can_write(target, overwrite)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a directory")
    return write_dir_atomically(target, write)


@contextlib.contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn low-level read failures of a safetensors/JSON file into a CheckpointError naming it."""
    try:
        yield
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: cannot read {what}: {_one_line(exc)}") from None
