"""The main window: composes the views, menus and settings, and owns the worker's lifetime.

Bring your own data: images dropped on the window or the plane, pasted, or picked with
File > Encode images... go to the "Encoded images" panel; a dropped dataset, or one picked in
the Datasets menu, is loaded in the background and, once loaded, replaces the current one
(the training worker is stopped, waited for, and started again on the new data).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
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
    ConfigError,
    FrozenVAE,
    ImageDataset,
    Progress,
    Snapshot,
    TrainConfig,
)

from .controls import Controls
from .dataset_loader import DatasetLoader, source_title
from .dataset_panel import DatasetPanel
from .dataset_views import AggregateDensityLayer, PointColouring, Trails
from .elbo_view import ElboView
from .encoded_images import EncodedImagesPanel
from .export import export_history_csv
from .image_jobs import classify_drop, is_dataset_candidate
from .image_panel import ImagePanel
from .inspector import Inspector
from .latent_view import LatentView
from .manifold_view import ManifoldView
from .worker import TrainingWorker

ORGANISATION = "LatentExplorer"
APPLICATION = "LatentExplorer"
DEFAULT_SIZE = (1400, 860)
ELLIPSE_BUDGET = 5000
MAX_LISTED_PROBLEMS = 15  # "file: reason" lines in the message box; the panel keeps them all
IMAGE_FILTER = "Images ({})".format(" ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)))
DATASET_FILTER = ("Datasets (*.npz *.npy *idx* *ubyte* *.gz);;"
                  "NumPy (*.npz *.npy);;IDX, as MNIST ships (*idx* *ubyte*);;All files (*)")


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
        self._launched = launch
        self._closing = False
        self._load_confirmed = False  # the drop's own question already asked about the switch
        # Yes/No questions go through here, so tests (and scripts) can answer them.
        self.confirm: Callable[[str, str], bool] = self._ask
        self.message_box: QMessageBox | None = None  # non-modal: training and reading go on
        self.load_dialog: QProgressDialog | None = None
        self.setWindowTitle(f"Latent Explorer: {dataset.name}")
        self.setAcceptDrops(True)  # drops on any dock land here; the plane takes its own

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

        self.worker = self._new_worker(start_paused=not start)
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
        def action(menu, text, slot, shortcut=None, checkable=False, tip=None) -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
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
        action(file_menu, "Encode images...", self._encode_images_dialog,
               tip="Encode your own images and show where they land on the plane")
        file_menu.addSeparator()
        action(file_menu, "Export history CSV...", self._export_history_dialog, "Ctrl+E")
        file_menu.addSeparator()
        action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit)

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
                                   Qt.Key.Key_Space)
        action(train_menu, "Step", self.step_once, "Ctrl+.")
        action(train_menu, "Reset", self.reset_training, "Ctrl+R")

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
    def _new_worker(self, start_paused: bool) -> TrainingWorker:
        worker = TrainingWorker(self.dataset, self.config, start_paused=start_paused)
        worker.progressed.connect(self._on_progress)
        worker.snapshotted.connect(self._on_snapshot)
        worker.failed.connect(self._on_failed)
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
        """Whether to go on with a dataset switch (the current run is lost)."""
        return self.confirm("Switch dataset",
                            "Switch dataset? The current run will be discarded.")

    def switch_dataset(self, dataset: ImageDataset) -> None:
        """Stop the current run, wait for it, and train on ``dataset`` with the current
        settings (the live values in the controls, the same seed)."""
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
        self.config = self.config.replace(lr=self.controls.lr.value(),
                                          beta=self.controls.beta.value(),
                                          batch_size=self.controls.batch.value())
        self._reset_views()
        self.worker = self._new_worker(start_paused=not self._running)
        if self._launched:
            self.worker.start()
        old.deleteLater()
        self.statusBar().showMessage(f"Training on {dataset.name}", 6000)

    def _reset_views(self) -> None:
        """Everything that showed the old dataset or its model, emptied for the new one."""
        dataset = self.dataset
        self.setWindowTitle(f"Latent Explorer: {dataset.name}")
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
        """Stop every background job and wait for it: safe at any moment, and more than
        once (mid-training, mid-download, mid-folder-read)."""
        self._closing = True
        self.loader.cancel_and_wait()
        self._end_load()
        self.encoded_panel.cancel_and_wait()
        for job in (self.inspector, self.colouring, self.aggregate):
            job.shutdown()
        self.worker.stop()

    def closeEvent(self, event) -> None:
        self._save_settings()
        self.shutdown()
        super().closeEvent(event)
