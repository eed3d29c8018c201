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

import numpy as np
from PySide6.QtCore import QSettings, Qt
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

from explorer.core.explainer import ParameterCounts, optimised_text, parameter_counts
from explorer.core.inference_view import plane_latents, plane_statement
from explorer.core.plane_view import plane_data
from explorer.core.state import MAX_RUNS, SCHEDULE_TEXT, AppState, Run
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
from explorer.qt.controllers.runs import RunsController
from explorer.qt.controllers.selection import SelectionController
from explorer.qt.controllers.sessions import SessionsController
from explorer.qt.controllers.training import Trainers, TrainingController
from explorer.qt.dataset_loader import source_title
from explorer.qt.paint_guard import guarded
from explorer.qt.preferences import Preferences, PreferencesDialog
from explorer.qt.theme import apply_theme, style_plot
from explorer.qt.views.controls import Controls
from explorer.qt.views.dataset_panel import DatasetPanel
from explorer.qt.views.dataset_views import AggregateDensityLayer, PointColouring, Trails
from explorer.qt.views.dimensions_view import DimensionsView
from explorer.qt.views.elbo_view import ElboView
from explorer.qt.views.encoded_images import EncodedImagesPanel
from explorer.qt.views.first_hint import FirstHint
from explorer.qt.views.help import about_text, help_dialog
from explorer.qt.views.image_panel import ImagePanel
from explorer.qt.views.inspector import Inspector
from explorer.qt.views.latent_view import LatentView
from explorer.qt.views.manifold_view import ManifoldView
from explorer.qt.views.run_comparison import RunComparison
from explorer.qt.views.run_figures import RunFigures
from explorer.qt.views.run_planes import RunPlane, RunPlanes
from explorer.qt.views.strips_view import StripsView
from explorer.qt.views.thumbnails import MAX_THUMBNAILS, ThumbnailItem
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


class MainWindow(QMainWindow):
    """The window holds runs (``state``, an explorer.core.state.AppState) and a
    TrainingController per run (``trainers``); it is not a run. The properties below read
    the current run, for the controllers that act on it."""

    dataset: ImageDataset = property(lambda self: self.state.current.dataset)
    snapshot: Snapshot | None = property(lambda self: self.state.current.snapshot)
    model: FrozenVAE | None = property(lambda self: self.state.current.model)
    progress: Progress | None = property(lambda self: self.state.current.progress)
    failure: str | None = property(lambda self: self.state.current.failure)
    worker: TrainingWorker = property(lambda self: self.trainers.current.worker)
    # Asked for or echoed: the session's paused flag is the one owner (Progress.paused).
    running: bool = property(lambda self: self.trainers.current.wants_running)
    started: bool = property(lambda self: self.trainers.current.started)

    @property
    def config(self) -> TrainConfig:
        """The current run's config (its session's echo), placed on this window's device
        and threads (Preferences or the command line: they apply from the next run)."""
        return self.state.current.config.replace(**self.placement)

    @config.setter
    def config(self, config: TrainConfig) -> None:
        self.state.current.set_config(config)

    @property
    def selected(self) -> int | None:
        """The selected datapoint, linked across every run."""
        return self.state.selected

    @selected.setter
    def selected(self, index: int | None) -> None:
        self.state.select(index)

    def __init__(self, dataset: ImageDataset, config: TrainConfig, start: bool = True,
                 launch: bool = True, restore_state: bool = True,
                 checkpoint: Checkpoint | None = None):
        """``start``: train at once (else wait for Start). ``launch``: start the worker
        thread (the screenshot mode trains in-process and feeds snapshots itself).
        ``checkpoint``: resume it (paused) instead of training a fresh model."""
        super().__init__()
        self._shown_reason: str | None = None
        self.closing = False
        # Yes/No questions go through here, so tests (and scripts) can answer them.
        self.confirm: Callable[[str, str], bool] = self.ask
        self.message_box: QMessageBox | None = None  # non-modal: training and reading go on
        self._settings = app_settings() if restore_state else None
        self.prefs = Preferences.load(self._settings) if self._settings else Preferences()
        self.placement = {"device": config.device, "threads": config.threads}
        self.state = AppState()
        self.trainers = Trainers(self.state, launch=launch,
                                 rates=(self.prefs.curve_hz, self.prefs.latent_hz), parent=self)
        run_name = (None if checkpoint is None or checkpoint.path is None
                    else Path(checkpoint.path).resolve().name)
        first = self.state.add_run(dataset, config, run_name or "run 1")
        self.trainers.add(first)
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
        self.planes = RunPlanes(RunPlane(self.latent_view, primary=True))
        self.schedule_label = QLabel()
        self.schedule_label.setToolTip("Training > One run trains at a time / All runs train "
                                       "in turn")
        self._column.addWidget(self.planes, 1)
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
        self.colouring.set_factors(dataset.factors)
        self.aggregate = AggregateDensityLayer(self.latent_view)
        self.trails = Trails(self.latent_view.plotItem)
        self.thumbnails = ThumbnailItem()
        self.thumbnails.setZValue(2.5)  # over the dots and ellipses, under the selection
        self.thumbnails.hide()
        self.latent_view.addItem(self.thumbnails, ignoreBounds=True)
        self.comparison = RunComparison()
        self.dimensions = DimensionsView()
        self.strips = StripsView()
        self.dimensions.set_choice(self.state.plane_view)
        self.dimensions.viewChosen.connect(self.state.set_plane_view)
        self.state.plane_view_changed.connect(self._replot_plane)
        self.plane = None  # explorer.core.plane_view.PlaneData of the current snapshot
        self.panels = Panels(self.latent_view, self.image_panel, self.elbo_view, self.controls,
                             self.dataset_panel, self.manifold_view, self.encoded_panel,
                             self.inspector, self.colouring, self.aggregate, self.trails)
        self.docks = self._build_docks()
        self.figures = RunFigures(self.statusBar(), len(dataset))
        self.statusBar().addPermanentWidget(self.schedule_label)
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
            run_name=run_name,
            clean_step=0 if checkpoint is None else int(checkpoint.counters["step"]))
        self.images = ImagesController(self, self.encoded_panel, self.latent_view,
                                       self.docks["encoded"], self.sessions.open_session,
                                       self.datasets.open_dataset)
        self.sessions.update_title()

        self.runs = RunsController(self, self.state, self.trainers, self.planes,
                                   self.elbo_view, self.comparison,
                                   on_current=self._show_current_run,
                                   on_new_controller=self._connect_controller)
        self.state.run_added.connect(self._watch_run)
        self.state.schedule_changed.connect(self._show_schedule)
        self._watch_run(first)
        self._connect_controller(self.trainers.of(first))
        if checkpoint is not None:
            self.controls.set_config(checkpoint.config)
        # A restored run opens paused: the user sees it as it was saved.
        self.trainers.of(first).started = start or checkpoint is not None
        self.trainers.of(first).new_worker(start_paused=not start or checkpoint is not None,
                                           checkpoint=checkpoint)
        self._show_running()
        self._show_schedule(self.state.schedule)
        self.controls.startPauseClicked.connect(self.toggle_running)
        self.controls.stepClicked.connect(self.step_once)
        self.controls.resetClicked.connect(self.reset_training)
        # Through the trainers, so the controls reach the current run's worker.
        self.controls.lrChanged.connect(lambda lr: self.trainers.current.set_lr(lr))
        self.controls.betaChanged.connect(lambda beta: self.trainers.current.set_beta(beta))
        self.controls.batchSizeChanged.connect(
            lambda n: self.trainers.current.set_batch_size(n))
        self.latent_view.viewRegionChanged.connect(self.manifold_view.set_view_region)

        self.apply_layout(self.first_layout())
        if self._settings is not None:
            self._restore_settings()
        if launch and restore_state:
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
            Act("new_run", "File", "New run...", lambda: self.runs.new_run(), "Ctrl+T",
                "Another run on this dataset beside the current one: a copy of its settings "
                "with your changes (beta, likelihood, hidden sizes, seed)",
                enabled=lambda: len(self.state.runs) < MAX_RUNS),
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
                                  ("sprites-grey", "grey 32x32 shapes made on the fly, with "
                                   "known factors (shape, x, y, scale, rotation)"),
                                  ("sprites", "the same shapes in colour (hue a factor too)"),
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
            "Training-",
            Act("schedule_one", "Training", "One run trains at a time",
                lambda: self.state.set_schedule("one"),
                tip="Starting a run pauses the others", checkable=True, group="schedule"),
            Act("schedule_all", "Training", "All runs train in turn",
                lambda: self.state.set_schedule("all"),
                tip="Running runs take one step each in turn (round-robin), so the window "
                    "keeps a core", checkable=True, group="schedule"),
            *(dock.toggleViewAction() for dock in self.docks.values()),
            "View-",
            Act("thumbnails", "View", "Thumbnails on the plane", self.show_thumbnails,
                tip=f"Small pictures of up to {MAX_THUMBNAILS} images at their \u03bc, the "
                "same ones as the view moves", checkable=True),
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
        self.actions["schedule_one"].setChecked(True)

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
        for plane in self.planes.planes():
            plane.view.set_sigma_level(k)
        self.inspector.overlay.set_sigma_level(k)

    def aggregate_shown(self) -> bool:
        return bool(self.actions["aggregate"].isChecked())

    def show_thumbnails(self, on: bool) -> None:
        self.actions["thumbnails"].setChecked(on)
        self.thumbnails.setVisible(on)
        if on:
            self._update_thumbnails()

    def _update_thumbnails(self) -> None:
        if not self.thumbnails.isVisible():
            return
        dataset = self.state.current.dataset if self.state.current else self.dataset
        if self.thumbnails._images is None or len(self.thumbnails._images) != len(dataset):
            h, w = dataset.image_shape
            grey = None if dataset.channels != 1 else np.rint(
                dataset.as_float().reshape(-1, h, w) * 255).astype(np.uint8)
            self.thumbnails.set_images(grey)
        if self.plane is not None:
            self.thumbnails.set_positions(self.plane.means)

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
                ("controls", "Training", scrolled(self.controls), left),
                ("dataset", "Dataset", self.dataset_panel, left),
                ("elbo", "ELBO curves", self.elbo_view, Qt.DockWidgetArea.BottomDockWidgetArea),
                ("compare", "Compare runs", self.comparison,
                 Qt.DockWidgetArea.BottomDockWidgetArea),
                ("encoded", "Encoded images", self.encoded_panel, right),
                ("inspector", "Inspector", scrolled(self.inspector), right),
                ("colouring", "Colour points", self.colouring, left),
                ("dimensions", "Dimensions", scrolled(self.dimensions), right),
                ("strips", "Traversals", scrolled(self.strips), right)):
            dock = docks[name] = QDockWidget(title, self)
            dock.setObjectName(f"dock-{title}")  # saveState needs stable names
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
        for first, other in (("manifold", "encoded"), ("manifold", "inspector"),
                             ("manifold", "strips"),
                             ("dataset", "colouring"), ("manifold", "dimensions")):
            self.tabifyDockWidget(docks[first], docks[other])
        # The selected datapoint in every run, beside the curves (shown with two runs).
        self.splitDockWidget(docks["elbo"], docks["compare"], Qt.Orientation.Horizontal)
        docks["manifold"].raise_()
        docks["dataset"].raise_()
        # Side columns run the full height; the curves sit under the plane only.
        self.setCorner(Qt.Corner.BottomLeftCorner, left)
        self.setCorner(Qt.Corner.BottomRightCorner, right)
        return docks

    # --------------------------------------------------------------- training
    # --------------------------------------------------------------- training
    def _connect_controller(self, controller: TrainingController) -> None:
        """A run's controller, once: its checkpoint answers go to the sessions controller."""
        controller.checkpointSaved.connect(self.sessions.on_checkpoint_saved)
        controller.workerFinished.connect(self.sessions.worker_finished)

    def _watch_run(self, run: Run) -> None:
        """The current run's echoes redraw the window's full views (the others' planes,
        curves and titles listen for themselves)."""
        def current() -> bool:
            return run is self.state.current

        run.snapshot_changed.connect(lambda s: current() and self.apply_snapshot(s))
        run.progress_changed.connect(lambda p: current() and self.apply_progress(p))
        run.failure_changed.connect(lambda m: current() and self._show_failure(m))
        run.running_changed.connect(lambda _: current() and self._show_running())
        self._show_schedule(self.state.schedule)

    def replace_worker(self, start_paused: bool, session=None, drop_results: bool = False
                       ) -> None:
        """Train ``session`` (None: a fresh model of ``config``) in a new worker for the
        current run; its controller drops whatever the old worker still sends."""
        self.trainers.current.new_worker(start_paused=start_paused, session=session)

    def start_run(self, dataset: ImageDataset, config: TrainConfig, session, resumed: bool
                  ) -> None:
        """One run again, on ``dataset``: train ``session``; ``resumed`` (a checkpoint)
        opens paused with its own settings in the controls."""
        self.runs.drop_extra_runs()
        controller = self.trainers.current
        controller.stop()
        start_paused = resumed or not controller.wants_running
        if resumed:
            self.controls.set_config(config)
            controller.started = True
        self.selection.forget()
        self._hide_banner()
        self.placement = {"device": config.device, "threads": config.threads}
        self.state.current.set_dataset(dataset)
        self.state.current.set_config(config)
        controller.new_worker(start_paused=start_paused, session=session)
        self._show_running()

    def _show_running(self) -> None:
        """The current run's running echo (and whether it was ever started)."""
        self.controls.set_running(self.state.current.running, self.started)
        self.refresh_actions()

    def _show_schedule(self, schedule: str) -> None:
        self.actions[f"schedule_{schedule}"].setChecked(True)
        self.schedule_label.setText(f"Schedule: {SCHEDULE_TEXT[schedule]}")
        several = len(self.state.runs) > 1
        self.schedule_label.setVisible(several)
        self.docks["compare"].setVisible(several)

    def _refuse_if_failed(self, what: str) -> bool:
        """True (and says why, plainly) when the worker's loop has ended with an error, so
        a request would go to a thread that no longer serves any."""
        if self.failure is None:
            return False
        self.tell(f"{what}: training has stopped", f"{self.failure}\n{FAILED_ADVICE}")
        return True

    def toggle_running(self) -> None:
        """Start or pause the current run (starting it pauses the others when one run
        trains at a time)."""
        if self._refuse_if_failed("Start"):
            return
        controller = self.trainers.current
        if controller.wants_running:
            controller.pause()
        else:
            self._hide_banner()
            self.trainers.start(self.state.current)
        controller.started = True
        self._show_running()

    def step_once(self) -> None:
        if self._refuse_if_failed("Step"):
            return
        if not self.running:
            self._hide_banner()
            self.trainers.current.step()

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
        self._hide_banner()
        self.dataset_panel.set_config(config)
        failed = self.failure is not None
        # A failed worker's thread has ended: the controller trains a fresh model, paused,
        # in a new one.
        self.trainers.current.reset(config)
        self.state.current.set_config(config)  # asked for; the next snapshot echoes it
        self._show_running()
        self.status("A new training thread is building the model from scratch" if failed
                    else "Model rebuilt from scratch", 6000)
        self.setWindowModified(True)

    # ----------------------------------------------- the current run's echoes
    def _show_current_run(self, run: Run) -> None:
        """Another run became current: the full views, the Training panel and the figures
        show it."""
        self.controls.set_config(run.config)
        self.dataset_panel.set_config(run.config)
        self.trails.clear()
        self._hide_banner()
        if run.snapshot is not None:
            self.apply_snapshot(run.snapshot)
        if run.progress is not None:
            self.apply_progress(run.progress)
        else:
            self.clear_figures()
        self._show_failure(run.failure)
        self.status(f"{run.name} is the current run: the Training panel drives it", 5000)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Draw the current run's newest snapshot in the full views."""
        mu, sigma, starts = plane_latents(snapshot)  # semi: the refined q
        self.plane = plane = plane_data(self.state.plane_view, mu, sigma)
        rotation = plane.ellipses() if plane.rotated else None
        # Refinement lines in a 2-D latent only (above it, the view is a projection).
        self.latent_view.set_latents(plane.means, plane.extents, rotation,
                                     starts=starts if mu.shape[1] == 2 else None)
        self.latent_view.set_view_titles(*plane.axis_titles, plane.text)
        self.latent_view.set_caption(plane_statement(snapshot.config))
        self.controls.set_parameter_counts(optimised_text(self.parameter_counts()))
        self.dimensions.set_latents(mu, sigma)
        self.manifold_view.lift = None if mu.shape[1] == 2 else plane.lift
        self.manifold_view.set_model(snapshot.model)
        self.encoded_panel.model.set_inference(snapshot.config)
        self.encoded_panel.model.reencode(snapshot.model)  # the markers follow training
        self.colouring.set_data(snapshot.model, self.selection.model_inputs)
        # The aggregate density sums axis-aligned Gaussians: exact in an axes view only.
        self.aggregate.set_latents(*((plane.means, plane.extents) if not plane.rotated
                                     else (np.zeros((0, 2)), np.zeros((0, 2)))))
        if plane.rotated:
            self.aggregate.image.hide()
        self.trails.add_snapshot(plane.means)
        self._update_thumbnails()
        self.selection.snapshot_arrived()
        self.sessions.snapshot_arrived(len(snapshot.mu))

    def _replot_plane(self, choice) -> None:
        """Another 2-D view chosen: the plane, its overlays and the manifold redrawn."""
        self.dimensions.set_choice(choice)
        self.trails.clear()
        if self.state.current is not None and self.state.current.snapshot is not None:
            self.apply_snapshot(self.state.current.snapshot)
            self.images.show_markers()
            self.status(self.plane.text, 6000)

    def apply_progress(self, p: Progress) -> None:
        self.sessions.progressed(p.step)
        self.elbo_view.set_history(p.train, p.heldout, p.logpx, p.gaps)
        self.figures.show(p)
        if p.stopped_reason and p.stopped_reason != self._shown_reason:
            self._shown_reason = p.stopped_reason
            self._show_running()
            self.banner.setText(p.stopped_reason)
            self.banner.show()
            self.status("Training diverged and was paused", 10000)

    def _show_failure(self, message: str | None) -> None:
        """The current run's worker ended with ``message`` (None: it lives again)."""
        self._show_running()
        self.controls.set_failed(message is not None)
        if message is None:
            return
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
        for plane in self.planes.planes():
            plane.view.set_ellipse_budget(prefs.ellipse_budget)
        self.trainers.set_rates(prefs.curve_hz, prefs.latent_hz)
        self.placement = {"device": prefs.device, "threads": prefs.torch_threads}
        self.status("Preferences saved; device and threads apply from the next Reset or run",
                    6000)

    def show_help(self) -> None:
        self.help_dialog = help_dialog(self, self.parameter_counts())

    def parameter_counts(self) -> ParameterCounts:
        """|phi|, |theta| and the lambda_i counts of the live model (of the configured one
        before the first snapshot)."""
        rows = None
        if self.model is not None:
            vae = self.model.model
            if self.config.inference == "free":  # held-out points have no row: NaN
                rows = int(np.isfinite(self.snapshot.mu).all(axis=1).sum())
        else:
            from trainer.model import VAE

            vae = VAE.from_config(self.dataset.n_pixels, self.config)
        return parameter_counts(vae, len(self.dataset), self.config.inference, rows)

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
        for job in (self.inspector, self.colouring, self.aggregate, self.comparison):
            job.shutdown()
        self.trainers.shutdown()

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
