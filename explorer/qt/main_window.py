"""The main window: composes the views, menus and settings, and owns the worker's lifetime.

What the user does with the window lives in mixins, one concept each: images they bring
(explorer.qt.image_actions), datasets (explorer.qt.dataset_actions), exports
(explorer.qt.export_actions) and sessions (explorer.qt.session_actions). Mixins rather than
controller objects because they share the window's widgets, worker and state freely, and
every action stays a method of the window (menus, tests and scripts reach it there).
Yes/No questions go through ``confirm`` and file pickers through ``_open_file_name`` /
``_save_file_name`` / ``_folder_name``, so tests and scripts can answer them.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QScrollArea,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from explorer.core.explainer import ParameterCounts, help_html, parameter_counts
from explorer.core.window_size import (
    DEFAULT_SIZE,
    MENU_AND_STATUS,
    WindowLayout,
    first_window_layout,
    layout_for_window,
)
from explorer.qt.dataset_actions import DATASET_FILTER, DatasetActions
from explorer.qt.dataset_loader import DatasetLoader, source_title
from explorer.qt.export_actions import MOSAIC_EXPORT_SIDE, ExportActions
from explorer.qt.image_actions import IMAGE_FILTER, MAX_LISTED_PROBLEMS, ImageActions
from explorer.qt.paint_guard import guarded
from explorer.qt.preferences import Preferences, PreferencesDialog
from explorer.qt.session_actions import (
    MAX_RECENT,
    SAVE_TIMEOUT_MS,
    SESSION_FILTER,
    SessionActions,
    autosave_path,
    data_dir,
    recent_list,
)
from explorer.qt.theme import apply_theme, style_plot
from explorer.qt.views.controls import Controls
from explorer.qt.views.dataset_panel import DatasetPanel
from explorer.qt.views.dataset_views import AggregateDensityLayer, PointColouring, Trails
from explorer.qt.views.elbo_view import ElboView
from explorer.qt.views.encoded_images import EncodedImagesPanel
from explorer.qt.views.image_panel import ImagePanel
from explorer.qt.views.inspector import Inspector
from explorer.qt.views.latent_view import LatentView
from explorer.qt.views.manifold_view import ManifoldView
from explorer.qt.worker import TrainingWorker
from trainer import (
    KNOWN_DATASETS,
    Checkpoint,
    ConfigError,
    FrozenVAE,
    ImageDataset,
    Progress,
    Snapshot,
    TrainConfig,
)
from trainer.evidence import dataset_evidence, evidence_input

# The constants and helpers that moved to the action modules stay importable from here.
__all__ = ["APPLICATION", "DATASET_FILTER", "DEFAULT_SIZE", "IMAGE_FILTER",
           "MAX_LISTED_PROBLEMS", "MAX_RECENT", "MOSAIC_EXPORT_SIDE", "ORGANISATION",
           "SAVE_TIMEOUT_MS", "SESSION_FILTER", "MainWindow", "app_icon", "app_settings",
           "autosave_path", "data_dir", "help_html", "recent_list", "scrolled", "shortcuts",
           "versions"]

ORGANISATION = "LatentExplorer"
APPLICATION = "LatentExplorer"
HINT_KEY = "guide/f1_hint_dismissed"
FAILED_ADVICE = ("Nothing is training now. Reset builds a fresh model with the Training "
                 "panel's settings; Open session or a dataset starts another run.")


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


class MainWindow(ImageActions, DatasetActions, ExportActions, SessionActions, QMainWindow):
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
        self._failure: str | None = None  # why the worker's loop ended; None while it lives
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
        # Until it is saved, a run resumed from a checkpoint folder is named after the folder.
        self.run_name = (None if checkpoint is None or checkpoint.path is None
                         else Path(checkpoint.path).resolve().name)
        self._clean_step = 0 if checkpoint is None else int(checkpoint.counters["step"])
        self._restoring = False  # encoded images being restored do not count as changes
        self._pending_restore: dict = {}  # selection and colouring, once a snapshot arrives
        self._save_loop: QEventLoop | None = None
        self._checkpoint_reply: tuple[str, str] | None = None
        self._close_after_save = False  # a close came in during a save: close after it
        self._autosave_error: str | None = None  # the last autosave on quit failed: ask next
        self._recovering: dict | None = None  # the recovery file being restored, its notes
        self._session_wait: dict | None = None  # an Open session waiting for its dataset
        self.recovery_bar: QWidget | None = None
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
        self._central_layout = layout
        self.hint = self._build_hint()
        layout.addWidget(self.hint)
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
        self._inputs: tuple[str, np.ndarray] | None = None  # (binarization, every x)
        self._inspected: tuple[str, int] | None = None  # ("point" | "encoded", index)
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
        self._add_view_tips()
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
        self.inspector.refreshRequested.connect(self._reinspect)
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

        self.apply_layout(self.first_layout())
        if self._settings is not None:
            self._restore_settings()
        if launch:
            self.worker.start()
            if restore_state:
                self._offer_recovery()

    # ----------------------------------------------------------------- layout
    @staticmethod
    def first_layout() -> WindowLayout:
        """DEFAULT_SIZE, fitted to the screen's available geometry. Headless platforms
        (tests, --screenshot) have no person's screen: they keep DEFAULT_SIZE."""
        screen = QApplication.primaryScreen()
        if screen is None or QApplication.platformName() in ("offscreen", "minimal"):
            return layout_for_window(*DEFAULT_SIZE)
        available = screen.availableGeometry()
        return first_window_layout(available.width(), available.height())

    def apply_layout(self, layout: WindowLayout) -> None:
        """Resize the window and its docks (the first window, or a --size screenshot)."""
        self.resize(layout.width, layout.height)
        d = self.docks
        self.resizeDocks([d["controls"], d["image"]], [layout.left, layout.right],
                         Qt.Orientation.Horizontal)
        column = layout.height - MENU_AND_STATUS
        self.resizeDocks([d["image"], d["manifold"]], [layout.image, column - layout.image],
                         Qt.Orientation.Vertical)
        self.resizeDocks([d["controls"], d["dataset"]],
                         [layout.controls, column - layout.controls], Qt.Orientation.Vertical)
        self.resizeDocks([d["elbo"]], [layout.curves], Qt.Orientation.Vertical)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")  # saveState needs stable names
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_hint(self) -> QWidget:
        """One line on the first start pointing to F1; "Got it" hides it for good."""
        hint = QWidget()
        row = QHBoxLayout(hint)
        row.setContentsMargins(6, 2, 6, 2)
        label = QLabel("New here? Press <b>F1</b> (Help &gt; What am I looking at?) to see which "
                       "numbers are &theta;, &phi; and each point's &lambda;<sub>i</sub>.")
        label.setWordWrap(True)
        button = QPushButton("Got it")
        button.setToolTip("Hide this hint; F1 stays in the Help menu")
        button.clicked.connect(self.dismiss_hint)
        row.addWidget(label, 1)
        row.addWidget(button)
        dismissed = self._settings is None or self._settings.value(HINT_KEY, False, bool)
        hint.setVisible(not dismissed)
        return hint

    def dismiss_hint(self) -> None:
        self.hint.hide()
        if self._settings is not None:
            self._settings.setValue(HINT_KEY, True)
            self._settings.sync()

    def _add_view_tips(self) -> None:
        """Tooltips for the views and the controls of panels that set none themselves."""
        tips = (  # (panel, its widget's attribute or None for the panel itself, tip)
            (self.latent_view, None, "Each dot is one datapoint's mu_i, each ellipse its "
             "sigma_i (lambda_i = f_phi(x_i)); click empty plane to decode z, click a dot to "
             "inspect it"),
            (self.controls, None, "Start, pause, step or reset training; the settings "
             "above the line apply at once, those below on Reset"),
            (self.elbo_view, None, "The ELBO per datapoint over training (nats, higher is "
             "better)"),
            (self.image_panel, None, "The decoder's image of the clicked z, and the selected "
             "datapoint beside its reconstruction"),
            (self.image_panel, "mean_button", "Show the decoder's mean image E[x|z]"),
            (self.image_panel, "sample_button", "Show one random image x ~ p(x|z), a new "
             "one each time"),
            (self.manifold_view, None, "Decoded images over a grid of z: what the decoder "
             "makes of each place in the plane"),
            (self.manifold_view, "mode_box", "Which part of the plane the grid covers"),
            (self.dataset_panel, None, "What the model trains on and how x is made from "
             "each image"),
            (self.encoded_panel, None, "Images you dropped, pasted or encoded: where the "
             "encoder puts them"),
            (self.encoded_panel, "remove_button", "Remove the selected encoded images"),
            (self.encoded_panel, "clear_button", "Remove every encoded image"),
            (self.inspector, None, "The selected point: exact posterior p(z|x), log p(x), "
             "ELBO and the gaps (nats)"),
            (self.inspector, "copy_button", "Copy the inspector's numbers to the clipboard"),
            (self.colouring, None, "Colour the dots by label or by a per-point number"),
            (self.colouring, "combo", "What the dots' colours show (values are computed in "
             "the background for the newest model)"),
            (self.colouring, "cancel_button", "Stop computing the per-point values"),
        )
        for panel, name, tip in tips:
            widget = panel if name is None else getattr(panel, name, None)
            if widget is not None and not widget.toolTip():  # the panel's own tip wins
                widget.setToolTip(tip)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.rate_label = QLabel()
        self.epoch_label = QLabel()
        self.train_label = QLabel()
        self.heldout_label = QLabel()
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setMaximumWidth(220)
        self.epoch_bar.setTextVisible(True)
        self._clear_status_bar()
        for w in (self.rate_label, self.epoch_label, self.train_label, self.heldout_label):
            w.setToolTip("ELBO: per datapoint, in nats; higher is better (ELBO <= log p(x))")
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.epoch_bar)

    def _clear_status_bar(self) -> None:
        """No figures yet: a fresh window, or a new dataset."""
        self.rate_label.setText("- samples/s")
        self.epoch_label.setText("0 epochs done")
        self.train_label.setText("train ELBO - nats")
        self.heldout_label.setText("held-out ELBO - nats")
        self.epoch_bar.setRange(0, 0)  # busy until the first snapshot: encoding every point
        self.epoch_bar.setFormat(f"encoding {len(self.dataset):,} points")

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
        self.recent_menu.menuAction().setStatusTip("Sessions opened or saved lately")
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
        export_menu.menuAction().setStatusTip("Latents, the plane, the manifold or the curves "
                                              "as files")
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
    def _new_worker(self, start_paused: bool, checkpoint: Checkpoint | None = None,
                    session=None) -> TrainingWorker:
        worker = TrainingWorker(self.dataset, self.config, start_paused=start_paused,
                                checkpoint=checkpoint, session=session)
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

    def _refuse_if_failed(self, what: str) -> bool:
        """True (and says why, plainly) when the worker's loop has ended with an error, so
        a request would go to a thread that no longer serves any."""
        if self._failure is None:
            return False
        self.tell(f"{what}: training has stopped",
                  f"{self._failure}\n{FAILED_ADVICE}")
        return True

    def toggle_running(self) -> None:
        if self._refuse_if_failed("Start"):
            return
        if self._running:
            self.worker.pause()
        else:
            self._hide_banner()
            self.worker.resume()
        self._running = not self._running
        self._started = True
        self.controls.set_running(self._running, self._started)

    def step_once(self) -> None:
        if self._refuse_if_failed("Step"):
            return
        if not self._running:
            self._hide_banner()
            self.worker.step_once()

    def reset_training(self) -> None:
        try:
            config = self.controls.config_for_reset(self.config)
        except ConfigError as exc:
            self.statusBar().showMessage(f"Reset not applied: {exc}", 8000)
            return
        if not self._resolve_unsaved("Reset", "Rebuild the model from scratch? The current "
                                              "run's training is discarded."):
            self.statusBar().showMessage("Reset cancelled; the run goes on", 6000)
            return
        self.config = config
        self._hide_banner()
        self.dataset_panel.set_config(config)
        if self._failure is not None:
            self._replace_failed_worker()
            self.statusBar().showMessage("A new training thread is building the model "
                                         "from scratch", 6000)
        else:
            self.worker.reset(config)
            self.statusBar().showMessage("Model rebuilt from scratch", 4000)
        self.setWindowModified(True)

    def _replace_failed_worker(self) -> None:
        """The failed worker's thread has ended: a new one trains a fresh model with
        ``self.config``, paused unless the user had it running."""
        old = self.worker
        old.stop()
        for signal, slot in ((old.progressed, self._on_progress),
                             (old.snapshotted, self._on_snapshot), (old.failed, self._on_failed),
                             (old.checkpointSaved, self._on_checkpoint_saved)):
            signal.disconnect(slot)
        self._failure = None
        self._running = False
        self.controls.set_running(False, self._started)
        self.worker = self._new_worker(start_paused=True)
        if self._launched:
            self.worker.start()
        old.deleteLater()

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

    @guarded()  # a timer slot, called from Qt's event loop
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
        self.colouring.set_data(snapshot.model, self._model_inputs)
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
        # A paused run trains no samples: its last rate would read as a live one.
        self.rate_label.setText("paused" if p.paused else f"{p.samples_per_second:,.0f} samples/s")
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
        if self.sender() not in (None, self.worker):
            return  # a replaced worker's last words
        self._failure = message
        self._running = False
        self.controls.set_running(False, self._started)
        self.controls.set_failed(True)
        self.banner.setText(f"{message}. {FAILED_ADVICE}")
        self.banner.show()
        self.statusBar().showMessage("Training has stopped: press Reset to start again", 10000)

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
            self._inspected = None
        else:
            self._show_selected()
            self._inspect_selected()
            if self.snapshot is not None and self.selected < len(self.snapshot.mu):
                self.decode_z(*(float(v) for v in self.snapshot.mu[self.selected]))  # z = mu_i

    def _binarization(self) -> str:
        """How the shown model makes each x (the snapshot's, else the configured one)."""
        return self.snapshot.config.binarization if self.snapshot else self.config.binarization

    def _model_inputs(self) -> np.ndarray:
        """Every datapoint's one fixed x (trainer.evidence), (N, D): what per-point
        colourings score, the x whose f_phi(x) are the plane's dots."""
        binarization = self._binarization()
        if self._inputs is None or self._inputs[0] != binarization:
            self._inputs = (binarization, dataset_evidence(self.dataset, binarization))
        return self._inputs[1]

    def _datapoint_x(self, i: int) -> np.ndarray:
        """Datapoint i's x, (H, W)."""
        return dataset_evidence(self.dataset, self._binarization(), [i]).reshape(
            self.dataset.image_shape)

    def _inspect_selected(self) -> None:
        """The exact posterior, log p(x) and gaps of the selected datapoint, computed once
        per selection with the newest model (the inspector works in the background)."""
        i = self.selected
        if self.snapshot is None or i is None or i >= len(self.dataset):
            return
        self._inspected = ("point", i)
        image = self.dataset.as_float([i]).reshape(self.dataset.image_shape)
        self.inspector.inspect(self.snapshot.model, self._datapoint_x(i).reshape(-1), image,
                               f"datapoint #{i}", self.snapshot.mu[i], self.snapshot.sigma[i])
        self.docks["inspector"].raise_()

    def _inspect_encoded(self, index: int) -> None:
        entries = self.encoded_panel.model.entries
        if self.snapshot is None or not 0 <= index < len(entries):
            return
        self._inspected = ("encoded", index)
        entry = entries[index]
        grey = entry.image.input
        x = evidence_input(grey[None], self._binarization())[0]  # keyed by its pixels
        self.inspector.inspect(self.snapshot.model, x.reshape(-1), grey, entry.name,
                               entry.mu, entry.sigma)
        self.docks["inspector"].raise_()

    def _reinspect(self) -> None:
        if self._inspected == ("point", self.selected):
            self._inspect_selected()
        elif self._inspected is not None and self._inspected[0] == "encoded":
            self._inspect_encoded(self._inspected[1])

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
        self.image_panel.show_datapoint(title, self.dataset.as_float([i]).reshape(h, w), recon,
                                        x=self._datapoint_x(i))

    def _on_decode_mode(self, *args) -> None:
        if self.image_panel.z is not None:
            self.decode_z(*self.image_panel.z)

    def _sigma_level(self) -> int:
        return next(k for k, a in self.sigma_actions.items() if a.isChecked())

    def _on_sigma_action(self) -> None:
        for k, a in self.sigma_actions.items():
            if a.isChecked():
                self.latent_view.set_sigma_level(k)
                self.inspector.overlay.set_sigma_level(k)

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

    # ------------------------------------------- file pickers (tests replace them)
    def _save_file_name(self, title: str, default_name: str, file_filter: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, default_name, file_filter)
        return path

    def _open_file_name(self, title: str, file_filter: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self, title, "", file_filter)
        return path

    def _folder_name(self, title: str) -> str:
        return QFileDialog.getExistingDirectory(self, title)

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
        prefs = prefs.clamped()
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
        browser.setHtml(help_html(self.parameter_counts()))
        QVBoxLayout(dialog).addWidget(browser)
        dialog.resize(620, 560)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.help_dialog = dialog

    def parameter_counts(self) -> ParameterCounts:
        """|phi|, |theta| and the lambda_i counts of the live model (of the configured one
        before the first snapshot)."""
        if self.model is not None:
            vae = self.model.model
        else:
            from trainer.model import VAE

            vae = VAE.from_config(self.dataset.n_pixels, self.config)
        return parameter_counts(vae, len(self.dataset))

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
        s.setValue("view/sigma_level", self._sigma_level())
        s.sync()

    def shutdown(self) -> None:
        """Stop every background job and wait for it: safe at any moment, and more than
        once (mid-training, mid-download, mid-folder-read)."""
        self._closing = True
        self.loader.cancel_and_wait()
        self._finish_session_wait("cancelled", "closing")
        self._end_load()
        self.encoded_panel.cancel_and_wait()
        self.shutdown_exports()
        self.shutdown_drops()
        for job in (self.inspector, self.colouring, self.aggregate):
            job.shutdown()
        self.worker.stop()

    def closeEvent(self, event) -> None:
        if self._save_loop is not None:
            # A save is waiting for the worker (its event loop let this close in): finish
            # it first, then close the normal way, so neither save is lost.
            self._close_after_save = True
            event.ignore()
            return
        if not self._closing and not self._keep_unsaved_work():
            event.ignore()
            return
        self._save_settings()
        self.shutdown()
        super().closeEvent(event)
