"""The architecture (mlp or conv) and the latent size in the window: chosen in the Training
controls (applied on Reset) and in the New run dialog, validated by TrainConfig, echoed by the
next snapshot's config and shown by the per-dimension panel."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from explorer.qt.views.controls import LATENT_DIM_RANGE, Controls
from explorer.qt.views.new_run_dialog import NewRunDialog
from tests.explorer.conftest import add_run_from_dialog
from trainer import ImageDataset, TrainConfig

WAIT_MS = 60_000


def test_conv_and_an_8_d_latent_chosen_in_the_controls_apply_on_reset(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    controls = w.controls
    assert (controls.arch.currentText(), controls.latent_dim.value()) == ("mlp", 2)
    assert controls.hidden.isEnabled()
    controls.arch.setCurrentText("conv")
    assert not controls.hidden.isEnabled(), "the conv model's layers are fixed"
    assert "fixed" in controls.hidden.toolTip()
    controls.latent_dim.setValue(8)
    assert w.state.current.snapshot.config.arch == "mlp", "nothing changes before Reset"
    w.confirm = lambda title, question: True  # "discard the run?"
    qtbot.mouseClick(controls.reset_button, Qt.MouseButton.LeftButton)

    def echoed():
        snapshot = w.state.current.snapshot
        return (snapshot is not None and snapshot.config.arch == "conv"
                and snapshot.config.latent_dim == 8)

    qtbot.waitUntil(echoed, timeout=WAIT_MS)
    snapshot = w.state.current.snapshot
    assert snapshot.mu.shape == (len(w.state.current.dataset), 8)
    assert type(snapshot.model.model.encoder).__name__ == "ConvEncoder"
    w.docks["dimensions"].raise_()  # the bars are drawn once its tab is in front
    qtbot.waitUntil(lambda: len(w.dimensions.kl) == 8, timeout=WAIT_MS)
    assert " of 8 dimensions active" in w.dimensions.summary.text()
    assert w.dimensions.view_box.count() > 1  # PCA and pairs of coordinates to choose from
    assert (controls.arch.currentText(), controls.latent_dim.value()) == ("conv", 8)


def test_the_controls_offer_2_to_64_and_show_a_cli_run_as_it_is(qtbot):
    controls = Controls(TrainConfig())
    qtbot.addWidget(controls)
    box = controls.latent_dim
    assert (box.minimum(), box.maximum()) == LATENT_DIM_RANGE == (2, 64)
    controls.set_config(TrainConfig(latent_dim=128, arch="conv"))  # a headless run's
    assert box.value() == 128 and controls.arch.currentText() == "conv"
    again = controls.config_for_reset(TrainConfig())
    assert (again.latent_dim, again.arch) == (128, "conv"), "Reset keeps it, not a clamp"
    controls.set_config(TrainConfig())
    assert (box.minimum(), box.maximum()) == (2, 64) and box.value() == 2


def test_the_new_run_dialog_changes_arch_and_latent_dim(qtbot):
    base = TrainConfig(hidden=(64,), seed=3)
    dialog = NewRunDialog(base, "run 1", "one")
    qtbot.addWidget(dialog)
    assert (dialog.arch.currentText(), dialog.latent_dim.value()) == ("mlp", 2)
    dialog.arch.setCurrentText("conv")
    dialog.latent_dim.setValue(16)
    assert dialog.changes() == {"seed": 4, "arch": "conv", "latent_dim": 16}
    config = dialog.config()
    assert (config.arch, config.latent_dim) == ("conv", 16)
    assert "arch=conv" in dialog.name() and "latent_dim=16" in dialog.name()


def test_a_new_conv_run_with_an_8_d_latent_trains_beside_the_first(qtbot, make_window):
    w = make_window()

    def choose(dialog):
        dialog.arch.setCurrentText("conv")
        dialog.latent_dim.setValue(8)

    first, second = add_run_from_dialog(qtbot, w, choose, WAIT_MS)
    assert (second.snapshot.config.arch, second.snapshot.mu.shape[1]) == ("conv", 8)
    assert (first.snapshot.config.arch, first.snapshot.mu.shape[1]) == ("mlp", 2)
    _, other = w.planes.planes()
    assert other.run is second and "arch=conv" in second.name


def test_conv_on_images_over_64_pixels_is_refused_before_the_run_is_discarded(qtbot,
                                                                             make_window):
    rng = np.random.default_rng(0)
    big = ImageDataset(pixels=rng.integers(0, 256, (40, 70, 70), dtype=np.uint8),
                       scale=1 / 255, name="big", source="big.npz")
    w = make_window(dataset=big)
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    asked = []
    w.confirm = lambda title, question: asked.append(question) or True
    w.controls.arch.setCurrentText("conv")
    qtbot.mouseClick(w.controls.reset_button, Qt.MouseButton.LeftButton)
    message = w.statusBar().currentMessage()
    assert message.startswith("Reset not applied: arch: the conv model takes images 8 to 64")
    assert "70x70" in message and asked == [], "refused before asking to discard the run"
    assert w.state.current.config.arch == "mlp"

    dialog = NewRunDialog(w.state.current.config, "run 1", "one", image_shape=(70, 70))
    qtbot.addWidget(dialog)
    dialog.arch.setCurrentText("conv")
    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.error.text().startswith("Not valid: arch: the conv model takes images")
    assert dialog.result() != NewRunDialog.DialogCode.Accepted
