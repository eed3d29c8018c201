"""The several-runs widgets on their own: the planes grid, the New run dialog, the overlaid
curves (one colour per run, legend outside the plot)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialogButtonBox

from explorer.core.state import AppState
from explorer.qt.views.elbo_view import ElboView
from explorer.qt.views.latent_view import LatentView
from explorer.qt.views.legend import OutsideLegend
from explorer.qt.views.new_run_dialog import NewRunDialog
from explorer.qt.views.run_planes import RunPlane, RunPlanes
from trainer import TrainConfig


def curves(n, start):
    steps = np.arange(n, dtype=np.float64)
    return ({"step": steps, "samples": steps * 64, "seconds": steps, "elbo": start + steps},
            {"step": steps[::5], "samples": steps[::5] * 64, "seconds": steps[::5],
             "elbo": start + steps[::5] - 1, "kl": steps[::5] * 0 + 3})


def test_the_curves_of_several_runs_overlay_in_their_colours(qtbot):
    view = ElboView()
    qtbot.addWidget(view)
    a, b = curves(50, -200.0), curves(30, -150.0)
    view.set_runs([("beta=1", "#0072b2", *a)])
    assert view.run_curves() == {} and view.smoothed.isVisible()  # one run: as before
    view.set_runs([("beta=1", "#0072b2", *a), ("beta=4", "#d55e00", *b)])
    shown = view.run_curves()
    assert set(shown) == {"beta=1", "beta=4"} and not view.smoothed.isVisible()
    train, heldout = shown["beta=4"]
    assert pg.mkPen(train.opts["pen"]).color().name() == "#d55e00"
    assert len(train.getData()[0]) == 30 and len(heldout.getData()[0]) == 6
    assert isinstance(view.legend, OutsideLegend)  # its own row above the plot
    assert {"beta=1: held-out", "beta=4: train, smoothed"} <= {n for _, n in view.legend.items}
    view.set_runs([("beta=1", "#0072b2", *a)])
    assert view.run_curves() == {} and view.smoothed.isVisible()


def test_the_new_run_dialog_returns_only_the_changes_and_validates(qtbot):
    base = TrainConfig(hidden=(64,), beta=1.0, seed=3)
    dialog = NewRunDialog(base, "run 1", "one")
    qtbot.addWidget(dialog)
    assert dialog.changes() == {"seed": 4}  # another seed by default, the rest copied
    dialog.beta.setValue(4.0)
    dialog.likelihood.setCurrentText("gaussian")
    assert dialog.binarization.currentText() == "none"
    dialog.hidden.setText("32, 16")
    config = dialog.config()
    assert (config.beta, config.likelihood, config.binarization, config.hidden) == \
        (4.0, "gaussian", "none", (32, 16))
    assert dialog.name().startswith("beta=4")
    dialog.hidden.setText("32, lots")
    ok = QDialogButtonBox.StandardButton.Ok
    dialog.findChild(QDialogButtonBox).button(ok).click()  # as the user presses OK
    assert "hidden sizes" in dialog.error.text() and dialog.result() == 0


def test_planes_show_every_run_titled_and_a_press_makes_it_current(qtbot, digits):
    state = AppState()
    a = state.add_run(digits, TrainConfig(), name="beta=1")
    b = state.add_run(digits, TrainConfig(beta=4.0), name="beta=4")
    planes = RunPlanes(RunPlane(LatentView(), primary=True))
    qtbot.addWidget(planes)
    assert planes.show_runs(a, (a,)) == [] and not planes.primary.title.isVisibleTo(planes)
    (made,) = planes.show_runs(a, state.runs)
    planes.resize(900, 400)
    planes.show()
    qtbot.waitExposed(planes)
    assert made.run is b and "beta=4" in made.title.text() and "current" not in made.title.text()
    assert "beta=1" in planes.primary.title.text() and "current" in planes.primary.title.text()
    assert made.geometry().left() > planes.primary.geometry().right()  # side by side
    with qtbot.waitSignal(made.activated) as seen:
        qtbot.mouseClick(made.view.viewport(), Qt.MouseButton.LeftButton,
                         pos=QPoint(made.view.viewport().width() // 2, 40))
    assert seen.args == [b]
    planes.show_runs(b, state.runs)
    assert planes.primary.run is b and made.run is a
