"""The manifold view tiles a real decoder's images over the prior grid or the region in view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.qt.views.manifold_view import ManifoldView
from trainer import VAE, FrozenVAE

H, W = 8, 6


@pytest.fixture
def frozen():
    torch.manual_seed(0)
    return FrozenVAE(VAE(H * W, latent_dim=2, hidden=(16,)), (H, W))


@pytest.fixture
def view(qtbot):
    widget = ManifoldView()
    qtbot.addWidget(widget)
    widget.resize(300, 340)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def tile_at(mosaic, row, col):
    return mosaic[row * H:(row + 1) * H, col * W:(col + 1) * W]


def test_prior_mosaic_is_the_inverse_cdf_grid(view, frozen, qtbot):
    n = 5
    view.set_grid_size(n)
    view.set_model(frozen)
    qtbot.waitUntil(lambda: view.redraws >= 1)
    mosaic = view.mosaic()
    assert mosaic.shape == (n * H, n * W)

    axis = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n).numpy()
    z = view.grid_z()
    assert np.allclose(z[-1, :, 0], axis) and np.allclose(z[:, 0, 1], axis[::-1])
    # Every tile is the decoder's mean at its z; z2 grows upward, z1 rightward.
    for row in range(n):
        for col in range(n):
            expected = frozen.decode_mean(np.array([[axis[col], axis[n - 1 - row]]]))[0]
            assert np.allclose(tile_at(mosaic, row, col), expected, atol=1e-6)
    assert np.array_equal(view.image.image, mosaic)


def test_view_mode_corners_decode_the_region_corners(view, frozen):
    view.set_model(frozen)
    view.set_mode("view")
    assert view.mode_box.currentData() == "view"
    view.set_view_region(-1.5, 2.0, -0.5, 3.0)
    view.grid_box.setValue(4)  # the spin box drives the grid size
    mosaic = view.mosaic()
    assert mosaic.shape == (4 * H, 4 * W)
    corners = {(0, 0): (-1.5, 3.0), (0, 3): (2.0, 3.0), (3, 0): (-1.5, -0.5), (3, 3): (2.0, -0.5)}
    for (row, col), z in corners.items():
        expected = frozen.decode_mean(np.array([z]))[0]
        assert np.allclose(tile_at(mosaic, row, col), expected, atol=1e-6)


def test_redraws_are_coalesced(view, frozen, qtbot):
    view.set_model(frozen)
    qtbot.waitUntil(lambda: view.redraws == 1)
    for _ in range(50):  # a burst of live updates
        view.set_model(frozen)
        view.set_view_region(-1, 1, -1, 1)
    assert view.redraws == 1  # nothing decoded synchronously
    qtbot.waitUntil(lambda: view.redraws == 2)
    assert not view.redraw_scheduled()  # and the burst cost exactly one redraw


def test_bad_input_is_refused(view):
    with pytest.raises(ValueError, match="mode"):
        view.set_mode("posterior")
    with pytest.raises(ValueError, match="grid size"):
        view.set_grid_size(1)
