"""Legends sit outside the plotted area, so they never cover data; the prior has an entry."""

from __future__ import annotations

from PySide6.QtCore import QPointF

WAIT_MS = 30_000


def outside_plot_area(legend, plot_item) -> bool:
    """The legend is shown, has text, and its scene rectangle misses the view box's (where
    every data item is drawn, so also the data's bounding rect in view coordinates)."""
    box = plot_item.vb.sceneBoundingRect()
    rect = legend.sceneBoundingRect()
    return legend.isVisible() and rect.height() > 5 and not rect.intersects(box)


def test_every_legend_lies_outside_the_data_it_explains(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(w.state.current.progress.heldout.get("elbo", ())) >= 2,
                    timeout=WAIT_MS)
    with qtbot.waitSignal(w.inspector.inspected, timeout=WAIT_MS):
        w.selection.select_point(3)
    w.selection.decode_z(0.1, -0.2)
    qtbot.wait(50)  # one layout pass

    plane = w.latent_view.plotItem
    assert outside_plot_area(w.latent_view.legend, plane)
    assert w.latent_view.legend_names() == [str(i) for i in range(10)]
    assert "prior p(z): 1, 2, 3 \u03c3" in w.latent_view.legend.names()

    overlay = w.inspector.overlay
    assert overlay.legend.names()[:2] == ["exact p(z|x): 50 / 90 / 99 % of its mass",
                                         "q(z|x) from the encoder: drag centre or axes"]
    assert outside_plot_area(overlay.legend, plane)
    # ... so the crosshair at the decoded z is uncovered
    crosshair = w.latent_view.plotItem.vb.mapViewToScene(QPointF(0.1, -0.2))
    for legend in (w.latent_view.legend, overlay.legend):
        assert not legend.sceneBoundingRect().contains(crosshair)

    curves = w.elbo_view.plot.getPlotItem()
    assert "held-out ELBO" in w.elbo_view.legend.names()
    assert outside_plot_area(w.elbo_view.legend, curves)
    data = curves.vb.childrenBoundingRect()  # the curves' bounds, in view coordinates
    legend_in_view = curves.vb.mapSceneToView(w.elbo_view.legend.sceneBoundingRect())
    assert not legend_in_view.boundingRect().intersects(data.intersected(curves.vb.viewRect()))


def test_the_legend_wraps_to_the_plot_width_instead_of_widening_it(qtbot, make_window):
    w = make_window(start=False)
    w.latent_view.set_dataset(w.state.current.dataset.labels,
                              [f"class number {i}" for i in range(10)])
    w.resize(1100, 700)
    qtbot.wait(50)
    legend = w.latent_view.legend
    assert legend.sceneBoundingRect().width() <= w.latent_view.plotItem.vb.width() + 1
    assert "<br>" in legend.text  # wrapped onto several lines
    assert w.latent_view.plotItem.sceneBoundingRect().right() <= w.latent_view.width() + 1
