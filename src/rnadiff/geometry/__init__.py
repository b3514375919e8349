"""Geometry kernels at the bottom of the package: superposition, signed volumes, neighbour search,
handedness. Nothing here knows about files, models or configuration; every other layer may use it."""
