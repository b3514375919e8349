"""Deterministic training/validation split held out by sequence.

A chain goes to validation when the hash of its sequence falls in the validation fraction, so
identical sequences (the same RNA in several PDB entries) always land on the same side and the
split never depends on file order, the machine, or the random seed. The hash is the manifest's
`seq_md5` when present (rna_dev.tar.gz), else the md5 of the one-letter sequence.

Long chains are rare (28 of the 557 chains of rna_dev + rna_extra exceed 100 nt), so a plain 15%
split would hold out too few of them to measure the model where it is weakest. `is_heldout` also
holds out a further `long_val_fraction` of the sequences over `long_length` residues (second salt);
the original 15% split is kept as it was, so chains held out from earlier checkpoints stay held out.
"""
from __future__ import annotations

import hashlib


def sequence_md5(sequence: str) -> str:
    """md5 hex digest of the upper-cased sequence (first 12 characters, as in the manifest)."""
    return hashlib.md5(sequence.strip().upper().encode()).hexdigest()[:12]


def is_validation(seq_md5: str, val_fraction: float, salt: str = "rnadiff-split-v1") -> bool:
    """True when this sequence belongs to the validation split ([0, 1) fraction of sequences)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    h = hashlib.sha256(f"{salt}:{seq_md5}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < val_fraction


def is_heldout(seq_md5: str, length: int, val_fraction: float, long_val_fraction: float = 0.0,
               long_length: int = 100) -> bool:
    """Validation membership: the plain split, plus `long_val_fraction` of chains > long_length nt."""
    if is_validation(seq_md5, val_fraction):
        return True
    return length > long_length and long_val_fraction > 0 and is_validation(seq_md5, long_val_fraction,
                                                                             salt="rnadiff-long-v1")
