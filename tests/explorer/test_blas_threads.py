"""numpy's BLAS is held to one thread beside the training thread (explorer.core.blas_threads)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.blas_threads import blas_threads, limit_blas_threads


def test_limiting_blas_threads_takes_effect_and_products_stay_right():
    before = blas_threads()
    if before is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS: nothing to limit")
    try:
        assert limit_blas_threads(1) == before
        assert blas_threads() == 1
        a = np.arange(12.0).reshape(6, 2)
        np.testing.assert_allclose(a @ np.eye(2), a)
    finally:
        limit_blas_threads(before)
    assert blas_threads() == before


def test_a_window_with_a_training_worker_holds_blas_to_one_thread(make_window):
    if blas_threads() is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS: nothing to limit")
    limit_blas_threads(2)  # as numpy starts on a 2-core machine
    if blas_threads() != 2:
        pytest.skip("this OpenBLAS will not use two threads here")
    make_window(start=False)
    assert blas_threads() == 1
