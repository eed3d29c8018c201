"""The main window: composes the views, menus and settings, and owns the worker's lifetime."""

from __future__ import annotations

from importlib import resources

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from trainer import ConfigError, FrozenVAE, ImageDataset, Progress, Snapshot, TrainConfig

from .controls import Controls
from .dataset_panel import DatasetPanel
from .elbo_view import ElboView
from .export import export_history_csv
from .image_panel import ImagePanel
from .latent_view import LatentView
from .manifold_view import ManifoldView
from .worker import TrainingWorker

ORGANISATION = "LatentExplorer"
APPLICATION = "LatentExplorer"
DEFAULT_SIZE = (1400, 860)
ELLIPSE_BUDGET = 5000


def app_settings() -> QSettings:
    """Ini-format user settings (tests point QSettings.setPath at a temporary folder)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                     APPLICATION)


def help_html() -> str:
    return (resources.files("resources") / "help.html").read_text(encoding="utf-8")


class MainWindow(QMainWindow):
    def __init__(self, dataset: ImageDataset, config: TrainConfig, start: bool = True,
                 launch: bool = True, restore_state: bool = True):
        """``start``: train at once (else wait for Start). ``launch``: start the worker
        thread (the screenshot mode trains in-process and feeds snapshots itself)."""
        super().__init__()
        self.dataset = dataset
        self.config = config
        self.model: FrozenVAE | None = None  # the newest snapshot's frozen copy
        self.snapshot: Snapshot | None = None
        self.progress: Progress | None = None
        self.selected: int | None = None
        self._pending_snapshot: Snapshot | None = None
        self._pending_progress: Progress | None = None
        self._draw_scheduled = False
        self._running = start
        self._started = start
        self._sample_seed = 0
        self._shown_reason: str | None = None
        self.setWindowTitle(f"Latent Explorer: {dataset.name}")

        self.latent_view = LatentView()
        self.latent_view.set_dataset(dataset.labels, dataset.label_names)
        self.latent_view.set_ellipse_budget(ELLIPSE_BUDGET)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#b00020; color:white; padding:6px;")
        self.banner.hide()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.latent_view, 1)
        self.setCentralWidget(central)

        self.image_panel = ImagePanel()
        self.elbo_view = ElboView()
        self.controls = Controls(config)
        self.dataset_panel = DatasetPanel(dataset, config)
        self.manifold_view = ManifoldView()
        self.docks = {
            "image": self._dock("Decoded image", self.image_panel,
                                Qt.DockWidgetArea.RightDockWidgetArea),
            "manifold": self._dock("Manifold", self.manifold_view,
                                   Qt.DockWidgetArea.RightDockWidgetArea),
            "controls": self._dock("Training", self.controls,
                                   Qt.DockWidgetArea.LeftDockWidgetArea),
            "dataset": self._dock("Dataset", self.dataset_panel,
                                  Qt.DockWidgetArea.LeftDockWidgetArea),
            "elbo": self._dock("ELBO curves", self.elbo_view,
                               Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        # Side columns run the full height; the curves sit under the plane only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self._build_status_bar()
        self._build_menus()
        self.controls.set_running(self._running, self._started)

        self.worker = TrainingWorker(dataset, config, start_paused=not start)
        self.worker.progressed.connect(self._on_progress)
        self.worker.snapshotted.connect(self._on_snapshot)
        self.worker.failed.connect(self._on_failed)
        self.controls.startPauseClicked.connect(self.toggle_running)
        self.controls.stepClicked.connect(self.step_once)
        self.controls.resetClicked.connect(self.reset_training)
        self.controls.lrChanged.connect(self.worker.set_lr)
        self.controls.betaChanged.connect(self.worker.set_beta)
        self.controls.batchSizeChanged.connect(self.worker.set_batch_size)
        self.latent_view.zRequested.connect(self.decode_z)
        self.latent_view.pointSelected.connect(self.select_point)
        self.latent_view.filesDropped.connect(self._on_files_dropped)
        self.latent_view.viewRegionChanged.connect(self.manifold_view.set_view_region)
        self.image_panel.mode_group.buttonToggled.connect(self._on_decode_mode)

        self.resize(*DEFAULT_SIZE)
        d = self.docks
        self.resizeDocks([d["controls"], d["image"]], [280, 400], Qt.Orientation.Horizontal)
        self.resizeDocks([d["image"], d["manifold"]], [300, 520], Qt.Orientation.Vertical)
        self.resizeDocks([d["controls"], d["dataset"]], [420, 400], Qt.Orientation.Vertical)
        self.resizeDocks([d["elbo"]], [270], Qt.Orientation.Vertical)
        self._settings = app_settings() if restore_state else None
        if self._settings is not None:
            self._restore_settings()
        if launch:
            self.worker.start()

    # ----------------------------------------------------------------- layout
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")  # saveState needs stable names
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.rate_label = QLabel("- samples/s")
        self.epoch_label = QLabel("0 epochs done")
        self.train_label = QLabel("train ELBO - nats")
        self.heldout_label = QLabel("held-out ELBO - nats")
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setMaximumWidth(220)
        self.epoch_bar.setRange(0, 0)  # busy until the first snapshot: encoding every point
        self.epoch_bar.setFormat(f"encoding {len(self.dataset):,} points")
        self.epoch_bar.setTextVisible(True)
        for w in (self.rate_label, self.epoch_label, self.train_label, self.heldout_label):
            w.setToolTip("ELBO: per datapoint, in nats; higher is better (ELBO <= log p(x))")
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.epoch_bar)

    def _build_menus(self) -> None:
        def action(menu, text, slot, shortcut=None, checkable=False) -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        action(file_menu, "Export history CSV...", self._export_history_dialog, "Ctrl+E")
        file_menu.addSeparator()
        action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit)

        train_menu = bar.addMenu("&Training")
        self.start_action = action(train_menu, "Start / Pause", self.toggle_running,
                                   Qt.Key.Key_Space)
        action(train_menu, "Step", self.step_once, "Ctrl+.")
        action(train_menu, "Reset", self.reset_training, "Ctrl+R")

        view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        group = QActionGroup(self)
        self.sigma_actions = {}
        for k in (1, 2):
            a = action(view_menu, f"{k} sigma ellipses", self._on_sigma_action, f"Ctrl+{k}",
                       checkable=True)
            a.setData(k)
            group.addAction(a)
            self.sigma_actions[k] = a
        self.sigma_actions[1].setChecked(True)

        help_menu = bar.addMenu("&Help")
        action(help_menu, "What am I looking at?", self.show_help,
               QKeySequence.StandardKey.HelpContents)
        action(help_menu, "About Latent Explorer", self._about)

    # --------------------------------------------------------------- training
    def toggle_running(self) -> None:
        if self._running:
            self.worker.pause()
        else:
            self._hide_banner()
            self.worker.resume()
        self._running = not self._running
        self._started = True
        self.controls.set_running(self._running, self._started)

    def step_once(self) -> None:
        if not self._running:
            self._hide_banner()
            self.worker.step_once()

    def reset_training(self) -> None:
        try:
            config = self.controls.config_for_reset(self.config)
        except ConfigError as exc:
            self.statusBar().showMessage(f"Reset not applied: {exc}", 8000)
            return
        self.config = config
        self._hide_banner()
        self.dataset_panel.set_config(config)
        self.worker.reset(config)
        self.statusBar().showMessage("Model rebuilt from scratch", 4000)

    # ------------------------------------------------- results from the worker
    def _on_progress(self, progress: Progress) -> None:
        self._pending_progress = progress
        self._schedule_draw()

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._pending_snapshot = snapshot
        self._schedule_draw()

    def _schedule_draw(self) -> None:
        # Results queue up while the GUI is busy; one draw handles only the newest.
        if not self._draw_scheduled:
            self._draw_scheduled = True
            QTimer.singleShot(0, self._draw_pending)

    def _draw_pending(self) -> None:
        self._draw_scheduled = False
        snapshot, self._pending_snapshot = self._pending_snapshot, None
        progress, self._pending_progress = self._pending_progress, None
        if snapshot is not None:
            self.apply_snapshot(snapshot)
            if progress is None or progress.step <= snapshot.progress.step:
                progress = snapshot.progress
        if progress is not None:
            self.apply_progress(progress)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.model = snapshot.model
        self.latent_view.set_latents(snapshot.mu, snapshot.sigma)
        self.manifold_view.set_model(snapshot.model)
        if self.image_panel.z is not None and not self.image_panel.shows_sample:
            self.decode_z(*self.image_panel.z)  # the same z under the newer decoder
        if self.selected is not None:
            self._show_selected()

    def apply_progress(self, p: Progress) -> None:
        self.progress = p
        self.elbo_view.set_history(p.train, p.heldout, p.logpx)
        self.rate_label.setText(f"{p.samples_per_second:,.0f} samples/s")
        self.epoch_label.setText(f"{p.epoch} epochs done")
        train, heldout = p.train.get("elbo", ()), p.heldout.get("elbo", ())
        if len(train):
            self.train_label.setText(f"train ELBO {train[-1]:.2f} nats")
        if len(heldout):
            self.heldout_label.setText(f"held-out ELBO {heldout[-1]:.2f} nats")
        if self.epoch_bar.maximum() == 0:
            self.epoch_bar.setRange(0, 1000)
        self.epoch_bar.setValue(int(p.epoch_progress * 1000))
        self.epoch_bar.setFormat(f"epoch {p.epoch + 1}: %p%")
        if p.stopped_reason and p.stopped_reason != self._shown_reason:
            self._shown_reason = p.stopped_reason
            self._running = False
            self.controls.set_running(False, True)
            self.banner.setText(p.stopped_reason)
            self.banner.show()
            self.statusBar().showMessage("Training diverged and was paused", 10000)

    def _on_failed(self, message: str) -> None:
        self._running = False
        self.controls.set_running(False, self._started)
        self.banner.setText(message)
        self.banner.show()

    def _hide_banner(self) -> None:
        self.banner.hide()
        self._shown_reason = None

    # ------------------------------------------------------- decode and select
    def decode_z(self, x: float, y: float) -> None:
        """Decode z with the newest snapshot's frozen decoder, in this thread."""
        if self.model is None:
            return
        z = np.array([[x, y]], np.float32)
        if self.image_panel.shows_sample:
            self._sample_seed += 1
            image = self.model.decode_sample(z, seed=self._sample_seed)[0]
        else:
            image = self.model.decode_mean(z)[0]
        self.image_panel.show_decoded((x, y), image)
        self.latent_view.set_crosshair((x, y))

    def select_point(self, index: int) -> None:
        self.selected = None if index < 0 else int(index)
        self.latent_view.set_selected(self.selected)
        if self.selected is None:
            self.image_panel.clear_datapoint()
        else:
            self._show_selected()

    def _show_selected(self) -> None:
        i = self.selected
        if self.snapshot is None or i is None or i >= len(self.dataset):
            return
        h, w = self.dataset.image_shape
        mu, sigma = self.snapshot.mu[i], self.snapshot.sigma[i]
        recon = self.snapshot.model.decode_mean(mu[None, :])[0]
        label = ""
        if self.dataset.labels is not None:
            value = int(self.dataset.labels[i])
            names = self.dataset.label_names
            label = f", label {names[value] if names and value < len(names) else value}"
        title = (f"datapoint #{i}{label}\nmu = ({mu[0]:.2f}, {mu[1]:.2f})\n"
                 f"sigma = ({sigma[0]:.2f}, {sigma[1]:.2f})")
        self.image_panel.show_datapoint(title, self.dataset.as_float([i]).reshape(h, w), recon)

    def _on_decode_mode(self, *args) -> None:
        if self.image_panel.z is not None:
            self.decode_z(*self.image_panel.z)

    def _on_sigma_action(self) -> None:
        for k, a in self.sigma_actions.items():
            if a.isChecked():
                self.latent_view.set_sigma_level(k)

    def _on_files_dropped(self, paths: list) -> None:
        self.statusBar().showMessage(
            f"Encoding dropped images is not available yet ({len(paths)} file(s) ignored)", 6000)

    # ------------------------------------------------------------------ files
    def export_history(self, path: str) -> None:
        p = self.progress
        if p is None:
            raise ValueError(f"{path}: no history to export yet")
        export_history_csv(path, p.train, p.heldout, p.logpx)

    def _export_history_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export history CSV", "history.csv",
                                              "CSV files (*.csv)")
        if not path:
            return
        try:
            self.export_history(path)
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self, "Export history CSV", f"{path}: {exc}")
            return
        self.statusBar().showMessage(f"History written to {path}", 5000)

    # ------------------------------------------------------------------- help
    def show_help(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("What am I looking at?")
        browser = QTextBrowser(dialog)
        browser.setOpenExternalLinks(True)
        browser.setHtml(help_html())
        QVBoxLayout(dialog).addWidget(browser)
        dialog.resize(620, 560)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.help_dialog = dialog

    def _about(self) -> None:
        QMessageBox.about(self, "About Latent Explorer",
                          "Latent Explorer: watch a VAE with a 2-D latent space learn.\n"
                          "Kingma & Welling (2013), Auto-Encoding Variational Bayes.")

    # ------------------------------------------------------------- lifecycle
    def _restore_settings(self) -> None:
        s = self._settings
        geometry, state = s.value("window/geometry"), s.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        level = s.value("view/sigma_level")
        if level is not None and str(level) in ("1", "2"):
            self.sigma_actions[int(level)].setChecked(True)
            self.latent_view.set_sigma_level(int(level))

    def _save_settings(self) -> None:
        s = self._settings
        if s is None:
            return
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        level = next(k for k, a in self.sigma_actions.items() if a.isChecked())
        s.setValue("view/sigma_level", level)
        s.sync()

    def shutdown(self) -> None:
        """Stop the worker and wait for it: safe at any moment, and more than once."""
        self.worker.stop()

    def closeEvent(self, event) -> None:
        self._save_settings()
        self.shutdown()
        super().closeEvent(event)
