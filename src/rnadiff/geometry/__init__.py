"""Geometry kernels at the bottom of the package: superposition, signed volumes, neighbour search,
handedness. Nothing here knows about files, models or configuration; every other layer may use it."""
from __future__ import annotations

from rnadiff.geometry.neighbors import cross_pairs, neighbor_pairs
from rnadiff.geometry.superpose import (
    apply_rigid,
    kabsch,
    rotation_from_covariance,
    superpose,
    weighted_kabsch,
)
from rnadiff.geometry.volumes import signed_volumes

__all__ = ["apply_rigid", "cross_pairs", "kabsch", "neighbor_pairs", "rotation_from_covariance",
           "signed_volumes", "superpose", "weighted_kabsch"]
