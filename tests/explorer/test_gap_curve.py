"""The mean amortization gap over training, under the ELBO curves: drawn from a real run's
history (trainer.Session.gaps_history), labelled with its units and sign, and live in the
window while a 2-D run trains."""

from __future__ import annotations

import numpy as np

from explorer.qt.views.elbo_view import GAP_LABEL, ElboView, gap_title
from trainer import Session, TrainConfig

WAIT_MS = 60_000
GAP_TITLE = gap_title()


def test_the_gap_strip_draws_a_runs_gap_rows(qtbot, digits):
    view = ElboView()
    qtbot.addWidget(view)
    view.show()
    s = Session(digits, TrainConfig(hidden=(32,), threads=1, inference="free", seed=0,
                                    eval_every_seconds=1e6))
    for _ in range(20):
        s.step()
    p = s.progress()
    view.set_history(p.train, p.heldout, p.logpx, p.gaps)
    assert not view.gap_plot.isVisible()  # no gap rows yet: no strip
    row = s.evaluate_gap_curve()
    for _ in range(5):
        s.step()
    s.evaluate_gap_curve()
    p = s.progress()
    view.set_history(p.train, p.heldout, p.logpx, p.gaps)
    assert view.gap_plot.isVisible()
    x, y = view.gap_train.getData()
    np.testing.assert_array_equal(x, p.gaps["samples"])
    assert y[0] == row["train_amortization_gap"] and len(y) == 2
    _, y = view.gap_heldout.getData()
    assert y[0] == row["heldout_amortization_gap"]
    # Units and sign on the strip itself, and which points.
    assert "nats, >= 0, lower is better" in GAP_LABEL
    assert view.gap_plot.getPlotItem().titleLabel.text == GAP_TITLE
    assert "train</span> and" in GAP_TITLE and "held-out</span> (16 points each)" in GAP_TITLE
    # The strip's x axis follows the ELBO plot's.
    view.x_combo.setCurrentIndex(view.x_combo.findData("seconds"))
    x, _ = view.gap_train.getData()
    np.testing.assert_array_equal(x, p.gaps["seconds"])


def test_the_window_shows_the_gap_curve_while_a_2d_run_trains(qtbot, make_window,
                                                              monkeypatch):
    import trainer.session

    # The first row comes after 10 s of training; the test needs not wait that long.
    monkeypatch.setattr(trainer.session, "GAP_CURVE_FIRST_SECONDS", 1.0)
    w = make_window()
    qtbot.waitUntil(lambda: w.elbo_view.gap_plot.isVisible(), timeout=WAIT_MS)
    _, y = w.elbo_view.gap_train.getData()
    assert len(y) >= 1 and np.isfinite(y).all() and (y >= 0).all()
    _, y = w.elbo_view.gap_heldout.getData()
    assert len(y) >= 1 and (y >= 0).all()
