"""The main window: composes the views, menus and settings, and owns the worker's lifetime.

Bring your own data: images dropped on the window or the plane, pasted, or picked with
File > Encode images... go to the "Encoded images" panel; a dropped dataset, or one picked in
the Datasets menu, is loaded in the background and, once loaded, replaces the current one
(the training worker is stopped, waited for, and started again on the new data).

Sessions (``NAME.lexp``, explorer.session_file): saving asks the worker for a checkpoint
between steps and writes the file atomically; opening restores the run paused, with its
curves, encoded images, selection and view. Questions that could lose work (Save / Discard /
Cancel) go through ``_ask_unsaved`` and file pickers through ``_open_file_name`` /
``_save_file_name``, so tests and scripts can answer them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import platformdirs
from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QScrollArea,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from trainer import (
    IMAGE_SUFFIXES,
    KNOWN_DATASETS,
    Checkpoint,
    ConfigError,
    DataError,
    FrozenVAE,
    ImageDataset,
    Progress,
    Snapshot,
    TrainConfig,
    load_source,
    save_checkpoint,
)

from .controls import Controls
from .dataset_loader import DatasetLoader, source_title
from .dataset_panel import DatasetPanel
from .dataset_views import COLOURINGS, AggregateDensityLayer, PointColouring, Trails
from .elbo_view import ElboView
from .encoded_images import EncodedImagesPanel
from .export import (
    MAX_MOSAIC_SCALE,
    export_history_csv,
    export_latents_csv,
    export_mosaic_png,
    export_plane_png,
    export_plane_svg,
)
from .image_jobs import PreparedImage, classify_drop, is_dataset_candidate
from .image_panel import ImagePanel
from .inspector import Inspector
from .latent_view import LatentView
from .manifold_view import MAX_GRID, MODES, ManifoldView
from .preferences import Preferences, PreferencesDialog
from .session_file import (
    SUFFIX,
    LoadedSession,
    SessionFileError,
    SessionState,
    check_dataset,
    find_dataset,
    load_session,
    save_session,
)
from .theme import apply_theme, style_plot
from .worker import TrainingWorker

ORGANISATION = "LatentExplorer"
APPLICATION = "LatentExplorer"
DEFAULT_SIZE = (1400, 860)
ELLIPSE_BUDGET = 5000
MAX_LISTED_PROBLEMS = 15  # "file: reason" lines in the message box; the panel keeps them all
IMAGE_FILTER = "Images ({})".format(" ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)))
DATASET_FILTER = ("Datasets (*.npz *.npy *idx* *ubyte* *.gz);;"
                  "NumPy (*.npz *.npy);;IDX, as MNIST ships (*idx* *ubyte*);;All files (*)")
SESSION_FILTER = f"Latent Explorer sessions (*{SUFFIX});;All files (*)"
MAX_RECENT = 8
SAVE_TIMEOUT_MS = 120_000  # the worker answers between steps; this only guards a hung one
MOSAIC_EXPORT_SIDE = 512  # px: the manifold PNG is upscaled (pixel-exact) to at least this


def data_dir() -> Path:
    """Where the autosave lives (LATENT_EXPLORER_DATA overrides it, e.g. for tests)."""
    env = os.environ.get("LATENT_EXPLORER_DATA")
    return Path(env) if env else Path(platformdirs.user_data_dir("latent-explorer"))


def autosave_path() -> Path:
    return data_dir() / f"autosave{SUFFIX}"


def app_icon() -> QIcon:
    """The app's icon, from resources/ (found the same way installed or from a checkout)."""
    return QIcon(str(resources.files("resources") / "icon.svg"))


def versions() -> list[tuple[str, str]]:
    """(name, version) of the app and the libraries the About box lists."""
    from importlib.metadata import PackageNotFoundError, version

    import PySide6
    from PySide6.QtCore import qVersion

    def installed(name: str, fallback: str = "unknown") -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return fallback

    return [("Latent Explorer", installed("latent-explorer", "dev")),
            ("Python", platform.python_version()), ("torch", installed("torch")),
            ("PySide6 / Qt", f"{PySide6.__version__} / {qVersion()}"),
            ("pyqtgraph", installed("pyqtgraph")), ("numpy", np.__version__)]


def shortcuts(standard: QKeySequence.StandardKey, *fallbacks: str) -> list[QKeySequence]:
    """The platform's standard keys plus fallbacks (Linux has no standard Preferences key)."""
    keys = list(QKeySequence.keyBindings(standard))
    for text in fallbacks:
        key = QKeySequence(text)
        if key not in keys:
            keys.append(key)
    return keys


def recent_list(settings: QSettings | None) -> list[str]:
    if settings is None:
        return []
    raw = settings.value("recent/files")
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)  # an ini list of one reads as str
    return [str(p) for p in items if p][:MAX_RECENT]


def app_settings() -> QSettings:
    """Ini-format user settings (tests point QSettings.setPath at a temporary folder)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                     APPLICATION)


def scrolled(widget: QWidget) -> QScrollArea:
    """A tall panel that scrolls rather than widening or lengthening its dock."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


def help_html() -> str:
    """The explainer (theta, phi, lambda_i and the gaps), then the guide to the window."""
    folder = resources.files("resources")
    return "<hr>".join((folder / name).read_text(encoding="utf-8")
                       for name in ("explainer.html", "help.html"))


class MainWindow(QMainWindow):
    def __init__(self, dataset: ImageDataset, config: TrainConfig, start: bool = True,
                 launch: bool = True, restore_state: bool = True,
                 checkpoint: Checkpoint | None = None):
        """``start``: train at once (else wait for Start). ``launch``: start the worker
        thread (the screenshot mode trains in-process and feeds snapshots itself).
        ``checkpoint``: resume it (paused) instead of training a fresh model."""
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
        self._launched = launch
        self._closing = False
        self._load_confirmed = False  # the drop's own question already asked about the switch
        # Yes/No questions go through here, so tests (and scripts) can answer them.
        self.confirm: Callable[[str, str], bool] = self._ask
        self.message_box: QMessageBox | None = None  # non-modal: training and reading go on
        self.load_dialog: QProgressDialog | None = None
        self._settings = app_settings() if restore_state else None
        self.prefs = Preferences.load(self._settings) if self._settings else Preferences()
        self.session_path: Path | None = None  # the .lexp this run was opened from / saved to
        self._clean_step = 0 if checkpoint is None else int(checkpoint.counters["step"])
        self._restoring = False  # encoded images being restored do not count as changes
        self._pending_restore: dict = {}  # selection and colouring, once a snapshot arrives
        self._save_loop: QEventLoop | None = None
        self._checkpoint_reply: tuple[str, str] | None = None
        if checkpoint is not None:
            start = False  # a restored run opens paused: the user sees it as it was saved
            self._running, self._started = False, True
        self.setWindowIcon(app_icon())
        self._update_title()
        self.setAcceptDrops(True)  # drops on any dock land here; the plane takes its own

        self.latent_view = LatentView()
        self.latent_view.set_dataset(dataset.labels, dataset.label_names)
        self.latent_view.set_ellipse_budget(self.prefs.ellipse_budget)
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
        self.encoded_panel = EncodedImagesPanel()
        self.encoded_panel.set_dataset(dataset)
        self.inspector = Inspector(self.latent_view.plotItem)
        self.colouring = PointColouring(self.latent_view, labels=dataset.labels)
        self.aggregate = AggregateDensityLayer(self.latent_view)
        self.trails = Trails(self.latent_view.plotItem)
        self._inputs: np.ndarray | None = None  # every image in model-input form, on demand
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
            "encoded": self._dock("Encoded images", self.encoded_panel,
                                  Qt.DockWidgetArea.RightDockWidgetArea),
            "inspector": self._dock("Inspector", scrolled(self.inspector),
                                    Qt.DockWidgetArea.RightDockWidgetArea),
            "colouring": self._dock("Colour points", self.colouring,
                                    Qt.DockWidgetArea.LeftDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["manifold"], self.docks["encoded"])
        self.tabifyDockWidget(self.docks["manifold"], self.docks["inspector"])
        self.tabifyDockWidget(self.docks["dataset"], self.docks["colouring"])
        self.docks["manifold"].raise_()
        self.docks["dataset"].raise_()
        # Side columns run the full height; the curves sit under the plane only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self._build_status_bar()
        self._build_menus()
        self.controls.set_running(self._running, self._started)

        if checkpoint is not None:
            self.controls.set_config(checkpoint.config)
        self.worker = self._new_worker(start_paused=not start, checkpoint=checkpoint)
        self.controls.startPauseClicked.connect(self.toggle_running)
        self.controls.stepClicked.connect(self.step_once)
        self.controls.resetClicked.connect(self.reset_training)
        # Through the window, so the controls reach whichever worker trains now.
        self.controls.lrChanged.connect(self._set_lr)
        self.controls.betaChanged.connect(self._set_beta)
        self.controls.batchSizeChanged.connect(self._set_batch_size)
        self.latent_view.zRequested.connect(self.decode_z)
        self.latent_view.pointSelected.connect(self.select_point)
        self.latent_view.filesDropped.connect(self.open_paths)
        self.latent_view.markerSelected.connect(self.encoded_panel.select)
        self.encoded_panel.entrySelected.connect(self._show_markers)
        self.encoded_panel.entrySelected.connect(self._inspect_encoded)
        self.encoded_panel.model.changed.connect(self._show_markers)
        for signal in (self.encoded_panel.model.rowsInserted,
                       self.encoded_panel.model.rowsRemoved,
                       self.encoded_panel.model.modelReset):
            signal.connect(self._on_encoded_list_changed)
        self.encoded_panel.messagesReady.connect(self._show_image_problems)
        self.loader = DatasetLoader(self)
        self.loader.progress.connect(self._on_load_progress)
        self.loader.loaded.connect(self._on_dataset_loaded)
        self.loader.failed.connect(self._on_load_failed)
        self.loader.cancelled.connect(self._on_load_cancelled)
        self.latent_view.viewRegionChanged.connect(self.manifold_view.set_view_region)
        self.image_panel.mode_group.buttonToggled.connect(self._on_decode_mode)

        self.resize(*DEFAULT_SIZE)
        d = self.docks
        self.resizeDocks([d["controls"], d["image"]], [280, 400], Qt.Orientation.Horizontal)
        self.resizeDocks([d["image"], d["manifold"]], [300, 520], Qt.Orientation.Vertical)
        self.resizeDocks([d["controls"], d["dataset"]], [420, 400], Qt.Orientation.Vertical)
        self.resizeDocks([d["elbo"]], [270], Qt.Orientation.Vertical)
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
        def action(menu, text, slot, shortcut=None, checkable=False, tip=None) -> QAction:
            a = QAction(text, self)
            if isinstance(shortcut, list):
                a.setShortcuts(shortcut)
            elif shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.setCheckable(checkable)
            if tip:
                a.setStatusTip(tip)
                a.setToolTip(tip)
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        keys = QKeySequence.StandardKey
        self.open_action = action(
            file_menu, "Open session...", self._open_session_dialog,
            shortcuts(keys.Open, "Ctrl+O"),
            tip="Open a saved session (.lexp): the run, its curves, encoded images and view")
        self.recent_menu = file_menu.addMenu("Open recent")
        self.recent_menu.setToolTipsVisible(True)
        self.recent_menu.aboutToShow.connect(self._rebuild_recent_menu)
        self.save_action = action(
            file_menu, "Save session", self.save_session, shortcuts(keys.Save, "Ctrl+S"),
            tip="Save the run (weights, optimiser, history), encoded images and view")
        self.save_as_action = action(
            file_menu, "Save session as...", self.save_session_as,
            shortcuts(keys.SaveAs, "Ctrl+Shift+S"), tip="Save the session under a new name")
        file_menu.addSeparator()
        export_menu = file_menu.addMenu("Export")
        export_menu.setToolTipsVisible(True)
        self.export_actions = {
            "latents": action(export_menu, "Latents CSV...", self._export_latents_dialog,
                              tip="index, label, name, mu1, mu2, sigma1, sigma2 and ELBO "
                                  "(nats, higher is better) of every datapoint"),
            "plane_png": action(export_menu, "Latent plane PNG...", self._export_plane_png_dialog,
                                tip="The latent plane as a PNG picture"),
            "plane_svg": action(export_menu, "Latent plane SVG...", self._export_plane_svg_dialog,
                                tip="The latent plane as SVG vector graphics"),
            "manifold": action(export_menu, "Manifold PNG...", self._export_manifold_dialog,
                               tip="The manifold grid of decoded images as a grey PNG"),
            "history": action(export_menu, "History CSV...", self._export_history_dialog,
                              "Ctrl+E", tip="The ELBO and log p(x) curves (nats, higher is "
                                            "better) as CSV"),
        }
        action(file_menu, "Encode images...", self._encode_images_dialog,
               tip="Encode your own images and show where they land on the plane")
        file_menu.addSeparator()
        action(file_menu, "Preferences...", self.open_preferences,
               shortcuts(keys.Preferences, "Ctrl+,"),
               tip="Device, torch threads, update rates, ellipse budget, theme, autosave")
        file_menu.addSeparator()
        action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit,
               tip="Quit (the session is saved automatically unless turned off in "
                   "Preferences)")

        edit_menu = bar.addMenu("&Edit")
        self.paste_action = action(edit_menu, "Paste image", self.paste,
                                   QKeySequence.StandardKey.Paste,
                                   tip="Encode the image on the clipboard")

        data_menu = bar.addMenu("&Datasets")
        self.dataset_actions: dict[str, QAction] = {}
        for source, tip in (("digits", "the 1,797 8x8 digits shipped with the app"),
                            *((name, f"{spec.title}: downloaded once into your cache "
                                     "folder, verified by SHA-256")
                              for name, spec in KNOWN_DATASETS.items())):
            self.dataset_actions[source] = action(
                data_menu, source_title(source),
                lambda _checked=False, s=source: self.open_dataset(s), tip=tip)
        data_menu.addSeparator()
        action(data_menu, "Open folder...", self._open_folder_dialog,
               tip="A folder of images; its subfolders are the labels")
        action(data_menu, "Open file...", self._open_file_dialog,
               tip="A .npz or .npy array of images, or an IDX file as MNIST ships")

        train_menu = bar.addMenu("&Training")
        self.start_action = action(train_menu, "Start / Pause", self.toggle_running,
                                   Qt.Key.Key_Space, tip="Start, pause or resume training")
        action(train_menu, "Step", self.step_once, "Ctrl+.",
               tip="One optimiser step while paused")
        action(train_menu, "Reset", self.reset_training, "Ctrl+R",
               tip="Rebuild the model from scratch with the settings in the Training panel")

        view_menu = bar.addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        self.aggregate_action = action(
            view_menu, "Aggregate posterior density", self._on_aggregate_action, "Ctrl+G",
            checkable=True, tip="The average of all q(z|x_i) as a density layer, with the "
                                "prior's 50/90/99 % circles: holes and overlaps show")
        view_menu.addSeparator()
        group = QActionGroup(self)
        self.sigma_actions = {}
        for k in (1, 2):
            a = action(view_menu, f"{k} sigma ellipses", self._on_sigma_action, f"Ctrl+{k}",
                       checkable=True, tip=f"Draw each posterior's {k}-sigma ellipse")
            a.setData(k)
            group.addAction(a)
            self.sigma_actions[k] = a
        self.sigma_actions[1].setChecked(True)

        help_menu = bar.addMenu("&Help")
        action(help_menu, "What am I looking at?", self.show_help,
               QKeySequence.StandardKey.HelpContents,
               tip="The explainer: theta, phi, the ELBO and the gaps; a guide to the window")
        action(help_menu, "About Latent Explorer", self._about,
               tip="Versions of the app and its libraries")
        for a in bar.actions():  # the dock toggles: say what they do
            for sub in (a.menu().actions() if a.menu() else ()):
                if not sub.statusTip() and not sub.isSeparator() and sub.menu() is None:
                    sub.setStatusTip(f"Show or hide {sub.text()}")
        self._rebuild_recent_menu()

    # --------------------------------------------------------------- training
    def _new_worker(self, start_paused: bool,
                    checkpoint: Checkpoint | None = None) -> TrainingWorker:
        worker = TrainingWorker(self.dataset, self.config, start_paused=start_paused,
                                checkpoint=checkpoint)
        worker.progressed.connect(self._on_progress)
        worker.snapshotted.connect(self._on_snapshot)
        worker.failed.connect(self._on_failed)
        worker.checkpointSaved.connect(self._on_checkpoint_saved)
        worker.finished.connect(self._end_save_wait)
        worker.set_rates(self.prefs.curve_hz, self.prefs.latent_hz)
        return worker

    def _set_lr(self, lr: float) -> None:
        self.worker.set_lr(lr)

    def _set_beta(self, beta: float) -> None:
        self.worker.set_beta(beta)

    def _set_batch_size(self, batch_size: int) -> None:
        self.worker.set_batch_size(batch_size)

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
        self.setWindowModified(True)
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
        self.encoded_panel.model.reencode(snapshot.model)  # the markers follow training
        self.colouring.set_data(snapshot.model, self._model_inputs())
        self.aggregate.set_latents(snapshot.mu, snapshot.sigma)
        self.trails.add_snapshot(snapshot.mu)
        if self.image_panel.z is not None and not self.image_panel.shows_sample:
            self.decode_z(*self.image_panel.z)  # the same z under the newer decoder
        if self.selected is not None:
            self._show_selected()
        if self._pending_restore:
            restore, self._pending_restore = self._pending_restore, {}
            point = restore.get("point")
            if point is not None and point < len(snapshot.mu):
                self.select_point(point)
            if restore.get("colour", "label") != "label":
                self.colouring.recompute()

    def apply_progress(self, p: Progress) -> None:
        self.progress = p
        if p.step != self._clean_step:
            self.setWindowModified(True)  # training moved on since the last save or open
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
        self.trails.set_tracked([] if self.selected is None else [self.selected])
        if self.selected is None:
            self.image_panel.clear_datapoint()
            self.inspector.clear()
        else:
            self._show_selected()
            self._inspect_selected()

    def _model_inputs(self) -> np.ndarray:
        """All images flattened to [0, 1] floats: what per-point colourings score."""
        if self._inputs is None:
            self._inputs = self.dataset.as_float()
        return self._inputs

    def _inspect_selected(self) -> None:
        """The exact posterior, log p(x) and gaps of the selected datapoint, computed once
        per selection with the newest model (the inspector works in the background)."""
        i = self.selected
        if self.snapshot is None or i is None or i >= len(self.dataset):
            return
        image = self.dataset.as_float([i]).reshape(self.dataset.image_shape)
        self.inspector.inspect(self.snapshot.model, image.reshape(-1), image,
                               f"datapoint #{i}", self.snapshot.mu[i], self.snapshot.sigma[i])
        self.docks["inspector"].raise_()

    def _inspect_encoded(self, index: int) -> None:
        entries = self.encoded_panel.model.entries
        if self.snapshot is None or not 0 <= index < len(entries):
            return
        entry = entries[index]
        x = entry.image.input
        self.inspector.inspect(self.snapshot.model, x.reshape(-1), x, entry.name,
                               entry.mu, entry.sigma)
        self.docks["inspector"].raise_()

    def _on_aggregate_action(self, on: bool) -> None:
        self.aggregate.set_visible(on)

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
                self.inspector.overlay.set_sigma_level(k)

    # ------------------------------------------------------ images the user brings
    def open_paths(self, paths: list) -> None:
        """Dropped (or pasted) files and folders: images are encoded; a dataset, dropped by
        itself, is offered for training."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if len(paths) == 1 and paths[0].lower().endswith(SUFFIX):
            self.open_session(paths[0])
            return
        kind = classify_drop(paths)
        if kind == "images":
            self.encoded_panel.encode_files(paths)
        elif kind == "dataset":
            if self.confirm("Train on a new dataset",
                            f"Train on {paths[0]}? (the current run stops)"):
                self.open_dataset(paths[0], confirmed=True)
        else:
            candidates = [p for p in paths if is_dataset_candidate(p)]
            images = [p for p in paths if p not in candidates]
            if images:
                self.encoded_panel.encode_files(images)
            self.tell("Dataset not opened",
                      "Not opened as a dataset (drop a dataset file or folder by itself to "
                      "train on it):\n" + "\n".join(candidates))

    def paste(self) -> None:
        """Ctrl+V: encode the clipboard's image (or the files copied in a file manager)."""
        clipboard = QGuiApplication.clipboard()
        image = clipboard.image()
        mime = clipboard.mimeData()
        if image.isNull() and mime is not None and mime.hasUrls():
            paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if paths:
                self.open_paths(paths)
                return
        if self.encoded_panel.add_qimage(image):  # a null image: the panel says so
            self._show_encoded_dock()

    def _encode_images_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Encode images", "",
                                                f"{IMAGE_FILTER};;All files (*)")
        if paths:
            self.encoded_panel.encode_files(paths)
            self._show_encoded_dock()

    def _show_encoded_dock(self) -> None:
        dock = self.docks["encoded"]
        dock.show()
        dock.raise_()

    def _show_markers(self, *_) -> None:
        mu, sigma, names = self.encoded_panel.model.markers()
        selected = self.encoded_panel.selected()
        self.latent_view.set_markers(mu, sigma, names,
                                     highlighted=selected if selected >= 0 else None)

    def _show_image_problems(self, lines: list) -> None:
        shown = lines[:MAX_LISTED_PROBLEMS]
        more = len(lines) - len(shown)
        text = "\n".join(shown) + (f"\n... and {more} more (listed in the Encoded images "
                                   "panel)" if more > 0 else "")
        self.tell("Encoded images", text)
        self._show_encoded_dock()

    # Drops on any part of the window but the plane (which handles its own) arrive here.
    @staticmethod
    def _local_paths(event) -> list[str]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, event) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = self._local_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)

    # --------------------------------------------------------------- datasets
    def open_dataset(self, source: str, confirmed: bool = False) -> None:
        """Load ``source`` ("digits", "mnist", "fashion-mnist", a folder or a file) in the
        background, with a progress dialog; training goes on until it has loaded."""
        if self.loader.is_running():
            self.tell("Open dataset", f"{source_title(source)}: still loading "
                      f"{source_title(self.loader.source)}; cancel that first")
            return
        self._load_confirmed = confirmed
        self.loader.start(str(source))
        title = source_title(str(source))
        dialog = QProgressDialog(f"Loading {title}...", "Cancel", 0, 0, self)
        dialog.setWindowTitle("Open dataset")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)  # quick loads never flash a dialog
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.loader.cancel)
        self.load_dialog = dialog
        self.statusBar().showMessage(f"Loading {title}...")

    def _open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.open_dataset(folder)

    def _open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a dataset file", "", DATASET_FILTER)
        if path:
            self.open_dataset(path)

    def _on_load_progress(self, done: int, total: int) -> None:
        dialog = self.load_dialog
        if dialog is None:
            return
        source = self.loader.source
        if source in KNOWN_DATASETS:
            mb = 1024 * 1024
            what = (f"{done / mb:.1f} of {total / mb:.1f} MB" if total
                    else f"{done / mb:.1f} MB")
            dialog.setLabelText(f"Downloading {source_title(source)}: {what}")
            # Bytes fit an int up to 2 GB; kilobytes keep the bar safe beyond that.
            done, total = done // 1024, total // 1024
        else:
            dialog.setLabelText(f"Reading {done:,} of {total:,} images..." if total
                                else f"Loading {source_title(source)}...")
        if total > 0:
            dialog.setMaximum(total)
            dialog.setValue(min(done, total))

    def _end_load(self) -> None:
        dialog, self.load_dialog = self.load_dialog, None
        if dialog is not None:
            dialog.canceled.disconnect(self.loader.cancel)  # closing emits canceled
            dialog.close()
            dialog.deleteLater()
        self.statusBar().clearMessage()

    def _on_dataset_loaded(self, dataset: ImageDataset) -> None:
        self._end_load()
        if self._closing:
            return
        if not (self._load_confirmed or self._offer_save_before_switch()):
            self.statusBar().showMessage(f"Still training on {self.dataset.name}", 6000)
            return
        self.switch_dataset(dataset)

    def _on_load_failed(self, message: str) -> None:
        self._end_load()
        if not self._closing:
            self.tell("Could not open the dataset",
                      f"{message}\nStill training on {self.dataset.name}.")

    def _on_load_cancelled(self, message: str) -> None:
        self._end_load()
        self.statusBar().showMessage(f"{message}; still training on {self.dataset.name}", 6000)

    def _offer_save_before_switch(self) -> bool:
        """Whether to go on with a dataset switch (the current run is lost): unsaved changes
        get Save / Discard / Cancel, a saved or untouched run a Yes / No question."""
        question = "Switch dataset? The current run will be discarded."
        if self.isWindowModified():
            return self._resolve_unsaved("Switch dataset", question)
        return self.confirm("Switch dataset", question)

    def switch_dataset(self, dataset: ImageDataset, checkpoint: Checkpoint | None = None
                       ) -> None:
        """Stop the current run, wait for it, and train on ``dataset`` with the current
        settings (the live values in the controls, the same seed); or, with ``checkpoint``,
        resume that run paused (its own settings; device and threads from the preferences)."""
        old = self.worker
        old.stop()
        for signal, slot in ((old.progressed, self._on_progress),
                             (old.snapshotted, self._on_snapshot), (old.failed, self._on_failed)):
            signal.disconnect(slot)
        # Results the old run sent before it stopped wait in the queue: drop them, so no
        # snapshot of the old data is drawn over the new. (Only the worker queues calls here.)
        QCoreApplication.removePostedEvents(self, QEvent.Type.MetaCall)
        self._draw_scheduled = False
        self.dataset = dataset
        self._end_save_wait()
        if checkpoint is None:
            self.config = self.config.replace(lr=self.controls.lr.value(),
                                              beta=self.controls.beta.value(),
                                              batch_size=self.controls.batch.value())
            self._clean_step = 0
        else:
            self.config = checkpoint.config.replace(device=self.config.device,
                                                    threads=self.config.threads)
            self.controls.set_config(self.config)
            self._running, self._started = False, True
            self.controls.set_running(False, True)
            self._clean_step = int(checkpoint.counters["step"])
        self.session_path = None  # a new run is untitled until saved (open sets it after)
        self._reset_views()
        self.setWindowModified(False)
        self.worker = self._new_worker(start_paused=not self._running, checkpoint=checkpoint)
        if self._launched:
            self.worker.start()
        old.deleteLater()
        self.statusBar().showMessage(f"Training on {dataset.name}", 6000)

    def _reset_views(self) -> None:
        """Everything that showed the old dataset or its model, emptied for the new one."""
        dataset = self.dataset
        self._update_title()
        self._pending_restore = {}
        self.snapshot = self.model = self.progress = None
        self._pending_snapshot = self._pending_progress = None
        self.selected = None
        self._inputs = None
        self._hide_banner()
        self.inspector.clear()
        self.trails.set_tracked([])
        self.colouring.labels = dataset.labels
        self.colouring.choose("label")
        view = self.latent_view
        view.set_selected(None)
        view.set_crosshair(None)
        empty = np.zeros((0, 2), np.float32)
        view.set_latents(empty, empty)
        view.set_dataset(dataset.labels, dataset.label_names)
        view.follow_data(True)
        panel = self.image_panel
        panel.clear_datapoint()
        panel.z = None
        panel.decoded.set_image(None)
        panel.z_label.setText("click the plane to decode a z")
        self.elbo_view.set_history({}, {}, {})
        self.dataset_panel.set_dataset(dataset, self.config)
        self.encoded_panel.set_dataset(dataset)  # the images, preprocessed for the new size
        self.rate_label.setText("- samples/s")
        self.epoch_label.setText("0 epochs done")
        self.train_label.setText("train ELBO - nats")
        self.heldout_label.setText("held-out ELBO - nats")
        self.epoch_bar.setRange(0, 0)
        self.epoch_bar.setFormat(f"encoding {len(dataset):,} points")

    # --------------------------------------------------------------- messages
    def _ask(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(self, title, question,
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def tell(self, title: str, text: str) -> None:
        """Show a message without stopping anything: a non-modal box and the status bar."""
        box = self.message_box
        if box is None:
            box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                              QMessageBox.StandardButton.Ok, self)
            box.setWindowModality(Qt.WindowModality.NonModal)
            self.message_box = box
        box.setWindowTitle(title)
        box.setText(text)
        box.show()
        self.statusBar().showMessage(text.splitlines()[0], 10000)

    # ----------------------------------------------------------------- exports
    def export_history(self, path: str) -> None:
        p = self.progress
        if p is None:
            raise ValueError(f"{path}: no history to export yet")
        export_history_csv(path, p.train, p.heldout, p.logpx)

    def export_latents(self, path: str) -> None:
        if self.snapshot is None:
            raise ValueError(f"{path}: no latents to export yet (the first snapshot is coming)")
        export_latents_csv(path, self.dataset, self.snapshot)

    def export_manifold(self, path: str) -> None:
        mosaic = self.manifold_view.mosaic()
        side = 1 if mosaic is None else max(mosaic.shape)
        scale = max(1, min(MAX_MOSAIC_SCALE, math.ceil(MOSAIC_EXPORT_SIDE / side)))
        export_mosaic_png(path, mosaic, scale=scale)

    def _export(self, title: str, default_name: str, file_filter: str,
                write: Callable[[str], object]) -> None:
        path = self._save_file_name(title, default_name, file_filter)
        if not path:
            return
        try:
            write(path)
        except (OSError, ValueError) as exc:
            text = str(exc)
            self.tell(title, text if str(path) in text else f"{path}: {text}")
            return
        self.statusBar().showMessage(f"{title}: written to {path}", 5000)

    def _export_history_dialog(self) -> None:
        self._export("Export history CSV", "history.csv", "CSV files (*.csv)",
                     self.export_history)

    def _export_latents_dialog(self) -> None:
        self._export("Export latents CSV", "latents.csv", "CSV files (*.csv)",
                     self.export_latents)

    def _export_plane_png_dialog(self) -> None:
        self._export("Export latent plane PNG", "latent-plane.png", "PNG images (*.png)",
                     lambda path: export_plane_png(path, self.latent_view))

    def _export_plane_svg_dialog(self) -> None:
        self._export("Export latent plane SVG", "latent-plane.svg", "SVG images (*.svg)",
                     lambda path: export_plane_svg(path, self.latent_view))

    def _export_manifold_dialog(self) -> None:
        self._export("Export manifold PNG", "manifold.png", "PNG images (*.png)",
                     self.export_manifold)

    # ------------------------------------------------------- questions, pickers
    def _save_file_name(self, title: str, default_name: str, file_filter: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, default_name, file_filter)
        return path

    def _open_file_name(self, title: str, file_filter: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self, title, "", file_filter)
        return path

    def _ask_unsaved(self, title: str, question: str) -> str:
        """"save", "discard" or "cancel". A script that answers Yes/No questions through
        ``confirm`` gets the two-way form (Yes: discard)."""
        if self.confirm != self._ask:
            return "discard" if self.confirm(title, question) else "cancel"
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Warning, title, question,
                          buttons.Save | buttons.Discard | buttons.Cancel, self)
        box.setInformativeText(f"{self._session_name()} has unsaved changes (training or "
                               "encoded images). Save them as a session first?")
        box.setDefaultButton(buttons.Save)
        answer = box.exec()
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(
            buttons(answer), "cancel")

    def _ask_locate_dataset(self, loaded: LoadedSession, reason: str) -> str | None:
        """Ask the user where the session's dataset is: a folder or a file, or None."""
        ref = loaded.dataset_ref
        box = QMessageBox(QMessageBox.Icon.Question, "Locate the dataset",
                          f"{loaded.path.name} was trained on {ref['name']} "
                          f"({ref['n']:,} images), which was not found as recorded.", parent=self)
        box.setInformativeText(reason)
        folder = box.addButton("Folder...", QMessageBox.ButtonRole.AcceptRole)
        file = box.addButton("File...", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is folder:
            return QFileDialog.getExistingDirectory(self, "Locate the dataset folder") or None
        if box.clickedButton() is file:
            return self._open_file_name("Locate the dataset file", DATASET_FILTER) or None
        return None

    def _resolve_unsaved(self, title: str, question: str) -> bool:
        """Whether to go on replacing or closing the run (saving it first if asked)."""
        if not self.isWindowModified():
            return True
        answer = self._ask_unsaved(title, question)
        if answer == "save":
            return self.save_session()
        return answer == "discard"

    # --------------------------------------------------------------- sessions
    def _session_name(self) -> str:
        return "untitled" if self.session_path is None else self.session_path.stem

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self._session_name()}[*] ({self.dataset.name}) - Latent Explorer")

    def _on_encoded_list_changed(self, *_) -> None:
        if not self._restoring:
            self.setWindowModified(True)

    def view_state(self) -> dict:
        """What a session keeps of the view (JSON-able)."""
        level = next(k for k, a in self.sigma_actions.items() if a.isChecked())
        return {"view_region": [float(v) for v in self.latent_view.view_region()],
                "sigma_level": level, "manifold_mode": self.manifold_view.mode(),
                "manifold_grid": int(self.manifold_view.grid_box.value()),
                "colour_by": self.colouring.kind,
                "aggregate": bool(self.aggregate_action.isChecked())}

    def apply_view_state(self, view: dict) -> None:
        """Restore ``view_state()``; values a crafted file got wrong are skipped."""
        region = view.get("view_region")
        if (isinstance(region, list) and len(region) == 4
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in region)
                and region[0] < region[1] and region[2] < region[3]):
            self.latent_view.follow_data(False)
            self.latent_view.setRange(xRange=region[:2], yRange=region[2:], padding=0)
        level = view.get("sigma_level")
        if level in (1, 2) and not isinstance(level, bool):
            self.sigma_actions[level].setChecked(True)
            self._on_sigma_action()
        if view.get("manifold_mode") in MODES:
            self.manifold_view.set_mode(view["manifold_mode"])
        grid = view.get("manifold_grid")
        if isinstance(grid, int) and not isinstance(grid, bool) and 2 <= grid <= MAX_GRID:
            self.manifold_view.set_grid_size(grid)
        colour = view.get("colour_by")
        if colour in COLOURINGS:
            self.colouring.choose(colour)  # computed once the restored model's snapshot arrives
            self._pending_restore["colour"] = colour
        if isinstance(view.get("aggregate"), bool):
            self.aggregate_action.setChecked(view["aggregate"])
            self.aggregate.set_visible(view["aggregate"])

    def _write_checkpoint(self, folder: Path) -> str:
        """Write the current run's checkpoint into ``folder``: by the worker between steps
        (never racing the optimiser), or here when its thread has ended. "" or an error."""
        worker = self.worker
        if not worker.isRunning():
            if worker.session is None:
                return "no model to save yet"
            try:
                save_checkpoint(worker.session, folder)
            except (OSError, ValueError) as exc:
                return str(exc)
            return ""
        self._checkpoint_reply = None
        loop = QEventLoop()
        self._save_loop = loop
        worker.save_checkpoint(str(folder))
        QTimer.singleShot(SAVE_TIMEOUT_MS, loop.quit)
        if self._checkpoint_reply is None:
            loop.exec()  # the window keeps drawing while the worker writes
        self._save_loop = None
        reply = self._checkpoint_reply
        if reply is None:
            return "the training thread did not answer"
        return reply[1]

    def _on_checkpoint_saved(self, path: str, error: str) -> None:
        self._checkpoint_reply = (path, error)
        self._end_save_wait()

    def _end_save_wait(self) -> None:
        if self._save_loop is not None:
            self._save_loop.quit()

    def session_state(self, checkpoint_dir: Path) -> SessionState:
        selected = self.encoded_panel.selected()
        return SessionState(checkpoint=checkpoint_dir,
                            encoded=[e.image for e in self.encoded_panel.model.entries],
                            selected_encoded=selected if selected >= 0 else None,
                            selected_point=self.selected, view=self.view_state())

    def save_session_to(self, path: str | os.PathLike, show_errors: bool = True) -> bool:
        """Save the run, encoded images and view to ``path`` (atomically); True on success."""
        path = Path(path)
        if self._save_loop is not None:
            return False  # a save is already waiting for the worker
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self.statusBar().showMessage(f"Saving {path}...")
        try:
            with tempfile.TemporaryDirectory(prefix="lexp-checkpoint-") as tmp:
                folder = Path(tmp) / "checkpoint"
                error = self._write_checkpoint(folder)
                if error:
                    raise SessionFileError(f"{path}: cannot save the checkpoint ({error})")
                run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
                save_session(path, self.session_state(folder))
        except (SessionFileError, OSError, ValueError) as exc:
            self.statusBar().clearMessage()
            if show_errors:
                self.tell("Could not save the session", str(exc))
            else:
                print(f"latent-explorer: {exc}", file=sys.stderr)
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.session_path = path
        self._clean_step = int(run["counters"]["step"])
        self.setWindowModified(self.progress is not None and self.progress.step != self._clean_step)
        self._update_title()
        self.add_recent(path)
        self.statusBar().showMessage(f"Session saved to {path}", 5000)
        return True

    def save_session(self) -> bool:
        """File > Save session: to the current file, or ask for one."""
        if self.session_path is None:
            return self.save_session_as()
        return self.save_session_to(self.session_path)

    def save_session_as(self) -> bool:
        path = self._save_file_name("Save session", f"{self._session_name()}{SUFFIX}",
                                    SESSION_FILTER)
        if not path:
            return False
        if not Path(path).suffix:
            path += SUFFIX
        return self.save_session_to(path)

    def _open_session_dialog(self) -> None:
        path = self._open_file_name("Open session", SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | os.PathLike) -> bool:
        """Open a session file: a bad one is reported and the current run goes on."""
        try:
            loaded = load_session(path)
        except SessionFileError as exc:
            self.tell("Could not open the session", f"{exc}\nStill training on "
                      f"{self.dataset.name}.")
            return False
        dataset, reason = find_dataset(loaded)
        if dataset is None:
            dataset = self._locate_dataset(loaded, reason or "")
            if dataset is None:
                self.statusBar().showMessage(f"Not opened; still training on {self.dataset.name}",
                                             6000)
                return False
        if not self._resolve_unsaved("Open session",
                                     f"Open {Path(path).name}? The current run will be replaced."):
            return False
        try:
            self.restore_session(loaded, dataset)
        except SessionFileError as exc:
            self.tell("Could not open the session", str(exc))
            return False
        return True

    def _locate_dataset(self, loaded: LoadedSession, reason: str) -> ImageDataset | None:
        """Ask the user for the session's dataset until it matches (or they use it anyway,
        or cancel)."""
        shape = tuple(loaded.dataset_ref["image_shape"])
        while True:
            choice = self._ask_locate_dataset(loaded, reason)
            if not choice:
                return None
            try:
                dataset = load_source(choice)
            except (DataError, OSError) as exc:
                reason = str(exc)
                continue
            diffs = check_dataset(loaded, dataset)
            if not diffs:
                return dataset
            reason = f"{choice} differs from the dataset it was trained on: " + "; ".join(diffs)
            if tuple(dataset.image_shape) == shape and self.confirm(
                    "Use a different dataset?",
                    f"{reason}.\nContinue training on it anyway? The weights, optimiser and "
                    "history carry over; a fresh epoch order starts."):
                return dataset

    def restore_session(self, loaded: LoadedSession, dataset: ImageDataset) -> None:
        """Replace the current run with the loaded one (paused), its encoded images,
        selection and view."""
        if self.loader.is_running():
            self.loader.cancel_and_wait()
            self._end_load()
        self.switch_dataset(dataset, checkpoint=loaded.checkpoint)
        self.restore_extras(loaded)

    def restore_extras(self, loaded: LoadedSession) -> None:
        """A session's encoded images, selection and view, on a window already running its
        checkpoint (``switch_dataset(..., checkpoint=)`` or ``MainWindow(checkpoint=)``)."""
        self._restoring = True
        try:
            model = self.encoded_panel.model
            model.clear()
            model.add([PreparedImage(r.name, r.source, r.grey, r.input, list(r.notes))
                       for r in loaded.encoded])
        finally:
            self._restoring = False
        if loaded.selected_encoded is not None:
            self.encoded_panel.select(loaded.selected_encoded)
        self.apply_view_state(loaded.view)
        if loaded.selected_point is not None:
            self._pending_restore["point"] = loaded.selected_point
        self.session_path = loaded.path
        self._clean_step = int(loaded.checkpoint.counters["step"])
        self.setWindowModified(False)
        self._update_title()
        self.add_recent(loaded.path)
        self.statusBar().showMessage(f"Opened {loaded.path} (paused: press Start to go on)",
                                     8000)

    # ------------------------------------------------------------ recent files
    def recent_files(self) -> list[str]:
        return recent_list(self._settings)

    def add_recent(self, path: str | os.PathLike) -> None:
        if self._settings is None:
            return
        path = str(Path(path).resolve())
        files = [path] + [p for p in self.recent_files() if p != path]
        self._settings.setValue("recent/files", files[:MAX_RECENT])
        self._settings.sync()
        self._rebuild_recent_menu()

    def clear_recent(self) -> None:
        if self._settings is not None:
            self._settings.remove("recent/files")
            self._settings.sync()
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = self.recent_files()
        for i, path in enumerate(files, 1):
            a = menu.addAction(f"&{i} {Path(path).name}")
            exists = Path(path).is_file()
            a.setEnabled(exists)  # greyed: moved or deleted since
            a.setToolTip(path if exists else f"{path} (missing)")
            a.setStatusTip(a.toolTip())
            a.triggered.connect(lambda _checked=False, p=path: self.open_session(p))
        if not files:
            menu.addAction("(none)").setEnabled(False)
        menu.addSeparator()
        clear = menu.addAction("Clear list")
        clear.setStatusTip("Forget the recently opened sessions")
        clear.setEnabled(bool(files))
        clear.triggered.connect(self.clear_recent)

    # ------------------------------------------------------------ preferences
    def open_preferences(self) -> None:
        dialog = PreferencesDialog(self.prefs, self)
        dialog.setWindowTitle("Preferences (device and threads apply from the next run "
                              "or Reset)")
        self.preferences_dialog = dialog
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.set_preferences(dialog.preferences())

    def set_preferences(self, prefs: Preferences) -> None:
        """Apply and persist: theme, ellipse budget and update rates at once; device and
        threads from the next reset or run."""
        self.prefs = prefs
        if self._settings is not None:
            prefs.save(self._settings)
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, prefs.theme)
            for plot in (self.latent_view, self.elbo_view.plot, self.manifold_view.plot):
                style_plot(plot)
        self.latent_view.set_ellipse_budget(prefs.ellipse_budget)
        self.worker.set_rates(prefs.curve_hz, prefs.latent_hz)
        self.config = self.config.replace(device=prefs.device, threads=prefs.torch_threads)
        self.statusBar().showMessage("Preferences saved; device and threads apply from the "
                                     "next Reset or run", 6000)

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

    def about_text(self) -> str:
        rows = "".join(f"<tr><td>{name}</td><td>{v}</td></tr>" for name, v in versions())
        return ("<p><b>Latent Explorer</b>: watch a VAE with a 2-D latent space learn.<br>"
                "Kingma &amp; Welling (2013), Auto-Encoding Variational Bayes.</p>"
                f"<table>{rows}</table>")

    def _about(self) -> None:
        QMessageBox.about(self, "About Latent Explorer", self.about_text())

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
        """Stop every background job and wait for it: safe at any moment, and more than
        once (mid-training, mid-download, mid-folder-read)."""
        self._closing = True
        self.loader.cancel_and_wait()
        self._end_load()
        self.encoded_panel.cancel_and_wait()
        for job in (self.inspector, self.colouring, self.aggregate):
            job.shutdown()
        self.worker.stop()

    def _keep_unsaved_work(self) -> bool:
        """On close: autosave (the default) or ask. False: the user cancelled the close."""
        if not self.isWindowModified() or self.worker.session is None:
            return True
        if self.prefs.autosave_on_quit:
            self.worker.stop()  # its thread has ended: the session is safe to save here
            path = self.session_path or autosave_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                print(f"latent-explorer: {path}: cannot autosave ({exc})", file=sys.stderr)
                return True
            self.save_session_to(path, show_errors=False)
            return True
        return self._resolve_unsaved("Quit", f"Quit? {self._session_name()} has unsaved "
                                             "changes.")

    def closeEvent(self, event) -> None:
        if not self._closing and not self._keep_unsaved_work():
            event.ignore()
            return
        self._save_settings()
        self.shutdown()
        super().closeEvent(event)
