"""The inspector and the whole-dataset views, wired into the window."""

from __future__ import annotations

import numpy as np

WAIT_MS = 30_000


def test_selecting_a_point_inspects_it_and_clearing_clears(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    w.selection.select_point(7)
    qtbot.waitUntil(lambda: w.inspector.values()["log_px"] is not None, timeout=WAIT_MS)
    v = w.inspector.values()
    assert v["inference_gap"] >= -0.05  # log p(x) - ELBO = KL(q || p(z|x)) >= 0
    assert w.inspector.title.startswith("datapoint #7")
    assert list(w.trails.trails) == [7]
    w.selection.select_point(-1)
    assert w.inspector.values()["log_px"] is None


def test_aggregate_density_toggles_from_the_view_menu(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    w.actions["aggregate"].trigger()
    qtbot.waitUntil(lambda: w.aggregate.image.isVisible()
                    and w.aggregate.image.image is not None, timeout=WAIT_MS)
    density = np.asarray(w.aggregate.image.image)
    assert np.all(np.isfinite(density)) and density.max() > 0
    w.actions["aggregate"].trigger()
    assert not w.aggregate.image.isVisible()


def test_colour_by_elbo_puts_per_point_values_on_the_plane(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(w.colouring.computed, timeout=WAIT_MS):
        w.colouring.choose("elbo")
    values = w.latent_view.point_values()
    assert values is not None and len(values) == len(w.state.current.dataset)
    assert np.isfinite(values).all() and (values < 0).all()  # ELBO in nats


def test_newest_model_button_inspects_the_same_point_again(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(w.inspector.inspected, timeout=WAIT_MS):
        w.selection.select_point(3)
    first_model = w.inspector.model
    qtbot.waitUntil(lambda: w.state.current.snapshot.model is not first_model, timeout=WAIT_MS)
    with qtbot.waitSignal(w.inspector.inspected, timeout=WAIT_MS):
        w.inspector.refresh_button.click()
    assert w.inspector.title.startswith("datapoint #3")
    assert w.inspector.model is not first_model  # the newer snapshot's frozen model
