"""The kernels: Numba CPU and CUDA, the NumPy reference, seeding, tiles. No I/O."""
