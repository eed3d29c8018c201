"""The main window: composes the docks, the status bar and a declarative table of actions,
and owns the worker's lifetime. What the user does lives in plain controllers, one concept
each (explorer.qt.controllers): images they bring, datasets, exports, sessions, and decode /
select. The window is their narrow facade: ``tell``, ``confirm``, the file pickers and
``status``, which tests and scripts can answer or replace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from explorer.core.explainer import ParameterCounts, parameter_counts
from explorer.core.window_size import (
    DEFAULT_SIZE,
    MENU_AND_STATUS,
    WindowLayout,
    first_window_layout,
    layout_for_window,
)
from explorer.qt.controllers.datasets import DatasetsController
from explorer.qt.controllers.exports import ExportsController
from explorer.qt.controllers.images import ImagesController
from explorer.qt.controllers.selection import SelectionController
from explorer.qt.controllers.sessions import SessionsController
from explorer.qt.dataset_loader import source_title
from explorer.qt.paint_guard import guarded
from explorer.qt.preferences import Preferences, PreferencesDialog
from explorer.qt.theme import apply_theme, style_plot
from explorer.qt.views.controls import Controls
from explorer.qt.views.dataset_panel import DatasetPanel
from explorer.qt.views.dataset_views import AggregateDensityLayer, PointColouring, Trails
from explorer.qt.views.elbo_view import ElboView
from explorer.qt.views.encoded_images import EncodedImagesPanel
from explorer.qt.views.first_hint import FirstHint
from explorer.qt.views.help import about_text, help_dialog
from explorer.qt.views.image_panel import ImagePanel
from explorer.qt.views.inspector import Inspector
from explorer.qt.views.latent_view import LatentView
from explorer.qt.views.manifold_view import ManifoldView
from explorer.qt.views.run_figures import RunFigures
from explorer.qt.views.tips import add_view_tips
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

ORGANISATION = "LatentExplorer"
APPLICATION = "LatentExplorer"
FAILED_ADVICE = ("Nothing is training now. Reset builds a fresh model with the Training "
                 "panel's settings; Open session or a dataset starts another run.")
KEYS = QKeySequence.StandardKey


def app_icon() -> QIcon:
    """The app's icon, from resources/ (found the same way installed or from a checkout)."""
    return QIcon(str(resources.files("resources") / "icon.svg"))


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


@dataclass(frozen=True)
class Act:
    """One row of the action table: a QAction named ``name`` in ``menu`` ("File/Export" is a
    submenu). ``enabled``: a rule checked whenever the running state changes or a menu opens."""

    name: str
    menu: str
    text: str
    handler: Callable
    keys: object = None  # a key text, a Qt.Key, a StandardKey or a list of QKeySequence
    tip: str = ""
    checkable: bool = False
    group: str = ""  # the checkable actions of one group exclude each other
    enabled: Callable[[], bool] | None = None


@dataclass(frozen=True)
class Sub:
    """A submenu, placed where the table lists it; ``menu`` "File/Export"."""

    menu: str
    tip: str = ""


SEPARATOR = "-"  # a row "File-" puts a separator in the File menu


@dataclass
class Panels:
    """The window's views, handed to the controllers that drive them."""

    latent_view: LatentView
    image_panel: ImagePanel
    elbo_view: ElboView
    controls: Controls
    dataset_panel: DatasetPanel
    manifold_view: ManifoldView
    encoded_panel: EncodedImagesPanel
    inspector: Inspector
    colouring: PointColouring
    aggregate: AggregateDensityLayer
    trails: Trails


def run_state(name: str) -> property:
    """One run's state, kept on the window for now (the one place to reroute it)."""
    return property(lambda self: self._run[name],
                    lambda self, value: self._run.__setitem__(name, value))


class MainWindow(QMainWindow):
    dataset: ImageDataset = run_state("dataset")
    config: TrainConfig = run_state("config")
    worker: TrainingWorker = run_state("worker")
    snapshot: Snapshot | None = run_state("snapshot")
    model: FrozenVAE | None = run_state("model")  # the newest snapshot's frozen copy
    progress: Progress | None = run_state("progress")
    selected: int | None = run_state("selected")
    running: bool = run_state("running")  # what the GUI asked the worker for
    started: bool = run_state("started")
    failure: str | None = run_state("failure")  # why the worker's loop ended; None while alive

    def __init__(self, dataset: ImageDataset, config: TrainConfig, start: bool = True,
                 launch: bool = True, restore_state: bool = True,
                 checkpoint: Checkpoint | None = None):
        """``start``: train at once (else wait for Start). ``launch``: start the worker
        thread (the screenshot mode trains in-process and feeds snapshots itself).
        ``checkpoint``: resume it (paused) instead of training a fresh model."""
        super().__init__()
        self._run: dict = dict(dataset=dataset, config=config, worker=None, snapshot=None,
                               model=None, progress=None, selected=None, running=start,
                               started=start, failure=None)
        if checkpoint is not None:
            self.running, self.started = False, True  # a restored run opens paused
        self._pending: tuple[Snapshot | None, Progress | None] = (None, None)
        self._draw_scheduled = False
        self._shown_reason: str | None = None
        self._launched = launch
        self.closing = False
        # Yes/No questions go through here, so tests (and scripts) can answer them.
        self.confirm: Callable[[str, str], bool] = self.ask
        self.message_box: QMessageBox | None = None  # non-modal: training and reading go on
        self._settings = app_settings() if restore_state else None
        self.prefs = Preferences.load(self._settings) if self._settings else Preferences()
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)  # drops on any dock land here; the plane takes its own

        self.latent_view = LatentView()
        self.latent_view.set_dataset(dataset.labels, dataset.label_names)
        self.latent_view.set_ellipse_budget(self.prefs.ellipse_budget)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#b00020; color:white; padding:6px;")
        self.banner.hide()
        self.hint = FirstHint(self._settings)
        central = QWidget()
        self._column = QVBoxLayout(central)
        self._column.setContentsMargins(0, 0, 0, 0)
        self._column.setSpacing(0)
        for widget in (self.banner, self.hint):
            self._column.addWidget(widget)
        self._column.addWidget(self.latent_view, 1)
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
        self.panels = Panels(self.latent_view, self.image_panel, self.elbo_view, self.controls,
                             self.dataset_panel, self.manifold_view, self.encoded_panel,
                             self.inspector, self.colouring, self.aggregate, self.trails)
        self.docks = self._build_docks()
        self.figures = RunFigures(self.statusBar(), len(dataset))
        add_view_tips(self.panels)

        self.selection = SelectionController(self, self.panels, self.docks["inspector"])
        self.datasets = DatasetsController(
            self, self.panels, resolve_unsaved=lambda t, q: self.sessions.resolve_unsaved(t, q),
            new_run=lambda step: self.sessions.new_run(step))
        self.exports = ExportsController(self, self.latent_view, self.manifold_view)
        self.actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        self._build_actions(self._action_table())
        self.sessions = SessionsController(
            self, self.panels, self.datasets, self.selection.select_point,
            self.menus["File/Open recent"], self._settings,
            run_name=(None if checkpoint is None or checkpoint.path is None
                      else Path(checkpoint.path).resolve().name),
            clean_step=0 if checkpoint is None else int(checkpoint.counters["step"]))
        self.images = ImagesController(self, self.encoded_panel, self.latent_view,
                                       self.docks["encoded"], self.sessions.open_session,
                                       self.datasets.open_dataset)
        self.sessions.update_title()

        if checkpoint is not None:
            self.controls.set_config(checkpoint.config)
        self.worker = self._new_worker(start_paused=not self.running, checkpoint=checkpoint)
        self._show_running()
        self.controls.startPauseClicked.connect(self.toggle_running)
        self.controls.stepClicked.connect(self.step_once)
        self.controls.resetClicked.connect(self.reset_training)
        # Through the window, so the controls reach whichever worker trains now.
        self.controls.lrChanged.connect(lambda lr: self.worker.set_lr(lr))
        self.controls.betaChanged.connect(lambda beta: self.worker.set_beta(beta))
        self.controls.batchSizeChanged.connect(lambda n: self.worker.set_batch_size(n))
        self.latent_view.viewRegionChanged.connect(self.manifold_view.set_view_region)

        self.apply_layout(self.first_layout())
        if self._settings is not None:
            self._restore_settings()
        if launch:
            self.worker.start()
            if restore_state:
                self.sessions.offer_recovery()

    # ---------------------------------------------------------------- actions
    def _action_table(self) -> list:
        s = lambda: self.sessions  # noqa: E731 - built after the menus it fills
        exports, datasets = self.exports, self.datasets
        return [
            Act("open", "File", "Open session...", lambda: s().ask_and_open(),
                shortcuts(KEYS.Open, "Ctrl+O"),
                "Open a saved session (.lexp): the run, its curves, encoded images and view"),
            Sub("File/Open recent", "Sessions opened or saved lately"),
            Act("save", "File", "Save session", lambda: s().save_session(),
                shortcuts(KEYS.Save, "Ctrl+S"),
                "Save the run (weights, optimiser, history), encoded images and view"),
            Act("save_as", "File", "Save session as...", lambda: s().save_session_as(),
                shortcuts(KEYS.SaveAs, "Ctrl+Shift+S"), "Save the session under a new name"),
            "File-",
            Sub("File/Export", "Latents, the plane, the manifold or the curves as files"),
            Act("export_latents", "File/Export", "Latents CSV...", exports.ask_latents,
                tip="index, label, name, mu1, mu2, sigma1, sigma2 and ELBO (nats, higher is "
                    "better) of every datapoint"),
            Act("export_plane_png", "File/Export", "Latent plane PNG...", exports.ask_plane_png,
                tip="The latent plane as a PNG picture"),
            Act("export_plane_svg", "File/Export", "Latent plane SVG...", exports.ask_plane_svg,
                tip="The latent plane as SVG vector graphics"),
            Act("export_manifold", "File/Export", "Manifold PNG...", exports.ask_manifold,
                tip="The manifold grid of decoded images as a grey PNG"),
            Act("export_history", "File/Export", "History CSV...", exports.ask_history,
                "Ctrl+E", "The ELBO and log p(x) curves (nats, higher is better) as CSV"),
            Act("encode", "File", "Encode images...", lambda: self.images.ask_and_encode(),
                tip="Encode your own images and show where they land on the plane"),
            "File-",
            Act("preferences", "File", "Preferences...", self.open_preferences,
                shortcuts(KEYS.Preferences, "Ctrl+,"),
                "Device, torch threads, update rates, ellipse budget, theme, autosave"),
            "File-",
            Act("quit", "File", "Quit", self.close, KEYS.Quit,
                "Quit (the session is saved automatically unless turned off in Preferences)"),
            Act("paste", "Edit", "Paste image", lambda: self.images.paste(), KEYS.Paste,
                "Encode the image on the clipboard"),
            *(Act(f"dataset_{source}", "Datasets", source_title(source),
                  lambda _checked=False, s=source: datasets.open_dataset(s), tip=tip)
              for source, tip in (("digits", "the 1,797 8x8 digits shipped with the app"),
                                  *((name, f"{spec.title}: downloaded once into your cache "
                                     "folder, verified by SHA-256")
                                    for name, spec in KNOWN_DATASETS.items()))),
            "Datasets-",
            Act("open_folder", "Datasets", "Open folder...", datasets.ask_folder,
                tip="A folder of images; its subfolders are the labels"),
            Act("open_file", "Datasets", "Open file...", datasets.ask_file,
                tip="A .npz or .npy array of images, or an IDX file as MNIST ships"),
            Act("start", "Training", "Start / Pause", self.toggle_running, Qt.Key.Key_Space,
                "Start, pause or resume training"),
            Act("step", "Training", "Step", self.step_once, "Ctrl+.",
                "One optimiser step while paused", enabled=lambda: not self.running),
            Act("reset", "Training", "Reset", self.reset_training, "Ctrl+R",
                "Rebuild the model from scratch with the settings in the Training panel"),
            *(dock.toggleViewAction() for dock in self.docks.values()),
            "View-",
            Act("aggregate", "View", "Aggregate posterior density", self.aggregate.set_visible,
                "Ctrl+G", "The average of all q(z|x_i) as a density layer, with the prior's "
                "50/90/99 % circles: holes and overlaps show", checkable=True),
            "View-",
            *(Act(f"sigma_{k}", "View", f"{k} sigma ellipses", self._on_sigma_action,
                  f"Ctrl+{k}", f"Draw each posterior's {k}-sigma ellipse", checkable=True,
                  group="sigma") for k in (1, 2)),
            Act("help", "Help", "What am I looking at?", self.show_help, KEYS.HelpContents,
                "The explainer: theta, phi, the ELBO and the gaps; a guide to the window"),
            Act("about", "Help", "About Latent Explorer", self._about,
                tip="Versions of the app and its libraries"),
        ]

    def _menu(self, path: str, tip: str = "") -> QMenu:
        if path not in self.menus:
            parent, _, name = path.rpartition("/")
            owner = self._menu(parent) if parent else self.menuBar()
            menu = owner.addMenu(name if parent else f"&{name}")
            menu.setToolTipsVisible(bool(parent))
            menu.menuAction().setStatusTip(tip)
            menu.aboutToShow.connect(self.refresh_actions)
            self.menus[path] = menu
        return self.menus[path]

    def _build_actions(self, table: list) -> None:
        """Every row of ``table`` built into a QAction (or a submenu, a separator, or a dock's
        own toggle for the View menu), in the order listed."""
        groups: dict[str, QActionGroup] = {}
        self._rules: dict[str, Callable[[], bool]] = {}
        for row in table:
            if isinstance(row, str):
                self._menu(row.rstrip(SEPARATOR)).addSeparator()
            elif isinstance(row, Sub):
                self._menu(row.menu, row.tip)
            elif isinstance(row, QAction):  # a dock's toggle: says what it does
                row.setStatusTip(f"Show or hide {row.text()}")
                self._menu("View").addAction(row)
            else:
                a = QAction(row.text, self)
                if row.keys is not None:
                    a.setShortcuts(row.keys if isinstance(row.keys, list)
                                   else [QKeySequence(row.keys)])
                a.setCheckable(row.checkable)
                a.setStatusTip(row.tip)
                a.setToolTip(row.tip or row.text)
                a.triggered.connect(row.handler)
                if row.group:
                    groups.setdefault(row.group, QActionGroup(self)).addAction(a)
                if row.enabled is not None:
                    self._rules[row.name] = row.enabled
                self._menu(row.menu).addAction(a)
                self.actions[row.name] = a
        self.actions["sigma_1"].setChecked(True)

    def refresh_actions(self) -> None:
        """Apply each action's enabled rule (on every change of running state, menu open)."""
        for name, rule in self._rules.items():
            self.actions[name].setEnabled(rule())

    # -------------------------------------------------------------- the facade
    def ask(self, title: str, question: str) -> bool:
        """The default ``confirm``: a Yes / No box."""
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
        self.status(text.splitlines()[0], 10000)

    def status(self, text: str, timeout_ms: int = 0) -> None:
        """A message in the status bar ("" clears it)."""
        if text:
            self.statusBar().showMessage(text, timeout_ms)
        else:
            self.statusBar().clearMessage()

    def save_file_name(self, title: str, default_name: str, file_filter: str) -> str:
        return QFileDialog.getSaveFileName(self, title, default_name, file_filter)[0]

    def open_file_name(self, title: str, file_filter: str) -> str:
        return QFileDialog.getOpenFileName(self, title, "", file_filter)[0]

    def open_file_names(self, title: str, file_filter: str) -> list[str]:
        return QFileDialog.getOpenFileNames(self, title, "", file_filter)[0]

    def folder_name(self, title: str) -> str:
        return QFileDialog.getExistingDirectory(self, title)

    def add_bar(self, bar: QWidget) -> None:
        """A bar above the plane (the recovery offer)."""
        self._column.insertWidget(0, bar)

    def clear_figures(self) -> None:
        self.figures.clear(len(self.dataset))

    def sigma_level(self) -> int:
        return 2 if self.actions["sigma_2"].isChecked() else 1

    def set_sigma_level(self, k: int) -> None:
        self.actions[f"sigma_{k}"].setChecked(True)
        self._on_sigma_action()

    def _on_sigma_action(self) -> None:
        k = self.sigma_level()
        self.latent_view.set_sigma_level(k)
        self.inspector.overlay.set_sigma_level(k)

    def aggregate_shown(self) -> bool:
        return bool(self.actions["aggregate"].isChecked())

    def show_aggregate(self, on: bool) -> None:
        self.actions["aggregate"].setChecked(on)
        self.aggregate.set_visible(on)

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

    def _build_docks(self) -> dict[str, QDockWidget]:
        right, left = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea
        docks = {}
        for name, title, widget, area in (
                ("image", "Decoded image", self.image_panel, right),
                ("manifold", "Manifold", self.manifold_view, right),
                ("controls", "Training", self.controls, left),
                ("dataset", "Dataset", self.dataset_panel, left),
                ("elbo", "ELBO curves", self.elbo_view, Qt.DockWidgetArea.BottomDockWidgetArea),
                ("encoded", "Encoded images", self.encoded_panel, right),
                ("inspector", "Inspector", scrolled(self.inspector), right),
                ("colouring", "Colour points", self.colouring, left)):
            dock = docks[name] = QDockWidget(title, self)
            dock.setObjectName(f"dock-{title}")  # saveState needs stable names
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
        for first, other in (("manifold", "encoded"), ("manifold", "inspector"),
                             ("dataset", "colouring")):
            self.tabifyDockWidget(docks[first], docks[other])
        docks["manifold"].raise_()
        docks["dataset"].raise_()
        # Side columns run the full height; the curves sit under the plane only.
        self.setCorner(Qt.Corner.BottomLeftCorner, left)
        self.setCorner(Qt.Corner.BottomRightCorner, right)
        return docks

    # --------------------------------------------------------------- training
    def _new_worker(self, start_paused: bool, checkpoint: Checkpoint | None = None,
                    session=None) -> TrainingWorker:
        worker = TrainingWorker(self.dataset, self.config, start_paused=start_paused,
                                checkpoint=checkpoint, session=session)
        worker.progressed.connect(self._on_progress)
        worker.snapshotted.connect(self._on_snapshot)
        worker.failed.connect(self._on_failed)
        worker.checkpointSaved.connect(self.sessions.on_checkpoint_saved)
        worker.finished.connect(self.sessions.end_save_wait)
        worker.set_rates(self.prefs.curve_hz, self.prefs.latent_hz)
        return worker

    def replace_worker(self, start_paused: bool, session=None, drop_results: bool = False
                       ) -> None:
        """Stop the worker and train ``session`` (None: a fresh model of ``config``) in a new
        one. ``drop_results``: results the old one sent before it stopped are dropped, so no
        snapshot of old data is drawn over the new (only the worker queues calls here)."""
        old = self.worker
        old.stop()
        for signal, slot in ((old.progressed, self._on_progress),
                             (old.snapshotted, self._on_snapshot), (old.failed, self._on_failed),
                             (old.checkpointSaved, self.sessions.on_checkpoint_saved)):
            signal.disconnect(slot)
        if drop_results:
            QCoreApplication.removePostedEvents(self, QEvent.Type.MetaCall)
            self._draw_scheduled = False
        self.worker = self._new_worker(start_paused=start_paused, session=session)
        if self._launched:
            self.worker.start()
        old.deleteLater()

    def start_run(self, dataset: ImageDataset, config: TrainConfig, session, resumed: bool
                  ) -> None:
        """Replace the run: train ``session`` on ``dataset``; ``resumed`` (a checkpoint)
        opens paused with its own settings in the controls."""
        self.worker.stop()
        self.dataset, self.config = dataset, config
        if resumed:
            self.controls.set_config(config)
            self.running, self.started = False, True
        self.snapshot = self.model = self.progress = None
        self._pending = (None, None)
        self.selection.forget()
        self._hide_banner()
        self.failure = None  # a new worker: the old one's failure is no longer the state
        self._show_running()
        self.replace_worker(start_paused=not self.running, session=session, drop_results=True)

    def _show_running(self) -> None:
        self.controls.set_running(self.running, self.started)
        self.refresh_actions()

    def _refuse_if_failed(self, what: str) -> bool:
        """True (and says why, plainly) when the worker's loop has ended with an error, so
        a request would go to a thread that no longer serves any."""
        if self.failure is None:
            return False
        self.tell(f"{what}: training has stopped", f"{self.failure}\n{FAILED_ADVICE}")
        return True

    def toggle_running(self) -> None:
        if self._refuse_if_failed("Start"):
            return
        if self.running:
            self.worker.pause()
        else:
            self._hide_banner()
            self.worker.resume()
        self.running, self.started = not self.running, True
        self._show_running()

    def step_once(self) -> None:
        if self._refuse_if_failed("Step"):
            return
        if not self.running:
            self._hide_banner()
            self.worker.step_once()

    def reset_training(self) -> None:
        try:
            config = self.controls.config_for_reset(self.config)
        except ConfigError as exc:
            self.status(f"Reset not applied: {exc}", 8000)
            return
        if not self.sessions.resolve_unsaved("Reset", "Rebuild the model from scratch? The "
                                             "current run's training is discarded."):
            self.status("Reset cancelled; the run goes on", 6000)
            return
        self.config = config
        self._hide_banner()
        self.dataset_panel.set_config(config)
        if self.failure is not None:
            # The failed worker's thread has ended: a new one trains a fresh model, paused.
            self.failure, self.running = None, False
            self._show_running()
            self.replace_worker(start_paused=True)
            self.status("A new training thread is building the model from scratch", 6000)
        else:
            self.worker.reset(config)
            self.status("Model rebuilt from scratch", 4000)
        self.setWindowModified(True)

    # ------------------------------------------------- results from the worker
    def _on_progress(self, progress: Progress) -> None:
        self._pending = (self._pending[0], progress)
        self._schedule_draw()

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._pending = (snapshot, self._pending[1])
        self._schedule_draw()

    def _schedule_draw(self) -> None:
        # Results queue up while the GUI is busy; one draw handles only the newest.
        if not self._draw_scheduled:
            self._draw_scheduled = True
            QTimer.singleShot(0, self._draw_pending)

    @guarded()  # a timer slot, called from Qt's event loop
    def _draw_pending(self) -> None:
        self._draw_scheduled = False
        (snapshot, progress), self._pending = self._pending, (None, None)
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
        self.colouring.set_data(snapshot.model, self.selection.model_inputs)
        self.aggregate.set_latents(snapshot.mu, snapshot.sigma)
        self.trails.add_snapshot(snapshot.mu)
        self.selection.snapshot_arrived()
        self.sessions.snapshot_arrived(len(snapshot.mu))

    def apply_progress(self, p: Progress) -> None:
        self.progress = p
        self.sessions.progressed(p.step)
        self.elbo_view.set_history(p.train, p.heldout, p.logpx)
        self.figures.show(p)
        if p.stopped_reason and p.stopped_reason != self._shown_reason:
            self._shown_reason = p.stopped_reason
            self.running = False
            self._show_running()
            self.banner.setText(p.stopped_reason)
            self.banner.show()
            self.status("Training diverged and was paused", 10000)

    def _on_failed(self, message: str) -> None:
        if self.sender() not in (None, self.worker):
            return  # a replaced worker's last words
        self.failure = message
        self.running = False
        self._show_running()
        self.controls.set_failed(True)
        self.banner.setText(f"{message}. {FAILED_ADVICE}")
        self.banner.show()
        self.status("Training has stopped: press Reset to start again", 10000)

    def _hide_banner(self) -> None:
        self.banner.hide()
        self._shown_reason = None

    # ------------------------------------------------------ preferences, help
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
        self.status("Preferences saved; device and threads apply from the next Reset or run",
                    6000)

    def show_help(self) -> None:
        self.help_dialog = help_dialog(self, self.parameter_counts())

    def parameter_counts(self) -> ParameterCounts:
        """|phi|, |theta| and the lambda_i counts of the live model (of the configured one
        before the first snapshot)."""
        if self.model is not None:
            vae = self.model.model
        else:
            from trainer.model import VAE

            vae = VAE.from_config(self.dataset.n_pixels, self.config)
        return parameter_counts(vae, len(self.dataset))

    def _about(self) -> None:
        QMessageBox.about(self, "About Latent Explorer", about_text())

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
            self.set_sigma_level(int(level))

    def _save_settings(self) -> None:
        s = self._settings
        if s is None:
            return
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("view/sigma_level", self.sigma_level())
        s.sync()

    def shutdown(self) -> None:
        """Stop every background job and wait for it: safe at any moment, and more than
        once (mid-training, mid-download, mid-folder-read)."""
        self.closing = True
        self.datasets.cancel_load()
        self.encoded_panel.cancel_and_wait()
        self.exports.shutdown()
        self.images.shutdown()
        for job in (self.inspector, self.colouring, self.aggregate):
            job.shutdown()
        self.worker.stop()

    def closeEvent(self, event) -> None:
        if not self.sessions.may_close():
            event.ignore()
            return
        self._save_settings()
        self.shutdown()
        super().closeEvent(event)

    # Drops on any part of the window but the plane (which handles its own) arrive here.
    @staticmethod
    def _local_paths(event) -> list[str]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    @guarded()
    def dragEnterEvent(self, event) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    @guarded()
    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    @guarded()
    def dropEvent(self, event) -> None:
        paths = self._local_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.images.open_paths(paths)
