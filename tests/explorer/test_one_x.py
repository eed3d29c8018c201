"""One datapoint, one x, one set of numbers: the plane's dot, the Inspector and the headless
``inspect`` agree; the latents CSV from the menu (a background job) equals
``export-latents``'s; the Inspector's numbers all show in a 330 px dock."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QLabel

from explorer.qt.docks import scrolled
from explorer.qt.views.inspector import Inspector
from explorer.qt.views.latent_view import LatentView
from trainer import Session, TrainConfig
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.cli import main
from trainer.evidence import dataset_evidence

WAIT_MS = 30_000
POINTS = (3, 272, 1482)


@pytest.fixture(scope="module")
def checkpoint_dir(digits, tmp_path_factory):
    session = Session(digits, TrainConfig(hidden=(48, 48), threads=1, seed=4,
                                          eval_every_seconds=1e9))
    for _ in range(300):
        session.step()
    return save_checkpoint(session, tmp_path_factory.mktemp("run") / "ckpt")


@pytest.fixture
def window(make_window, checkpoint_dir, qtbot):
    ck = load_checkpoint(checkpoint_dir)
    w = make_window(config=ck.config.replace(threads=1), checkpoint=ck)
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    return w


def inspect_command(capsys, checkpoint_dir, index: int) -> dict:
    capsys.readouterr()
    assert main(["inspect", "--checkpoint", str(checkpoint_dir), "--index", str(index)]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_planes_dot_the_inspector_and_inspect_agree(qtbot, window, checkpoint_dir,
                                                        digits, capsys):
    w = window
    # Per-point colourings score the same x (the window's inputs for them).
    np.testing.assert_array_equal(w.selection.model_inputs(), dataset_evidence(digits, "dynamic"))
    for i in POINTS:
        w.selection.select_point(i)
        qtbot.waitUntil(lambda: w.inspector.values()["log_px"] is not None, timeout=WAIT_MS)
        v = w.inspector.values()
        shown = np.array([v["mu1"], v["mu2"]])
        headless = inspect_command(capsys, checkpoint_dir, i)
        np.testing.assert_allclose(w.state.current.snapshot.mu[i], shown, rtol=0, atol=1e-5)
        np.testing.assert_allclose(headless["mu"], shown, rtol=0, atol=1e-5)
        np.testing.assert_allclose(w.state.current.snapshot.sigma[i], [v["sigma1"], v["sigma2"]],
                                   rtol=1e-5)
        for key in ("elbo", "recon", "kl", "log_px", "iwae", "iwae_se", "inference_gap"):
            assert headless[key] == pytest.approx(v[key], abs=1e-4), key
        # The q ellipse the Inspector draws sits on the clicked dot.
        np.testing.assert_allclose(w.inspector.overlay.mean, w.state.current.snapshot.mu[i],
                                   atol=1e-5)
        # The image panel shows the datapoint's x beside its grey image.
        x = dataset_evidence(digits, "dynamic", [i]).reshape(digits.image_shape)
        assert not w.image_panel.scored.isHidden()
        np.testing.assert_array_equal(w.image_panel.scored.array, x)
        np.testing.assert_array_equal(w.inspector.x, x.reshape(-1))


def test_latents_export_runs_in_the_background_and_matches_the_command(
        qtbot, window, checkpoint_dir, tmp_path, capsys):
    w = window
    gui_csv = tmp_path / "gui.csv"
    w.exports.start_latents_export(str(gui_csv))
    assert w.exports.latents_export_busy()  # returned at once: the ELBOs are computed elsewhere
    qtbot.waitUntil(lambda: gui_csv.exists() and not w.exports.latents_export_busy(),
                    timeout=WAIT_MS)
    assert main(["export-latents", "--checkpoint", str(checkpoint_dir), "--out",
                 str(tmp_path / "cli.csv"), "--quiet"]) == 0
    assert gui_csv.read_text() == (tmp_path / "cli.csv").read_text()
    assert w.exports.progress_dialog is None
    assert "written to" in w.statusBar().currentMessage()


def test_inspector_numbers_fit_a_330_px_dock(qtbot, window, digits):
    plane = LatentView()
    qtbot.addWidget(plane)
    inspector = Inspector(plane.plotItem)
    area = scrolled(inspector)
    qtbot.addWidget(area)
    area.resize(330, 1400)
    area.show()
    qtbot.waitExposed(area)
    snapshot = window.state.current.snapshot
    model = snapshot.model
    i = POINTS[1]
    x = dataset_evidence(digits, model.binarization, [i])[0]
    with qtbot.waitSignal(inspector.inspected, timeout=WAIT_MS):
        inspector.inspect(model, x, digits.as_float([i]).reshape(digits.image_shape),
                          f"datapoint #{i}", snapshot.mu[i], snapshot.sigma[i])
    with qtbot.waitSignal(inspector.optimised, timeout=WAIT_MS):
        inspector.toggle_optimise()
    qtbot.wait(50)  # let the layout settle after the new texts
    viewport = area.viewport()
    assert area.horizontalScrollBar().maximum() == 0  # nothing needs a sideways scroll
    labels = [*inspector.value_labels.values(), *inspector.caption_labels.values(),
              inspector.note_label, inspector.title_label, inspector.shape_label,
              *inspector.tile_captions.values()]
    for label in labels:
        text = label.text()
        if label in inspector.value_labels.values():
            assert text and text != "\u2014", label.objectName()
        top_left = label.mapTo(viewport, QPoint(0, 0))
        rect = label.contentsRect()
        # Inside the visible width, and inside the viewport's height.
        assert top_left.x() >= 0 and top_left.x() + label.width() <= viewport.width(), text
        assert top_left.y() >= 0 and top_left.y() + label.height() <= viewport.height(), text
        assert_not_clipped(label, rect.width(), rect.height())
    for button in (inspector.optimise_button, inspector.reset_button, inspector.copy_button,
                   inspector.refresh_button):
        left = button.mapTo(viewport, QPoint(0, 0)).x()
        assert left >= 0 and left + button.width() <= viewport.width(), button.text()
        assert button.fontMetrics().horizontalAdvance(button.text()) < button.width()
    # The numbers themselves are all there, in full.
    assert "\u00b1" in inspector.value_labels["iwae"].text()
    assert inspector.value_labels["amortisation_gap"].text() != "\u2014"


def assert_not_clipped(label: QLabel, width: int, height: int) -> None:
    """The label's text, laid out as the label lays it out, fits its contents rect."""
    metrics = label.fontMetrics()
    text = label.text()
    if label.wordWrap():
        needed = label.heightForWidth(label.width())
        assert needed <= label.height(), (text, needed, label.height())
        # No single word wider than the label (it would be cut, not wrapped).
        widest = max(metrics.horizontalAdvance(word) for word in text.split())
        assert widest <= width, (text, widest, width)
    else:
        assert metrics.horizontalAdvance(text) <= width, (text, width)
        assert metrics.height() <= height, text


def test_a_stopped_latents_job_writes_nothing(window, digits, tmp_path):
    from explorer.qt.export import latents_csv_job

    path = tmp_path / "stopped.csv"
    job = latents_csv_job(path, digits, window.state.current.snapshot.model)
    assert next(job) == (0, len(digits))
    assert next(job)[0] > 0  # one batch done
    job.close()  # what Cancel does: the worker stops at its next yield
    assert not path.exists() and list(tmp_path.iterdir()) == []
