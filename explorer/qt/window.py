"""The main window: composes the docks, the status bar and a declarative table of actions.
It holds no run state: the runs are ``state`` (explorer.core.state.AppState), their workers
``trainers``, and what the user does lives in plain controllers, one concept each
(explorer.qt.controllers): the current run, runs side by side, images they bring, datasets,
exports, sessions, decode / select, preferences. The window is their narrow facade: ``tell``,
``confirm``, the file pickers and ``status``, which tests and scripts can answer or replace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from explorer.core.state import MAX_RUNS, SCHEDULE_TEXT, AppState
from explorer.core.window_size import WindowLayout
from explorer.qt import docks
from explorer.qt.action_table import KEYS, Act, ActionTable, Sub, shortcuts
from explorer.qt.controllers.current_run import CurrentRunController
from explorer.qt.controllers.datasets import DatasetsController
from explorer.qt.controllers.exports import ExportsController
from explorer.qt.controllers.images import ImagesController
from explorer.qt.controllers.preferences import PreferencesController
from explorer.qt.controllers.runs import RunsController
from explorer.qt.controllers.selection import SelectionController
from explorer.qt.controllers.sessions import SessionsController
from explorer.qt.controllers.training import Trainers
from explorer.qt.dataset_loader import source_title
from explorer.qt.gui_collector import gui_collector
from explorer.qt.paint_guard import guarded
from explorer.qt.views.banner import Banner
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
from trainer import KNOWN_DATASETS, Checkpoint, ImageDataset, TrainConfig

ORGANISATION = "LatentExplorer"
APPLICATION = "LatentExplorer"


def app_icon() -> QIcon:
    """The app's icon, from resources/ (found the same way installed or from a checkout)."""
    return QIcon(str(resources.files("resources") / "icon.svg"))


def app_settings() -> QSettings:
    """Ini-format user settings (tests point QSettings.setPath at a temporary folder)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                     APPLICATION)


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
    dimensions: DimensionsView
    thumbnails: ThumbnailItem
    banner: Banner
    figures: RunFigures


class MainWindow(QMainWindow):
    """The window holds runs (``state``) and a TrainingController per run (``trainers``); it
    is not a run. ``current_run`` shows the current one and turns Start / Step / Reset into
    requests to its worker."""

    def __init__(self, dataset: ImageDataset, config: TrainConfig, start: bool = True,
                 launch: bool = True, restore_state: bool = True,
                 checkpoint: Checkpoint | None = None):
        """``start``: train at once (else wait for Start). ``launch``: start the worker
        thread (the screenshot mode trains in-process and feeds snapshots itself).
        ``checkpoint``: resume it (paused) instead of training a fresh model."""
        super().__init__()
        self.closing = False
        # Collection in this thread only while the window is open (explorer.qt.gui_collector).
        self._holds_collector = True
        gui_collector().hold()
        # Yes/No questions go through here, so tests (and scripts) can answer them.
        self.confirm: Callable[[str, str], bool] = self.ask
        self.message_box: QMessageBox | None = None  # non-modal: training and reading go on
        settings = app_settings() if restore_state else None
        self.preferences = PreferencesController(self, settings)
        prefs = self.preferences.prefs
        self.state = AppState()
        self.trainers = Trainers(self.state, launch=launch,
                                 rates=(prefs.curve_hz, prefs.latent_hz), parent=self)
        run_name = (None if checkpoint is None or checkpoint.path is None
                    else Path(checkpoint.path).resolve().name)
        first = self.state.add_run(dataset, config, run_name or "run 1")
        self.trainers.add(first)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)  # drops on any dock land here; the plane takes its own

        self.latent_view = LatentView()
        self.latent_view.set_dataset(dataset.labels, dataset.label_names)
        self.latent_view.set_ellipse_budget(prefs.ellipse_budget)
        self.banner = Banner()
        self.hint = FirstHint(settings)
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
        self.figures = RunFigures(self.statusBar(), len(dataset))
        self.statusBar().addPermanentWidget(self.schedule_label)
        self.panels = Panels(self.latent_view, self.image_panel, self.elbo_view, self.controls,
                             self.dataset_panel, self.manifold_view, self.encoded_panel,
                             self.inspector, self.colouring, self.aggregate, self.trails,
                             self.dimensions, self.thumbnails, self.banner, self.figures)
        self.docks = docks.build_docks(self, {
            "image": self.image_panel, "manifold": self.manifold_view,
            "controls": self.controls, "dataset": self.dataset_panel,
            "elbo": self.elbo_view, "compare": self.comparison,
            "encoded": self.encoded_panel, "inspector": self.inspector,
            "colouring": self.colouring, "dimensions": self.dimensions,
            "strips": self.strips})
        add_view_tips(self.panels)

        self.current_run = CurrentRunController(
            self, self.panels, self.state, self.trainers,
            placement={"device": config.device, "threads": config.threads},
            refresh_actions=lambda: self.action_table.refresh())
        self.selection = SelectionController(self, self.panels, self.docks["inspector"])
        self.datasets = DatasetsController(
            self, self.panels, resolve_unsaved=lambda t, q: self.sessions.resolve_unsaved(t, q),
            new_run=lambda step: self.sessions.new_run(step))
        self.exports = ExportsController(self, self.latent_view, self.manifold_view)
        self.action_table = ActionTable(self, self._action_table())
        self.actions, self.menus = self.action_table.actions, self.action_table.menus
        self.actions[f"sigma_{self.state.sigma_level}"].setChecked(True)
        self.actions["schedule_one"].setChecked(True)
        self.state.sigma_level_changed.connect(self._show_sigma_level)
        self.sessions = SessionsController(
            self, self.panels, self.datasets, self.selection.select_point,
            self.menus["File/Open recent"], settings,
            run_name=run_name,
            clean_step=0 if checkpoint is None else int(checkpoint.counters["step"]))
        self.images = ImagesController(self, self.encoded_panel, self.latent_view,
                                       self.docks["encoded"], self.sessions.open_session,
                                       self.datasets.open_dataset)
        self.sessions.update_title()

        self.runs = RunsController(self, self.state, self.trainers, self.planes,
                                   self.elbo_view, self.comparison,
                                   on_current=self.current_run.show_run,
                                   on_new_controller=self.sessions.watch_trainer)
        self.sessions.watch_trainer(self.trainers.of(first))
        self.current_run.begin(first, start, checkpoint)
        for signal in (self.state.run_added, self.state.run_removed,
                       self.state.schedule_changed):
            signal.connect(self._show_schedule)
        self._show_schedule()
        self.latent_view.viewRegionChanged.connect(self.manifold_view.set_view_region)

        self.apply_layout(docks.first_layout())
        self.preferences.restore_window()
        if launch and restore_state:
            self.sessions.offer_recovery()

    # ---------------------------------------------------------------- actions
    def _action_table(self) -> list:
        s = lambda: self.sessions  # noqa: E731 - built after the menus it fills
        exports, datasets, run = self.exports, self.datasets, self.current_run
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
                tip="The manifold grid of decoded images as a PNG (grey or RGB, as the data)"),
            Act("export_history", "File/Export", "History CSV...", exports.ask_history,
                "Ctrl+E", "The ELBO and log p(x) curves (nats, higher is better) as CSV"),
            Act("encode", "File", "Encode images...", lambda: self.images.ask_and_encode(),
                tip="Encode your own images and show where they land on the plane"),
            "File-",
            Act("preferences", "File", "Preferences...", self.preferences.open_dialog,
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
            Act("start", "Training", "Start / Pause", run.toggle_running, Qt.Key.Key_Space,
                "Start, pause or resume training"),
            Act("step", "Training", "Step", run.step_once, "Ctrl+.",
                "One optimiser step while paused",
                enabled=lambda: not self.trainers.current.wants_running),
            Act("reset", "Training", "Reset", run.reset_training, "Ctrl+R",
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
            *(Act(f"sigma_{k}", "View", f"{k} sigma ellipses",
                  lambda _checked=False, k=k: self.state.set_sigma_level(k), f"Ctrl+{k}",
                  f"Draw each posterior's {k}-sigma ellipse", checkable=True, group="sigma")
              for k in (1, 2)),
            Act("help", "Help", "What am I looking at?", self.show_help, KEYS.HelpContents,
                "The explainer: theta, phi, the ELBO and the gaps; a guide to the window"),
            Act("about", "Help", "About Latent Explorer", self._about,
                tip="Versions of the app and its libraries"),
        ]

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

    def apply_layout(self, layout: WindowLayout) -> None:
        """Resize the window and its docks (the first window, or a --size screenshot)."""
        docks.apply_layout(self, self.docks, layout)

    # ------------------------------------------------------- the view actions
    def _show_sigma_level(self, k: int) -> None:
        """The state's sigma level: its menu check, every plane's ellipses, the inspector's."""
        self.actions[f"sigma_{k}"].setChecked(True)
        for plane in self.planes.planes():
            plane.view.set_sigma_level(k)
        self.inspector.overlay.set_sigma_level(k)

    def aggregate_shown(self) -> bool:
        return bool(self.actions["aggregate"].isChecked())

    def show_aggregate(self, on: bool) -> None:
        self.actions["aggregate"].setChecked(on)
        self.aggregate.set_visible(on)

    def show_thumbnails(self, on: bool) -> None:
        self.actions["thumbnails"].setChecked(on)
        self.thumbnails.setVisible(on)
        if on:
            self.current_run.update_thumbnails()

    def _show_schedule(self, *_) -> None:
        """The schedule's menu check and status label; the comparison with two runs."""
        schedule = self.state.schedule
        self.actions[f"schedule_{schedule}"].setChecked(True)
        self.schedule_label.setText(f"Schedule: {SCHEDULE_TEXT[schedule]}")
        several = len(self.state.runs) > 1
        self.schedule_label.setVisible(several)
        self.docks["compare"].setVisible(several)

    def show_help(self) -> None:
        self.help_dialog = help_dialog(self, self.current_run.parameter_counts())

    def _about(self) -> None:
        QMessageBox.about(self, "About Latent Explorer", about_text())

    # ------------------------------------------------------------- lifecycle
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
        if self._holds_collector:  # the workers have stopped: any thread may collect again
            self._holds_collector = False
            gui_collector().release()

    def closeEvent(self, event) -> None:
        if not self.sessions.may_close():
            event.ignore()
            return
        self.preferences.save_window()
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
