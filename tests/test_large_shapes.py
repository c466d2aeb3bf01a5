"""Exact modes at every size on this host's build (issue 23): hypothesis over shapes up
to 1024 samples x 256 hidden and every tile width, each run bit for bit the reference
(tests/large_shapes.py; test_cpus checks the same examples on the generic and haswell
builds)."""

import pytest
from large_shapes import run_property


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_large_shapes_bit_for_bit_the_reference(dtype):
    run_property(dtype, max_examples=12)
