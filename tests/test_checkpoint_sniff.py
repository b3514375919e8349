"""Issue 18: checkpoint format detection cannot mistake one format for another, whatever the
safetensors header length (its low byte is 0x80, a pickle's first byte, for 1 length in 32)."""
from __future__ import annotations

import pickle
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from rnadiff.checkpoints.files import SAFETENSORS, TORCH, sniff
from rnadiff.errors import CheckpointError


def test_every_metadata_size_is_safetensors(tmp_path):
    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    low_bytes = set()
    for n in range(301):
        path = tmp_path / f"m{n}.safetensors"
        save_file(tensors, str(path), metadata={"provenance": "x" * n})
        low_bytes.add(path.read_bytes()[0])
        assert sniff(path) == SAFETENSORS, (n, path.read_bytes()[:9])
        assert torch.equal(load_file(str(path))["w"], tensors["w"])
    assert 0x80 in low_bytes  # the sizes that used to be read as a torch pickle were covered


@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_files_are_torch(tmp_path, zip_format):
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=zip_format)
    assert sniff(path) == TORCH


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_pickles_are_torch(tmp_path, protocol):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2, 3]}, protocol=protocol))
    assert sniff(path) == TORCH


def test_truncated_safetensors_with_0x80_length_is_not_a_pickle(tmp_path):
    # Header length 0x280 = 640: the file starts 0x80 0x02, like a protocol-2 pickle.
    header = b'{"__metadata__":{"p":"' + b"y" * 640 + b'"}}'
    header = header[:640]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 640) + header[:100])
    assert path.read_bytes()[:2] == b"\x80\x02"
    with pytest.raises(CheckpointError, match="truncated safetensors"):
        sniff(path)


@pytest.mark.parametrize("content", [b"just text\n", b"\x80\x01junk", b"\x00" * 7, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json, no!}" + b"\x00" * 8])
def test_other_bytes_are_refused(tmp_path, content):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        sniff(path)
