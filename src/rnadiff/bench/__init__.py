"""Benchmarks of the denoiser: time per step, memory, FLOPs and FLOP/s against the measured matmul peak."""
